"""The alerts facade's errors as HTTP answers: NotFound 404, Invalid 422 (naming the field),
Conflict 409."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from fastapi import HTTPException

from app.alerts.errors import Conflict, Invalid, NotFound

T = TypeVar("T")

RESPONSES: dict[int | str, dict[str, str]] = {
    404: {"description": "Nothing with that id or slug."},
    409: {"description": "The name is taken, or the item comes from the monitors file."},
}


@contextmanager
def answered() -> Iterator[None]:
    try:
        yield
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except Conflict as exc:
        raise HTTPException(409, str(exc)) from None
    except Invalid as exc:
        loc = ["body"] if exc.field == "body" else ["body", exc.field]
        detail = [{"loc": loc, "msg": str(exc), "type": "value_error"}]
        raise HTTPException(422, detail) from None


def call(fn: Callable[[], T]) -> T:
    with answered():
        return fn()
