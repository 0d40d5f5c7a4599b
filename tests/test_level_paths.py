"""``ds.level("<path>")`` takes the path in the multiscales: a label image's (stored under
``labels/<name>/``) and a plate field's (under ``<row>/<col>/<field>/``) as an image's."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio


async def test_label_levels_by_their_multiscales_path(tmp_path: Path) -> None:
    async with ngio_async.create_async(
        tmp_path / "a.zarr", shape=(64, 64), dtype="uint8", axes="yx", levels=3
    ) as ds:
        lab = await ds.labels.create("m", dtype="uint16")
        assert lab.level("1") is lab.levels[1]
        assert lab.level("/2") is lab.levels[2]
        assert lab.level("labels/m/1") is lab.levels[1]  # the store path, as before
        assert lab.level("1").shape == (32, 32)
        with pytest.raises(
            KeyError, match=r"no level with path '3': the levels are \['0', '1', '2'\]"
        ):
            lab.level("3")
        await lab.aclose()


def test_plate_field_levels_by_their_multiscales_path(tmp_path: Path) -> None:
    with ngio_async.create_plate(tmp_path / "p.zarr", rows=["A"], columns=["1"]) as plate:
        with plate.add_image("A", "1", field="0", shape=(32, 32), dtype="uint8", axes="yx",
                             levels=2) as fov:  # fmt: skip
            assert fov.level("1").shape == (16, 16)
        with plate.image("A", "1", field=0) as fov:
            assert fov.level("1").shape == (16, 16)
            assert fov.level("0").shape == (32, 32)
