"""What the database side of alerts needs from the senders (app/alerts/channels/, built apart):
a channel's parsed configuration, a message made from an outbox row's payload, and `send`.

Protocols, so the delivery thread takes the senders as constructor arguments and this package
imports none of them: tests pass a loopback webhook sender, the service passes the real ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
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


def _allowed(config: Any) -> str | None:
    return None


@dataclass(frozen=True, slots=True)
class Senders:
    """The senders as the service is given them: `http` is what `send` takes (the checks'
    HTTP layer, so webhooks meet the destination policy), `validate` says why a channel's
    destination is refused (validate_destination bound to the policy), or None."""

    codec: Codec
    send: Send
    http: Any
    validate: Callable[[Any], str | None] = _allowed


class _NoCodec:
    def config(self, raw: Mapping[str, Any]) -> ChannelConfig:
        raise ValueError("no channel senders are installed in this build")

    def message(self, payload: Mapping[str, Any]) -> Any:
        return dict(payload)


@dataclass(frozen=True, slots=True)
class _NotSent:
    error: str = "no channel senders are installed in this build"
    ok: bool = False
    retryable: bool = False
    status_code: int | None = None
    retry_after_s: float | None = None


def _no_send(config: Any, messages: Sequence[Any], http: Any, /) -> SendOutcome:
    return _NotSent()


# Until the senders (app/alerts/channels/) are wired in: channels are refused, nothing is sent.
NO_SENDERS = Senders(_NoCodec(), _no_send, None)
