"""Alerts in tests: a webhook receiver on loopback that records what it got (it can fail its
first N requests, or hang), and a minimal webhook sender and codec standing in for the real
senders (app/alerts/channels/, built apart: the lead swaps them in at merge)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, cast

import httpx
from pydantic import BaseModel

from app.alerts import admin
from app.alerts.delivery import Delivery
from app.alerts.policy import DeliveryConfig
from app.db.engine import Database
from app.db.schema import alert_rules, channels
from app.db.writer import Writer
from app.monitors.recorder import Recorder, Transition
from app.schemas.monitoring import Outcome
from tests.support.monitors import T0, check

IDEMPOTENCY_HEADER = "Idempotency-Key"


class WebhookConfig(BaseModel):
    kind: Literal["webhook"] = "webhook"
    url: str
    secret: str | None = None
    min_interval_s: float = 0.0
    max_batch: int = 50

    def masked(self) -> dict[str, Any]:
        return {**self.model_dump(), "url": "***", "secret": "***" if self.secret else None}


@dataclass(frozen=True)
class Sent:
    ok: bool
    retryable: bool = False
    status_code: int | None = None
    error: str | None = None
    retry_after_s: float | None = None


def send(config: Any, messages: Sequence[Any], http: Any) -> Sent:
    """POST the batch as JSON, its keys in the idempotency header."""
    keys = ",".join(m["key"] for m in messages)
    try:
        response = http.post(
            config.url, json={"messages": list(messages)}, headers={IDEMPOTENCY_HEADER: keys}
        )
    except httpx.HTTPError as exc:
        return Sent(False, True, None, f"{type(exc).__name__}: {exc}")
    if response.is_success:
        return Sent(True, status_code=response.status_code)
    retryable = response.status_code == 429 or response.status_code >= 500
    return Sent(False, retryable, response.status_code, f"status {response.status_code}")


class Codec:
    def config(self, raw: Mapping[str, Any]) -> WebhookConfig:
        return WebhookConfig.model_validate(raw)

    def message(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        return dict(payload)


@dataclass(eq=False)
class Receiver:
    """Records each request's messages and idempotency keys; answers 500 to the first
    `fail_first` requests, and holds every request until `release` is set if `hold`."""

    fail_first: int = 0
    hold: bool = False
    requests: list[dict[str, Any]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    arrived: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        receiver = self
        self._lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                with receiver._lock:
                    number = len(receiver.requests)
                    receiver.requests.append(
                        {
                            "keys": self.headers[IDEMPOTENCY_HEADER],
                            "body": body,
                            "at": time.monotonic(),
                        }
                    )
                receiver.arrived.set()
                if receiver.hold:
                    receiver.release.wait(30)
                status = 500 if number < receiver.fail_first else 200
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def messages(self) -> list[dict[str, Any]]:
        with self._lock:
            return [m for r in self.requests for m in r["body"]["messages"]]

    def accepted_keys(self) -> list[str]:
        """Keys of the messages the receiver answered 200 to."""
        with self._lock:
            taken = self.requests[self.fail_first :]
            return [m["key"] for r in taken for m in r["body"]["messages"]]

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def add_channel(database: Database, writer: Writer, name: str, url: str, **config: Any) -> int:
    values = {"url": url, **config}
    row = {
        "name": name,
        "slug": admin.slugify(name),
        "kind": "webhook",
        "source": "api",
        "config": WebhookConfig(**values).model_dump(),
    }
    return writer.submit(lambda c: admin.add(c, channels, row)).result(10)


def add_rule(writer: Writer, name: str, channel_slugs: Sequence[str], **values: Any) -> int:
    row: dict[str, Any] = {
        "name": name,
        "match_group": None,
        "match_labels": {},
        "channels": list(channel_slugs),
        "on_down": True,
        "on_degraded": False,
        "send_on_resolved": True,
        "reminder_interval_s": None,
        **values,
    }
    return writer.submit(lambda c: admin.add(c, alert_rules, row)).result(10)


def record(
    recorder: Recorder, monitor_id: int, outcomes: Sequence[str], start: int = 0
) -> list[Transition]:
    """Record `outcomes` a minute apart from T0 + `start` minutes; the transitions made."""
    made = []
    for n, outcome in enumerate(outcomes, start):
        at = T0 + timedelta(minutes=n)
        result = check(cast(Outcome, outcome), at=at)
        transition = recorder.submit(monitor_id, 1, at, result).result(10)
        if transition is not None:
            made.append(transition)
    return made


FAST = DeliveryConfig(
    scan_interval_s=0.2,
    workers=4,
    lease_s=60.0,
    retry_base_s=0.05,
    retry_max_delay_s=0.2,
    max_attempts=5,
    max_age_s=3600.0,
)


def delivery(
    database: Database,
    writer: Writer,
    http: httpx.Client,
    owner: str,
    config: DeliveryConfig = FAST,
) -> Delivery:
    return Delivery(database, writer, send, Codec(), http, owner, config)
