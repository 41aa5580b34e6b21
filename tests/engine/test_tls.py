"""TLS, end to end on loopback: certificates from a private CA given as `ca_bundle`, each kind
of bad certificate failing with its own reason, the facts reported with verification on or
off, and `min_days_left` judging the certificate's remaining days."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme

from app.engine.checker import Checker
from app.engine.options import CheckOptions
from app.engine.resolver import StaticResolver
from app.schemas.assertions import Assertions, FailedAssertion
from app.schemas.results import CheckResult, ErrorKind
from tests.support.engine import make_http
from tests.support.servers import ThreadedUvicorn
from tests.support.tls import (
    ca_bundle,
    ca_name,
    https_url,
    leaf_pem,
    self_signed_pem,
    tls_server,
)

VALID_DAYS = 40
# Issued for VALID_DAYS from now: whole days left while the test runs, rounded down.
VALID_DAYS_LEFT = VALID_DAYS - 1
# Names the checker resolves to loopback, so certificates can be checked against a host name.
NAMES = {"localhost": ["127.0.0.1"], "other.test": ["127.0.0.1"]}

# --- certificates and servers ----------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pki")


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def bundle(ca: trustme.CA, pki: Path) -> Path:
    return ca_bundle(ca, pki)


@pytest.fixture(scope="module")
def valid(ca: trustme.CA, pki: Path) -> Iterator[ThreadedUvicorn]:
    not_after = datetime.now(UTC) + timedelta(days=VALID_DAYS)
    pem = leaf_pem(
        ca,
        pki / "valid.pem",
        "localhost",
        "127.0.0.1",
        common_name="localhost",
        not_after=not_after,
    )
    with tls_server(pem) as server:
        yield server


@pytest.fixture(scope="module")
def expired(ca: trustme.CA, pki: Path) -> Iterator[ThreadedUvicorn]:
    now = datetime.now(UTC)
    pem = leaf_pem(
        ca,
        pki / "expired.pem",
        "localhost",
        "127.0.0.1",
        common_name="localhost",
        not_before=now - timedelta(days=30),
        not_after=now - timedelta(days=2),
    )
    with tls_server(pem) as server:
        yield server


@pytest.fixture(scope="module")
def wrong_host(ca: trustme.CA, pki: Path) -> Iterator[ThreadedUvicorn]:
    pem = leaf_pem(ca, pki / "wrong-host.pem", "example.test", common_name="example.test")
    with tls_server(pem) as server:
        yield server


@pytest.fixture(scope="module")
def other_ca_signed(pki: Path) -> Iterator[ThreadedUvicorn]:
    """Signed by a CA that is in no bundle the checker trusts."""
    pem = leaf_pem(
        trustme.CA(), pki / "other-ca.pem", "localhost", "127.0.0.1", common_name="localhost"
    )
    with tls_server(pem) as server:
        yield server


@pytest.fixture(scope="module")
def self_signed(pki: Path) -> Iterator[ThreadedUvicorn]:
    pem = self_signed_pem(pki / "self-signed.pem", "localhost", "127.0.0.1")
    with tls_server(pem) as server:
        yield server


@pytest.fixture
def checker(bundle: Path) -> Iterator[Checker]:
    """Trusts the private CA; its connections close before the module's servers stop."""
    layer = make_http(resolver=StaticResolver(NAMES), ca_bundle=bundle)
    yield Checker(layer)
    layer.close()


def check(checker: Checker, url: str, **options: Any) -> CheckResult:
    options.setdefault("timeout_s", 10.0)
    return checker.check(url, CheckOptions(**options))


def tls_error(result: CheckResult) -> str:
    """The error message of a result that must have failed with kind `tls`."""
    assert result.ok is False
    assert result.outcome == "down"
    assert result.error is not None, result
    assert result.error.kind is ErrorKind.TLS, result.error
    assert result.status_code is None
    return result.error.message.lower()


# --- a valid certificate ---------------------------------------------------------------------


def test_valid_certificate_is_up_with_every_tls_fact_reported(
    checker: Checker, valid: ThreadedUvicorn, ca: trustme.CA
) -> None:
    result = check(checker, https_url(valid))
    assert result.ok is True, result.error
    assert result.outcome == "up"
    assert result.status_code == 200
    tls = result.tls
    assert tls is not None
    assert tls.version in ("TLSv1.2", "TLSv1.3")
    assert tls.cipher
    assert tls.verified is True
    assert tls.subject == "localhost"
    assert tls.issuer == ca_name(ca)
    assert "Testing CA" in tls.issuer
    assert {"localhost", "127.0.0.1"} <= set(tls.sans)
    now = datetime.now(UTC)
    assert tls.not_before is not None
    assert tls.not_before <= now
    assert tls.not_after is not None
    assert tls.not_after > now
    assert tls.days_left == VALID_DAYS_LEFT


def test_valid_certificate_verifies_against_a_host_name(
    checker: Checker, valid: ThreadedUvicorn
) -> None:
    result = check(checker, https_url(valid, host="localhost"))
    assert result.ok is True, result.error
    assert result.tls is not None
    assert result.tls.verified is True


def test_reused_tls_connection_still_reports_the_certificate(
    checker: Checker, valid: ThreadedUvicorn
) -> None:
    first = check(checker, https_url(valid))
    second = check(checker, https_url(valid))
    assert second.timings_ms is not None
    assert second.timings_ms.tls == 0.0
    assert second.tls is not None
    assert first.tls is not None
    assert second.tls == first.tls


