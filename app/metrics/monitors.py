"""The per-monitor families, read from the `monitors` table at scrape time.

10,000 monitors are ~150,000 series. A scrape reads the monitors' small columns, then the
stored result (`last_result`) only of those checked since the previous scrape: each
monitor's lines are rendered once per change (a new result, a rename, a pause) and kept as
bytes, so a scrape is one read plus a join. The reads go through `database.engine` (a read
connection, never the writer's), in one short transaction, and no lock of ours is held:
concurrent scrapes each build a new cache and the last one kept wins.

What a monitor shows:
- checked and not paused: blackbox_exporter's probe_* series of its last result (app/metrics/
  probes.py), its last check's time, and its state;
- paused: its state (`paused`) only. Its last result is old news, and without probe series
  Prometheus marks them stale, so alerts on them resolve rather than fire on a monitor
  nobody is checking;
- never checked (or its stored result unreadable): its state only; no probe_success at all,
  rather than a NaN that `probe_success == 0` alerts would silently skip anyway.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, select

from app.db.schema import monitors
from app.metrics.exposition import Family, label_pairs, public_url
from app.metrics.probes import MONITOR_FAMILIES, Samples, probe_samples

log = logging.getLogger("urlhealth.metrics")

STATES = Family(
    "urlhealth_monitors", "gauge", "Monitors by state (paused counted as paused)."
)
STATE = Family(
    "urlhealth_monitor_state",
    "gauge",
    "1 for each monitor, labelled with its state: unknown, up, degraded, down or paused.",
)
LAST_CHECK = Family(
    "urlhealth_monitor_last_check_timestamp_seconds",
    "gauge",
    "When the monitor's last check started (Unix time).",
)
FAMILIES = (STATE, LAST_CHECK, *MONITOR_FAMILIES)
ALL_STATES = ("unknown", "up", "degraded", "down", "paused")
# Stored results read per statement (bounded by SQLite's and PostgreSQL's parameter limits).
CHUNK = 500

_ROWS = select(
    monitors.c.id,
    monitors.c.slug,
    monitors.c.group_name,
    monitors.c.url,
    monitors.c.paused,
    monitors.c.state,
    monitors.c.last_checked_at,
).order_by(monitors.c.id)


@dataclass(frozen=True, slots=True)
class _Entry:
    key: tuple[Any, ...]  # (slug, group, url, paused, state, last_checked_at): the lines'
    checked_at: datetime | None  # the parsed result's
    samples: Samples | None
    lines: tuple[bytes, ...]  # one chunk per family of FAMILIES


class MonitorFamilies:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._entries: dict[int, _Entry] = {}
        self.parsed = 0  # stored results parsed since start (tests, the bench)

    def render(self) -> bytes:
        previous = self._entries
        with self._engine.connect() as connection:
            rows = connection.execute(_ROWS).all()
            stale = [row.id for row in rows if _needs_result(row, previous.get(row.id))]
            results = self._results(connection, stale)
        entries: dict[int, _Entry] = {}
        counts: Counter[str] = Counter()
        for row in rows:
            entry = self._entry(row, previous.get(row.id), results.get(row.id))
            entries[row.id] = entry
            counts["paused" if row.paused else row.state] += 1
        self._entries = entries
        return _join(entries.values(), counts)

    def _results(
        self, connection: Connection, ids: Sequence[int]
    ) -> dict[int, tuple[datetime | None, Samples | None]]:
        """The stored results of `ids`, parsed, with the time they are from."""
        parsed: dict[int, tuple[datetime | None, Samples | None]] = {}
        for start in range(0, len(ids), CHUNK):
            statement = select(
                monitors.c.id, monitors.c.last_checked_at, monitors.c.last_result
            ).where(monitors.c.id.in_(ids[start : start + CHUNK]))
            for row in connection.execute(statement):
                parsed[row.id] = (row.last_checked_at, self._parse(row.id, row.last_result))
        return parsed

    def _parse(self, monitor_id: int, stored: bytes | None) -> Samples | None:
        if stored is None:
            return None
        self.parsed += 1
        try:
            result = json.loads(stored)
            return probe_samples(result, blackbox_extras=False)
        except (ValueError, TypeError, AttributeError):
            log.warning("monitor %d: its stored last result is unreadable", monitor_id)
            return None

    @staticmethod
    def _entry(
        row: Any, old: _Entry | None, fresh: tuple[datetime | None, Samples | None] | None
    ) -> _Entry:
        if fresh is not None:
            checked_at, samples = fresh
        elif old is not None and old.checked_at == row.last_checked_at:
            checked_at, samples = old.checked_at, old.samples
        else:  # paused or never checked: no result needed
            checked_at, samples = row.last_checked_at, None
        key = (row.slug, row.group_name, row.url, row.paused, row.state, checked_at)
        if old is not None and old.key == key and old.samples is samples:
            return old
        return _Entry(key, checked_at, samples, _lines(row, checked_at, samples))


def _needs_result(row: Any, old: _Entry | None) -> bool:
    if row.paused or row.last_checked_at is None:
        return False
    return old is None or old.checked_at != row.last_checked_at


def _lines(row: Any, checked_at: datetime | None, samples: Samples | None) -> tuple[bytes, ...]:
    labels = label_pairs(monitor=row.slug, group=row.group_name or "", url=public_url(row.url))
    state = "paused" if row.paused else row.state
    lines = [STATE.sample(f'{labels},state="{state}"', 1.0)]
    lines.append(LAST_CHECK.sample(labels, checked_at.timestamp()) if checked_at else b"")
    for family in MONITOR_FAMILIES:
        found = samples.get(family.name, ()) if samples and not row.paused else ()
        lines.append(
            b"".join(
                family.sample(f"{labels},{extra}" if extra else labels, value)
                for extra, value in found
            )
        )
    return tuple(lines)


def _join(entries: Iterable[_Entry], counts: Counter[str]) -> bytes:
    listed = list(entries)
    parts = [STATES.header()]
    parts.extend(STATES.sample(f'state="{state}"', counts[state]) for state in ALL_STATES)
    for index, family in enumerate(FAMILIES):
        chunks = [entry.lines[index] for entry in listed]
        if any(chunks):
            parts.append(family.header())
            parts.extend(chunks)
    return b"".join(parts)
