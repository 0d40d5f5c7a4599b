"""labels.relabel_sequential of a label holding more objects than its dtype's positive values
(an int8 label of 255 values) is refused naming the label and the count, with level 0
unchanged (it raised numpy's 'Python integer 128 out of bounds for int8')."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]


async def test_more_objects_than_the_dtype_holds(tmp_path: Path) -> None:
    values = np.zeros((16, 16), np.int8)
    values.flat[:255] = np.concatenate([np.arange(-128, 0), np.arange(1, 128)])
    async with ngio_async.create_async(
        tmp_path / "img.zarr", shape=(16, 16), dtype="uint8", axes="yx", ngff_version="0.4"
    ) as ds:
        lab = await ds.labels.create("many", dtype="int8")
        await lab.write(values)
        await lab.aclose()
        with pytest.raises(ValueError, match=r"label 'many' holds 255 objects.*int8"):
            await ds.labels.relabel_sequential("many")
        async with ds.labels.open("many") as lab:
            assert np.array_equal(await lab.read(), values)


async def test_as_many_objects_as_the_dtype_holds(tmp_path: Path) -> None:
    values = np.zeros((16, 16), np.int8)
    values.flat[:127] = np.arange(-127, 0)
    async with ngio_async.create_async(
        tmp_path / "img.zarr", shape=(16, 16), dtype="uint8", axes="yx"
    ) as ds:
        lab = await ds.labels.create("some", dtype="int8")
        await lab.write(values)
        await lab.aclose()
        assert await ds.labels.relabel_sequential("some", order="sorted") == 127
        async with ds.labels.open("some") as lab:
            assert np.array_equal(
                await lab.read(), np.where(values, values.astype(int) + 128, 0).astype(np.int8)
            )
