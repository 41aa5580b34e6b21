"""How answers are classified: which are worth another try, and after how long."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from app.alerts.channels.outcome import MAX_RETRY_AFTER_S, from_status, retry_after_s


@pytest.mark.parametrize(
    ("status", "ok", "retryable"),
    [
        (200, True, False),
        (202, True, False),
        (204, True, False),
        (301, False, False),
        (400, False, False),
        (401, False, False),
        (403, False, False),
        (404, False, False),
        (408, False, True),
        (410, False, False),
        (413, False, False),
        (429, False, True),
        (500, False, True),
        (502, False, True),
        (503, False, True),
    ],
)
def test_status_classification(status: int, ok: bool, retryable: bool) -> None:
    outcome = from_status(status, "", None)
    assert (outcome.ok, outcome.retryable, outcome.status_code) == (ok, retryable, status)


def test_retry_after_in_seconds_as_a_date_capped_and_unreadable() -> None:
    in_a_minute = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    assert retry_after_s("7") == 7.0
    assert retry_after_s(" 1.5 ") == 1.5
    assert 50 <= (retry_after_s(in_a_minute) or 0) <= 61
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: now
    assert retry_after_s("86400") == MAX_RETRY_AFTER_S
    assert retry_after_s("-5") == 0.0
    assert retry_after_s("soon") is None
    assert retry_after_s("nan") is None
    assert retry_after_s(None) is None


def test_a_long_answer_is_quoted_short_on_one_line() -> None:
    outcome = from_status(500, "<html>\n" + "x" * 5000, None)
    assert outcome.error is not None
    assert outcome.error.startswith("HTTP 500: <html> xxx")
    assert len(outcome.error) <= len("HTTP 500: ") + 300
