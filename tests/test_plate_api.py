"""The plate API as users call it: argument mistakes get errors that say what to do."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path


async def test_a_pair_of_image_paths_is_not_taken_as_row_and_column(tmp_path: Path) -> None:
    """``plate.image(*pair)`` for a pair of ``image_paths()`` said "row 'A/1': names are
    letters and digits only"; it now says the field goes by name."""
    async with ngio_async.create_plate_async(
        tmp_path / "p.zarr", rows=["A"], columns=["1"]
    ) as plate:
        await (await plate.add_image("A/1", shape=(8, 8), dtype="uint8")).aclose()
        (pair,) = await plate.image_paths()
        with pytest.raises(ValueError, match=r"'A/1' is a well path.*field='0'"):
            await plate.image(*pair)
        with pytest.raises(ValueError, match=r"'A/1' is a well path"):
            await plate.well("A/1", "1")
        async with await plate.image(pair[0], field=pair[1]) as ds:
            assert ds.shape == (8, 8)


async def test_an_int_field_that_is_no_index_but_a_name_says_so(tmp_path: Path) -> None:
    """``add_image(field=1)`` names the field '1'; ``image(field=1)`` is an index: with one
    field the error now points at ``field='1'``."""
    async with ngio_async.create_plate_async(
        tmp_path / "p.zarr", rows=["A"], columns=["1"]
    ) as plate:
        await (await plate.add_image("A/1", field=1, shape=(8, 8), dtype="uint8")).aclose()
        with pytest.raises(ngio_async.NotFoundError, match=r"no field index 1 \(.*field='1'\)"):
            await plate.image("A/1", field=1)
        with pytest.raises(ngio_async.NotFoundError, match=r"no field index 5$"):
            await plate.image("A/1", field=5)
        async with await plate.image("A/1", field=0) as ds:
            assert ds.shape == (8, 8)
