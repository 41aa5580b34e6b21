"""Summaries over repetitions (medians and min-max), verdicts against the targets, and output:
``bench/results/<UTC timestamp>.json``, ``bench/results/latest.md`` and the README's table."""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from scenarios import Scenario

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
README = BENCH_DIR / "README.md"
README_START = "<!-- latest-results:start -->"
README_END = "<!-- latest-results:end -->"


# --------------------------------------------------------------------------- numbers


def spread(values: list[float]) -> dict[str, float] | None:
    """Median, min and max; None when there is nothing to summarise."""
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _values(runs: list[dict[str, Any]], key: str) -> list[float]:
    return [float(r[key]) for r in runs if r.get("ok") and r.get(key) is not None]


def summarise(scenario: Scenario, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One implementation's repetitions of one scenario, summarised (correct runs only)."""
    good = [r for r in runs if r.get("ok")]
    # S5 counts the checks its clients got done in the sampled time; the others, their URLs.
    rates = [
        float(r.get("checks", scenario.urls)) / float(r["wall_s"]) for r in good if r.get("wall_s")
    ]
    ratios = [float(r["wall_s"]) / scenario.ideal_s for r in good if scenario.ideal_s > 0]
    summary: dict[str, Any] = {
        "reps": len(runs),
        "correct_reps": len(good),
        "failures": [r.get("error") or r.get("validation") for r in runs if not r.get("ok")],
        "wall_s": spread(_values(runs, "wall_s")),
        "checks_per_s": spread(rates),
        "ratio_to_ideal": spread(ratios),
        "status_errors_per_rep": [int(r.get("status_error_count") or 0) for r in runs],
    }
    for key in (
        "cpu_s",
        "target_cpu_s",
        "driver_cpu_s",
        "loadavg_1m",
        "peak_rss_mb",
        "reported_p50_ms",
        "reported_p99_ms",
        "status_p50_ms",
        "status_p99_ms",
        "status_idle_p50_ms",
        "status_idle_p99_ms",
        "cpu_per_check_ms",
        "wakeups_per_check",
        "db_bytes_per_result",
        "db_bytes_per_result_marginal",
        "page_p50_ms",
        "page_p99_ms",
        "startup_s",
        "submit_s",
    ):
        summary[key] = spread(_values(runs, key))
    return summary


def _median(summary: dict[str, Any] | None, key: str) -> float | None:
    if not summary or not summary.get(key):
        return None
    return float(summary[key]["median"])


def verdicts(scenario: Scenario, service: dict[str, Any], quick: bool) -> list[dict[str, Any]]:
    """Each target of the scenario against the service's medians (plus correctness)."""
    out = [
        {
            "target": "every result correct, every rep",
            "measured": f"{service['correct_reps']}/{service['reps']} reps correct",
            "pass": service["reps"] > 0 and service["correct_reps"] == service["reps"],
        }
    ]
    if scenario.poll_status and not scenario.load:
        errors = sum(int(r) for r in service.get("status_errors_per_rep", []))
        out.append(
            {
                "target": "every GET /v1/status answered 200 in 5 s",
                "measured": f"{errors} failed polls",
                "pass": errors == 0,
            }
        )
    t = scenario.targets
    checks: list[tuple[str, float | None, float | None, bool, str]] = [
        ("checks/s", _median(service, "checks_per_s"), t.min_checks_per_s, True, "{:,.0f}"),
        ("wall s", _median(service, "wall_s"), t.max_wall_s, False, "{:.3f}"),
        (
            "reported p99 ms",
            _median(service, "reported_p99_ms"),
            t.max_reported_p99_ms,
            False,
            "{:.1f}",
        ),
        ("peak RSS MB", _median(service, "peak_rss_mb"), t.max_peak_rss_mb, False, "{:.0f}"),
        (
            "status API p99 ms",
            _median(service, "status_p99_ms"),
            t.max_status_p99_ms,
            False,
            "{:.1f}",
        ),
    ]
    for name, value, limit, higher_is_better, fmt in checks:
        if limit is None or quick:
            continue
        sign = ">=" if higher_is_better else "<="
        passed = value is not None and (value >= limit if higher_is_better else value <= limit)
        out.append(
            {
                "target": f"{name} {sign} {fmt.format(limit)}",
                "measured": "—" if value is None else fmt.format(value),
                "pass": passed,
            }
        )
    return out


# --------------------------------------------------------------------------- stores

# Issue 8: SQLite's wall time within 10 % of memory://'s (medians, same run).
MAX_STORE_WALL_RATIO = 1.10
# (label, summary key, format): each compared as sqlite's median / memory's median.
STORE_FIGURES = (
    ("wall s", "wall_s", "{:.3f}"),
    ("CPU ms/check", "cpu_per_check_ms", "{:.3f}"),
    ("wake-ups/check", "wakeups_per_check", "{:.2f}"),
    ("peak RSS MB", "peak_rss_mb", "{:.0f}"),
)


def store_comparison(
    scenario: Scenario,
    by_store: dict[str, dict[str, Any]],
    runs: list[dict[str, Any]],
    quick: bool,
) -> dict[str, Any] | None:
    """sqlite / memory for each figure: the ratio of medians, and for the wall time also the
    ratios rep by rep (the two ran back to back, so each pair shared the machine's mood)."""
    if "sqlite" not in by_store or "memory" not in by_store:
        return None
    sq, mem = by_store["sqlite"], by_store["memory"]
    ratios: dict[str, float | None] = {}
    for _label, key, _fmt in STORE_FIGURES:
        a, b = _median(sq, key), _median(mem, key)
        ratios[key] = a / b if a is not None and b else None
    paired = []
    by_rep: dict[int, dict[str, float]] = {}
    for r in runs:
        if r.get("ok") and r.get("wall_s"):
            by_rep.setdefault(int(r.get("rep", 0)), {})[r["store"]] = float(r["wall_s"])
    for walls in by_rep.values():
        if "sqlite" in walls and "memory" in walls and walls["memory"] > 0:
            paired.append(walls["sqlite"] / walls["memory"])
    out: dict[str, Any] = {
        "ratios": ratios,
        "paired_wall_ratio": spread(paired),
        "db_bytes_per_result": sq.get("db_bytes_per_result"),
        "db_bytes_per_result_marginal": sq.get("db_bytes_per_result_marginal"),
        "verdicts": [],
    }
    if not quick and not scenario.load:
        wall = ratios["wall_s"]
        out["verdicts"].append(
            {
                "target": f"wall sqlite/memory <= {MAX_STORE_WALL_RATIO:.2f}",
                "measured": "—" if wall is None else f"{wall:.3f}",
                "pass": wall is not None and wall <= MAX_STORE_WALL_RATIO,
            }
        )
    return out


def _store_table(report: dict[str, Any]) -> list[str]:
    entries = [e for e in report["scenarios"] if e.get("store_comparison")]
    if not entries:
        return []
    head = " | ".join(f"{label}: sqlite / memory (ratio)" for label, _k, _f in STORE_FIGURES)
    lines = [
        "",
        f"| Scenario | {head} | wall ratio rep by rep, median (min-max) "
        "| SQLite bytes per stored result (less the empty file) |",
        "|---" * (len(STORE_FIGURES) + 3) + "|",
    ]
    for entry in entries:
        comp = entry["store_comparison"]
        by_store = entry["service_by_store"]
        cells = [entry["scenario"]]
        for _label, key, fmt in STORE_FIGURES:
            a = _fmt_spread(by_store["sqlite"].get(key), fmt)
            b = _fmt_spread(by_store["memory"].get(key), fmt)
            ratio = comp["ratios"][key]
            cells.append(f"{a} / {b} ({'—' if ratio is None else f'{ratio:.2f}x'})")
        cells.append(_fmt_spread(comp["paired_wall_ratio"], "{:.2f}x"))
        per = _fmt_spread(comp["db_bytes_per_result"], "{:,.0f}")
        marginal = _fmt_median(comp["db_bytes_per_result_marginal"], "{:,.0f}")
        cells.append(f"{per} ({marginal})")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


# --------------------------------------------------------------------------- machine


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "loadavg_start": os.getloadavg()[0],
        "nginx": (_command_output(["nginx", "-v"]) or "").removeprefix("nginx version: "),
        "urlhealth": _version("urlhealth"),
        "httpx": _version("httpx"),
        "requests": _version("requests"),
        "git_commit": _command_output(
            ["git", "-C", str(BENCH_DIR), "rev-parse", "--short", "HEAD"]
        ),
    }


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _command_output(cmd: list[str]) -> str | None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (proc.stdout or proc.stderr).strip()
    return text if proc.returncode == 0 and text else None


