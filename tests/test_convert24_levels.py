"""``convert(levels=n)`` of a source whose levels are no integer downsampling apart (ngio's
``scaling_factors=(2.5, 2.5)``: 50 -> 20 -> 8) is refused before anything is written, naming
the level: the copy used to write the existing levels and their metadata, then fail building
the first new one."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
import pytest

import ngio_async
from ngio_async import UnsupportedError

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]


def _ngio_image(path: Path, label: bool) -> None:
    ngio = pytest.importorskip("ngio")
    container = ngio.create_ome_zarr_from_array(
        str(path), np.arange(50 * 40, dtype="uint16").reshape(50, 40), pixelsize=0.5,
        levels=3, axes_names="yx", scaling_factors=(2.5, 2.5), chunks=(25, 25), overwrite=True,
    )  # fmt: skip
    if label:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            container.derive_label("cells", dtype="uint32")


@pytest.mark.parametrize("label", [False, True])
async def test_more_levels_of_a_non_integer_pyramid_are_refused_before_any_write(
    tmp_path: Path, label: bool
) -> None:
    src, dst = tmp_path / "a.zarr", tmp_path / "b.zarr"
    _ngio_image(src, label)
    with pytest.raises(UnsupportedError, match=r"level '1' .*: size 50 -> 20"):
        await ngio_async.convert(str(src), str(dst), levels=4)
    assert not dst.exists()
    # as many levels as it has (or fewer) convert as they are
    await ngio_async.convert(str(src), str(dst), levels=3)
    async with ngio_async.open_async(dst) as ds:
        assert [lvl.shape for lvl in ds.levels] == [(50, 40), (20, 16), (8, 6)]
        np.testing.assert_array_equal(await ds.read(), np.arange(2000).reshape(50, 40))
