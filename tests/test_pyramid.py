"""``Dataset.build_pyramid``: equal to the numpy model, streaming and bounded, chunk-aligned writes,
``regions=`` rebuilds, levels added after the arrays exist, read back by zarr-python."""

from __future__ import annotations

import json
from itertools import product
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pytest
import zarr
from test_meta import schema
from zarr_nodes import zarr_array, zarr_read

import ngio_async
from ngio_async import Limits, ReadOnlyError
from ngio_async.engine.pyramid import downsample, region_footprint
from ngio_async.meta import validate
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from pathlib import Path

    from ngio_async.stores import AsyncStore, Buffer, ByteRequest

pytestmark = pytest.mark.anyio

#: (version, chunks, shards) for a cyx image
LAYOUTS = [
    pytest.param("0.4", (1, 8, 8), None, id="0.4"),
    pytest.param("0.5", (1, 8, 8), False, id="0.5-chunks"),
    pytest.param("0.5", (1, 4, 4), (1, 8, 12), id="0.5-sharded"),
]
SHAPE = (2, 37, 51)  # odd: edge tiles and partial windows on every level
FACTORS = (1, 2, 2)


class RecordingStore(InstrumentedStore):
    """Logs every GET and PUT in order and tracks the PUTs in flight (and their peak)."""

    def __init__(self, inner: AsyncStore, latency: float = 0.0) -> None:
        super().__init__(inner, latency=latency)
        self.log: list[tuple[str, str]] = []
        self.puts_in_flight = 0
        self.peak_puts = 0

    async def _get_once(self, key: str, byte_range: ByteRequest | None) -> Buffer | None:
        self.log.append(("get", key))
        return await super()._get_once(key, byte_range)

    async def _put_once(self, key: str, data: Buffer, *, if_absent: bool) -> bool:
        self.log.append(("put", key))
        self.puts_in_flight += 1
        self.peak_puts = max(self.peak_puts, self.puts_in_flight)
        try:
            return await super()._put_once(key, data, if_absent=if_absent)
        finally:
            self.puts_in_flight -= 1

    def clear(self) -> None:
        self.reset()
        self.log.clear()
        self.peak_puts = self.puts_in_flight


def model(level0: np.ndarray, n: int, method: Any, factors: tuple[int, ...] = FACTORS) -> list[Any]:
    """The expected pyramid: ``downsample`` level by level on the whole array."""
    levels = [level0]
    for _ in range(n - 1):
        levels.append(downsample(levels[-1], factors, method))
    return levels


