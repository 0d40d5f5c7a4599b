"""``stream(..., stitch=StitchConfig(compact=True))``: the stitched objects renumbered 1..N as
ngio 1.1.3's ``StitchConfig(compact=True)`` numbers them (its ``relabel_sequential`` order:
stored objects in grid order, ids ascending in each), pixel for pixel on both levels, in the
final pass that joins the ids: each stored object holding an id rewritten once (ngio reads the
whole label again); refused at the call where it cannot renumber, nothing written."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from test_ngio4_stitch import HALO, TILE, _image, _same_objects, _segment, _whole

import ngio_async
from ngio_async.images import StitchConfig
from ngio_async.stores import open_store
from ngio_async.stores._instrumented import InstrumentedStore

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]


def _ngio_stitch(path: Path, version: str, config: Any) -> list[np.ndarray[Any, Any]]:
    """ngio's stitched segmentation of ``_image()`` (chunks of 32 x 32) at ``path``."""
    import ngio
    from ngio.iterators import SegmentationIterator

    container = ngio.create_ome_zarr_from_array(
        str(path),
        _image(),
        pixelsize=0.5,
        axes_names="yx",
        levels=2,
        chunks=(32, 32),
        ngff_version=version,  # type: ignore[arg-type]
    )
    (
        SegmentationIterator(container.get_image(), container.derive_label("seg", dtype="uint32"))
        .by_grid(size_x=TILE, size_y=TILE)
        .with_halo(x=HALO, y=HALO)
        .with_stitch(config)
        .segment(_segment)
    )
    opened = ngio.open_ome_zarr_container(str(path))
    return [opened.get_label("seg", path=str(k)).get_as_numpy() for k in (0, 1)]


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_compact_numbers_objects_as_ngio(tmp_path: Path, version: str) -> None:
    from ngio.iterators import StitchConfig as NgioStitchConfig

    theirs = _ngio_stitch(
        tmp_path / "theirs.zarr",
        version,
        NgioStitchConfig(block_size=1000, iou_threshold=0.4, compact=True),
    )
    url = tmp_path / "mine.zarr"
    async with ngio_async.create_async(
        url, shape=(64, 64), dtype="uint16", axes="yx", scale=0.5, levels=2, chunks=(32, 32),
        shards=False, ngff_version=version,  # type: ignore[arg-type]
        # (ngio's layout: it numbers by stored object)
    ) as ds:  # fmt: skip
        await ds.write(_image(), pyramid=True)
        await (await ds.labels.create("seg", dtype="uint32")).aclose()
        await (await ds.labels.create("plain", dtype="uint32")).aclose()
    puts: dict[str, Counter[str]] = {}
    for name, stitch in [("plain", None), ("seg", StitchConfig(iou_threshold=0.4, compact=True))]:
        store = InstrumentedStore(open_store(url / "labels" / name))
        async with (
            await ngio_async.open_async(url) as ds,
            await ngio_async.open_async(store, mode="r+") as lab,
        ):
            run = ngio_async.stream(
                ds.tiles(shape=(TILE, TILE), overlap=HALO),
                _segment,
                out=lab,
                unique_labels=1000,
                stitch=stitch,
                pyramid="ngio",
            )
            await run
            mine = [await lab.read(level=k) for k in (0, 1)]
        puts[name] = Counter()
        for (method, key), n in store.calls.items():
            if method == "put" and key.startswith("0/") and not key.endswith(".json"):
                puts[name][key] += n
    for k in (0, 1):  # the same numbers, not only the same objects
        np.testing.assert_array_equal(mine[k], theirs[k])
    assert sorted(np.unique(mine[0]).tolist()) == [0, 1, 2, 3, 4, 5]
    assert run.stitched is not None and len(run.stitched.numbers) == 5
    # level 0's 4 stored objects (one holds no object: never stored), each written by the 4
    # tiles whose cores reach into it (at most: the writer joins some), then once more each
    # one holding ids, renumbered (ngio reads every stored object of the label again)
    assert len(puts["seg"]) == run.stitched.rewrites == 3
    assert max(puts["seg"].values()) <= 5 and max(puts["plain"].values()) <= 4, puts


async def test_compact_stream_sync_and_s3(s3_server: S3Server) -> None:
    img = _image()
    url = f"{s3_server.fresh_url()}/img.zarr"
    opts = s3_server.options()
    async with ngio_async.create_async(
        url, shape=img.shape, dtype="uint16", axes="yx", scale=0.5, chunks=(32, 32), **opts
    ) as ds:
        await ds.write(img)
        async with await ds.labels.create("seg", dtype="uint32") as lab:
            run = ngio_async.stream(
                ds.tiles(shape=(TILE, TILE), overlap=HALO),
                _whole,
                out=lab,
                unique_labels=100,
                stitch=StitchConfig(compact=True),
            )
            await run
            got = await lab.read()
    assert _same_objects(got, _whole(img))
    assert sorted(np.unique(got).tolist()) == [0, 1, 2, 3, 4, 5]
    assert run.stitched is not None and run.stitched.rewrites == 1  # (one shard of 4 chunks)


def test_compact_blocking_twin(tmp_path: Path) -> None:
    img = _image()
    with ngio_async.create(
        tmp_path / "img.zarr", shape=img.shape, dtype="uint16", axes="yx", chunks=(32, 32)
    ) as ds:
        ds.write(img)
        with ds.labels.create("seg", dtype="uint16") as lab:
            ngio_async.stream_sync(
                ds.tiles(shape=(TILE, TILE), overlap=HALO),
                _whole,
                out=lab,
                unique_labels=100,
                stitch=StitchConfig(compact=True),
            )
            got = lab.read()
    assert _same_objects(got, _whole(img))
    assert sorted(np.unique(got).tolist()) == [0, 1, 2, 3, 4, 5]


async def test_compact_refused_where_it_cannot_renumber(tmp_path: Path) -> None:
    async with ngio_async.create_async(
        tmp_path / "img.zarr", shape=(64, 64), dtype="uint16", axes="yx"
    ) as ds:
        await ds.write(_image())
        compact = StitchConfig(compact=True)
        lab = await ds.labels.create("seg", dtype="uint32", colors={5: (255, 0, 0, 255)})
        with pytest.raises(ValueError, match=r"image-label colors or properties .*\[5\]"):
            ngio_async.stream(
                ds.tiles(shape=(24, 24), overlap=4), _whole, out=lab, unique_labels=9,
                stitch=compact,
            )  # fmt: skip
        await lab.aclose()
        lab = await ds.labels.create("part", dtype="uint32")
        await lab.write(np.full((64, 64), 7, np.uint32))
        with pytest.raises(ValueError, match="cover the whole image"):
            ngio_async.stream(
                ds.tiles(shape=(24, 24), overlap=4, y=slice(0, 40)), _whole, out=lab,
                unique_labels=9, stitch=compact,
            )  # fmt: skip
        # a region short of the level by less than a tile: refused before any rewrite
        run = ngio_async.stream(
            ds.tiles(shape=(24, 24), overlap=4, region=(slice(0, 60), slice(0, 64))),
            _whole,
            out=lab,
            unique_labels=9,
            stitch=compact,
        )
        with pytest.raises(ValueError, match="wrote 3840 of the 4096 pixels"):
            await run
        assert run.stitched is not None and run.stitched.rewrites == 0
        assert ((await lab.read())[60:] == 7).all()  # the ids it did not write kept
        with pytest.raises(TypeError, match="compact must be True or False"):
            StitchConfig(compact="yes")  # type: ignore[arg-type]
        await lab.aclose()
