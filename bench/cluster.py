"""The topology dimension (issue 12): one process on SQLite against one API and two workers
on PostgreSQL, the same scenarios in the same run, interleaved repetition by repetition.

    bash bench/run.sh --no-service --quick --scenarios S1      # once: nginx and bench/.venv
    bench/.venv/bin/python bench/cluster.py                    # S3, S4, S5; 3 reps (S4: 1)
    bench/.venv/bin/python bench/cluster.py --scenarios S3 --reps 3
    bench/.venv/bin/python bench/cluster.py --quick            # 1/10 of the sizes, no verdicts

- S3: 10,000 URLs x 50 ms (/delay/50 on the loopback nginx, eight hosts), 500 workers in all
  (single: workers=500; cluster: 250 per worker replica). Wall time, submission to the last
  result line. Target: cluster / single <= 0.65.
- S4: 100,000 checks x 10 ms as 4 jobs of 25,000 submitted at once; GET /v1/status polled on
  the API replica every 50 ms while they run, and at the same pace its /healthz and nginx's
  /status/200 (what the replica's event loop adds, and the machine's own floor). Target: the
  cluster's status p99 <= 50 ms.
- `--topologies single,cluster,cluster-nice`: cluster-nice runs the workers under nice -n 10,
  so the API replica (and PostgreSQL) get the CPU first.
- S5: 10,000 monitors at 60 s (a monitors file on the nginx target, bench/monitors.py's),
  64 workers in all, sampled for --s5-duration after --s5-warmup; lag (due -> started) of
  every stored check from the scheduler's grid, and due times run twice. Target: the
  cluster's lag p99 within 20 % of the single process's.

CPU and wake-ups (voluntary context switches, every thread) per check for every component:
the single process; the API replica, each worker replica, PostgreSQL (every process of the
server); and the share of PostgreSQL's statement time spent on the task queue and the
wake-ups (pg_stat_statements). Nothing leaves the machine: targets are 127.0.0.1-8 literals;
every run has a deadline. Writes bench/results/<UTC>-cluster.json and results/latest-cluster.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from cluster_runs import JobsCase, MonitorsCase, monitor_lags, per_check, run_jobs, run_monitors
from monitors import write_monitors_file
from pgserver import BenchPostgres
from report import machine_info
from scenarios import SCENARIOS
from target import NginxTarget, raise_nofile
from topology import TOPOLOGIES, Topology

RESULTS_DIR = Path(__file__).resolve().parent / "results"
NAMES = ("S3", "S4", "S5")
TARGETS = {"S3": "wall cluster/single <= 0.65", "S4": "cluster status p99 <= 50 ms",
           "S5": "cluster lag p99 <= 1.2 x single"}  # fmt: skip


def echo(text: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {text}", file=sys.stderr, flush=True)


def jobs_case(name: str, quick: bool) -> JobsCase:
    if name == "S3":
        scenario = SCENARIOS["S3"]
        case = JobsCase(scenario)
    else:  # S4: 100,000 checks as 4 jobs of 25,000
        scenario = replace(SCENARIOS["S4"], urls=25_000)
        case = JobsCase(scenario, jobs=4, poll_status=True)
    if quick:
        case = replace(case, scenario=replace(case.scenario, urls=case.scenario.urls // 10))
    return case


ENV = {"URLHEALTH_LOG_LEVEL": "warning", "URLHEALTH_SHUTDOWN_GRACE_S": "10"}


def one_rep(
    name: str, topology_name: str, args: argparse.Namespace, target: NginxTarget, pg: BenchPostgres
) -> dict[str, Any]:
    if name in ("S3", "S4"):
        return jobs_rep(jobs_case(name, args.quick), topology_name, target, pg)
    monitors = args.s5_monitors // (10 if args.quick else 1)
    case = MonitorsCase(monitors, args.s5_interval, args.s5_duration, args.s5_warmup, 64)
    return monitors_rep(case, topology_name, target, pg)


def jobs_rep(
    case: JobsCase, topology_name: str, target: NginxTarget, pg: BenchPostgres
) -> dict[str, Any]:
    workers = case.scenario.workers
    topology = Topology(topology_name, workers, workers, pg, dict(ENV))
    run: dict[str, Any] = {"ok": False, "topology": topology_name}
    try:
        topology.start()
        run = run_jobs(topology, case, target)
    except Exception as exc:  # one failed repetition is reported, the others still run
        run["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        run_stop(topology, run)
    return run


def monitors_rep(
    case: MonitorsCase, topology_name: str, target: NginxTarget, pg: BenchPostgres
) -> dict[str, Any]:
    run: dict[str, Any] = {"ok": False, "topology": topology_name}
    with tempfile.TemporaryDirectory(prefix="urlhealth-bench-s5-") as tmp:
        path = Path(tmp) / "monitors.toml"
        write_monitors_file(path, target, case.monitors, case.interval_s)
        env = ENV | {"URLHEALTH_MONITORS_FILE": str(path), "URLHEALTH_MONITOR_MIN_INTERVAL_S": "1"}
        topology = Topology(topology_name, case.workers, case.workers, pg, env)
        try:
            topology.start()
            run = run_monitors(topology, case)
            run["stopped"] = topology.stop()  # the writers flush what they hold
            if run["ok"]:
                lag = monitor_lags(topology.database_url(), case.interval_s, *run["window"])
                run["lag"] = lag
                run["per_check"] = per_check(run["usage"], lag["checks"])
                run["ok"] = lag["checks"] > 0
        except Exception as exc:  # one failed repetition is reported, the others still run
            run["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            run_stop(topology, run)
    return run


def run_stop(topology: Topology, run: dict[str, Any]) -> None:
    stopped = topology.stop()
    run.setdefault("stopped", stopped)
    if not run.get("ok") or any(s.get("killed") for s in stopped.values()):
        run["ok"] = False if any(s.get("killed") for s in stopped.values()) else run.get("ok")
        run["logs"] = topology.log_tails()
    topology.cleanup()


def median(runs: list[dict[str, Any]], *path: str) -> float | None:
    values = []
    for run in runs:
        value: Any = run
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, int | float) and run.get("ok"):
            values.append(float(value))
    return statistics.median(values) if values else None


def _nginx_per_check(runs: list[dict[str, Any]]) -> float | None:
    values = [1000.0 * r["target_cpu_s"] / r["urls"] for r in runs if r.get("ok") and r.get("urls")]
    return statistics.median(values) if values else None


def summarise(name: str, by_topology: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    key = {"S3": ("wall_s",), "S4": ("status_p99_ms",), "S5": ("lag", "lag_p99_ms")}[name]
    out: dict[str, Any] = {"figure": ".".join(key), "target": TARGETS[name], "topologies": {}}
    for topology, runs in by_topology.items():
        components = sorted({c for r in runs for c in r.get("per_check", {})})
        out["topologies"][topology] = {
            "correct_reps": sum(1 for r in runs if r.get("ok")),
            "reps": len(runs),
            "figure_median": median(runs, *key),
            "figure_values": [median([r], *key) for r in runs],
            "wall_s": median(runs, "wall_s"),
            "status_p99_ms": median(runs, "status_p99_ms"),
            # The same poll of the replica's /healthz and of nginx: the event loop's share
            # and the machine's (bench/cluster_runs.py).
            "healthz_p99_ms": median(runs, "healthz_p99_ms"),
            "nginx_p99_ms": median(runs, "nginx_p99_ms"),
            "reported_p99_ms": median(runs, "reported_p99_ms"),
            "cores_busy": median(runs, "cores_busy"),
            "target_cpu_ms_per_check": _nginx_per_check(runs),
            "lag_p50_ms": median(runs, "lag", "lag_p50_ms"),
            "lag_p99_ms": median(runs, "lag", "lag_p99_ms"),
            "due_times_run_twice": [r.get("lag", {}).get("due_times_run_twice") for r in runs],
            "per_check": {
                c: {
                    "cpu_ms": median(runs, "per_check", c, "cpu_ms_per_check"),
                    "wakeups": median(runs, "per_check", c, "wakeups_per_check"),
                }
                for c in components
            },
            "queue_share_of_pg_statement_time": median(
                runs, "usage", "postgres_statements", "queue", "share"
            ),
        }
    single = out["topologies"].get("single", {}).get("figure_median")
    cluster = out["topologies"].get("cluster", {}).get("figure_median")
    if single and cluster is not None:
        out["ratio_cluster_single"] = cluster / single
    nice = out["topologies"].get("cluster-nice", {}).get("figure_median")
    if single and nice is not None:
        out["ratio_cluster_nice_single"] = nice / single
    if cluster is not None:
        out["pass"] = {"S3": (cluster / single) <= 0.65 if single else None,
                       "S4": cluster <= 50.0,
                       "S5": (cluster / single) <= 1.2 if single else None}[name]  # fmt: skip
    return out


def _by_component(per_check: dict[str, Any], key: str, fmt: str) -> str:
    return ", ".join(
        f"{c} {format(v[key], fmt)}" for c, v in per_check.items() if v[key] is not None
    )


def markdown(report: dict[str, Any]) -> str:
    machine = report["machine"]
    lines = [
        f"**{report['started']}** — {machine.get('nproc')} CPUs ({machine.get('cpu')}), "
        f"load average at start {report['loadavg_1m']:.2f}",
        "",
        "| Scenario | Topology | Correct reps | Figure (median) | Ratio cluster/single "
        "| Target | CPU ms/check by component | Wake-ups/check by component |",
        "|---|---|---|---|---|---|---|---|",
    ]
    verdicts = {True: "PASS", False: "**FAIL**", None: "—"}
    for name, entry in report["summary"].items():
        for topology, t in entry["topologies"].items():
            cluster = topology == "cluster"
            ratio = {
                "cluster": entry.get("ratio_cluster_single"),
                "cluster-nice": entry.get("ratio_cluster_nice_single"),
            }.get(topology)
            judged = f"{entry['target']} {verdicts[entry.get('pass')]}" if cluster else ""
            figure = t["figure_median"]
            shown = "—" if figure is None else f"{figure:.3f}"
            if name == "S4" and t.get("nginx_p99_ms") is not None:
                healthz, nginx = t["healthz_p99_ms"], t["nginx_p99_ms"]
                shown += f" (same poll: /healthz {healthz:.0f}, nginx {nginx:.0f})"
            lines.append(
                f"| {name} | {topology} | {t['correct_reps']}/{t['reps']} "
                f"| {entry['figure']} {shown} | {'' if ratio is None else f'{ratio:.2f}'} "
                f"| {judged} | {_by_component(t['per_check'], 'cpu_ms', '.2f')} "
                f"| {_by_component(t['per_check'], 'wakeups', '.1f')} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default=",".join(NAMES))
    parser.add_argument(
        "--topologies",
        default="single,cluster",
        help=f"among {','.join(TOPOLOGIES)} (cluster-nice: the workers under nice -n 10)",
    )
    parser.add_argument("--reps", type=int, default=None, help="default 3 (S4: 1)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--label", default="", help="added to the result file's name")
    parser.add_argument("--s5-monitors", type=int, default=10_000)
    parser.add_argument("--s5-interval", type=float, default=60.0)
    parser.add_argument("--s5-duration", type=float, default=120.0)
    parser.add_argument("--s5-warmup", type=float, default=10.0)
    parser.add_argument(
        "--pg-sync",
        choices=("on", "off"),
        default="off",
        help="synchronous_commit (fsync stays on); off: SQLite WAL + synchronous=NORMAL's promise",
    )
    args = parser.parse_args(argv)
    names = [n for n in args.scenarios.split(",") if n]
    topologies = [t for t in args.topologies.split(",") if t]
    if set(names) - set(NAMES) or set(topologies) - set(TOPOLOGIES):
        parser.error(f"scenarios among {NAMES}, topologies among {TOPOLOGIES}")
    if args.quick:
        args.s5_duration = min(args.s5_duration, 30.0)
        args.s5_interval = min(args.s5_interval, 10.0)
    nofile = raise_nofile()
    report: dict[str, Any] = {
        "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(),
        "loadavg_1m": os.getloadavg()[0],
        "nofile_limit": nofile,
        "args": vars(args),
        "reproduce": "bench/.venv/bin/python bench/cluster.py " + " ".join(argv or sys.argv[1:]),
        "runs": {},
        "summary": {},
    }
    pg_sync = args.pg_sync == "on"
    with (
        NginxTarget(worker_processes=1) as target,
        BenchPostgres(durable=True, synchronous_commit=pg_sync, stat_statements=True) as pg,
    ):
        echo(f"nginx on 127.0.0.1-8:{target.port}, PostgreSQL on 127.0.0.1:{pg.port}")
        for name in names:
            reps = args.reps if args.reps is not None else (1 if name == "S4" else 3)
            by_topology: dict[str, list[dict[str, Any]]] = {t: [] for t in topologies}
            for rep in range(reps):  # interleaved: a noisy spell falls on both topologies
                for topology in topologies:
                    started = time.monotonic()
                    run = one_rep(name, topology, args, target, pg)
                    run["rep"], run["elapsed_s"] = rep, time.monotonic() - started
                    run["loadavg_1m_after"] = os.getloadavg()[0]
                    by_topology[topology].append(run)
                    brief = {k: run.get(k) for k in ("ok", "wall_s", "status_p99_ms", "error")}
                    if "lag" in run:
                        brief["lag"] = run["lag"]
                    echo(f"{name} {topology} rep {rep + 1}/{reps}: {json.dumps(brief)}")
            report["runs"][name] = by_topology
            report["summary"][name] = summarise(name, by_topology)
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    suffix = "-cluster-quick" if args.quick else "-cluster"
    path = RESULTS_DIR / f"{stamp}{suffix}{'-' + args.label if args.label else ''}.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    table = markdown(report) + f"\nRaw figures: `results/{path.name}`\n"
    (RESULTS_DIR / f"latest{suffix}.md").write_text(table)
    print(table)
    echo(f"saved {path}")
    runs = [r for by in report["runs"].values() for rs in by.values() for r in rs]
    failed = any(not r.get("ok") for r in runs)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
