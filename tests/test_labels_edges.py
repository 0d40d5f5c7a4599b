"""Label images as users meet them: odd names, reads of other tools' labels, edge cases."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("version", ["0.4", "0.5"])
@pytest.mark.parametrize(
    "name",
    [
        ".zattrs",
        ".zgroup",
        ".zarray",
        ".zmetadata",
        "zarr.json",
        "__x",
        "a\\..",
        "a\x00b",
        "a\nb",
        " ",
        " cells",
        "cells ",
    ],
)
async def test_names_that_break_the_hierarchy_are_refused(
    tmp_path: Path, version: str, name: str
) -> None:
    # '.zattrs' became the directory labels/.zattrs/ (0.4: the listing could never be written
    # again), 'zarr.json' failed half-way, control characters failed as StoreError
    async with ngio_async.create_async(
        tmp_path, shape=(16, 16), dtype="uint8", levels=1, ngff_version=version
    ) as ds:
        await (await ds.labels.create("cells")).aclose()
        with pytest.raises(ValueError, match="invalid label name"):
            await ds.labels.create(name)
        assert await ds.labels.names() == ["cells"]
        assert sorted(p.name for p in (tmp_path / "labels").iterdir()) == sorted(
            ["cells", ".zgroup", ".zattrs"] if version == "0.4" else ["cells", "zarr.json"]
        )
        await (await ds.labels.create("my cells")).aclose()  # inner spaces are fine
        assert await ds.labels.names() == ["cells", "my cells"]
