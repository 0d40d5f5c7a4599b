"""``method="ngio"``: the label pyramid ngio 1.1's ``Label.consolidate()`` writes, pixel for pixel.

ngio builds a label level with ``scipy.ndimage.zoom(order=0, grid_mode=True)`` over dask
blocks of the level above (its chunks): where the factor divides the level, the middle pixel
of each window (the second of 2); elsewhere (odd sizes, ngio's levels being the floor) the
pixel depends on the sizes and chunks. ngio writes the pyramid here; its lower levels are
then zeroed and rebuilt by ``build_pyramid(method="ngio")``, tile by tile (tiles stitch), by
``regions=``, by ``write(pyramid="ngio")``, a writer and a stream; every level equals ngio's.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async
from ngio_async.engine.pyramid import ngio_index
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio


def _labels(shape: tuple[int, ...], seed: int = 0) -> np.ndarray[Any, Any]:
    """Blobs of 3 pixels a side plus scattered single pixels (ids 0..56)."""
    rng = np.random.default_rng(seed)
    out = rng.integers(0, 50, tuple(-(-s // 3) for s in shape)).astype("uint32")
    for ax in range(len(shape)):
        out = np.repeat(out, 3, axis=ax)
    out = out[tuple(slice(0, s) for s in shape)]
    return np.asarray(out + (rng.random(shape) < 0.2).astype("uint32") * 7)


def _ngio(
    path: Path, shape: tuple[int, ...], factors: tuple[float, ...], levels: int, chunks: Any
) -> list[np.ndarray[Any, Any]]:
    """ngio writes an image and its label image ``cells`` (its default consolidation, dask);
    every level of the label as ngio reads it."""
    import ngio

    container = ngio.create_ome_zarr_from_array(
        str(path), np.zeros(shape, "uint16"), pixelsize=0.5, levels=levels,
        axes_names="zyx"[-len(shape) :], scaling_factors=factors, chunks=chunks,
        consolidation_mode="dask", overwrite=True,
    )  # fmt: skip
    label = container.derive_label("cells", dtype="uint32")
    label.set_array(_labels(shape))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        label.consolidate()  # ngio's default
    return [
        np.asarray(container.get_label("cells", path=p).get_as_numpy())
        for p in container.level_paths
    ]


async def _zero_lower(lab: Any) -> None:
    for i in range(1, len(lab.levels)):
        await lab.write_at(..., np.zeros(lab.levels[i].shape, lab.dtype), level=i)


async def _levels(lab: Any) -> list[np.ndarray[Any, Any]]:
    return [await lvl[...] for lvl in lab.levels]


CASES = {
    "2d-odd": ((45, 37), (2.0, 2.0), 4, (16, 16)),
    "3d-odd-z2": ((9, 45, 37), (2.0, 2.0, 2.0), 3, (4, 16, 16)),
    "3d-z1": ((3, 33, 30), (1.0, 2.0, 2.0), 3, (1, 8, 8)),
    "factor3": ((50, 61), (3.0, 3.0), 3, (16, 16)),
    "factor4": ((50, 61), (4.0, 4.0), 3, (8, 8)),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_build_pyramid_ngio_equals_ngios_own_label_pyramid(tmp_path: Path, case: str) -> None:
    shape, factors, levels, chunks = CASES[case]
    want = _ngio(tmp_path / "a.zarr", shape, factors, levels, chunks)
    async with ngio_async.open_async(tmp_path / "a.zarr", mode="r+") as ds:
        lab = await ds.labels.open("cells", mode="r+")
        # the other methods give other pixels: the test can tell them apart
        await lab.build_pyramid(method="mode")
        assert any(not np.array_equal(g, w) for g, w in zip(await _levels(lab), want, strict=True))
        await _zero_lower(lab)
        await lab.build_pyramid(method="ngio")
        got = await _levels(lab)
        await lab.aclose()
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        np.testing.assert_array_equal(g, w, err_msg=f"level {i}")


async def test_tiles_regions_and_pyramid_writes_stitch_to_ngios_pixels(tmp_path: Path) -> None:
    """Tiles of 8x8 (a level of 16x16 chunks), a region rebuild, ``write(pyramid="ngio")`` of
    unaligned blocks (from memory: no level-0 pixel read back) and a writer all equal ngio."""
    shape = (45, 37)
    want = _ngio(tmp_path / "a.zarr", shape, (2.0, 2.0), 4, (16, 16))
    data = _labels(shape)
    store = InstrumentedStore(open_store(tmp_path / "a.zarr"))
    async with ngio_async.open_async(store, mode="r+") as ds:
        lab = await ds.labels.open("cells", mode="r+")
        await _zero_lower(lab)
        await lab.build_pyramid(method="ngio", tile=(8, 8))
        for i, (g, w) in enumerate(zip(await _levels(lab), want, strict=True)):
            np.testing.assert_array_equal(g, w, err_msg=f"tiles: level {i}")
        await _zero_lower(lab)  # each level from level 0: the pixels its levels above took
        await lab.build_pyramid(method="ngio", source="level0", tile=(8, 8))
        for i, (g, w) in enumerate(zip(await _levels(lab), want, strict=True)):
            np.testing.assert_array_equal(g, w, err_msg=f"level0: level {i}")
        # a region: level 0 changed there, the lower levels follow (ngio's consolidate of the
        # changed image, whole, gives the same pixels: checked against a fresh full build)
        changed = data.copy()
        changed[5:20, 11:30] = 99
        await lab.write_at((slice(5, 20), slice(11, 30)), changed[5:20, 11:30])
        await lab.build_pyramid(method="ngio", regions=[(slice(5, 20), slice(11, 30))])
        by_region = await _levels(lab)
        await _zero_lower(lab)
        await lab.build_pyramid(method="ngio")
        for i, (g, w) in enumerate(zip(by_region, await _levels(lab), strict=True)):
            np.testing.assert_array_equal(g, w, err_msg=f"regions: level {i}")
        assert (by_region[1] == 99).any()
        # unaligned blocks, each written with pyramid="ngio"
        await _zero_lower(lab)
        for y0, y1 in ((0, 13), (13, 45)):
            for x0, x1 in ((0, 7), (7, 37)):
                box = (slice(y0, y1), slice(x0, x1))
                await lab.write_at(box, data[box], pyramid="ngio")
        for i, (g, w) in enumerate(zip(await _levels(lab), want, strict=True)):
            np.testing.assert_array_equal(g, w, err_msg=f"write: level {i}")
        # unaligned bands through one writer: the lower levels come from memory, level 0 is
        # read no more than by the same writes without a pyramid (their own partial objects)
        gets = []
        for pyramid in (False, "ngio"):
            await _zero_lower(lab)
            store.reset()
            async with lab.writer(pyramid=pyramid) as bands:
                for x0, x1 in ((0, 5), (5, 21), (21, 37)):
                    await bands.write(((slice(0, 45), slice(x0, x1)), data[:, x0:x1]))
            level0 = [k for (m, k) in store.calls if m == "get" and k.startswith("labels/cells/0/")]
            gets.append(sum(store.calls[("get", k)] for k in level0 if "." not in k))
        assert gets[0] == gets[1]
        for i, (g, w) in enumerate(zip(await _levels(lab), want, strict=True)):
            np.testing.assert_array_equal(g, w, err_msg=f"writer: level {i}")
        await lab.aclose()


async def test_stream_into_a_label_with_pyramid_ngio(tmp_path: Path) -> None:
    shape = (45, 37)
    want = _ngio(tmp_path / "a.zarr", shape, (2.0, 2.0), 4, (16, 16))
    data = _labels(shape)
    async with ngio_async.open_async(tmp_path / "a.zarr", mode="r+") as ds:
        await ds.write(data.astype("uint16"))
        lab = await ds.labels.open("cells", mode="r+")
        await _zero_lower(lab)
        await lab.write_at(..., np.zeros(shape, "uint32"))
        await ngio_async.stream(
            ds.tiles(shape=(16, 16)), lambda a: a.astype("uint32"), out=lab, pyramid="ngio"
        )
        got = await _levels(lab)
        await lab.aclose()
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        np.testing.assert_array_equal(g, w, err_msg=f"level {i}")


@pytest.mark.parametrize("factor", [2, 3, 4, 2.5])
def test_ngio_index_is_ngios_dask_zoom(factor: float) -> None:
    """Per axis, against ngio's own zoom (dask blocks of the chunks), floor-shaped levels as
    ngio makes them (2.5: ``scaling_factors`` of 2.5, a zoom of 0.4)."""
    import dask.array as da
    from ngio.common._zoom import dask_zoom

    checked = 0
    for n in range(2, 70):
        m = max(1, int(n // factor))
        for chunk in (3, 4, 7, 16, 25, 64):
            a = np.repeat(np.arange(n, dtype=np.int32)[None, :], 2, 0)
            blocks = da.from_array(a, chunks=(2, chunk))  # type: ignore[no-untyped-call]
            got = dask_zoom(blocks, target_shape=(2, m), order="nearest")
            ngio = np.asarray(got.compute())[0]  # type: ignore[no-untyped-call]
            if len(ngio) != m:  # ngio's zoom fails there (chunks below the factor): so do we
                with pytest.raises(ValueError, match="not"):
                    ngio_index(n, m, chunk)
                continue
            np.testing.assert_array_equal(ngio_index(n, m, chunk), ngio, err_msg=f"{n} {chunk}")
            checked += 1
    assert checked > 300
