"""The monitors file's `[[channels]]` and `[[alert_rules]]` tables (operator-owned).

    [[channels]]            # name, then the channel's configuration as for POST
    name = "Ops pager"      # /v1/channels (`kind` and its fields); Apprise allowed here only
    kind = "webhook"
    url = "https://hooks.example/urlhealth"
    secret = "..."

    [[alert_rules]]         # the fields of POST /v1/alert-rules
    name = "Shop outages"
    match_group = "shop"
    channels = ["ops-pager"]

`check` runs with the rest of the file (app/monitors/file.py hands it these tables) and says
each problem by table, index and field; `write` keeps the `source: file` rows in step inside
the reload's transaction and, before changing anything, refuses a name the API holds or a
rule naming a channel that neither the file nor the API has. Monitors call both through
the protocol in app/monitors/file.py (monitors do not import alerts).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection, select

from app.alerts import admin
from app.alerts.contract import Senders
from app.db.engine import Database
from app.db.schema import alert_rules, channels
from app.schemas.alerts import AlertRuleCreate

MAX_TABLES = 1_000
Errors = list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class FileAlerting:
    channels: list[dict[str, Any]]  # rows: name, slug, kind, config
    rules: list[dict[str, Any]]  # AlertRuleCreate dumps


class FileTables:
    def __init__(self, senders: Senders, database: Database) -> None:
        self._senders = senders
        self._database = database

    def unknown_channels(self, slugs: Sequence[str]) -> list[str]:
        """The slugs no channel has (a monitor's own `alerts.channels`, checked when it is
        written over the API)."""
        if not slugs:
            return []
        query = select(channels.c.slug).where(channels.c.slug.in_(list(slugs)))
        with self._database.engine.connect() as connection:
            found = set(connection.execute(query).scalars())
        return [slug for slug in slugs if slug not in found]

    def check(self, channel_tables: Any, rule_tables: Any, errors: Errors) -> FileAlerting:
        return FileAlerting(
            self._channels(_tables("channels", channel_tables, errors), errors),
            _rules(_tables("alert_rules", rule_tables, errors), errors),
        )

    def _channels(self, tables: list[Any], errors: Errors) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        seen: dict[str, int] = {}
        for index, table in enumerate(tables):
            name = table.get("name")
            if not isinstance(name, str) or not 0 < len(name) <= 200:
                errors.append(_error("channels", index, None, "name", "1-200 characters"))
                continue
            config = {k: v for k, v in table.items() if k != "name"}
            try:
                parsed = self._senders.codec.config(config)
            except ValidationError as exc:
                for e in exc.errors(include_url=False, include_input=False):
                    loc = e["loc"][1:] if e["loc"][:1] == (config.get("kind"),) else e["loc"]
                    field = ".".join(str(part) for part in loc) or "kind"
                    errors.append(_error("channels", index, name, field, e["msg"]))
                continue
            except Exception as exc:
                errors.append(_error("channels", index, name, "kind", str(exc)))
                continue
            # Apprise connects outside the destination policy: the operator's choice here.
            refused = None if config.get("kind") == "apprise" else self._senders.validate(parsed)
            if refused is not None:
                errors.append(_error("channels", index, name, "url", refused))
                continue
            slug = admin.slugify(name)
            if slug in seen:
                msg = f"its slug {slug!r} is used by channels[{seen[slug]}] too"
                errors.append(_error("channels", index, name, "name", msg))
            seen.setdefault(slug, index)
            rows.append({"name": name, "slug": slug, "kind": str(config["kind"]), "config": config})
        return rows

    def write(
        self, wanted: FileAlerting, monitor_channels: Sequence[tuple[int, str, Sequence[str]]]
    ) -> Callable[[Connection], Errors]:
        """The sync for the reload's transaction: problems (nothing written), or [].
        `monitor_channels`: each file monitor's own `alerts.channels` (index, name, slugs),
        which must name a channel of the file or the API as rules do."""

        def sync(connection: Connection) -> Errors:
            errors = _clashes(connection, wanted)
            known = _known(connection, wanted)
            for index, name, slugs in monitor_channels:
                missing = [slug for slug in slugs if slug not in known]
                if missing:
                    msg = f"no channel with slug {missing[0]!r} (in the file or over the API)"
                    errors.append(_error("monitors", index, name, "alerts.channels", msg))
            if errors:
                return errors
            admin.sync_file(connection, channels, wanted.channels)
            _sync_rules(connection, wanted.rules)
            return []

        return sync


def _tables(key: str, value: Any, errors: Errors) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_TABLES:
        msg = f"must be an array of at most {MAX_TABLES} tables ([[{key}]])"
        errors.append({"type": "value_error", "loc": [key], "msg": msg, "where": key})
        return []
    good = []
    for index, table in enumerate(value):
        if isinstance(table, dict):
            good.append(table)
        else:
            errors.append(_error(key, index, None, None, "must be a table"))
    return good


def _rules(tables: list[dict[str, Any]], errors: Errors) -> list[dict[str, Any]]:
    rules, names = [], set()
    for index, table in enumerate(tables):
        name = table.get("name") if isinstance(table.get("name"), str) else None
        try:
            rule = AlertRuleCreate.model_validate(table)
        except ValidationError as exc:
            for e in exc.errors(include_url=False, include_input=False):
                field = ".".join(str(part) for part in e["loc"])
                errors.append(_error("alert_rules", index, name, field, e["msg"]))
            continue
        if rule.name in names:
            errors.append(_error("alert_rules", index, name, "name", "used by another rule"))
        names.add(rule.name)
        rules.append(rule.model_dump())
    return rules


def _clashes(connection: Connection, wanted: FileAlerting) -> Errors:
    errors: Errors = []
    existing = list(connection.execute(select(channels.c.name, channels.c.slug, channels.c.source)))
    api = {row.name for row in existing if row.source != "file"}
    api |= {row.slug for row in existing if row.source != "file"}
    for index, row in enumerate(wanted.channels):
        if row["name"] in api or row["slug"] in api:
            msg = f"{row['name']!r} is defined over the API: rename one of them"
            errors.append(_error("channels", index, row["name"], "name", msg))
    known = _known(connection, wanted)
    api_rules = set(
        connection.execute(select(alert_rules.c.name).where(alert_rules.c.source != "file"))
        .scalars()
        .all()
    )
    for index, rule in enumerate(wanted.rules):
        if rule["name"] in api_rules:
            msg = f"{rule['name']!r} is defined over the API: rename one of them"
            errors.append(_error("alert_rules", index, rule["name"], "name", msg))
        missing = [slug for slug in rule["channels"] if slug not in known]
        if missing:
            msg = f"no channel with slug {missing[0]!r} (in the file or over the API)"
            errors.append(_error("alert_rules", index, rule["name"], "channels", msg))
    return errors


def _known(connection: Connection, wanted: FileAlerting) -> set[str]:
    """The channel slugs there will be once the file's are synced: the API's and the file's."""
    api = select(channels.c.slug).where(channels.c.source != "file")
    return set(connection.execute(api).scalars()) | {row["slug"] for row in wanted.channels}


def _sync_rules(connection: Connection, wanted: list[dict[str, Any]]) -> None:
    """The file's rules by name: added, changed, removed."""
    existing = {
        row.name: row
        for row in connection.execute(select(alert_rules).where(alert_rules.c.source == "file"))
    }
    for rule in wanted:
        found = existing.get(rule["name"])
        if found is None:
            admin.add(connection, alert_rules, {**rule, "source": "file"})
        elif any(getattr(found, key) != value for key, value in rule.items()):
            admin.change(connection, alert_rules, found.id, rule)
    names = {rule["name"] for rule in wanted}
    for name, found in existing.items():
        if name not in names:
            admin.remove(connection, alert_rules, found.id)


def _error(table: str, index: int, name: str | None, field: str | None, msg: str) -> dict[str, Any]:
    """Shaped like the monitors file's errors: `where` reads `channels[0] 'Ops': url`."""
    where = f"{table}[{index}]" + (f" {name!r}" if name else "") + (f": {field}" if field else "")
    loc: list[Any] = [table, index, *(field.split(".") if field else [])]
    return {"type": "value_error", "loc": loc, "msg": msg, "monitor": None, "where": where}