def data_for(method: str, shape: tuple[int, ...] = SHAPE, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if method == "mode":
        return rng.integers(0, 4, size=shape).astype(np.uint32)  # few values: many ties
    return rng.integers(1, 60000, size=shape).astype(np.uint16)


def is_chunk(key: str, level_path: str) -> bool:
    """A stored object (chunk or shard) of level ``level_path`` (not its metadata)."""
    parts = key.split("/")
    return parts[0] == level_path and parts[-1] not in ("zarr.json", ".zarray", ".zattrs")


@pytest.mark.parametrize("method", ["mean", "nearest", "mode"])
@pytest.mark.parametrize(("version", "chunks", "shards"), LAYOUTS)
async def test_equals_numpy_model_and_zarr_reads_it(
    tmp_path: Path, version: Literal["0.4", "0.5"], chunks: Any, shards: Any, method: str
) -> None:
    data = data_for(method)
    options: dict[str, Any] = {} if shards is None else {"shards": shards}
    async with ngio_async.create_async(
        tmp_path,
        shape=SHAPE,
        dtype=data.dtype,
        axes="cyx",
        chunks=chunks,
        levels=4,
        ngff_version=version,
        **options,
    ) as ds:
        await ds.write(data)
        await ds.build_pyramid(method=method)  # type: ignore[arg-type]
        ours = [await lvl[...] for lvl in ds.levels]
    want = model(data, 4, method)
    group = zarr.open_group(tmp_path, mode="r")
    for i, w in enumerate(want):
        np.testing.assert_array_equal(ours[i], w, err_msg=f"level {i}")
        np.testing.assert_array_equal(zarr_read(group, str(i)), w, err_msg=f"zarr level {i}")


@pytest.mark.parametrize(("version", "chunks", "shards"), LAYOUTS)
async def test_streaming_window_and_no_read_modify_write(
    tmp_path: Path, version: Literal["0.4", "0.5"], chunks: Any, shards: Any
) -> None:
    store = RecordingStore(open_store(tmp_path, mkdir=True), latency=0.002)
    options: dict[str, Any] = {} if shards is None else {"shards": shards}
    data = data_for("mean", (2, 64, 96))
    async with ngio_async.create_async(
        store,
        shape=data.shape,
        dtype=data.dtype,
        axes="cyx",
        chunks=chunks,
        levels=3,
        ngff_version=version,
        **options,
    ) as ds:
        await ds.write(data)
        store.clear()
        seen: list[tuple[int, int]] = []
        await ds.build_pyramid(window=3, progress=lambda d, t: seen.append((d, t)))
        log = list(store.log)
        ours = [await lvl[...] for lvl in ds.levels]
    # one stored object per tile: PUTs in flight are the tiles writing at once
    assert 2 <= store.peak_puts <= 3
    total = sum(
        int(np.prod([-(-n // s) for n, s in zip(lvl.shape, lvl.meta.stored_chunks, strict=True)]))
        for lvl in ds.levels[1:]
    )
    assert seen[-1] == (total, total)
    assert len(seen) == total
    # no target object is ever read before the level is complete (whole-object writes)
    for i in (1, 2):
        path = str(i)
        puts = [n for n, (m, k) in enumerate(log) if m == "put" and is_chunk(k, path)]
        gets = [n for n, (m, k) in enumerate(log) if m == "get" and is_chunk(k, path)]
        assert len({log[n][1] for n in puts}) == len(puts), f"level {i}: an object written twice"
        assert puts, f"level {i} was not written"
        assert all(g > max(puts) for g in gets), f"level {i} read while it was built"
    assert not any(m == "get" and is_chunk(k, "2") for m, k in log)  # the last level: never
    for i, w in enumerate(model(data, 3, "mean")):
        np.testing.assert_array_equal(ours[i], w)


async def test_byte_budget_bounds_tiles_in_flight(tmp_path: Path) -> None:
    inner = open_store(
        tmp_path, mkdir=True, limits=Limits(prefetch_bytes=2 * (16 * 16 + 8 * 8) * 2)
    )
    store = RecordingStore(inner, latency=0.002)
    data = data_for("mean", (64, 64))
    async with ngio_async.create_async(
        store, shape=data.shape, dtype=data.dtype, chunks=(8, 8), shards=False, levels=3
    ) as ds:
        await ds.write(data)
        store.clear()
        # a level-1 tile: 8x8 uint16 from a 16x16 source = 640 bytes; the budget holds two
        await ds.build_pyramid(window=16)
        ours = [await lvl[...] for lvl in ds.levels]
    assert 1 <= store.peak_puts <= 2  # window=16 alone would allow 16
    for i, w in enumerate(model(data, 3, "mean", (2, 2))):
        np.testing.assert_array_equal(ours[i], w)


@pytest.mark.parametrize(("version", "chunks", "shards"), LAYOUTS)
async def test_regions_rebuild_only_affected_objects(
    tmp_path: Path, version: Literal["0.4", "0.5"], chunks: Any, shards: Any
) -> None:
    store = RecordingStore(open_store(tmp_path, mkdir=True))
    options: dict[str, Any] = {} if shards is None else {"shards": shards}
    data = data_for("mean")
    async with ngio_async.create_async(
        store,
        shape=SHAPE,
        dtype=data.dtype,
        axes="cyx",
        chunks=chunks,
        levels=4,
        ngff_version=version,
        **options,
    ) as ds:
        await ds.write(data)
        await ds.build_pyramid()
        changed: list[tuple[slice | tuple[int, int], ...]] = [
            (slice(1, 2), slice(3, 9), slice(20, 31)),
            (slice(0, 2), slice(36, 37), (0, 1)),
        ]
        for region in changed:
            region_t = tuple(r if isinstance(r, slice) else slice(*r) for r in region)
            patch = data_for("mean", tuple(s.stop - s.start for s in region_t), seed=5)
            data[region_t] = patch
            await ds.write_at(region_t, patch)
        store.clear()
        await ds.build_pyramid(regions=changed)
        ours = [await lvl[...] for lvl in ds.levels]
        for i, lvl in enumerate(ds.levels[1:], start=1):
            cumulative = tuple(f**i for f in FACTORS)
            objects: set[tuple[int, ...]] = set()
            for region in changed:
                region_t = tuple(r if isinstance(r, slice) else slice(*r) for r in region)
                fp = region_footprint(region_t, cumulative, lvl.shape)
                stored = lvl.meta.stored_chunks
                ranges = [
                    range(s.start // c, -(-s.stop // c)) for s, c in zip(fp, stored, strict=True)
                ]
                objects.update(product(*ranges))
            puts = [k for m, k in store.log if m == "put" and is_chunk(k, str(i))]
            assert len(puts) == len(set(puts)) == len(objects), f"level {i}"
            assert len(objects) < int(np.prod(lvl.meta.grid_shape)) or i == 3, f"level {i}"
    for i, w in enumerate(model(data, 4, "mean")):
        np.testing.assert_array_equal(ours[i], w, err_msg=f"level {i}")


@pytest.mark.parametrize(("version", "chunks", "shards"), LAYOUTS)
async def test_adding_levels_writes_metadata_after_the_arrays(
    tmp_path: Path, version: Literal["0.4", "0.5"], chunks: Any, shards: Any
) -> None:
    store = RecordingStore(open_store(tmp_path, mkdir=True))
    options: dict[str, Any] = {} if shards is None else {"shards": shards}
    data = data_for("mean")
    async with ngio_async.create_async(
        store,
        shape=SHAPE,
        dtype=data.dtype,
        axes="cyx",
        chunks=chunks,
        levels=2,
        scale=(1.0, 0.5, 0.25),
        translation=(0.0, 3.0, 4.0),
        ngff_version=version,
        **options,
    ) as ds:
        await ds.write(data)
        store.clear()
        await ds.build_pyramid(levels=5)
        assert ds.metadata.paths == ("0", "1", "2", "3", "4")
        assert [lvl.shape for lvl in ds.levels] == [w.shape for w in model(data, 5, "mean")]
        assert [lvl.scale for lvl in ds.levels] == [
            (1.0, 0.5 * 2**i, 0.25 * 2**i) for i in range(5)
        ]
        assert all(lvl.translation == (0.0, 3.0, 4.0) for lvl in ds.levels)
    group_key = "zarr.json" if version == "0.5" else ".zattrs"
    array_doc = "zarr.json" if version == "0.5" else ".zarray"
    puts = [k for m, k in store.log if m == "put"]
    assert puts[-1] == group_key  # the NGFF metadata last, once the levels are complete
    for i in (2, 3, 4):
        first_pixel = min(n for n, k in enumerate(puts) if is_chunk(k, str(i)))
        assert puts.index(f"{i}/{array_doc}") < first_pixel
    want = model(data, 5, "mean")
    group = zarr.open_group(tmp_path, mode="r")
    attrs = dict(group.attrs)
    schema(version, "image").validate(attrs)
    validate(attrs)
    for i, w in enumerate(want):
        np.testing.assert_array_equal(zarr_read(group, str(i)), w, err_msg=f"zarr level {i}")
        assert zarr_array(group, str(i)).chunks == tuple(
            max(1, min(c, n)) for c, n in zip(chunks, w.shape, strict=True)
        )
    async with ngio_async.open_async(tmp_path) as back:
        assert len(back.levels) == 5
        for i, w in enumerate(want):
            np.testing.assert_array_equal(await back.levels[i][...], w)


async def test_source_level0_and_tile_option(tmp_path: Path) -> None:
    data = data_for("mean", (45, 70))
    async with ngio_async.create_async(
        tmp_path, shape=data.shape, dtype=data.dtype, chunks=(8, 8), shards=(16, 16), levels=4
    ) as ds:
        await ds.write(data)
        await ds.build_pyramid(source="level0", tile=(20, 9), method="mean")
        ours = [await lvl[...] for lvl in ds.levels]
    for i in range(1, 4):
        want = downsample(data, (2**i, 2**i), "mean")  # straight from level 0
        np.testing.assert_array_equal(ours[i], want, err_msg=f"level {i}")


async def test_one_level_and_errors(tmp_path: Path) -> None:
    async with ngio_async.create_async(
        tmp_path / "a", shape=(20, 20), dtype="uint8", levels=1
    ) as ds:
        await ds.build_pyramid()  # nothing below level 0: nothing to do
        await ds.write(np.full((20, 20), 7, np.uint8))
        with pytest.raises(ValueError, match="method"):
            await ds.build_pyramid(method="max")  # type: ignore[arg-type]
        await ds.build_pyramid(levels=3)  # adds levels: downscale 2
        assert [lvl.shape for lvl in ds.levels] == [(20, 20), (10, 10), (5, 5)]
        assert (await ds.levels[2][...] == 7).all()
        with pytest.raises(ValueError, match="does not remove"):
            await ds.build_pyramid(levels=2)
        with pytest.raises(TypeError, match="levels must be an integer, got '4'"):
            await ds.build_pyramid(levels="4")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="tile must be one size per axis"):
            await ds.build_pyramid(tile=8)  # type: ignore[arg-type]
        await ds.write_at((5, slice(None)), 9)
        await ds.build_pyramid(regions=[(5, slice(None))])  # an index: that row
        assert (await ds.levels[1][2, :] == 8).all()  # (7 + 9) / 2
    async with ngio_async.open_async(tmp_path / "a") as ro:
        with pytest.raises(ReadOnlyError):
            await ro.build_pyramid()


def test_sync_build_pyramid_adds_levels(tmp_path: Path) -> None:
    data = data_for("mean", (40, 30))
    with ngio_async.create(tmp_path, shape=data.shape, dtype=data.dtype, levels=1) as ds:
        ds[...] = data
        ds.build_pyramid(levels=3, method="nearest")
        assert len(ds.levels) == 3
        np.testing.assert_array_equal(ds.levels[2][...], data[::4, ::4])


def test_factor_from_shapes_and_scales() -> None:
    from ngio_async import UnsupportedError
    from ngio_async.images._pyramid import _factor

    assert _factor(64, 32, 2.0, "x") == 2
    assert _factor(65, 33, None, "x") == 2
    assert _factor(1, 1, 2.0, "x") == 2  # a size-1 axis keeps the scale's factor
    assert _factor(7, 7, 1.0, "x") == 1
    assert _factor(10, 2, 6.0, "x") == 6  # ceil(10 / f) == 2 for f in 5..9: the scale decides
    assert _factor(10, 2, None, "x") == 5
    assert _factor(10, 2, 1.5, "x") == 5  # a ratio the shapes contradict is ignored
    with pytest.raises(UnsupportedError, match="integer downsampling"):
        _factor(10, 6, None, "x")  # 10 -> 6 is no integer factor
    with pytest.raises(UnsupportedError):
        _factor(10, 11, None, "x")


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_added_levels_are_added_to_the_label_images_too(
    tmp_path: Path, version: Literal["0.4", "0.5"]
) -> None:
    # NGFF: a label image has one level per image level; build_pyramid(levels=N) keeps it so
    rng = np.random.default_rng(3)
    data = rng.integers(0, 500, (1, 64, 48), dtype=np.uint16)
    async with ngio_async.create_async(
        tmp_path / "img",
        shape=data.shape,
        dtype="uint16",
        axes="cyx",
        levels=2,
        ngff_version=version,
    ) as ds:
        await ds.write(data, pyramid=True)
        cells = await ds.labels.create("cells")
        mask = np.zeros((64, 48), dtype=np.uint32)  # label images have no channel axis
        mask[8:40, 4:30] = 7
        await cells.write(mask, pyramid=True)
        await cells.aclose()
        await ds.build_pyramid(levels=4)
        assert len(ds.levels) == 4
    async with ngio_async.open_async(tmp_path / "img") as ds:
        label = await ds.labels.open("cells")
        assert [lvl.shape[-2:] for lvl in label.levels] == [lvl.shape[-2:] for lvl in ds.levels]
        assert [lvl.scale[-2:] for lvl in label.levels] == [lvl.scale[-2:] for lvl in ds.levels]
        want = mask
        for lvl in label.levels[1:]:  # mode of 2x2 windows, level by level
            want = downsample(want, (2, 2), "mode")
            np.testing.assert_array_equal(
                await lvl.read(tuple(slice(0, n) for n in lvl.shape)), want
            )
        await label.aclose()


def _floor_pyramid(root: Path, data: np.ndarray[Any, Any], levels: int) -> None:
    """Levels of floor(n / 2) in y/x, as ome-zarr-py writes them (odd sizes drop a pixel)."""
    shapes = [data.shape]
    for _ in range(levels - 1):
        c, y, x = shapes[-1]
        shapes.append((c, y // 2, x // 2))
    datasets = []
    for i, shape in enumerate(shapes):
        zarr.create_array(
            store=root, name=str(i), shape=shape, chunks=(1, 16, 16), dtype=data.dtype
        )
        datasets.append(
            {
                "path": str(i),
                "coordinateTransformations": [{"type": "scale", "scale": [1, 2**i, 2**i]}],
            }
        )
    zarr.open_array(root / "0", mode="r+")[...] = data
    axes = [
        {"name": "c", "type": "channel"},
        {"name": "y", "type": "space"},
        {"name": "x", "type": "space"},
    ]
    ome: dict[str, Any] = {"version": "0.5", "multiscales": [{"axes": axes, "datasets": datasets}]}
    zarr.open_group(root, mode="a").attrs.update({"ome": ome})


@pytest.mark.parametrize("how", ["build_pyramid", "write"])
async def test_floor_shaped_levels_are_built_like_ome_zarr_py_shapes_them(
    tmp_path: Path, how: str
) -> None:
    rng = np.random.default_rng(5)
    data = rng.integers(0, 1000, (1, 61, 45), dtype=np.uint16)
    _floor_pyramid(tmp_path, data, 3)
    async with ngio_async.open_async(tmp_path, mode="r+") as ds:
        assert [lvl.shape for lvl in ds.levels] == [(1, 61, 45), (1, 30, 22), (1, 15, 11)]
        if how == "build_pyramid":
            await ds.build_pyramid()
        else:
            await ds.write(data, pyramid=True)
        want = data
        for lvl in ds.levels[1:]:  # 2x2 means of whole windows only (the last odd row is dropped)
            y, x = lvl.shape[1:]
            want = downsample(want, (1, 2, 2), "mean")[:, :y, :x]
            got = await lvl.read(tuple(slice(0, n) for n in lvl.shape))
            np.testing.assert_array_equal(got, want)


async def test_a_retry_adds_the_label_levels_an_interrupted_build_left_out(tmp_path: Path) -> None:
    # the image's new levels were listed, then growing its labels failed: build_pyramid(levels=N)
    # again must complete the labels (NGFF: one label level per image level), not skip them
    broken = {"on": True}

    def fail(method: str, key: str) -> Exception | None:
        if broken["on"] and method == "put" and key.startswith("labels/cells/1/"):
            return PermissionError("injected")
        return None

    store = InstrumentedStore(open_store(tmp_path, mkdir=True), fail=fail)
    ds = await ngio_async.create_async(store, shape=(32, 24), dtype="uint8", axes="yx", levels=1)
    await ds.write(np.arange(32 * 24, dtype=np.uint8).reshape(32, 24))
    cells = await ds.labels.create("cells")
    mask = np.zeros((32, 24), dtype=np.uint32)
    mask[4:20, 2:14] = 3
    await cells.write(mask)
    with pytest.raises(Exception, match="injected"):
        await ds.build_pyramid(levels=3)
    assert len(ds.levels) == 3  # the image's levels are complete and listed
    broken["on"] = False
    await ds.build_pyramid(levels=3)
    label = await ds.labels.open("cells")
    assert [lvl.shape for lvl in label.levels] == [lvl.shape for lvl in ds.levels]
    want = downsample(downsample(mask, (2, 2), "mode"), (2, 2), "mode")
    np.testing.assert_array_equal(await label.levels[2][...], want)


@pytest.mark.parametrize(
    ("translations", "want"),
    [
        pytest.param([0.0, 0.5, 1.5], 3.5, id="centred"),  # ome-zarr-py 0.18: t = (s - 1) / 2
        pytest.param([4.0, 4.0, 4.0], 4.0, id="equal"),  # ours: the same on every level
    ],
)
async def test_added_levels_continue_the_translations_of_the_levels_above(
    tmp_path: Path, translations: list[float], want: float
) -> None:
    datasets = []
    for i, t in enumerate(translations):
        zarr.create_array(store=tmp_path, name=str(i), shape=(32 >> i,) * 2, dtype="uint8")
        datasets.append(
            {
                "path": str(i),
                "coordinateTransformations": [
                    {"type": "scale", "scale": [2.0**i] * 2},
                    {"type": "translation", "translation": [t] * 2},
                ],
            }
        )
    axes = [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
    ome: dict[str, Any] = {"version": "0.5", "multiscales": [{"axes": axes, "datasets": datasets}]}
    zarr.open_group(tmp_path, mode="a").attrs.update({"ome": ome})
    async with ngio_async.open_async(tmp_path, mode="r+") as ds:
        await ds.build_pyramid(levels=4)
        assert ds.levels[3].scale == (8.0, 8.0)
        assert ds.levels[3].translation == (want, want)  # pixel centres stay where they were
    async with ngio_async.open_async(tmp_path) as ds:
        assert ds.metadata.spatial_calibration[3].translation == (want, want)


async def test_labels_without_image_label_metadata_are_never_averaged(tmp_path: Path) -> None:
    # image-label is only a SHOULD: a label image found at <image>/labels/<name> without it is
    # still a label image, downsampled by mode when build_pyramid(levels=N) adds its levels
    async with ngio_async.create_async(
        tmp_path, shape=(16, 16), dtype="uint8", axes="yx", levels=1
    ) as ds:
        cells = await ds.labels.create("cells")
        await cells.write(np.tile(np.array([[1, 3], [3, 3]], np.uint32), (8, 8)))
        await cells.aclose()
    doc_path = tmp_path / "labels" / "cells" / "zarr.json"
    doc = json.loads(doc_path.read_text())
    del doc["attributes"]["ome"]["image-label"]
    doc_path.write_text(json.dumps(doc))
    async with ngio_async.open_async(tmp_path, mode="r+") as ds:
        await ds.build_pyramid(levels=2)
        label = await ds.labels.open("cells")
        assert label.metadata.ome.image_label is None
        assert (await label.levels[1][...] == 3).all()  # mode; a mean gives 2
        await label.write(np.ones((16, 16), np.uint32), pyramid=True)  # default: mode too
        assert (await label.levels[1][...] == 1).all()
        await label.aclose()


async def test_a_whole_rebuild_records_its_method(tmp_path: Path) -> None:
    """type/metadata (NGFF SHOULD fields) name the method that made the levels: a whole rebuild
    with another method says so; a partial one (regions=) leaves them."""
    import json

    async with await ngio_async.create_async(
        tmp_path / "a.zarr", shape=(64, 64), dtype="uint8", axes="yx", levels=3
    ) as ds:
        await ds.build_pyramid(method="nearest")
        assert ds.metadata.ome.multiscales is not None
        assert ds.metadata.ome.multiscales[0].type == "nearest"
        await ds.build_pyramid(method="mode", regions=[(slice(0, 8), slice(0, 8))])
        assert ds.metadata.ome.multiscales[0].type == "nearest"
    doc = json.loads((tmp_path / "a.zarr" / "zarr.json").read_text())
    ms = doc["attributes"]["ome"]["multiscales"][0]
    assert ms["type"] == "nearest" and ms["metadata"]["kwargs"] == {"method": "nearest"}


async def test_a_dataset_opened_before_another_added_levels_edits_and_builds_on_them(
    tmp_path: Path,
) -> None:
    # another dataset object (or process) builds levels after this one opened: set_scale used
    # to fail after writing ("zip() argument 2 is longer"), build_pyramid to rewrite level 1
    # and fail with "dataset paths must be unique"
    url = str(tmp_path / "img.zarr")
    data = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    async with ngio_async.create_async(url, shape=(64, 64), dtype="uint16", levels=1) as ds:
        await ds.write(data)
    async with (
        ngio_async.open_async(url, mode="r+") as stale,
        ngio_async.open_async(url, mode="r+") as other,
    ):
        await other.build_pyramid(levels=3)
        await stale.set_scale({"y": 0.5, "x": 0.5})
        assert [lvl.scale[-1] for lvl in stale.levels] == [0.5, 1.0, 2.0]
        await stale.build_pyramid(levels=4)
        assert [lvl.shape for lvl in stale.levels] == [(64, 64), (32, 32), (16, 16), (8, 8)]
    async with ngio_async.open_async(url) as ds:
        assert [lvl.scale[-1] for lvl in ds.levels] == [0.5, 1.0, 2.0, 4.0]
        np.testing.assert_array_equal(await ds.read(level=0), data)
