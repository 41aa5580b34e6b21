"""Issue 10's performance figure, end to end: a shared dependency fails under a real service.

    bash bench/run.sh --no-service --quick --scenarios S1   # once: nginx + bench/.venv
    bench/.venv/bin/python bench/alerts_burst.py             # 10,000 monitors, 1,000 flipping
    bench/.venv/bin/python bench/alerts_burst.py --quick     # 1,000 monitors, 100 flipping

A fresh `urlhealth serve` (SQLite, as users run it) loads a monitors file of `--monitors`
monitors on loopback: `--flipping` of them (group "dep", `--dep-interval` s, failure and
success thresholds `--threshold`) check `/dep` on the nginx target, a location answering 200
while a file exists and 503 once it is removed (no reload: the switch is instant for every
monitor); the others check nginx `/delay/<ms>` every 30-60 s and stay up. Over the API the
bench creates a Slack channel and a generic webhook channel, both on loopback receivers in
this process, and one rule sending group "dep" to both.

The Slack-shaped receiver enforces Slack's rate limit (one message a second per webhook: a
message less than `--slack-gap-s` after the last one it accepted is answered 429 with
Retry-After: 1, and counted as a violation); both record each message's arrival time and the
keys it lists. The dependency is switched off, and once every transition has reached both
receivers (or a deadline passed), on again, for the `resolved` burst.

For each burst and receiver: the latency of every transition from its confirmation (the
`at` of the check that confirmed it, as written in its outbox row) to its first arrival,
p50/p99/max; whether all arrived within `--target-s`; messages accepted, 429s, repeats.
Meanwhile an API client polls GET /v1/status, /v1/monitors?limit=50 and /v1/alerts?limit=50
at `--api-rate` requests/s (p50/p99 per endpoint, per phase). Also the service's CPU and
peak RSS, and the load average. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import create_engine, func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from driver import percentile  # bench/ is on sys.path when run as a script
from service import ServiceProcess
from target import NginxTarget

from app.db.schema import alert_attempts, alert_outbox, channels

DELAYS_MS = (0, 1, 5, 10, 20)
INTERVALS_S = (30.0, 45.0, 60.0)
SLACK_KEY = re.compile(r"\*(DOWN|RESOLVED|DEGRADED|STILL [A-Z]+)\*.*?key `([0-9a-f]{32})`")


# --- the receivers ---------------------------------------------------------------------------
@dataclass
class Arrivals:
    """What one receiver got: every request's time and answer, each key's first arrival."""

    min_gap_s: float = 0.0  # Slack's pacing: less than this since the last accepted -> 429
    lock: threading.Lock = field(default_factory=threading.Lock)
    accepted: int = 0
    rejected: int = 0  # 429s answered
    last_accepted: float = 0.0
    gaps: list[float] = field(default_factory=list)  # between accepted messages
    first: dict[str, float] = field(default_factory=dict)  # key -> first arrival (epoch s)
    kinds: dict[str, str] = field(default_factory=dict)
    repeats: int = 0
    batch_sizes: list[int] = field(default_factory=list)

    def admit(self, now: float) -> bool:
        with self.lock:
            if self.min_gap_s and self.accepted and now - self.last_accepted < self.min_gap_s:
                self.rejected += 1
                return False
            if self.accepted:
                self.gaps.append(now - self.last_accepted)
            self.accepted += 1
            self.last_accepted = now
            return True

    def record(self, now: float, keys: list[tuple[str, str]]) -> None:
        with self.lock:
            self.batch_sizes.append(len(keys))
            for key, kind in keys:
                if key in self.first:
                    self.repeats += 1
                else:
                    self.first[key] = now
                    self.kinds[key] = kind

    def count(self, kind: str) -> int:
        with self.lock:
            return sum(1 for k in self.kinds.values() if k == kind)


def slack_keys(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(key, label.lower()) for label, key in SLACK_KEY.findall(body.get("text", ""))]


def webhook_keys(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(alert["key"], alert["kind"]) for alert in body.get("alerts", [])]


class Receiver:
    """A loopback HTTP receiver (its own threads) for one channel."""

    def __init__(self, parse: Any, min_gap_s: float = 0.0) -> None:
        self.arrivals = Arrivals(min_gap_s=min_gap_s)
        arrivals = self.arrivals

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                now = time.time()
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if not arrivals.admit(now):
                    self._answer(429, b"rate_limited", {"Retry-After": "1"})
                    return
                arrivals.record(now, parse(json.loads(raw)))
                self._answer(200, b"ok", {})

            def _answer(self, code: int, text: bytes, headers: dict[str, str]) -> None:
                self.send_response(code)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- the API client --------------------------------------------------------------------------
@dataclass
class ApiTimes:
    lock: threading.Lock = field(default_factory=threading.Lock)
    phase: str = "before"
    ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)

    def add(self, name: str, ms: float) -> None:
        with self.lock:
            self.ms[f"{self.phase}:{name}"].append(ms)


def api_client(base: str, rate: float, stop: threading.Event, times: ApiTimes) -> None:
    paths = [
        ("status", "/v1/status"),
        ("monitors", "/v1/monitors?limit=50"),
        ("alerts", "/v1/alerts?limit=50"),
    ]
    n, start = 0, time.monotonic()
    with requests.Session() as session:
        # On a fixed schedule (n / rate), so a slow answer does not lower the rate.
        while not stop.wait(max(0.0, start + n / rate - time.monotonic())):
            name, path = paths[n % len(paths)]
            n += 1
            started = time.perf_counter()
            try:
                answer = session.get(base + path, timeout=10)
                failure = None if answer.status_code == 200 else f"{answer.status_code}"
            except requests.RequestException as exc:
                failure = str(exc)
            elapsed = (time.perf_counter() - started) * 1000
            times.add(name, elapsed)  # a failure counts at the time it took
            if failure is not None and len(times.errors) < 10:
                times.errors.append(f"{name}: {failure[:200]}")


# --- the service and its inputs --------------------------------------------------------------
def write_monitors_file(path: Path, target: NginxTarget, args: argparse.Namespace) -> None:
    lines = []
    for i in range(args.monitors):
        if i < args.flipping:
            url = target.url(i, f"/dep?m={i}")
            extra = [
                'group = "dep"',
                f"interval_s = {args.dep_interval}",
                f"failure_threshold = {args.threshold}",
                f"success_threshold = {args.threshold}",
            ]
        else:
            url = target.url(i, f"/delay/{DELAYS_MS[i % len(DELAYS_MS)]}?m={i}")
            extra = [f'group = "g{i % 10}"', f"interval_s = {INTERVALS_S[i % 3]}"]
        lines += ["[[monitors]]", f'name = "m{i}"', f'slug = "m{i}"', f'url = "{url}"']
        lines += [*extra, ""]
    path.write_text("\n".join(lines))


def setup_alerts(base: str, slack: Receiver, hook: Receiver) -> None:
    for name, config in (
        ("slack", {"kind": "slack", "url": slack.url}),
        ("hook", {"kind": "webhook", "url": hook.url, "secret": "bench"}),
    ):
        answer = requests.post(
            f"{base}/v1/channels", json={"name": name, "config": config}, timeout=10
        )
        answer.raise_for_status()
    rule = {"name": "dep", "match_group": "dep", "channels": ["slack", "hook"]}
    requests.post(f"{base}/v1/alert-rules", json=rule, timeout=10).raise_for_status()


def dep_states(db_path: Path) -> Counter[str]:
    with closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)) as db:
        rows = db.execute(
            "SELECT state, COUNT(*) FROM monitors WHERE group_name = 'dep' GROUP BY state"
        ).fetchall()
    return Counter({str(state): int(n) for state, n in rows})


def wait_for(check: Any, timeout_s: float, step_s: float = 0.5) -> float | None:
    """Seconds until check() is true, or None at the deadline (a bench's poll)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if check():
            return time.monotonic() - started
        time.sleep(step_s)
    return None


@dataclass(frozen=True)
class Owed:
    """One outbox row, its times in epoch s: `at` the check that confirmed the transition,
    `written` the row's commit (the state change's transaction), `sending` its first send's
    start."""

    channel: str
    kind: str
    key: str
    at: float
    written: float
    sending: float | None


def confirmations(db_path: Path) -> list[Owed]:
    engine = create_engine(f"sqlite:///{db_path}")
    o, a = alert_outbox.c, alert_attempts.c
    first = (
        select(a.outbox_id, func.min(a.at).label("at"), func.max(a.duration_ms).label("ms"))
        .group_by(a.outbox_id)
        .subquery()
    )
    query = (
        select(channels.c.slug, o.kind, o.key, o.payload, o.created_at, first.c.at, first.c.ms)
        .join(channels, channels.c.id == o.channel_id)
        .outerjoin(first, first.c.outbox_id == o.id)
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    engine.dispose()
    return [
        Owed(
            slug,
            kind,
            key,
            datetime.fromisoformat(payload["at"]).timestamp(),
            created.timestamp(),
            None if tried is None else tried.timestamp() - ms / 1000,
        )
        for slug, kind, key, payload, created, tried, ms in rows
    ]


def burst_figures(
    kind: str,
    receivers: dict[str, Receiver],
    rows: list[Owed],
    target_s: float,
    flipped_at: float,
) -> dict[str, Any]:
    """Per receiver: latency from confirmation to first arrival of each `kind` transition."""
    out: dict[str, Any] = {}
    for name, receiver in receivers.items():
        with receiver.arrivals.lock:
            first = dict(receiver.arrivals.first)
        owed = [row for row in rows if row.channel == name and row.kind == kind]
        got = [row for row in owed if row.key in first]
        lat = [first[row.key] - row.at for row in got]
        written = [row.written - row.at for row in owed]
        claimed = [row.sending - row.written for row in owed if row.sending is not None]
        ats = [row.at for row in owed]
        out[name] = {
            "owed": len(owed),
            "received": len(got),
            "all_within_target": bool(owed) and sum(v <= target_s for v in lat) == len(owed),
            "latency_p50_s": _r(percentile(lat, 50)),
            "latency_p99_s": _r(percentile(lat, 99)),
            "latency_max_s": _r(max(lat) if lat else None),
            # Where the time went: confirmed -> written (the writer), written -> sending
            # (the delivery's queue and pacing); the rest is the send itself.
            "written_p50_s": _r(percentile(written, 50)),
            "written_max_s": _r(max(written) if written else None),
            "to_send_p50_s": _r(percentile(claimed, 50)),
            "to_send_max_s": _r(max(claimed) if claimed else None),
            "first_confirmed_after_flip_s": _r(min(ats) - flipped_at if ats else None),
            "confirmations_spread_s": _r(max(ats) - min(ats) if ats else None),
            "last_arrival_after_flip_s": _r(max(first[r.key] for r in got) - flipped_at)
            if got
            else None,
        }
    return out


def receiver_figures(receiver: Receiver) -> dict[str, Any]:
    a = receiver.arrivals
    with a.lock:
        return {
            "messages_accepted": a.accepted,
            "answered_429": a.rejected,
            "repeated_keys": a.repeats,
            "min_gap_s": _r(min(a.gaps) if a.gaps else None),
            "batch_max": max(a.batch_sizes) if a.batch_sizes else None,
        }


def api_figures(times: ApiTimes) -> dict[str, Any]:
    with times.lock:
        ms = {name: list(values) for name, values in times.ms.items()}
    out: dict[str, Any] = {}
    for name, values in sorted(ms.items()):
        out[name] = {
            "n": len(values),
            "p50_ms": _r(percentile(values, 50)),
            "p99_ms": _r(percentile(values, 99)),
            "max_ms": _r(max(values)),
        }
    for phase in ("down_burst", "resolved_burst"):
        every = [v for name, values in ms.items() if name.startswith(phase) for v in values]
        out[f"{phase}:all"] = {"n": len(every), "p99_ms": _r(percentile(every, 99))}
    return out


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def run(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"args": vars(args), "loadavg_start": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="urlhealth-bench-dep-") as tmp:
        up_file = Path(tmp) / "up"
        up_file.write_text("ok\n")
        os.chmod(tmp, 0o755)
        up_file.chmod(0o644)
        # 200 while the file is there, 503 once it is gone: a switch without a reload.
        dep = f"        location = /dep {{ root {tmp}; try_files /up =503; }}"
        slack = Receiver(slack_keys, min_gap_s=args.slack_gap_s)
        hook = Receiver(webhook_keys)
        receivers = {"slack": slack, "hook": hook}
        with NginxTarget(worker_processes=1, extra_locations=dep) as target:
            monitors_file = Path(tmp) / "monitors.toml"
            write_monitors_file(monitors_file, target, args)
            service = ServiceProcess(
                workers=args.workers,
                max_connections_per_host_per_replica=args.workers,
                ready_timeout_s=180.0,
                stop_timeout_s=60.0,
                extra_env={
                    "URLHEALTH_MONITORS_FILE": str(monitors_file),
                    "URLHEALTH_MONITOR_MIN_INTERVAL_S": "1",
                },
            )
            service.start()
            try:
                out["startup_s"] = _r(service.startup_s)
                db_path = service.db_path
                assert db_path is not None
                setup_alerts(service.base_url, slack, hook)
                settle = 2 * args.dep_interval * args.threshold + 30
                waited = wait_for(lambda: dep_states(db_path)["up"] >= args.flipping, settle)
                out["dep_up_after_s"] = _r(waited)
                out["dep_states_before"] = dict(dep_states(db_path))
                times, stop = ApiTimes(), threading.Event()
                client = threading.Thread(
                    target=api_client,
                    args=(service.base_url, args.api_rate, stop, times),
                    daemon=True,
                )
                client.start()
                time.sleep(args.quiet_s)  # the API's figures before any burst
                cpu0 = service.cpu_s()
                deadline = args.dep_interval * (args.threshold + 1) + args.target_s + 60
                flips = {}
                for kind, phase, switch in (
                    ("down", "down_burst", lambda: up_file.unlink()),
                    ("resolved", "resolved_burst", lambda: up_file.write_text("ok\n")),
                ):
                    with times.lock:
                        times.phase = phase
                    flips[kind] = time.time()
                    switch()
                    done = wait_for(
                        lambda k=kind: all(
                            r.arrivals.count(k) >= args.flipping for r in receivers.values()
                        ),
                        deadline,
                    )
                    out[f"{kind}_all_arrived_after_flip_s"] = _r(done)
                    out[f"{kind}_loadavg"] = os.getloadavg()
                with times.lock:
                    times.phase = "after"
                time.sleep(2)  # a repeat would show now
                stop.set()
                client.join(timeout=15)
                out["service_cpu_s_bursts"] = _r(service.cpu_s() - cpu0)
                out["bursts_wall_s"] = _r(time.time() - flips["down"])
                out["peak_rss_mb"] = service.memory().get("VmHWM")
                out["dep_states_after"] = dict(dep_states(db_path))
            finally:
                service.stop()
                slack.stop()
                hook.stop()
            rows = confirmations(db_path)
            for kind in ("down", "resolved"):
                out[kind] = burst_figures(kind, receivers, rows, args.target_s, flips[kind])
            out["receivers"] = {name: receiver_figures(r) for name, r in receivers.items()}
            out["api"] = api_figures(times)
            out["api_errors"] = times.errors
            out["service_log_tail"] = service.log_tail(5)
            service.cleanup()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--monitors", type=int, default=10_000)
    parser.add_argument("--flipping", type=int, default=1_000)
    parser.add_argument("--dep-interval", type=float, default=30.0)
    parser.add_argument("--threshold", type=int, default=2)
    parser.add_argument("--target-s", type=float, default=30.0)
    parser.add_argument("--slack-gap-s", type=float, default=1.0)
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--api-rate", type=float, default=10.0)
    parser.add_argument("--quiet-s", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="1,000 monitors, 100 flipping")
    args = parser.parse_args(argv)
    if args.quick:
        args.monitors, args.flipping, args.dep_interval = 1000, 100, 10.0
    print(json.dumps(run(args), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
