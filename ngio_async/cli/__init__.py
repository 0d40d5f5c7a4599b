"""The ``ngio-async`` command line (``python -m ngio_async``): info, validate, convert, bench."""

from __future__ import annotations

from .main import main, run

__all__ = ["main", "run"]
