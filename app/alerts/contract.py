"""What the database side of alerts needs from the senders (app/alerts/channels/, built apart):
a channel's parsed configuration, a message made from an outbox row's payload, and `send`.

Protocols, so the delivery thread takes the senders as constructor arguments and this package
imports none of them: tests pass a loopback webhook sender, the service passes the real ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol


class ChannelConfig(Protocol):
    """A parsed channel configuration (a pydantic discriminated union on `kind`)."""

    @property
    def kind(self) -> str: ...
    @property
    def min_interval_s(self) -> float: ...  # least time between two sends to the channel
    @property
    def max_batch(self) -> int: ...  # transitions one message may list

    def masked(self) -> dict[str, Any]: ...  # what reads show: secrets masked


class SendOutcome(Protocol):
    @property
    def ok(self) -> bool: ...
    @property
    def retryable(self) -> bool: ...
    @property
    def status_code(self) -> int | None: ...
    @property
    def error(self) -> str | None: ...
    @property
    def retry_after_s(self) -> float | None: ...


class Send(Protocol):
    """`send(config, messages, http)`: one request (one batch) to one channel; never raises
    for the receiver's faults, it says them in the outcome."""

    def __call__(self, config: Any, messages: Sequence[Any], http: Any, /) -> SendOutcome: ...


class Codec(Protocol):
    """Turns stored JSON into the senders' types: a channel's config, a message's payload."""

    def config(self, raw: Mapping[str, Any]) -> ChannelConfig: ...
    def message(self, payload: Mapping[str, Any]) -> Any: ...
