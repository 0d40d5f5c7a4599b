"""``stream(..., out=...)`` given something other than a tile writer (audit of issue 4): its
unentered ``writer()``, or an object without ``write``, is refused at the call, naming
``out`` and the way to write; nothing is read or written first. A dataset is written through
its own writer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from images import Spec, write_image

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio
SPEC = Spec(version="0.5", shape=(2, 40, 33), chunks=(1, 16, 16), levels=1)


def plus_one(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return a + 1


async def test_out_must_be_a_tile_writer(tmp_path: Path) -> None:
    data = write_image(tmp_path / "src", SPEC)[0]
    dst_url = str(tmp_path / "dst.zarr")
    async with (
        ngio_async.open_async(tmp_path / "src") as src,
        ngio_async.create_async(
            dst_url,
            shape=src.shape,
            dtype="uint16",
            axes="cyx",
            chunks=(1, 16, 16),
            scale={"y": 0.5, "x": 0.5},  # out=dst writes its level of the tiles' pixel size
        ) as dst,
    ):
        # the writer's context manager, not entered
        with pytest.raises(TypeError, match=r"out=.*async write\(tile\).*\.writer\(\)"):
            ngio_async.stream(src.tiles(), plus_one, out=dst.writer())  # type: ignore[arg-type]
        # was: AttributeError "'object' object has no attribute 'write'" once a result came
        with pytest.raises(TypeError, match=r"out=.*async write\(tile\).*got <object"):
            ngio_async.stream(src.tiles(), plus_one, out=object())  # type: ignore[arg-type]
        assert not (await dst.read()).any()  # nothing written
        async with dst.writer() as w:  # the way the errors name
            await ngio_async.stream(src.tiles(), plus_one, out=w)
        np.testing.assert_array_equal(await dst.read(), data + 1)
        # the dataset itself: written through its own writer (its write(data) took each
        # tile as its data: "data of dtype object cannot be written to a uint16 level")
        await ngio_async.stream(src.tiles(), lambda a: a + 2, out=dst)
        np.testing.assert_array_equal(await dst.read(), data + 2)
