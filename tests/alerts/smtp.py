"""An SMTP server on loopback for the e-mail sender's tests (aiosmtpd), recording what it
received, whether the session had switched to TLS, and who logged in."""

from __future__ import annotations

import asyncio
import ssl
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

USER, PASSWORD = "alerts", "smtp-pass-word"


@dataclass
class Delivered:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    tls: bool
    login: str | None
    ehlo: str


@dataclass
class Mailbox:
    """The handler: refuses recipients named nobody@..., and DATA while `busy` (451)."""

    delivered: list[Delivered] = field(default_factory=list)
    busy: bool = False
    logins: dict[int, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's hook name)
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802
        self, server: Any, session: Any, envelope: Any
    ) -> str:
        if self.busy:
            return "451 4.3.0 try again later"
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        login = session.auth_data.login.decode() if session.auth_data is not None else None
        with self.lock:
            self.delivered.append(
                Delivered(
                    envelope.mail_from,
                    list(envelope.rcpt_tos),
                    parsed,
                    session.ssl is not None,
                    login,
                    session.host_name,
                )
            )
        return "250 OK"


def authenticate(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    good = isinstance(auth_data, LoginPassword) and (
        auth_data.login.decode(),
        auth_data.password.decode(),
    ) == (USER, PASSWORD)
    return AuthResult(success=good, handled=False, auth_data=auth_data if good else None)


class LoopbackSMTP(Controller):
    """aiosmtpd's threaded controller on 127.0.0.1, port 0 (it asks for a fixed port; the
    real one is read back once the server listens), named so nothing calls getfqdn()."""

    def __init__(self, handler: Mailbox, **kwargs: Any) -> None:
        super().__init__(
            handler, hostname="127.0.0.1", port=0, server_hostname="smtp.test", **kwargs
        )

    def _trigger_server(self) -> None:
        assert isinstance(self.server, asyncio.Server)
        self.port = int(self.server.sockets[0].getsockname()[1])
        super()._trigger_server()  # type: ignore[no-untyped-call]


def server_context(pem: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pem)
    return context
