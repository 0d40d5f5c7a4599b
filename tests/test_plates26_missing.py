"""plates26: a plate whose listed field (or well) is missing on disk (an interrupted copy, a
deleted directory): the error names it as listed by the plate but missing, with its path
(a field's said only 'no OME-Zarr group at ...'), and the other fields still read."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

import numpy as np
import pytest

import ngio_async
from ngio_async import NotFoundError

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_a_missing_field_or_well_is_named(tmp_path: Path, version: str) -> None:
    path = tmp_path / "plate.zarr"
    async with ngio_async.create_plate_async(
        path,
        rows=["A", "B"],
        columns=["1", "2"],
        ngff_version=version,  # type: ignore[arg-type]
    ) as plate:
        for i, (well, field) in enumerate([("A/1", "0"), ("A/2", "0"), ("B/1", "0"), ("B/1", "1")]):
            async with await plate.add_image(well, field=field, shape=(4, 4), dtype="uint8") as ds:
                await ds.write(np.full((4, 4), i, np.uint8))
    shutil.rmtree(path / "B" / "1" / "1")
    shutil.rmtree(path / "A" / "2")
    async with ngio_async.open_plate_async(path) as plate:
        with pytest.raises(NotFoundError) as caught:
            await plate.image("B", "1", field="1")
        message = str(caught.value)
        assert "field '1' of well 'B/1' is listed by plate" in message, message
        assert f"{path}/B/1/1" in message and "other fields: 0" in message
        assert caught.value.key == "B/1/1"
        with pytest.raises(
            NotFoundError, match=r"well 'A/2' is listed by plate .* group is missing"
        ):
            await plate.image("A", "2")
        for well, field, value in (("A/1", "0", 0), ("B/1", "0", 2)):  # the others read
            async with await plate.image(well, field=field) as ds:
                assert int((await ds.read()).max()) == value
    # a level missing inside a field is said so, not taken for the field
    shutil.rmtree(path / "A" / "1" / "0" / "0")
    async with ngio_async.open_plate_async(path) as plate:
        with pytest.raises(NotFoundError) as caught:
            await (await plate.image("A", "1")).read()
        assert "is listed by plate" not in str(caught.value)
