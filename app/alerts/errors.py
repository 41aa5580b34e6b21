"""What the alerts facade refuses with: the API answers 404, 422 (naming the field), 409."""

from __future__ import annotations


class NotFound(LookupError):
    pass


class Invalid(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class Conflict(RuntimeError):
    pass
