"""The e-mail sender against a real SMTP server on loopback (aiosmtpd): STARTTLS with login,
TLS from the first byte, plain; refusals and delays classified; certificates checked on the
name while the socket goes to the approved address."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from app.alerts.channels import EmailChannel, send
from app.engine.transport import HttpLayer
from tests.alerts.build import burst, make_alert
from tests.alerts.channels.conftest import NAMES
from tests.alerts.smtp import PASSWORD, USER, LoopbackSMTP, Mailbox, server_context
from tests.support.destination import LocalResolver
from tests.support.engine import make_http
from tests.support.servers import RawServer
from tests.support.tls import ca_bundle, leaf_pem

Start = Callable[..., tuple[LoopbackSMTP, Mailbox]]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def smtp_pem(ca: trustme.CA, tmp_path: Path) -> str:
    return str(leaf_pem(ca, tmp_path / "smtp.pem", "smtp.test"))


@pytest.fixture
def http(ca: trustme.CA, tmp_path: Path) -> Iterator[HttpLayer]:
    """Trusts the test CA, as the service does with its ca_bundle setting."""
    layer = make_http(resolver=LocalResolver(NAMES), ca_bundle=ca_bundle(ca, tmp_path))
    yield layer
    layer.close()


@pytest.fixture
def start_smtp() -> Iterator[Start]:
    started: list[LoopbackSMTP] = []

    def start(**kwargs: Any) -> tuple[LoopbackSMTP, Mailbox]:
        mailbox = Mailbox()
        controller = LoopbackSMTP(mailbox, **kwargs)
        controller.start()
        started.append(controller)
        return controller, mailbox

    yield start
    for controller in started:
        controller.stop()


def channel(port: int, **fields: Any) -> EmailChannel:
    values: dict[str, Any] = {
        "host": "smtp.test",
        "port": port,
        "from_addr": "urlhealth@example.org",
        "to_addrs": ["ops@example.org", "oncall@example.org"],
    }
    values.update(fields)
    return EmailChannel(**values)


def test_starttls_with_login_delivers_one_mail_listing_every_key(
    start_smtp: Start, smtp_pem: str, http: HttpLayer
) -> None:
    server, mailbox = start_smtp(
        tls_context=server_context(smtp_pem),
        require_starttls=True,
        authenticator=_authenticator(),
    )
    alerts = burst(3)

    outcome = send(channel(server.port, username=USER, password=PASSWORD), alerts, http)

    assert (outcome.ok, outcome.status_code, outcome.error) == (True, 250, None)
    (mail,) = mailbox.delivered
    assert (mail.tls, mail.login, mail.ehlo) == (True, USER, "[127.0.0.1]")
    assert mail.mail_from == "urlhealth@example.org"
    assert mail.rcpt_tos == ["ops@example.org", "oncall@example.org"]
    assert mail.message["Subject"] == "[urlhealth] 3 monitors down"
    assert mail.message["Message-ID"].endswith("@example.org>")
    body = mail.message.get_content().replace("\r\n", "\n")
    for alert in alerts:
        assert f"  key: {alert.key}\n" in body
    assert "DOWN API 2 — https://api2.example/health?token=*** — up → down at" in body


def test_plain_smtp_delivers(start_smtp: Start, http: HttpLayer) -> None:
    server, mailbox = start_smtp()
    alert = make_alert(1, kind="resolved", from_state="down", to_state="up")
    outcome = send(channel(server.port, security="none"), [alert], http)
    assert outcome.ok, outcome.error
    (mail,) = mailbox.delivered
    assert mail.tls is False
    assert mail.message["Subject"] == "[urlhealth] API 1 recovered (up)"
    assert mail.message["X-Urlhealth-Idempotency-Key"] == alert.key


def test_tls_from_the_first_byte_delivers(
    start_smtp: Start, smtp_pem: str, http: HttpLayer
) -> None:
    server, mailbox = start_smtp(ssl_context=server_context(smtp_pem))
    outcome = send(channel(server.port, security="tls"), [make_alert(1)], http)
    assert outcome.ok, outcome.error
    assert len(mailbox.delivered) == 1


def test_starttls_refused_when_the_server_does_not_offer_it(
    start_smtp: Start, http: HttpLayer
) -> None:
    server, mailbox = start_smtp()  # no TLS context: no STARTTLS in its EHLO answer
    outcome = send(channel(server.port), [make_alert(1)], http)
    assert (outcome.ok, outcome.retryable) == (False, False)
    assert outcome.error == "the server does not offer STARTTLS"
    assert mailbox.delivered == []


def test_a_certificate_from_an_untrusted_ca_is_refused(
    start_smtp: Start, tmp_path: Path, http: HttpLayer
) -> None:
    stranger = leaf_pem(trustme.CA(), tmp_path / "other.pem", "smtp.test")
    server, mailbox = start_smtp(tls_context=server_context(str(stranger)))
    outcome = send(channel(server.port), [make_alert(1)], http)
    assert outcome.ok is False
    assert (outcome.error or "").startswith("SMTP TLS certificate: "), outcome.error
    assert mailbox.delivered == []


def test_a_refused_recipient_is_final_and_a_busy_server_retryable(
    start_smtp: Start, http: HttpLayer
) -> None:
    server, mailbox = start_smtp()
    refused = send(
        channel(server.port, security="none", to_addrs=["nobody@example.org"]),
        [make_alert(1)],
        http,
    )
    mailbox.busy = True
    busy = send(channel(server.port, security="none"), [make_alert(1)], http)
    assert (refused.ok, refused.retryable, refused.status_code) == (False, False, 550)
    assert "nobody@example.org (550 5.1.1 no such user)" in (refused.error or "")
    assert (busy.ok, busy.retryable, busy.status_code) == (False, True, 451)


def test_some_recipients_refused_is_delivered_with_a_note(
    start_smtp: Start, http: HttpLayer
) -> None:
    server, mailbox = start_smtp()
    addresses = ["ops@example.org", "nobody@example.org"]
    outcome = send(channel(server.port, security="none", to_addrs=addresses), [make_alert(1)], http)
    assert outcome.ok
    assert outcome.error == "refused recipients: nobody@example.org (550)"
    assert mailbox.delivered[0].rcpt_tos == ["ops@example.org"]


def test_a_wrong_password_is_final(start_smtp: Start, smtp_pem: str, http: HttpLayer) -> None:
    server, _ = start_smtp(tls_context=server_context(smtp_pem), authenticator=_authenticator())
    outcome = send(channel(server.port, username=USER, password="wrong"), [make_alert(1)], http)
    assert (outcome.ok, outcome.retryable, outcome.status_code) == (False, False, 535)


def test_a_silent_server_times_out_retryably_within_the_timeout(
    hanging_server: RawServer, http: HttpLayer
) -> None:
    started = time.monotonic()
    outcome = send(channel(hanging_server.port, timeout_s=0.5), [make_alert(1)], http)
    assert (outcome.ok, outcome.retryable) == (False, True)
    assert outcome.error == "SMTP: no answer within 0.5 s"
    assert time.monotonic() - started < 10  # generous: the timeout is 0.5 s


def _authenticator() -> Any:
    from tests.alerts.smtp import authenticate

    return authenticate
