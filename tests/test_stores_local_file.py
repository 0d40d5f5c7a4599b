"""A local store path that is a regular file (or lies below one) is refused plainly, naming the
file: creating says it exists and is no directory, opening says it is not found."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

import ngio_async
from ngio_async import ExistsError, NotFoundError
from ngio_async.stores import open_store

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize("below", ["", "sub/img.zarr"])
def test_create_over_a_file_names_it(tmp_path: Path, below: str) -> None:
    blocker = tmp_path / "scan.tif"
    blocker.write_bytes(b"II*\x00")
    target = blocker / below if below else blocker
    with pytest.raises(ExistsError, match=r"scan\.tif") as info:
        ngio_async.create(str(target), shape=(8, 8), dtype="uint8", axes="yx")
    assert info.value.key == str(blocker)
    assert blocker.read_bytes() == b"II*\x00"  # untouched


def test_opening_below_a_file_is_not_found(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(NotFoundError, match="lies below the file"):
        open_store(str(tmp_path / "afile" / "img.zarr"))
    with pytest.raises(ExistsError, match="is a file"):
        open_store(str(tmp_path / "afile"), mkdir=True)


def test_the_command_line_does_not_suggest_overwrite_for_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ngio_async.cli import main

    (tmp_path / "afile").write_text("x")
    src = tmp_path / "img.zarr"
    ngio_async.create(str(src), shape=(8, 8), dtype="uint8", axes="yx").close()
    assert main(["convert", str(src), str(tmp_path / "afile"), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "is a file" in err and "use --overwrite" not in err and "overwrite=True" not in err
    assert (tmp_path / "afile").read_text() == "x"


def test_a_file_in_the_way_gets_no_overwrite_hint(tmp_path: Path) -> None:
    from ngio_async.cli._common import describe_error

    (tmp_path / "afile").write_text("x")
    with pytest.raises(ExistsError) as info:
        open_store(str(tmp_path / "afile"), mkdir=True)
    code, text = describe_error(info.value)
    assert code == 2 and "is a file" in text and "--overwrite" not in text
