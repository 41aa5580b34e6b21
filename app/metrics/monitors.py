"""The per-monitor families, read from the `monitors` table at scrape time.

10,000 monitors are ~150,000 series. A scrape reads the monitors' small columns, then the
stored result (`last_result`) only of those checked since the previous scrape: each
monitor's lines are rendered once per change (a new result, a rename, a pause) and kept as
bytes, so a scrape is one read plus a join. The reads go through `database.engine` (a read
connection, never the writer's), in one short transaction, and no lock of ours is held:
concurrent scrapes each build a new cache and the last one kept wins.

What a monitor shows:
- checked and not paused: blackbox_exporter's probe_* series of its last result (app/metrics/
  probes.py), when that check started, and its state;
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
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, select, type_coerce
from sqlalchemy.types import NullType

from app.db.schema import monitors
from app.metrics.exposition import Family, label_pairs, number, public_url
from app.metrics.probes import MONITOR_FAMILIES, Samples, probe_samples

log = logging.getLogger("urlhealth.metrics")

STATES = Family("urlhealth_monitors", "gauge", "Monitors by state (paused counted as paused).")
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
# A row of _ROWS: (id, slug, group_name, url, paused, state, raw last_checked_at).
Row = tuple[int, str, str | None, str, bool, str, Any]
# Stored results read per statement (bounded by SQLite's and PostgreSQL's parameter limits).
CHUNK = 500

# last_checked_at raw, as the driver gives it: only compared, to see which results changed
# (the time shown is the result's own `checked_at`), so it is never converted.
_CHANGED = type_coerce(monitors.c.last_checked_at, NullType()).label("changed")
_ROWS = select(
    monitors.c.id,
    monitors.c.slug,
    monitors.c.group_name,
    monitors.c.url,
    monitors.c.paused,
    monitors.c.state,
    _CHANGED,
).order_by(monitors.c.id)


class _Entry(NamedTuple):
    """A monitor's rendered lines and what they were rendered from. Only strings, bytes and
    the raw timestamp: a tuple of those the cyclic collector stops tracking, so 10,000 of
    them cost a full collection nothing."""

    names: tuple[str, str | None, str]  # (slug, group, url)
    labels: str
    changed: Any  # the raw last_checked_at of the result shown; None: none shown
    state: str  # as shown: paused, or the row's state
    lines: tuple[bytes, ...]  # one chunk per family of FAMILIES


class MonitorFamilies:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._entries: dict[int, _Entry] = {}
        self.parsed = 0  # stored results parsed since start (tests, the bench)

    def render(self) -> bytes:
        previous = self._entries
        with self._engine.connect() as connection:
            rows = connection.execute(_ROWS).tuples().all()
            stale = [row[0] for row in rows if _needs_result(row, previous.get(row[0]))]
            stored = _stored_results(connection, stale)
        # Parsed once the read transaction is over: it stays as short as the reads.
        results = {
            monitor_id: (changed, self._parse(monitor_id, blob))
            for monitor_id, (changed, blob) in stored.items()
        }
        entries: dict[int, _Entry] = {}
        counts: Counter[str] = Counter()
        for row in rows:
            entry = _entry(row, previous.get(row[0]), results.get(row[0]))
            entries[row[0]] = entry
            counts[entry.state] += 1
        self._entries = entries
        return _join(entries.values(), counts)

    def _parse(self, monitor_id: int, stored: bytes | None) -> Samples | None:
        if stored is None:
            return None
        self.parsed += 1
        try:
            result = json.loads(stored)
            samples = probe_samples(result, blackbox_extras=False)
            checked_at = datetime.fromisoformat(result["checked_at"]).timestamp()
        except (ValueError, TypeError, AttributeError, KeyError):
            log.warning("monitor %d: its stored last result is unreadable", monitor_id)
            return None
        samples[LAST_CHECK.name] = [("", checked_at)]
        return samples


def _stored_results(
    connection: Connection, ids: Sequence[int]
) -> dict[int, tuple[Any, bytes | None]]:
    """The stored results of `ids`, with the raw last_checked_at they are of."""
    found: dict[int, tuple[Any, bytes | None]] = {}
    for start in range(0, len(ids), CHUNK):
        statement = select(monitors.c.id, _CHANGED, monitors.c.last_result).where(
            monitors.c.id.in_(ids[start : start + CHUNK])
        )
        for monitor_id, changed, stored in connection.execute(statement).tuples():
            found[monitor_id] = (changed, stored)
    return found


def _needs_result(row: Row, old: _Entry | None) -> bool:
    """A result to show (checked, not paused) other than the one `old` shows, or labels
    other than the ones its lines have."""
    _, slug, group, url, paused, _, changed = row
    if paused or changed is None:
        return False
    return old is None or old.changed != changed or old.names != (slug, group, url)


def _entry(row: Row, old: _Entry | None, fresh: tuple[Any, Samples | None] | None) -> _Entry:
    _, slug, group, url, paused, state, changed = row
    names = (slug, group, url)
    shown = "paused" if paused else state
    if fresh is None and old is not None and old.names == names:
        if not paused and changed is not None:  # the result shown is still the last one
            if old.state == shown:
                return old
            return old._replace(state=shown, lines=(_state_line(old.labels, shown), *old.lines[1:]))
        if old.changed is None and old.state == shown:
            return old
    if old is not None and old.names == names:
        labels = old.labels
    else:
        labels = label_pairs(monitor=slug, group=group or "", url=public_url(url))
    changed, samples = fresh if fresh is not None else (None, None)
    return _Entry(names, labels, changed, shown, _lines(labels, shown, samples))


def _state_line(labels: str, state: str) -> bytes:
    return f'{STATE.name}{{{labels},state="{state}"}} 1.0\n'.encode()


def _lines(labels: str, state: str, samples: Samples | None) -> tuple[bytes, ...]:
    lines = [_state_line(labels, state)]
    for family in FAMILIES[1:]:
        found = samples.get(family.name) if samples else None
        if not found:
            lines.append(b"")
            continue
        text = "".join(
            f"{family.name}{{{labels},{extra}}} {number(value)}\n"
            if extra
            else f"{family.name}{{{labels}}} {number(value)}\n"
            for extra, value in found
        )
        lines.append(text.encode())
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
