"""The channels' senders (app/alerts/channels/) as the delivery thread takes them
(app/alerts/contract.py): a channel's stored JSON parsed into its ChannelConfig, an outbox
row's payload into an AlertMessage, and `send` through the checks' HTTP layer, so an alert
meets the same destination policy and resolver as a check."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from app.alerts.channels.config import OperatorChannelConfig, parse_operator_channel
from app.alerts.channels.sender import send, validate_destination
from app.alerts.contract import Senders
from app.alerts.message import AlertMessage
from app.engine.policy import DestinationPolicy
from app.engine.resolver import Resolver
from app.engine.transport import HttpLayer


class _Codec:
    def config(self, raw: Mapping[str, Any]) -> OperatorChannelConfig:
        # Apprise too, as the monitors file may store it: `validate` refuses it from the API.
        return parse_operator_channel(dict(raw))

    def message(self, payload: Mapping[str, Any]) -> AlertMessage:
        return AlertMessage(
            key=payload["key"],
            kind=payload["kind"],
            monitor_slug=payload["monitor_slug"],
            monitor_name=payload["monitor_name"],
            url=payload["url"],
            from_state=payload["from_state"],
            to_state=payload["to_state"],
            # Written when the row is: a row without it is as old as its claim.
            at=_time(payload.get("at")) or datetime.now(UTC),
            since=_time(payload.get("since")),
            incident_id=payload.get("incident_id"),
            summary=payload.get("summary") or "",
            link=payload.get("link"),
        )


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def channel_senders(
    http: HttpLayer, policy: DestinationPolicy, resolver: Resolver | None
) -> Senders:
    def validate(config: Any) -> str | None:
        return validate_destination(config, policy, resolver)

    return Senders(_Codec(), send, http, validate)
