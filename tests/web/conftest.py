"""The headless Chromium of the docs' browser test, shared (one way to start it offline)."""

from __future__ import annotations

from tests.api.test_docs_browser import browser  # noqa: F401 (a fixture, found by name)
