"""The blocking twins take the keywords their async methods gained (``axes_order=``, ``halo=``,
``merge=``, ``from_level=``, build_pyramid's ``source=`` / ``window=``) by name and give what
the async methods give: the same arrays read, the same pixels written, on two copies of one
image."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest
from test_streamrois_stream import FOVS, _image

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.filterwarnings("ignore")

ORDER = ["x", "y", "z", "c"]
HALO = {"y": 2, "x": 3}
BOX: dict[str, Any] = {"y": (1.0, 6.0), "x": (2.0, 9.5)}  # micrometers
COARSE = np.arange(16 * 20, dtype=np.uint16).reshape(16, 20) % 5  # a label's level 1


async def _async_side(path: Path) -> tuple[list[Any], list[Any]]:
    async with ngio_async.open_async(path, mode="r+") as ds:
        reads: list[Any] = [r.data async for r in ds.read_rois(FOVS[:3], axes_order=ORDER)]
        reads += [r.data async for r in ds.read_rois(FOVS[:3], halo=HALO)]
        reads.append((await ds.read_roi(FOVS[1], axes_order=ORDER)).data)
        reads.append(await ds.read_world(axes_order=ORDER, **BOX))
        patch = (await ds.read_roi(FOVS[1], axes_order=ORDER)).data % 3
        await ds.write_roi(FOVS[1], patch, axes_order=ORDER, merge="sum")
        await ds.write_world(np.ones_like(reads[-1]), axes_order=ORDER, merge="max", **BOX)
        async with ds.masked("nuclei") as m:
            async for r in m.stream(axes_order=ORDER, halo=HALO):
                reads += [r.data, r.labels]
            reads.append(await m.read(7, axes_order=ORDER))
            reads.append((await m.read_roi(12, axes_order=ORDER)).data)
            data = await m.read(12, axes_order=ORDER)
            await m.write(12, data // 2, axes_order=ORDER)
        await ds.build_pyramid(2, source="level0", window=1)
        async with await ds.labels.create("seg", dtype="uint16") as lab:
            await lab.write(COARSE, level=1, z=0)
            await lab.build_pyramid(from_level=1)
            stored = [await lab.read(level=k) for k in range(len(lab.levels))]
        stored += [await ds.read(level=k) for k in range(len(ds.levels))]
    return reads, stored


def _sync_side(path: Path) -> tuple[list[Any], list[Any]]:
    with ngio_async.open(path, mode="r+") as ds:
        reads: list[Any] = [r.data for r in ds.read_rois(FOVS[:3], axes_order=ORDER)]
        reads += [r.data for r in ds.read_rois(FOVS[:3], halo=HALO)]
        reads.append(ds.read_roi(FOVS[1], axes_order=ORDER).data)
        reads.append(ds.read_world(axes_order=ORDER, **BOX))
        patch = ds.read_roi(FOVS[1], axes_order=ORDER).data % 3
        ds.write_roi(FOVS[1], patch, axes_order=ORDER, merge="sum")
        ds.write_world(np.ones_like(reads[-1]), axes_order=ORDER, merge="max", **BOX)
        with ds.masked("nuclei") as m:
            for r in m.stream(axes_order=ORDER, halo=HALO):
                reads += [r.data, r.labels]
            reads.append(m.read(7, axes_order=ORDER))
            reads.append(m.read_roi(12, axes_order=ORDER).data)
            data = m.read(12, axes_order=ORDER)
            m.write(12, data // 2, axes_order=ORDER)
        ds.build_pyramid(2, source="level0", window=1)
        with ds.labels.create("seg", dtype="uint16") as lab:
            lab.write(COARSE, level=1, z=0)
            lab.build_pyramid(from_level=1)
            stored = [lab.read(level=k) for k in range(len(lab.levels))]
        stored += [ds.read(level=k) for k in range(len(ds.levels))]
    return reads, stored


def test_blocking_twins_take_the_new_keywords_as_the_async_methods(tmp_path: Path) -> None:
    anyio.run(_image, tmp_path / "a.zarr")
    shutil.copytree(tmp_path / "a.zarr", tmp_path / "s.zarr")
    original = anyio.run(_read_all, tmp_path / "a.zarr")
    want_reads, want_stored = anyio.run(_async_side, tmp_path / "a.zarr")
    got_reads, got_stored = _sync_side(tmp_path / "s.zarr")
    assert len(got_reads) == len(want_reads) > 8
    for w, g in zip(want_reads, got_reads, strict=True):
        assert (w is None) == (g is None)
        if w is not None:
            assert w.shape == g.shape
            np.testing.assert_array_equal(w, g)
    assert got_reads[0].shape[0] == 10 and got_reads[0].shape[-1] == 2  # x first, c last
    assert got_reads[3].shape[-2:] == (16 + 2, 10 + 3)  # halo: grown, clipped at 0
    assert len(got_stored) == len(want_stored) == 4  # the label's 2 levels, the image's 2
    for w, g in zip(want_stored, got_stored, strict=True):
        np.testing.assert_array_equal(w, g)
    assert not np.array_equal(got_stored[-2], original)  # the writes landed
    np.testing.assert_array_equal(got_stored[1][0], COARSE)
    assert got_stored[0][0, ::2, ::2].tolist() == COARSE.tolist()  # level 0 upsampled


async def _read_all(path: Path) -> Any:
    async with ngio_async.open_async(path) as ds:
        return await ds.read()


TWINS = [
    ("read", "read_world", "write", "write_world", "read_roi", "write_roi", "read_rois"),
    ("build_pyramid", "tiles", "masked", "writer", "write_at"),
]


def test_blocking_twins_list_their_async_keywords() -> None:
    """Each keyword of the async method is a named (typed) parameter of its blocking twin, not
    left to ``**axes`` (where a misspelt one read as an axis name)."""
    import inspect

    from ngio_async._sync_api import SyncDataset
    from ngio_async._sync_tiles import SyncMaskedImage
    from ngio_async.images import Dataset
    from ngio_async.images._rois import MaskedImage

    pairs: list[tuple[type, type, str]] = [
        (Dataset, SyncDataset, n) for group in TWINS for n in group
    ]
    pairs += [(MaskedImage, SyncMaskedImage, n) for n in ("read", "read_roi", "write", "stream")]
    for cls, twin, name in pairs:
        want = inspect.signature(getattr(cls, name)).parameters
        got = inspect.signature(getattr(twin, name)).parameters
        for key, p in want.items():
            if p.kind is p.VAR_KEYWORD or key == "self":
                continue
            assert key in got, f"{twin.__name__}.{name} lacks {key}="
            assert got[key].kind is p.kind, f"{twin.__name__}.{name}({key}=)"
            assert got[key].annotation != inspect.Parameter.empty, f"{name}({key}=) untyped"
