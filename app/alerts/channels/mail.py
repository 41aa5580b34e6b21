"""Alert e-mail over SMTP: one plain-text message per batch, each alert on its own line with
its key (also in an X-Urlhealth-Idempotency-Key header, as for webhooks).

The SMTP host is user-supplied like a webhook URL, so the connection goes through the same
rules: the name resolves through the engine's resolver (never this module's own lookup), the
destination policy judges every address, and the socket is opened to the approved IP while
TLS (SNI and certificate checks) stays on the name. Nothing here asks the system for its own
name either: smtplib and make_msgid would otherwise call getfqdn().

`security`: "tls" is TLS from the first byte (SMTPS, port 465); "starttls" upgrades a plain
connection and refuses to go on if the server does not offer it (port 587); "none" sends in
clear (no credentials allowed, see config). Every step runs within what is left of
`timeout_s` for the whole send.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from socket import create_connection  # by name: the tests guard it

from app.alerts.channels import text
from app.alerts.channels.config import EmailChannel
from app.alerts.channels.outcome import SendOutcome, delivered, failed
from app.alerts.channels.posting import ALERTS_OWNER
from app.alerts.message import AlertMessage, batch_key
from app.engine.dnscache import lookup_owner
from app.engine.policy import DestinationPolicy
from app.engine.resolver import Resolver, ResolverError
from app.engine.transport import HttpLayer

# What we call ourselves in EHLO until connected; then our address literal, which RFC 5321
# (4.1.4) asks of a client without a meaningful domain name, and which, unlike the
# machine's looked-up name, costs no lookup (and, unlike "localhost", is not refused by
# servers that want a fully qualified name).
EHLO_NAME = "localhost"
SUBJECT_PREFIX = "[urlhealth] "


class Blocked(Exception):
    """The destination policy refused the SMTP host."""


class _Deadline(Exception):
    pass


def compose(channel: EmailChannel, messages: Sequence[AlertMessage]) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = channel.from_addr
    mail["To"] = ", ".join(channel.to_addrs)
    mail["Subject"] = SUBJECT_PREFIX + text.clip(text.title(messages), 200)
    mail["Date"] = format_datetime(datetime.now(UTC))
    domain = channel.from_addr.rpartition("@")[2]
    mail["Message-ID"] = make_msgid(domain=domain)
    mail["X-Urlhealth-Idempotency-Key"] = batch_key(messages)
    lines = [text.title(messages), ""]
    for message in messages:
        lines.append(f"{text.label(message)} {text.body(message)}")
        lines.append(f"  key: {message.key}")
    mail.set_content("\n".join(lines) + "\n")
    return mail


def send_mail(
    channel: EmailChannel, messages: Sequence[AlertMessage], http: HttpLayer
) -> SendOutcome:
    """Never raises; `status_code` is the SMTP reply code when the server gave one."""
    mail = compose(channel, messages)
    deadline = time.monotonic() + channel.timeout_s
    client = _client(channel, http, deadline)
    try:
        with lookup_owner(ALERTS_OWNER):
            code, _ = client.connect(channel.host, channel.smtp_port)
        if code != 220:
            return failed(f"SMTP greeting {code}", retryable=code < 500, status_code=code)
        client.local_hostname = _address_literal(client.sock)
        _step(client, deadline)
        client.ehlo()
        if channel.security == "starttls":
            if not client.has_extn("starttls"):
                return failed("the server does not offer STARTTLS", retryable=False)
            _step(client, deadline)
            client.starttls(context=http.tls_context(channel.verify_tls))
            client.ehlo()
        if channel.username is not None and channel.password is not None:
            _step(client, deadline)
            client.login(channel.username, channel.password.get_secret_value())
        _step(client, deadline)
        refused = client.send_message(mail)
        _step(client, deadline)
        client.quit()
    except Exception as exc:
        return _from_exception(exc, channel.timeout_s)
    finally:
        client.close()
    if refused:
        shown = ", ".join(f"{addr} ({code})" for addr, (code, _) in sorted(refused.items()))
        return delivered(250, f"refused recipients: {shown}")
    return delivered(250)


def _address_literal(sock: socket.socket | None) -> str:
    if sock is None:
        return EHLO_NAME
    host = str(sock.getsockname()[0])
    return f"[IPv6:{host}]" if ":" in host else f"[{host}]"


def _step(client: smtplib.SMTP, deadline: float) -> None:
    """Give the next SMTP step what is left of the send's time."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise _Deadline()
    if client.sock is not None:
        client.sock.settimeout(left)


