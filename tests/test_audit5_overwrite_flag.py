"""Audit of issue 5: ``overwrite=`` takes True or False only. Any other value was taken for its
truth: ``overwrite="no"`` (or ``"false"``, ``1``) deleted the existing image it was meant to
keep. Refused naming the value, before any I/O (``None`` stays the default, False)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio

BAD = ["no", "false", 1, 0, [True]]


async def make(path: Path) -> None:
    async with ngio_async.create_async(path, shape=(4, 4), dtype="uint8", axes="yx") as ds:
        await ds.write(np.full((4, 4), 7, "uint8"))


def files(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.mark.parametrize("value", BAD)
async def test_create_and_create_like_refuse_an_overwrite_that_is_no_bool(
    tmp_path: Path, value: Any
) -> None:
    path = tmp_path / "img.ome.zarr"
    await make(path)
    before = files(path)
    with pytest.raises(
        TypeError, match=re.escape(f"overwrite must be True or False, got {value!r}")
    ):
        await ngio_async.create_async(path, shape=(4, 4), dtype="uint8", overwrite=value)
    async with ngio_async.open_async(path) as src:
        with pytest.raises(
            TypeError, match=re.escape(f"overwrite must be True or False, got {value!r}")
        ):
            await ngio_async.create_like_async(src, path, overwrite=value)
    assert files(path) == before
    async with ngio_async.open_async(path) as ds:
        assert int((await ds.levels[0][...]).min()) == 7  # kept


@pytest.mark.parametrize("value", BAD)
async def test_labels_create_refuses_an_overwrite_that_is_no_bool(
    tmp_path: Path, value: Any
) -> None:
    path = tmp_path / "img.ome.zarr"
    await make(path)
    async with ngio_async.open_async(path, mode="r+") as ds:
        lab = await ds.labels.create("cells", dtype="uint8")
        await lab.write(np.ones((4, 4), "uint8"))
        await lab.aclose()
        before = files(path)
        with pytest.raises(
            TypeError, match=re.escape(f"overwrite must be True or False, got {value!r}")
        ):
            await ds.labels.create("cells", dtype="uint8", overwrite=value)
        assert files(path) == before


async def test_numpy_bools_and_none_are_taken(tmp_path: Path) -> None:
    path = tmp_path / "img.ome.zarr"
    await make(path)
    with pytest.raises(ngio_async.ExistsError):
        await ngio_async.create_async(path, shape=(4, 4), dtype="uint8", overwrite=None)  # type: ignore[arg-type]
    async with ngio_async.create_async(
        path,
        shape=(4, 4),
        dtype="uint8",
        overwrite=np.bool_(True),  # type: ignore[arg-type]
    ) as ds:
        assert int((await ds.levels[0][...]).max()) == 0
