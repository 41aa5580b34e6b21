"""urlhealth: a concurrent URL health-checker service."""

from __future__ import annotations

__version__ = "0.1.0"
