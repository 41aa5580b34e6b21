"""The API's face of app/inputs.py: bad URLs or options answer a 422 naming each bad field."""

from __future__ import annotations

from fastapi.exceptions import RequestValidationError

from app import inputs
from app.config import Settings
from app.engine.options import CheckOptions
from app.inputs import Targets
from app.inputs import public_options as public_options
from app.schemas.jobs import CheckOptionsPublic, JobOptions


def prepare_urls(urls: list[str], settings: Settings, limit: int) -> Targets:
    try:
        return inputs.prepare_urls(urls, settings, limit)
    except inputs.InputError as exc:
        raise RequestValidationError(exc.errors) from None


def resolve_options(
    options: JobOptions, settings: Settings
) -> tuple[CheckOptions, CheckOptionsPublic]:
    try:
        return inputs.resolve_options(options, settings)
    except inputs.InputError as exc:
        raise RequestValidationError(exc.errors) from None
