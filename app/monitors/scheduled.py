"""What the scheduler needs of a monitor to run it: defined here, where definitions are made,
so the scheduler (app/monitors/scheduler.py) imports it rather than the other way round."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from app.engine.options import CheckOptions


@dataclass(frozen=True, slots=True)
class Scheduled:
    id: int
    slug: str
    interval_s: float
    # A result of an older generation (the URL or options changed since it started) counts
    # toward no streak.
    generation: int
    url: str
    options: CheckOptions
    parsed: httpx.URL
