"""urlhealth benchmark driver: nginx target on loopback, the service through its public API,
and the tutorial baseline in the same run. See bench/README.md; run it with bench/run.sh.

    python bench/bench.py [--scenarios S1,S2] [--reps N] [--quick] [--no-baseline]
                          [--store sqlite,memory]
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from driver import run_baseline, run_load, run_service
from report import (
    echo,
    machine_info,
    render_markdown,
    store_comparison,
    summarise,
    verdicts,
    write_outputs,
)
from scenarios import SCENARIOS, Scenario
from target import NginxTarget, raise_nofile

QUICK_FACTOR = 10
STORES = ("sqlite", "memory")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="urlhealth benchmark")
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help="comma-separated scenario names (default: all, %(default)s)",
    )
    parser.add_argument(
        "--reps",
        type=int,
        default=None,
        help="repetitions per scenario (default 3; S4 defaults to 1)",
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"1/{QUICK_FACTOR} of the URLs: a smoke run"
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the baseline runs")
    parser.add_argument(
        "--no-service", action="store_true", help="run only the baseline (checks the target)"
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit 2 when a target is missed (not only on errors)"
    )
    parser.add_argument(
        "--store",
        default="sqlite",
        help="comma-separated stores the service runs on, each rep of each in turn: "
        "sqlite (a fresh SQLite file, the default as users run it) and/or memory "
        "(URLHEALTH_DATABASE_URL=memory://); default %(default)s",
    )
    args = parser.parse_args(argv)
    stores = [s.strip().lower() for s in args.store.split(",") if s.strip()]
    if not stores or any(s not in STORES for s in stores) or len(set(stores)) < len(stores):
        parser.error(f"--store: one or more of {', '.join(STORES)}, each once")
    args.stores = stores
    names = [n.strip().upper() for n in args.scenarios.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenarios {unknown}; known: {', '.join(SCENARIOS)}")
    args.names = names
    if args.no_service and args.no_baseline:
        parser.error("--no-service and --no-baseline leave nothing to run")
    if args.reps is not None and args.reps < 1:
        parser.error("--reps must be at least 1")
    return args


def _line(impl: str, rep: int, run: dict[str, Any]) -> str:
    if not run.get("ok"):
        detail = run.get("error") or run.get("validation")
        return f"    {impl:9} rep {rep}: FAILED: {detail}"
    extra = ""
    if run.get("reported_p99_ms") is not None:
        extra += f", reported p50/p99 {run['reported_p50_ms']:.1f}/{run['reported_p99_ms']:.1f} ms"
    if run.get("status_p99_ms") is not None:
        extra += f", status p99 {run['status_p99_ms']:.1f} ms ({run['status_polls']} polls"
        extra += f", {run['status_error_count']} failed)" if run.get("status_error_count") else ")"
    if run.get("status_idle_p99_ms") is not None:
        c = run["clients"]["counts"]
        extra += (
            f" [idle p50/p99 {run['status_idle_p50_ms']:.1f}/{run['status_idle_p99_ms']:.1f};"
            f" load p50 {run['status_p50_ms']:.1f}; {run['checks']:,} checks,"
            f" {run['cpu_per_check_ms']:.2f} ms CPU/check; {c.get('jobs_submitted', 0)} jobs,"
            f" {c.get('rejected_429', 0)} 429s, {run['clients']['max_open_streams']} streams,"
            f" {c.get('pages_read', 0)} pages p50/p99"
            f" {run['page_p50_ms'] or 0:.0f}/{run['page_p99_ms'] or 0:.0f} ms]"
        )
    rss = f", peak RSS {run['peak_rss_mb']:.0f} MB" if run.get("peak_rss_mb") else ""
    return f"    {impl:9} rep {rep}: {run['wall_s']:.3f} s, CPU {run['cpu_s']:.2f} s{rss}{extra}"


def run_scenario(
    scenario: Scenario,
    reps: int,
    target: NginxTarget,
    *,
    service: bool,
    baseline: bool,
    quick: bool,
    stores: list[str],
) -> dict[str, Any]:
    echo(
        f"{scenario.name}: {scenario.urls:,} URLs x {scenario.delay_ms} ms, "
        f"{scenario.workers} workers, {reps} reps (ideal {scenario.ideal_s:.2f} s), "
        f"store {', '.join(stores)}"
    )
    service_runs: list[dict[str, Any]] = []
    baseline_runs: list[dict[str, Any]] = []
    for rep in range(1, reps + 1):
        # Interleaved (each store, then the baseline, rep by rep), so a noisy spell of the
        # machine hits all alike.
        for store in stores if service else []:
            runner = run_load if scenario.load else run_service
            run = runner(scenario, target, store)
            run["rep"] = rep
            service_runs.append(run)
            label = "urlhealth" if len(stores) == 1 else store
            echo(_line(label, rep, run))
        if baseline:
            run = run_baseline(scenario, target)
            baseline_runs.append(run)
            echo(_line("baseline", rep, run))
    by_store = {
        store: summarise(scenario, [r for r in service_runs if r["store"] == store])
        for store in stores
    }
    summary = by_store[stores[0]]
    judged: list[dict[str, Any]] = []
    if service:
        for store in stores:
            for v in verdicts(scenario, by_store[store], quick):
                if len(stores) > 1:
                    v["target"] = f"[{store}] {v['target']}"
                judged.append(v)
    comparison = store_comparison(scenario, by_store, service_runs, quick) if service else None
    if comparison:
        judged.extend(comparison.pop("verdicts"))
    entry: dict[str, Any] = {
        "scenario": scenario.name,
        "scenario_obj": scenario,
        "description": scenario.description,
        "urls": scenario.urls,
        "delay_ms": scenario.delay_ms,
        "workers": scenario.workers,
        "ideal_s": scenario.ideal_s,
        "stores": stores,
        "service": summary if service else None,
        "service_by_store": by_store if service else None,
        "store_comparison": comparison,
        "service_runs": service_runs,
        "verdicts": judged,
    }
    if baseline:
        entry["baseline"] = summarise(scenario, baseline_runs)
        entry["baseline_runs"] = baseline_runs
    else:
        skipped = "--no-baseline" if scenario.baseline else f"not run for {scenario.name}"
        entry["baseline_skipped"] = skipped
    return entry


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    nofile = raise_nofile()
    report: dict[str, Any] = {
        "machine": machine_info(),
        "quick": args.quick,
        "options": {
            "scenarios": args.names,
            "reps": args.reps,
            "quick": args.quick,
            "baseline": not args.no_baseline,
            "service": not args.no_service,
            "stores": args.stores,
        },
        "nofile_limit": nofile,
        "scenarios": [],
    }
    started = time.monotonic()
    with NginxTarget(worker_processes=1) as target:
        echo(f"nginx target on 127.0.0.1-8:{target.port} (open-files limit {nofile})")
        for name in args.names:
            scenario = SCENARIOS[name]
            if args.quick:
                scenario = scenario.scaled(QUICK_FACTOR)
            reps = args.reps if args.reps is not None else scenario.reps
            baseline = scenario.baseline and not args.no_baseline
            entry = run_scenario(
                scenario,
                reps,
                target,
                service=not args.no_service,
                baseline=baseline,
                quick=args.quick,
                stores=args.stores,
            )
            report["scenarios"].append(entry)
        errors = target.error_log_tail()
        if errors:
            report["nginx_error_log_tail"] = errors
    report["duration_s"] = time.monotonic() - started
    # The README shows full runs only: every scenario, full size, service and baseline.
    full = not (args.quick or args.no_service or args.no_baseline)
    full = full and args.names == list(SCENARIOS) and args.stores == ["sqlite"]
    json_path, md_path = write_outputs(report, update_readme=full)
    print(render_markdown(report))
    echo(f"wrote {json_path} and {md_path}")
    failed = any(
        not v["pass"]
        for e in report["scenarios"]
        for v in e["verdicts"]
        if v["target"].endswith("every result correct, every rep")
    )
    missed = any(not v["pass"] for e in report["scenarios"] for v in e["verdicts"])
    if failed:
        return 1
    return 2 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
