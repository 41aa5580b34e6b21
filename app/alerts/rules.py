"""Which channels hear of a monitor's state change, and for which changes.

Precedence, most specific first — the first that applies decides, nothing is merged across
levels except a monitor's own fields over what its rules gave:
1. the monitor's own `alerts` (monitors.alerts, JSON): each field it sets wins over the rules
   (`{"channels": []}` silences one monitor; `{"on_degraded": true}` adds degraded to what
   its rules say);
2. rules matching its labels (`match_labels` non-empty, all equal; a `match_group` beside them
   must match too);
3. rules matching its group only (`match_group` set, no labels);
4. catch-all rules (neither): a default for every monitor;
5. none: no alerts.
Several rules at one level are combined: their channels joined, each `on_*` true if any
rule's is, the shortest reminder interval.

What a change sends, given the rule: to `down` → `down` if on_down; to `degraded` → `degraded`
if on_degraded; back to `up` → `resolved` if send_on_resolved and the incident was alerted
(its worst state was `down` and on_down, or on_degraded); from `unknown` to `up` → nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from sqlalchemy import Connection, select

from app.db.schema import alert_rules
from app.schemas.monitoring import MonitorState

DOWN, DEGRADED, UP = MonitorState.DOWN.value, MonitorState.DEGRADED.value, MonitorState.UP.value
OVERRIDABLE = ("channels", "on_down", "on_degraded", "send_on_resolved", "reminder_interval_s")


@dataclass(frozen=True, slots=True)
class Rule:
    """What a monitor's alerts do, once its rules and override are combined."""

    channels: tuple[str, ...] = ()
    on_down: bool = True
    on_degraded: bool = False
    send_on_resolved: bool = True
    reminder_interval_s: float | None = None


@dataclass(frozen=True, slots=True)
class RuleRow:
    match_group: str | None
    match_labels: Mapping[str, str]
    rule: Rule

    def level(self, group: str | None, labels: Mapping[str, Any]) -> int | None:
        """How specific the match is (3 labels, 2 group, 1 catch-all), None if no match."""
        if self.match_group is not None and self.match_group != group:
            return None
        if self.match_labels:
            ok = all(labels.get(name) == value for name, value in self.match_labels.items())
            return 3 if ok else None
        return 2 if self.match_group is not None else 1


_ALL = select(alert_rules).order_by(alert_rules.c.id)


def load(connection: Connection) -> list[RuleRow]:
    """Every rule: a short table (rules are per group or label, not per monitor)."""
    return [
        RuleRow(
            row.match_group,
            row.match_labels or {},
            Rule(
                tuple(row.channels),
                row.on_down,
                row.on_degraded,
                row.send_on_resolved,
                row.reminder_interval_s,
            ),
        )
        for row in connection.execute(_ALL)
    ]


def resolve(
    rules: Iterable[RuleRow],
    group: str | None,
    labels: Mapping[str, Any],
    override: Mapping[str, Any] | None,
) -> Rule | None:
    """The monitor's rule (module docstring), None when it sends to no channel."""
    best: list[Rule] = []
    best_level = 0
    for row in rules:
        level = row.level(group, labels)
        if level is None or level < best_level:
            continue
        if level > best_level:
            best, best_level = [], level
        best.append(row.rule)
    rule = _combine(best) if best else None
    if override:
        rule = replace(rule or Rule(), **_override_fields(override))
    return rule if rule is not None and rule.channels else None


def _combine(rules: Sequence[Rule]) -> Rule:
    channels = tuple(dict.fromkeys(slug for rule in rules for slug in rule.channels))
    intervals = [r.reminder_interval_s for r in rules if r.reminder_interval_s]
    return Rule(
        channels,
        any(r.on_down for r in rules),
        any(r.on_degraded for r in rules),
        any(r.send_on_resolved for r in rules),
        min(intervals) if intervals else None,
    )


def _override_fields(override: Mapping[str, Any]) -> dict[str, Any]:
    known = {f.name for f in fields(Rule)}
    values = {name: override[name] for name in OVERRIDABLE if name in override and name in known}
    # Only the reminder may be overridden to null (none); a null elsewhere means "inherit".
    values = {k: v for k, v in values.items() if v is not None or k == "reminder_interval_s"}
    if "channels" in values:
        values["channels"] = tuple(values["channels"])
    return values


def kind_of(rule: Rule, from_state: str, to_state: str, worst_state: str | None) -> str | None:
    """The message a confirmed change sends under `rule` (module docstring), or None."""
    if to_state == DOWN:
        return "down" if rule.on_down else None
    if to_state == DEGRADED:
        return "degraded" if rule.on_degraded else None
    if to_state == UP and from_state in (DOWN, DEGRADED) and rule.send_on_resolved:
        alerted = rule.on_degraded or (rule.on_down and worst_state == DOWN)
        return "resolved" if alerted else None
    return None


def alert_key(monitor_id: int, since_ms: int, what: str, channel_id: int) -> str:
    """The stable key of one transition's message to one channel: the same transition gives
    the same key on every replay, so the outbox's unique (channel_id, key) adds it once, and
    a re-send carries the same idempotency key. `what`: the new state, or reminder-N."""
    text = f"{monitor_id}:{since_ms}:{what}:{channel_id}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]
