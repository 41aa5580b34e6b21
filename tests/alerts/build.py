"""Alerts for the senders' tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from app.alerts.message import AlertMessage

AT = datetime(2026, 12, 2, 14, 0, 5, tzinfo=UTC)


def make_alert(n: int = 1, **fields: Any) -> AlertMessage:
    """Alert number `n`: a monitor going down, with a distinct key."""
    values: dict[str, Any] = {
        "key": f"m{n}:t{100 + n}:c1",
        "kind": "down",
        "monitor_slug": f"api-{n}",
        "monitor_name": f"API {n}",
        "url": f"https://api{n}.example/health?token=***",
        "from_state": "up",
        "to_state": "down",
        "at": AT,
        "since": AT - timedelta(hours=3, minutes=2),
        "incident_id": 40 + n,
        "summary": "HTTP 500",
        "link": f"http://urlhealth.local/monitors/api-{n}",
    }
    values.update(fields)
    return AlertMessage(**values)


def burst(count: int, **fields: Any) -> list[AlertMessage]:
    return [make_alert(n, **fields) for n in range(1, count + 1)]