# --------------------------------------------------------------------------- table


def _fmt_spread(s: dict[str, float] | None, fmt: str) -> str:
    if not s:
        return "—"
    return f"{fmt.format(s['median'])} ({fmt.format(s['min'])}-{fmt.format(s['max'])})"


def _fmt_median(s: dict[str, float] | None, fmt: str) -> str:
    return "—" if not s else fmt.format(s["median"])


def _row(scenario: Scenario, impl: str, s: dict[str, Any], vs_baseline: str) -> str:
    latency = "—"
    if s.get("reported_p50_ms"):
        latency = (
            f"{_fmt_median(s['reported_p50_ms'], '{:.1f}')} / "
            f"{_fmt_median(s['reported_p99_ms'], '{:.1f}')}"
        )
    cells = [
        scenario.name,
        impl,
        f"{s['correct_reps']}/{s['reps']}",
        _fmt_spread(s["wall_s"], "{:.3f}"),
        _fmt_median(s["checks_per_s"], "{:,.0f}"),
        _fmt_median(s["ratio_to_ideal"], "{:.2f}x") if scenario.ideal_s else "—",
        _fmt_median(s["cpu_s"], "{:.2f}"),
        _fmt_median(s["peak_rss_mb"], "{:.0f}"),
        latency,
        _fmt_median(s.get("status_p99_ms"), "{:.1f}"),
        _fmt_median(s.get("submit_s"), "{:.2f}"),
        vs_baseline,
    ]
    return "| " + " | ".join(cells) + " |"


