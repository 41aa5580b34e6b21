"""What a call on a worker costs: `POST /v1/check` of one loopback URL answered by a worker
replica itself (as a single process answers) and through an API-only replica (the check runs
on the worker: app/cluster/calls.py), sequential, on one cluster, alternated twice.

    .venv/bin/python bench/calls_latency.py                # 200 requests a round
    .venv/bin/python bench/calls_latency.py --requests 50

Starts its own PostgreSQL (tests/support/postgres.py), one `--role api` and one
`--role worker` replica, and a loopback target. Prints one JSON object: per round, the
replica asked and p50/p90/p99/max ms.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from tests.support.cluster import Cluster
from tests.support.postgres import own_server
from tests.support.servers import ThreadedUvicorn, target_app

_START_S = 90.0
_WARM_UP = 5


def _round(client: httpx.Client, base: str, body: dict[str, Any], requests: int) -> list[float]:
    for _ in range(_WARM_UP):
        client.post(f"{base}/v1/check", json=body)
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        answer = client.post(f"{base}/v1/check", json=body)
        times.append((time.perf_counter() - started) * 1000)
        if answer.status_code != 200:
            raise RuntimeError(f"{base}: {answer.status_code} {answer.text}")
    return sorted(times)


def _summary(label: str, times: list[float]) -> dict[str, Any]:
    def at(share: float) -> float:
        return round(times[min(len(times) - 1, int(share * len(times)))], 1)

    return {
        "asked": label,
        "p50_ms": at(0.5),
        "p90_ms": at(0.9),
        "p99_ms": at(0.99),
        "max_ms": round(times[-1], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    postgres = own_server(ci=True)
    target = ThreadedUvicorn(target_app()).start()
    cluster = Cluster(postgres.url(postgres.create_database()))
    try:
        api, worker = (cluster.start(role, wait=False) for role in ("api", "worker"))
        for replica in (api, worker):
            replica.wait_ready(_START_S)
        body = {"urls": [f"{target.url}/status/200"]}
        rounds = []
        with httpx.Client(timeout=60.0, trust_env=False) as client:
            for label, base in [("worker", worker.url), ("api (call)", api.url)] * 2:
                rounds.append(_summary(label, _round(client, base, body, args.requests)))
        print(json.dumps({"requests": args.requests, "rounds": rounds}, indent=2))
    finally:
        cluster.stop()
        target.stop()
        postgres.remove()


if __name__ == "__main__":
    main()