def _from_exception(exc: Exception, timeout_s: float) -> SendOutcome:
    if isinstance(exc, Blocked):
        return failed(f"blocked by the destination policy: {exc}", retryable=False)
    # smtplib turns a read timeout into SMTPServerDisconnected, keeping it as the context.
    if isinstance(exc, _Deadline | TimeoutError) or isinstance(exc.__context__, TimeoutError):
        return failed(f"SMTP: no answer within {timeout_s:g} s", retryable=True)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        shown = ", ".join(
            f"{a} ({c} {m.decode(errors='replace')})" for a, (c, m) in exc.recipients.items()
        )
        transient = all(400 <= code < 500 for code in codes)
        return failed(
            f"SMTP: every recipient refused: {shown}", transient, max(codes, default=None)
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        reason = (
            exc.smtp_error.decode(errors="replace")
            if isinstance(exc.smtp_error, bytes)
            else str(exc.smtp_error)
        )
        code = exc.smtp_code
        return failed(f"SMTP {code}: {text.clip(reason, 300)}", 400 <= code < 500, code)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return failed(f"SMTP: {exc}", retryable=False)
    if isinstance(exc, ResolverError):
        return failed(f"SMTP: {exc}", retryable=True)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return failed(f"SMTP TLS certificate: {exc.verify_message}", retryable=True)
    if isinstance(exc, smtplib.SMTPException | OSError):
        return failed(f"SMTP: {type(exc).__name__}: {exc}", retryable=True)
    return failed(f"SMTP: {type(exc).__name__}: {exc}", retryable=False)


class _PolicySMTP(smtplib.SMTP):
    """smtplib's client, connecting only where the destination policy allows."""

    _policy: DestinationPolicy
    _resolver: Resolver
    _deadline: float

    def bind(self, policy: DestinationPolicy, resolver: Resolver, deadline: float) -> None:
        self._policy, self._resolver, self._deadline = policy, resolver, deadline

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        # The name TLS checks (smtplib only records it when given a host at construction).
        self._host = host
        verdict = self._policy.check_port(port)
        if not verdict.allowed:
            raise Blocked(f"port {port} denied: {verdict.rule}")
        addresses = self._resolver.resolve(host, port, self._left())
        verdict = self._policy.check_addresses(addresses, port)
        if not verdict.allowed:
            raise Blocked(f"{host} is denied: {verdict.explain()}")
        error: OSError | None = None
        for address in addresses:  # every answer passed the policy; try them in order
            try:
                return create_connection((str(address), port), self._left())
            except OSError as exc:
                error = exc
        assert error is not None  # check_addresses denies an empty answer
        raise error

    def _left(self) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise _Deadline()
        return left


class _PolicySMTPSSL(smtplib.SMTP_SSL, _PolicySMTP):
    """SMTPS: SMTP_SSL wraps the socket _PolicySMTP opened (MRO: SMTP_SSL, _PolicySMTP)."""


def _client(channel: EmailChannel, http: HttpLayer, deadline: float) -> _PolicySMTP:
    # Built without a host, so nothing connects (or looks anything up) before bind().
    left = max(0.001, deadline - time.monotonic())
    client: _PolicySMTP
    if channel.security == "tls":
        context = http.tls_context(channel.verify_tls)
        client = _PolicySMTPSSL(local_hostname=EHLO_NAME, timeout=left, context=context)
    else:
        client = _PolicySMTP(local_hostname=EHLO_NAME, timeout=left)
    client.bind(http.backend.policy, http.backend.resolver, deadline)
    return client
