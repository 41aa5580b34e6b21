"""A progress bar on stderr while checks run (rich), only when stderr is a terminal."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress

from app.schemas.results import CheckResult


class Progress:
    def __init__(self, total: int, enabled: bool) -> None:
        self._bar: RichProgress | None = None
        self._task = None
        if enabled:
            # Transient: the bar disappears at the end; results printed meanwhile stay above it.
            self._bar = RichProgress(
                TextColumn("checking"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[down]} down"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._task = self._bar.add_task("check", total=total, down=0)
        self._down = 0

    def __enter__(self) -> Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()

    def advance(self, result: CheckResult) -> None:
        if self._bar is None or self._task is None:
            return
        self._down += result.outcome == "down"
        self._bar.update(self._task, advance=1, down=self._down)
