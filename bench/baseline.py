"""The minimal baseline: the tutorial's ThreadPoolExecutor + requests.get + as_completed.

Run as its own process (so it does not share a GIL with the driver):

    python bench/baseline.py --workers 200 --urls-file urls.json

It reads a JSON list of URLs, checks them all, and prints one JSON object on stdout:
``elapsed_s`` (first submission to last completion), ``cpu_s`` (its own user+system CPU),
``peak_rss_mb``, and per URL, in submission order, ``status`` (the status code, or null
on an error), ``elapsed_ms`` (``response.elapsed``, what the tutorial would report) and
``error`` (the exception's class name, or null).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

import requests


def check(url: str, timeout: float) -> tuple[int | None, float | None, str | None]:
    try:
        response = requests.get(url, timeout=timeout)
    except requests.RequestException as exc:
        return None, None, type(exc).__name__
    return response.status_code, response.elapsed.total_seconds() * 1000.0, None


def run(urls: list[str], workers: int, timeout: float) -> dict[str, Any]:
    statuses: list[int | None] = [None] * len(urls)
    latencies: list[float | None] = [None] * len(urls)
    errors: list[str | None] = [None] * len(urls)
    cpu_start = time.process_time()
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as executor:
        futures = {executor.submit(check, url, timeout): i for i, url in enumerate(urls)}
        for future in as_completed(futures):
            i = futures[future]
            statuses[i], latencies[i], errors[i] = future.result()
        elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "elapsed_s": elapsed,
        "cpu_s": cpu,
        "peak_rss_mb": peak_kb / 1024.0,
        "status": statuses,
        "elapsed_ms": latencies,
        "error": errors,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--urls-file", required=True, help="JSON list of URLs")
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    with open(args.urls_file, encoding="utf-8") as handle:
        urls = json.load(handle)
    json.dump(run(urls, args.workers, args.timeout), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
