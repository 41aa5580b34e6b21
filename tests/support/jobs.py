"""A job's options as the store keeps them, for tests (and benches) that write jobs directly."""

from __future__ import annotations

from app.schemas.jobs import CheckOptionsPublic


def stored_options(timeout_s: float = 5.0, max_body_bytes: int = 1024) -> CheckOptionsPublic:
    return CheckOptionsPublic(
        method="GET",
        timeout_s=timeout_s,
        follow_redirects=True,
        max_redirects=5,
        expected_status="200-399",
        headers={},
        verify_tls=True,
        max_body_bytes=max_body_bytes,
    )
