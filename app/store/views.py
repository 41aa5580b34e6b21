"""What readers get from the store: headers as models or JSON, and pages and lists assembled
from the results' stored JSON bytes, so that serving 1,000 results builds no model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.schemas.jobs import JobHeader, JobSummary


def header_model(fields: dict[str, Any]) -> JobHeader:
    summary = JobSummary(**fields["summary"])
    return JobHeader(**{**fields, "summary": summary})


def header_json(fields: dict[str, Any]) -> bytes:
    return header_model(fields).model_dump_json().encode()


def page_json(header: bytes, results: Sequence[bytes], offset: int, limit: int) -> bytes:
    """A JobPublic document: the header's object with the page's results and paging added."""
    return b"".join(
        (
            header[:-1],  # the header object, still open
            b',"results":[',
            b",".join(results),
            b'],"offset":%d,"limit":%d}' % (offset, limit),
        )
    )


def list_json(headers: Sequence[bytes], count: int, offset: int, limit: int) -> bytes:
    """A JobsPublic document."""
    return b'{"jobs":[%s],"count":%d,"offset":%d,"limit":%d}' % (
        b",".join(headers),
        count,
        offset,
        limit,
    )


def end_line(header: bytes) -> bytes:
    """A stream's last line (a StreamEnd)."""
    return b'{"type":"end","job":' + header + b"}\n"
