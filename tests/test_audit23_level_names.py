"""A pyramid write from level k > 0 (``stream(ds.tiles(1), ..., out=lab, pyramid=True)``)
over levels that are not an integer downsampling apart names the level by its path: it
named level 1 (counting from the level written) for the label's level 2."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async
from ngio_async import UnsupportedError

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]


def _ngio_image(path: Path) -> None:
    """ngio's image of 2.5x levels (50 -> 20 -> 8) and its label image ``cells``."""
    ngio = pytest.importorskip("ngio")
    container = ngio.create_ome_zarr_from_array(
        str(path), np.zeros((50, 40), "uint16"), pixelsize=0.5, levels=3, axes_names="yx",
        scaling_factors=(2.5, 2.5), chunks=(25, 25), overwrite=True,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        container.derive_label("cells", dtype="uint32")


def one(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return np.ones(a.shape, "uint32")


async def test_a_stream_from_level1_names_the_level_by_path(tmp_path: Path) -> None:
    _ngio_image(tmp_path / "a.zarr")
    async with (
        ngio_async.open_async(tmp_path / "a.zarr", mode="r+") as ds,
        ds.labels.open("cells", mode="r+") as lab,
    ):
        with pytest.raises(UnsupportedError, match=r"level 'labels/cells/2' .*: size 20 -> 8"):
            await ngio_async.stream(ds.tiles(1), one, out=lab, pyramid="nearest")
        assert not (await lab.read(level=1)).any()  # refused before any write
        # ngio's own method builds such levels (as ngio's consolidate does)
        await ngio_async.stream(ds.tiles(1), one, out=lab, pyramid="ngio")
        assert (await lab.read(level=1)).all() and (await lab.read(level=2)).all()