# --- bad certificates, verified: each fails with its reason ----------------------------------


def test_expired_certificate_is_a_tls_error_saying_expired(
    checker: Checker, expired: ThreadedUvicorn
) -> None:
    assert "expired" in tls_error(check(checker, https_url(expired)))


def test_certificate_for_another_name_is_a_hostname_mismatch(
    checker: Checker, wrong_host: ThreadedUvicorn
) -> None:
    message = tls_error(check(checker, https_url(wrong_host, host="other.test")))
    assert "hostname mismatch" in message
    assert "other.test" in message


def test_certificate_without_the_ip_is_a_mismatch_naming_the_ip(
    checker: Checker, wrong_host: ThreadedUvicorn
) -> None:
    message = tls_error(check(checker, https_url(wrong_host)))
    assert "mismatch" in message
    assert "127.0.0.1" in message


def test_certificate_from_an_untrusted_ca_cannot_find_its_issuer(
    checker: Checker, other_ca_signed: ThreadedUvicorn
) -> None:
    assert "unable to get local issuer" in tls_error(check(checker, https_url(other_ca_signed)))


def test_self_signed_certificate_is_a_tls_error_saying_self_signed(
    checker: Checker, self_signed: ThreadedUvicorn
) -> None:
    message = tls_error(check(checker, https_url(self_signed)))
    assert "self-signed" in message or "self signed" in message


def test_private_ca_is_trusted_only_when_given_as_ca_bundle(valid: ThreadedUvicorn) -> None:
    layer = make_http()
    try:
        message = tls_error(check(Checker(layer), https_url(valid)))
    finally:
        layer.close()
    assert "unable to get local issuer" in message


# --- bad certificates, not verified: accepted, facts still reported -------------------------


@pytest.mark.parametrize(
    ("server", "subject"),
    [
        ("expired", "localhost"),
        ("wrong_host", "example.test"),
        ("other_ca_signed", "localhost"),
        ("self_signed", "self-signed.test"),
    ],
)
def test_bad_certificate_without_verification_is_up_with_facts_unverified(
    checker: Checker, request: pytest.FixtureRequest, server: str, subject: str
) -> None:
    target: ThreadedUvicorn = request.getfixturevalue(server)
    result = check(checker, https_url(target), verify_tls=False)
    assert result.ok is True, result.error
    assert result.status_code == 200
    tls = result.tls
    assert tls is not None
    assert tls.verified is False
    assert tls.version in ("TLSv1.2", "TLSv1.3")
    assert tls.subject == subject
    assert tls.issuer
    assert tls.not_after is not None
    assert tls.days_left is not None


def test_expired_certificate_without_verification_reports_negative_days_left(
    checker: Checker, expired: ThreadedUvicorn
) -> None:
    result = check(checker, https_url(expired), verify_tls=False)
    assert result.ok is True
    assert result.tls is not None
    assert result.tls.not_after is not None
    assert result.tls.not_after < datetime.now(UTC)
    assert result.tls.days_left is not None
    assert result.tls.days_left < 0


def test_self_signed_certificate_reports_itself_as_its_issuer(
    checker: Checker, self_signed: ThreadedUvicorn
) -> None:
    result = check(checker, https_url(self_signed), verify_tls=False)
    assert result.tls is not None
    assert result.tls.issuer == result.tls.subject == "self-signed.test"


# --- min_days_left -------------------------------------------------------------------------


def test_min_days_left_above_the_days_left_is_degraded(
    checker: Checker, valid: ThreadedUvicorn
) -> None:
    minimum = VALID_DAYS_LEFT + 20
    result = check(checker, https_url(valid), assertions=Assertions(min_days_left=minimum))
    assert result.ok is False
    assert result.outcome == "degraded"
    assert result.status_code == 200
    assert result.error is not None
    assert result.error.kind is ErrorKind.ASSERTION_FAILED
    assert "min_days_left" in result.error.message
    assert result.failed_assertions == [
        FailedAssertion(
            assertion="min_days_left",
            expected=f">= {minimum} days",
            actual=f"{VALID_DAYS_LEFT} days",
            severity="degraded",
        )
    ]


@pytest.mark.parametrize("minimum", [0, VALID_DAYS_LEFT - 10, VALID_DAYS_LEFT])
def test_min_days_left_up_to_the_days_left_is_up(
    checker: Checker, valid: ThreadedUvicorn, minimum: int
) -> None:
    result = check(checker, https_url(valid), assertions=Assertions(min_days_left=minimum))
    assert result.ok is True, result.failed_assertions
    assert result.outcome == "up"
    assert result.failed_assertions == []
    assert result.error is None


def test_expired_certificate_accepted_unverified_is_still_degraded_by_min_days_left(
    checker: Checker, expired: ThreadedUvicorn
) -> None:
    result = check(
        checker, https_url(expired), verify_tls=False, assertions=Assertions(min_days_left=0)
    )
    assert result.outcome == "degraded"
    assert [f.assertion for f in result.failed_assertions] == ["min_days_left"]
    assert result.failed_assertions[0].severity == "degraded"


def test_min_days_left_is_skipped_for_plain_http(checker: Checker, target: ThreadedUvicorn) -> None:
    result = check(checker, f"{target.url}/status/200", assertions=Assertions(min_days_left=10_000))
    assert result.tls is None
    assert result.ok is True
    assert result.outcome == "up"
