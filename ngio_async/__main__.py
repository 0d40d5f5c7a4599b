"""``python -m ngio_async``: the ``ngio-async`` command line."""

from __future__ import annotations

from ngio_async.cli import run

run()
