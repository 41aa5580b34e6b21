"""Settling the scheduler's futures: the engine's future settles the scheduler's own, and a
future a manual run's caller cancelled meanwhile is left as it is."""

from __future__ import annotations

from concurrent.futures import Future, InvalidStateError

from app.schemas.results import CheckResult


def relay(outer: Future[CheckResult], inner: Future[CheckResult]) -> None:
    """The engine's future settles the scheduler's."""
    if inner.cancelled():
        outer.cancel()
    elif (exc := inner.exception()) is not None:
        settle(outer, exception=exc)
    else:
        settle(outer, result=inner.result())


def settle(
    future: Future[CheckResult],
    result: CheckResult | None = None,
    exception: BaseException | None = None,
) -> None:
    try:  # a manual run's caller may have cancelled it
        if exception is not None:
            future.set_exception(exception)
        elif result is not None:
            future.set_result(result)
    except InvalidStateError:
        pass
