"""`/probe?target=…&module=…` as blackbox_exporter answers it: one check, its probe_* samples.

A module names a check profile: the built-in `http_2xx` (the service's defaults, 2xx
expected, as blackbox_exporter's module of that name), or a `[modules.<name>]` of the
monitors file, which may also replace it. The query is read as blackbox_exporter reads it —
`module` defaults to http_2xx, a target without a scheme is `http://`, the
`X-Prometheus-Scrape-Timeout-Seconds` header bounds the check's timeout, less half a second
— so an existing multi-target scrape config works unchanged. Unlike blackbox_exporter, the
check obeys the destination policy: a blocked target is a failed probe, and says why.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Mapping
from typing import NamedTuple

import httpx

from app.config import Settings
from app.engine.options import CheckOptions
from app.inputs import InputError, prepare_urls, resolve_options
from app.metrics.exposition import public_url
from app.metrics.probes import PROBE_FAMILIES, probe_samples
from app.schemas.jobs import JobOptions
from app.schemas.results import CheckResult

log = logging.getLogger("urlhealth.metrics")

DEFAULT_MODULE = "http_2xx"
BUILT_IN: Mapping[str, JobOptions] = {DEFAULT_MODULE: JobOptions(expected_status="200-299")}
# blackbox_exporter's default timeout_offset: time left to answer the scrape.
SCRAPE_TIMEOUT_OFFSET_S = 0.5
SCRAPE_TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

Modules = Callable[[], Mapping[str, JobOptions]]


class ProbeRefused(ValueError):
    """The probe's query cannot be answered (400); the message says why."""


class ProbeRequest(NamedTuple):
    url: str
    parsed: httpx.URL
    options: CheckOptions
    module: str


class Prober:
    def __init__(self, settings: Settings, modules: Modules | None = None) -> None:
        """`modules`: the monitors file's `[modules.<name>]`, as last loaded."""
        self._settings = settings
        self._modules = modules

    def modules(self) -> dict[str, JobOptions]:
        return {**BUILT_IN, **(self._modules() if self._modules is not None else {})}

    def prepare(
        self, target: str | None, module: str | None, scrape_timeout: str | None
    ) -> ProbeRequest:
        """Raises ProbeRefused."""
        name = module or DEFAULT_MODULE
        known = self.modules()
        if name not in known:
            listed = ", ".join(sorted(known))
            raise ProbeRefused(f"unknown module {name!r}; known modules: {listed}")
        if not target:
            raise ProbeRefused("target parameter is missing")
        url = target if _SCHEME.match(target) else f"http://{target}"
        try:
            targets = prepare_urls([url], self._settings, 1)
            options, _ = resolve_options(known[name], self._settings)
        except InputError as exc:
            raise ProbeRefused(_reasons(exc, name)) from None
        bound = _scrape_bound(scrape_timeout)
        if bound is not None and bound < options.timeout_s:
            options = dataclasses.replace(options, timeout_s=bound)
        return ProbeRequest(targets.urls[0], targets.parsed[0], options, name)


def render_probe(result: CheckResult) -> bytes:
    """The answer: blackbox_exporter's families, unlabelled; a failed check's reason as a
    comment (parsers skip it; a person reading the page sees why)."""
    samples = probe_samples(result.model_dump(mode="json"), blackbox_extras=True)
    parts = []
    for family in PROBE_FAMILIES:
        found = samples.get(family.name)
        if found:
            parts.append(family.header())
            parts.extend(family.sample(extra, value) for extra, value in found)
    if result.error is not None:
        why = " ".join(result.error.message.split())
        parts.append(f"# urlhealth: {result.error.kind.value}: {why}\n".encode())
        if result.error.kind.value == "blocked":
            log.info("probe of %s blocked: %s", public_url(result.url), why)
    return b"".join(parts)


def _scrape_bound(header: str | None) -> float | None:
    if header is None:
        return None
    try:
        seconds = float(header)
    except ValueError:
        raise ProbeRefused(f"{SCRAPE_TIMEOUT_HEADER} is not a number: {header[:40]!r}") from None
    if not seconds > 0:
        return None
    return seconds - SCRAPE_TIMEOUT_OFFSET_S if seconds > SCRAPE_TIMEOUT_OFFSET_S else seconds


def _reasons(error: InputError, module: str) -> str:
    reasons = []
    for item in error.errors:
        where = item["loc"][1] if len(item["loc"]) > 1 else ""
        if where == "urls":
            reasons.append(f"target: {item['msg']}")
        else:
            reasons.append(
                f"module {module!r}: {'.'.join(map(str, item['loc'][1:]))}: {item['msg']}"
            )
    return "; ".join(reasons)
