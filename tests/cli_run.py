"""``run(argv, capsys)``: the CLI's ``main`` in this process, with its exit code and output."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ngio_async.cli import main

if TYPE_CHECKING:
    import pytest


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``(exit code, stdout, stderr)`` of ``ngio-async ARGV``."""
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err
