"""The command line's NGFF warnings are shown while the command runs, not held until it ends:
``ngio-async serve`` runs until stopped, and opens plate fields (which may warn) on demand."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from ngio_async.cli._run import run_async
from ngio_async.meta import MetadataWarning

if TYPE_CHECKING:
    import pytest


def test_a_metadata_warning_is_printed_while_the_command_still_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    printed: list[str] = []

    async def serving() -> None:
        for _ in range(3):  # one field opened three times (evicted, opened again): one line
            warnings.warn("omero dropped", MetadataWarning, stacklevel=1)
        warnings.warn("not an NGFF warning", UserWarning, stacklevel=1)
        printed.append(capsys.readouterr().err)  # the server still runs

    run_async(serving)
    assert printed == ["ngio-async: warning: omero dropped\n"]
    assert capsys.readouterr().err == ""


def test_collected_warnings_are_collected_as_they_come(capsys: pytest.CaptureFixture[str]) -> None:
    collect: list[str] = []
    during: list[list[str]] = []

    async def validating() -> None:
        warnings.warn("a  window\n without min", MetadataWarning, stacklevel=1)
        during.append(list(collect))
        warnings.warn("a window without min", MetadataWarning, stacklevel=1)

    run_async(validating, collect=collect)
    assert during == [["a window without min"]]
    assert collect == ["a window without min"]
    assert capsys.readouterr().err == ""
