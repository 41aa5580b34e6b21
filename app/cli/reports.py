"""The report formats of `urlhealth check`. ndjson, csv and table write each result as it
completes; json, junit and markdown, which wrap the whole run, are written at the end, in the
order the URLs were given."""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

from app.schemas.results import CheckResult

FORMATS = ("table", "json", "ndjson", "csv", "junit", "markdown")
CSV_COLUMNS = (
    "url",
    "outcome",
    "ok",
    "status_code",
    "elapsed_ms",
    "error_kind",
    "error_message",
    "final_url",
    "remote_ip",
    "checked_at",
)


@dataclass
class Tally:
    """What the run found; `failing` decides the exit code."""

    fail_on_degraded: bool
    total: int
    duplicates: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)

    def failed(self, result: CheckResult) -> bool:
        return result.outcome == "down" or (result.outcome == "degraded" and self.fail_on_degraded)

    @property
    def finished(self) -> int:
        return sum(self.outcomes.values())

    def summary(self, interrupted: bool) -> dict[str, int | bool]:
        return {
            "total": self.total,
            "finished": self.finished,
            "up": self.outcomes["up"],
            "degraded": self.outcomes["degraded"],
            "down": self.outcomes["down"],
            "duplicates_removed": self.duplicates,
            "interrupted": interrupted,
        }


class Report:
    """Writes one format to `out`; `add` per result, `finish` once."""

    def __init__(self, fmt: str, out: Callable[[], IO[str]], tally: Tally, order: list[str]):
        self._fmt = fmt
        self._out = out  # looked up at each write: a progress display may wrap stdout
        self._tally = tally
        self._order = {url: index for index, url in enumerate(order)}
        self._results: list[CheckResult] = []
        self._csv_started = False

    def add(self, result: CheckResult) -> None:
        self._tally.outcomes[result.outcome] += 1
        self._results.append(result)
        if self._fmt == "ndjson":
            self._write(result.model_dump_json() + "\n")
        elif self._fmt == "csv":
            self._write(_csv_rows([result], header=not self._csv_started))
            self._csv_started = True
        elif self._fmt == "table":
            self._write(_table_line(result) + "\n")

    def finish(self, interrupted: bool) -> None:
        ordered = sorted(self._results, key=lambda r: self._order.get(r.url, len(self._order)))
        summary = self._tally.summary(interrupted)
        if self._fmt == "json":
            results = [r.model_dump(mode="json") for r in ordered]
            self._write(json.dumps({"summary": summary, "results": results}, indent=2) + "\n")
        elif self._fmt == "junit":
            self._write(_junit(ordered, self._tally))
        elif self._fmt == "markdown":
            self._write(_markdown(ordered, summary))
        elif self._fmt == "csv" and not self._csv_started:
            self._write(_csv_rows([], header=True))
        elif self._fmt == "table":
            self._write(_summary_line(summary) + "\n")

    def _write(self, text: str) -> None:
        out = self._out()
        out.write(text)
        out.flush()


def _csv_rows(results: list[CheckResult], header: bool) -> str:
    buffer = _Buffer()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(CSV_COLUMNS)
    for r in results:
        error = r.error
        writer.writerow(
            [
                r.url,
                r.outcome,
                str(r.ok).lower(),
                "" if r.status_code is None else r.status_code,
                "" if r.elapsed_ms is None else r.elapsed_ms,
                error.kind.value if error else "",
                error.message if error else "",
                r.final_url or "",
                r.remote_ip or "",
                r.checked_at.isoformat(),
            ]
        )
    return buffer.text


class _Buffer:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> int:
        self.parts.append(text)
        return len(text)

    @property
    def text(self) -> str:
        return "".join(self.parts)


def _cells(r: CheckResult) -> tuple[str, str, str, str]:
    status = "-" if r.status_code is None else str(r.status_code)
    elapsed = "-" if r.elapsed_ms is None else f"{r.elapsed_ms:.0f} ms"
    error = f"{r.error.kind.value}: {r.error.message}" if r.error else ""
    return r.outcome.upper(), status, elapsed, error


def _table_line(r: CheckResult) -> str:
    outcome, status, elapsed, error = _cells(r)
    return f"{outcome:<9} {status:>4} {elapsed:>9}  {r.url}" + (f"  {error}" if error else "")


def _summary_line(summary: dict[str, int | bool]) -> str:
    line = (
        f"{summary['finished']} of {summary['total']} checked: {summary['up']} up, "
        f"{summary['degraded']} degraded, {summary['down']} down"
    )
    return line + (" (interrupted)" if summary["interrupted"] else "")


def _markdown(results: list[CheckResult], summary: dict[str, int | bool]) -> str:
    lines = ["| Outcome | Status | Time | URL | Error |", "| --- | --- | --- | --- | --- |"]
    for r in results:
        cells = (*_cells(r)[:3], r.url, _cells(r)[3])
        lines.append("| " + " | ".join(_md_escape(cell) for cell in cells) + " |")
    return "\n".join([*lines, "", _summary_line(summary), ""])


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _junit(results: list[CheckResult], tally: Tally) -> str:
    """One testsuite, one testcase per URL; a failing URL's <failure> has the error kind as
    its type and the error message as its message, which CI systems show per test."""
    failures = [r for r in results if tally.failed(r)]
    seconds = sum((r.elapsed_ms or 0.0) for r in results) / 1000
    root = ET.Element("testsuites", name="urlhealth", tests=str(len(results)))
    root.set("failures", str(len(failures)))
    suite = ET.SubElement(
        root,
        "testsuite",
        name="urlhealth check",
        tests=str(len(results)),
        failures=str(len(failures)),
        errors="0",
        skipped="0",
        time=f"{seconds:.3f}",
    )
    for r in results:
        case = ET.SubElement(
            suite,
            "testcase",
            classname="urlhealth",
            name=r.url,
            time=f"{(r.elapsed_ms or 0.0) / 1000:.3f}",
        )
        detail = _detail(r)
        if tally.failed(r):
            kind = r.error.kind.value if r.error else r.outcome
            message = r.error.message if r.error else r.outcome
            failure = ET.SubElement(case, "failure", type=kind, message=message)
            failure.text = detail
        else:
            ET.SubElement(case, "system-out").text = detail
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _detail(r: CheckResult) -> str:
    lines = [f"outcome: {r.outcome}", f"status: {r.status_code}", f"elapsed_ms: {r.elapsed_ms}"]
    if r.final_url and r.final_url != r.url:
        lines.append(f"final_url: {r.final_url}")
    lines += [f"assertion: {a.model_dump_json()}" for a in r.failed_assertions]
    return "\n".join(lines)
