"""Malformed SRC / URL arguments get one line naming them: an empty SRC was reported as "the
destination x.zarr lies inside the source :", and a URL that does not parse
(``http://[::1``) as urllib's bare "Invalid IPv6 URL", naming nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from cli_run import run

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path


def test_an_empty_source_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["convert", "", str(tmp_path / "x.zarr")], capsys)
    assert code == 2
    assert "empty" in err and "lies inside" not in err
    assert not (tmp_path / "x.zarr").exists()
    with pytest.raises(ValueError, match="empty"):
        ngio_async.convert_sync("", tmp_path / "y.zarr")


@pytest.mark.parametrize("command", ["info", "validate", "bench", "convert"])
def test_a_url_that_does_not_parse_is_named(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [command, "http://[::1/x.zarr"]
    if command == "convert":
        argv.append(str(tmp_path / "out.zarr"))
    code, _, err = run(argv, capsys)
    assert code == 2
    assert "http://[::1/x.zarr" in err and err.count("\n") == 1
