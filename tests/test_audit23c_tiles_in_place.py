"""stream(ds.tiles(..., overlap=h), f, out=ds) (or out= another open of the same image, or a
label's tiles into that label, stitched or not) is refused at the call, nothing written, as
ngio refuses in-place iteration with a halo: each tile's halo covers pixels the neighbour
tiles write, so a filter's result depended on whether a neighbour had landed before the tile
was read (it was accepted). Without overlap, or into another level or image, it runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]


def _plus(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return (a + 1).astype(a.dtype)


async def test_halo_tiles_into_the_image_read_are_refused(tmp_path: Path) -> None:
    img = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 200
    url = tmp_path / "img.zarr"
    async with ngio_async.create_async(url, shape=(64, 64), dtype="uint16", axes="yx") as ds:
        await ds.write(img)
        lab = await ds.labels.create("seg", dtype="uint16")
        await lab.write(img)
        async with await ngio_async.open_async(url, mode="r+") as again:
            cases: list[tuple[Any, Any, dict[str, Any]]] = [
                (ds.tiles(shape=(16, 16), overlap=4), ds, {}),
                (ds.tiles(shape=(16, 16), overlap=(0, 2)), again, {}),
                (lab.tiles(shape=(16, 16), overlap=4), lab, {}),
                (lab.tiles(shape=(16, 16), overlap=4), lab, {"unique_labels": 300, "stitch": True}),
            ]
            for tiles, out, kwargs in cases:
                with pytest.raises(ValueError, match="the image read"):
                    ngio_async.stream(tiles, _plus, out=out, **kwargs)
        np.testing.assert_array_equal(await ds.read(), img)
        np.testing.assert_array_equal(await lab.read(), img)
        # without a halo each tile writes the pixels it read alone: in place is fine
        await ngio_async.stream(ds.tiles(shape=(16, 16)), _plus, out=ds)
        np.testing.assert_array_equal(await ds.read(), img + 1)
        # a halo'd stream into another image runs
        await ngio_async.stream(ds.tiles(shape=(16, 16), overlap=4), _plus, out=lab)
        np.testing.assert_array_equal(await lab.read(), img + 2)
        await lab.aclose()
