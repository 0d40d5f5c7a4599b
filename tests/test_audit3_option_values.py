"""Store options of the wrong kind (audit of issue 3): ``mkdir="false"`` was taken for its
truth and made the directory; ``headers=`` that are no mapping of strings failed with a bare
``TypeError`` (a mapping with a number as name: at the first request, leaving aiohttp's
session unclosed). Both are refused at ``open_store``, naming the option (never a header's
value: it may be a credential)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from ngio_async import NotFoundError
from ngio_async.stores import open_store

if TYPE_CHECKING:
    from pathlib import Path


def test_mkdir_false_as_a_string_makes_nothing(tmp_path: Path) -> None:
    for value in ("false", "0", 0):
        with pytest.raises(NotFoundError):
            open_store(tmp_path / "new", mkdir=value)
        assert not (tmp_path / "new").exists()  # was: made
    with pytest.raises(ValueError, match=r"'mkdir'.*'maybe'"):
        open_store(tmp_path / "new", mkdir="maybe")
    open_store(tmp_path / "new", mkdir="true")
    assert (tmp_path / "new").is_dir()


@pytest.mark.parametrize(
    "headers", ["Authorization: x", [("Authorization", "x")], {"Authorization": 5}, {1: "x"}]
)
def test_headers_that_are_no_mapping_of_strings_are_refused(headers: Any) -> None:
    with pytest.raises(ValueError, match="headers=") as info:
        open_store("http://127.0.0.1:9/img.zarr", headers=headers)
    assert "'x'" not in str(info.value)  # a header's value is never shown