def render_markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"**{m['date_utc']}** — {m['nproc']} CPUs ({m['cpu']}), Python {m['python']}, "
        f"{m.get('nginx') or 'nginx'}, urlhealth {m.get('urlhealth')}, "
        f"load average at start {m['loadavg_start']:.2f}, "
        f"store {', '.join(report['options'].get('stores', ['sqlite']))}"
        + (" — **quick run (1/10 sizes): targets not judged**" if report["quick"] else ""),
        "",
        "| Scenario | Implementation | Correct reps | Wall s, median (min-max) | checks/s "
        "| x ideal | CPU s | Peak RSS MB | Reported latency p50 / p99 ms | Status API p99 ms "
        "| 202 after s | Time vs baseline |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in report["scenarios"]:
        sc: Scenario = entry["scenario_obj"]
        service, baseline = entry["service"], entry.get("baseline")
        vs = "—"
        sw, bw = _median(service, "wall_s"), _median(baseline, "wall_s")
        if sw and bw:
            vs = f"{sw / bw:.2f}x ({bw / sw:.1f}x faster)" if sw < bw else f"{sw / bw:.2f}x"
        by_store = entry.get("service_by_store") or {}
        if len(by_store) > 1:
            for store, summary in by_store.items():
                cmp = vs if store == entry["stores"][0] else ""
                lines.append(_row(sc, f"urlhealth ({store})", summary, cmp))
        elif service is not None:
            label = (
                "urlhealth"
                if entry.get("stores", ["sqlite"]) == ["sqlite"]
                else (f"urlhealth ({entry['stores'][0]})")
            )
            lines.append(_row(sc, label, service, vs))
        if baseline is not None:
            lines.append(_row(sc, "baseline", baseline, ""))
    lines += _store_table(report)
    if any(entry["verdicts"] for entry in report["scenarios"]):
        lines += [
            "",
            "| Scenario | Size | Ideal s | Target | Measured (median) | Result |",
            "|---|---|---|---|---|---|",
        ]
    for entry in report["scenarios"]:
        sc = entry["scenario_obj"]
        size = f"{sc.urls:,} x {sc.delay_ms} ms, {sc.workers} workers"
        ideal = f"{sc.ideal_s:.2f}" if sc.ideal_s else "—"
        for v in entry["verdicts"]:
            result = "PASS" if v["pass"] else "**FAIL**"
            lines.append(
                f"| {sc.name} | {size} | {ideal} | {v['target']} | {v['measured']} | {result} |"
            )
    return "\n".join(lines) + "\n"


def write_outputs(report: dict[str, Any], update_readme: bool) -> tuple[Path, Path]:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    suffix = ("-quick" if report["quick"] else "") + (
        "" if report["options"]["service"] else "-baseline-only"
    )
    if len(report["options"].get("stores", [])) > 1:
        suffix += "-stores"
    json_path = RESULTS_DIR / f"{stamp}{suffix}.json"
    serialisable = {
        **report,
        "scenarios": [
            {k: v for k, v in entry.items() if k != "scenario_obj"} for entry in report["scenarios"]
        ],
    }
    tmp = json_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(serialisable, indent=2, default=str) + "\n")
    tmp.replace(json_path)
    table = render_markdown(report)
    md_path = RESULTS_DIR / f"latest{suffix}.md"
    md_path.write_text(
        f"# urlhealth benchmark: latest results\n\n{table}\nRaw: `{json_path.name}`\n"
    )
    if update_readme:
        _update_readme(table, json_path.name)
    return json_path, md_path


def _update_readme(table: str, json_name: str) -> None:
    try:
        text = README.read_text()
    except OSError:
        return
    pattern = re.compile(re.escape(README_START) + r".*?" + re.escape(README_END), re.S)
    if not pattern.search(text):
        return
    block = f"{README_START}\n{table}\nRaw figures: `results/{json_name}`\n{README_END}"
    README.write_text(pattern.sub(lambda _m: block, text))


def echo(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()
