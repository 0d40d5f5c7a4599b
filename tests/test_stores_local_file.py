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
    with pytest.raises(ExistsError, match="scan.tif") as info:
        ngio_async.create(str(target), shape=(8, 8), dtype="uint8", axes="yx")
    assert info.value.key == str(blocker)
    assert blocker.read_bytes() == b"II*\x00"  # untouched


def test_opening_below_a_file_is_not_found(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(NotFoundError, match="lies below the file"):
        open_store(str(tmp_path / "afile" / "img.zarr"))
    with pytest.raises(ExistsError, match="is a file"):
        open_store(str(tmp_path / "afile"), mkdir=True)
