"""create / create_like: layouts zarr-python reads (and would write), NGFF schemas, safety."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal, cast

import anyio
import numcodecs
import numpy as np
import pytest
import zarr
import zarr.codecs
from test_meta import schema

import ngio_async
from ngio_async import ExistsError, ReadOnlyError, StoreError, UnsupportedError
from ngio_async.images._create_plan import (
    default_chunks,
    default_levels,
    default_shards,
    plan_image,
)
from ngio_async.meta import validate
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server

    from ngio_async.stores import AsyncStore

pytestmark = pytest.mark.anyio


# ---------------------------------------------------------------- pure planning
def test_default_chunks_near_one_mib() -> None:
    assert default_chunks((3, 10, 4000, 5000), "czyx", "uint16") == (1, 1, 512, 512)
    assert default_chunks((4000, 5000), "yx", "uint8") == (1024, 1024)
    assert default_chunks((2, 100, 70), "cyx", "float64") == (1, 100, 70)
    assert default_chunks((2, 5000, 5000), "cyx", "float64") == (1, 256, 256)


def test_default_shards_and_levels() -> None:
    assert default_shards((3, 5000, 6000), "cyx", (1, 512, 512)) == (1, 4096, 4096)
    assert default_shards((3, 1000, 600), "cyx", (1, 512, 512)) == (1, 1024, 1024)
    assert default_shards((3, 100, 60), "cyx", (1, 100, 60)) is None
    assert default_levels((2, 100, 100), "cyx", 2) == 1
    assert default_levels((2, 257, 100), "cyx", 2) == 2
    assert default_levels((2, 4096, 1000), "cyx", 2) == 5
    assert default_levels((4096, 1000), "yx", 4) == 3


def test_plan_levels_scales_and_shapes() -> None:
    plan = plan_image(
        shape=(2, 5, 1000, 600),
        dtype="uint16",
        axes="czyx",
        scale=[1, 2.0, 0.5, 0.25],
        levels=3,
        chunks=(1, 1, 128, 128),
    )
    assert [a.shape for a in plan.arrays] == [(2, 5, 1000, 600), (2, 5, 500, 300), (2, 5, 250, 150)]
    ms = plan.ome.multiscales
    assert ms is not None
    assert [d.scale for d in ms[0].datasets] == [
        [1.0, 2.0, 0.5, 0.25],
        [1.0, 2.0, 1.0, 0.5],
        [1.0, 2.0, 2.0, 1.0],
    ]
    assert [a.unit for a in ms[0].axes] == [None, "micrometer", "micrometer", "micrometer"]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"axes": "yx"}, ValueError),
        ({"chunks": (1, 0, 4)}, ValueError),
        ({"shards": (1, 6, 8), "chunks": (1, 4, 4)}, ValueError),
        ({"ngff_version": "0.4", "shards": (1, 8, 8)}, UnsupportedError),
        ({"channels": ["a"]}, ValueError),
        ({"compressor": "lzma"}, ValueError),
        ({"dtype": "U4"}, UnsupportedError),
        ({"levels": 0}, ValueError),
    ],
)
def test_plan_rejects_bad_arguments(kwargs: dict[str, Any], error: type[Exception]) -> None:
    args: dict[str, Any] = {"shape": (2, 32, 32), "dtype": "uint8", "axes": "cyx", **kwargs}
    with pytest.raises(error):
        plan_image(**args)


# ---------------------------------------------------------------- zarr-python agreement
def _zarr_reference(
    version: str,
    shape: tuple[int, ...],
    chunks: tuple[int, ...],
    shards: tuple[int, ...] | None,
    dtype: str,
    compressor: str | None,
    axes: str,
) -> dict[str, Any]:
    """The metadata zarr-python itself writes for the same settings."""
    dt = np.dtype(dtype)
    kwargs: dict[str, Any] = {}
    if version == "0.5":
        comp: Any = {
            None: None,
            "zstd": zarr.codecs.ZstdCodec(level=0),
            "gzip": zarr.codecs.GzipCodec(level=5),
            "blosc-zstd": zarr.codecs.BloscCodec(
                cname="zstd",
                clevel=5,
                shuffle="bitshuffle" if dt.itemsize == 1 else "shuffle",
                typesize=dt.itemsize,
            ),
        }[compressor]
        kwargs.update(dimension_names=list(axes), shards=shards)
    else:
        comp = {
            None: None,
            "zstd": numcodecs.Zstd(level=0),
            "gzip": numcodecs.GZip(level=5),
            "blosc-zstd": numcodecs.Blosc(
                cname="zstd", clevel=5, shuffle=2 if dt.itemsize == 1 else 1
            ),
        }[compressor]
        kwargs["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
    arr = zarr.create_array(
        store=zarr.storage.MemoryStore(),
        shape=shape,
        chunks=chunks,
        dtype=dtype,
        zarr_format=3 if version == "0.5" else 2,
        compressors=comp,
        fill_value=False if dt.kind == "b" else 0,
        **kwargs,
    )
    return arr.metadata.to_dict()


LAYOUTS = [
    ("0.5", None, "zstd", "uint16"),
    ("0.5", (1, 64, 64), "zstd", "uint16"),
    ("0.5", (1, 32, 64), "blosc-zstd", "uint8"),
    ("0.5", False, "gzip", "float32"),
    ("0.5", None, None, "int64"),
    ("0.5", (1, 64, 64), "blosc-zstd", "bool"),
    ("0.4", None, "zstd", "uint16"),
    ("0.4", None, "blosc-zstd", "uint8"),
    ("0.4", None, "gzip", "float64"),
    ("0.4", None, None, "int32"),
]


@pytest.mark.parametrize(("version", "shards", "compressor", "dtype"), LAYOUTS)
async def test_create_matches_zarr_python(
    tmp_path: Path, version: str, shards: Any, compressor: str | None, dtype: str
) -> None:
    url = tmp_path / "img.zarr"
    shape = (2, 150, 200)
    async with ngio_async.create_async(
        url,
        shape=shape,
        dtype=dtype,
        axes="cyx",
        chunks=(1, 32, 32),
        shards=shards,
        compressor=compressor,  # type: ignore[arg-type]
        levels=3,
        channels=["DAPI", "GFP"],
        ngff_version=version,  # type: ignore[arg-type]
    ) as ds:
        assert ds.mode == "r+"
        assert [lvl.shape for lvl in ds.levels] == [(2, 150, 200), (2, 75, 100), (2, 38, 50)]
        np.testing.assert_array_equal(await ds.read(level=2), np.zeros((2, 38, 50), dtype))
    group = zarr.open_group(url, mode="r", zarr_format=3 if version == "0.5" else 2)
    for i in range(3):
        arr = group[str(i)]
        assert isinstance(arr, zarr.Array)
        ours = ds.levels[i]
        assert arr.shape == ours.shape
        assert arr.dtype == np.dtype(dtype)
        assert arr.chunks == ours.chunks
        assert arr.shards == ours.shards
        if version == "0.5" and shards is None:
            assert ours.shards is not None  # sharded by default
        ref = _zarr_reference(
            version, ours.shape, ours.chunks, ours.shards, dtype, compressor, "cyx"
        )
        assert arr.metadata.to_dict() == ref
        np.testing.assert_array_equal(arr[...], np.zeros(ours.shape, dtype))
    attrs = dict(group.attrs)
    schema(version, "image").validate(attrs)
    validate(attrs)
    async with ngio_async.open_async(url) as back:
        assert back.mode == "r"
        assert back.axes == ("c", "y", "x")
        assert [c.label for c in back.metadata.channels] == ["DAPI", "GFP"]
        assert back.levels[2].scale == (1.0, 4.0, 4.0)


async def test_create_defaults_and_calibration(tmp_path: Path) -> None:
    url = tmp_path / "img.zarr"
    ds = await ngio_async.create_async(
        url,
        shape=(1, 3, 700, 900),
        dtype="uint16",
        axes="tcyx",
        scale={"y": 0.2, "x": 0.3, "t": 5.0},
        units={"t": "second", "y": "micrometer", "x": "nanometer"},
        translation=[0, 0, 10.0, 20.0],
        channels=[
            "a",
            {"label": "b", "color": "#00ff00", "window": (10, 200)},
            {"label": "c", "window": {"start": 1, "end": 2}, "active": False},
        ],
        name="cells",
    )
    async with ds:
        assert len(ds.levels) == 3  # 900 -> 450 -> 225
        assert ds.levels[0].chunks == (1, 1, 512, 512)
        assert ds.levels[0].shards == (1, 1, 1024, 1024)
        assert ds.levels[2].shards is None  # a single chunk: no sharding
        cal = ds.metadata.spatial_calibration
        assert cal[1].scale == (5.0, 1.0, 0.4, 0.6)
        assert cal[2].translation == (0.0, 0.0, 10.0, 20.0)
        assert [a.unit for a in ds.metadata.axes] == ["second", None, "micrometer", "nanometer"]
        ch = ds.metadata.channels
        assert [c.color for c in ch] == ["0000FF", "00FF00", "FF0000"]
        assert ch[1].window == (10.0, 200.0)
        assert ch[2].active is False
        assert ds.metadata.name == "cells"
    attrs = zarr.open_group(url, mode="r").attrs.asdict()
    schema("0.5", "image").validate(attrs)


async def test_create_on_memory_and_s3(s3_server: S3Server) -> None:
    async with open_store("memory://") as store:
        async with ngio_async.create_async(store, shape=(40, 50), dtype="float32") as ds:
            await ds.write_at((slice(5, 10), slice(0, 50)), 2.5)
            assert float((await ds.read()).sum()) == 2.5 * 250
        assert await store.exists("zarr.json")
        assert await store.exists("0/zarr.json")
    url = s3_server.fresh_url()
    async with ngio_async.create_async(
        url, shape=(3, 64, 64), axes="zyx", dtype="uint8", chunks=(1, 16, 16), **s3_server.options()
    ) as ds:
        await ds.write(np.arange(64 * 64, dtype="uint8").reshape(64, 64), z=1)
    async with ngio_async.open_async(url, **s3_server.options()) as back:
        np.testing.assert_array_equal(
            await back.read(z=1), np.arange(64 * 64, dtype="uint8").reshape(64, 64)
        )


async def test_create_with_path_inside_store(tmp_path: Path) -> None:
    async with ngio_async.create_async(
        tmp_path, path="plate/img", shape=(8, 8), dtype="uint8"
    ) as ds:
        await ds.write_at(..., 3)
    async with ngio_async.open_async(tmp_path, path="plate/img") as back:
        assert (await back.read() == 3).all()


# ---------------------------------------------------------------- create_like
async def test_create_like_copies_layout(tmp_path: Path) -> None:
    async with ngio_async.create_async(
        tmp_path / "src.zarr",
        shape=(2, 300, 260),
        dtype="uint16",
        axes="cyx",
        scale=[1, 0.5, 0.5],
        chunks=(1, 64, 64),
        channels=[{"label": "A", "color": "FF00FF", "window": (0, 10)}, "B"],
        levels=2,
        ngff_version="0.4",
    ) as src:
        async with ngio_async.create_like_async(src, tmp_path / "same.zarr") as same:
            assert same.metadata.ngff_version == "0.4"
            assert [lvl.shape for lvl in same.levels] == [lvl.shape for lvl in src.levels]
            assert [lvl.chunks for lvl in same.levels] == [lvl.chunks for lvl in src.levels]
            assert same.metadata.spatial_calibration == src.metadata.spatial_calibration
            assert same.metadata.channels == src.metadata.channels
        async with ngio_async.create_like_async(
            src, tmp_path / "f.zarr", dtype="float32", ngff_version="0.5"
        ) as other:
            assert other.dtype == np.float32
            assert other.metadata.ngff_version == "0.5"
            assert [c.label for c in other.metadata.channels] == ["A", "B"]
            assert [c.color for c in other.metadata.channels] == ["FF00FF", "00FF00"]
            assert other.metadata.channels[0].window == (0.0, 1.0)  # float range
            assert other.levels[1].shape == src.levels[1].shape
        async with ngio_async.create_like_async(
            src, tmp_path / "c.zarr", channels=["x", "y"]
        ) as relabelled:
            assert [c.label for c in relabelled.metadata.channels] == ["x", "y"]


def test_sync_create_and_write(tmp_path: Path) -> None:
    url = tmp_path / "img.zarr"
    with ngio_async.create(url, shape=(2, 64, 64), dtype="uint16", channels=["a", "b"]) as ds:
        ds[0, 10:20, 10:20] = 5
        ds.write(np.full((64, 64), 9, "uint16"), c="b")
        ds.levels[0][1, 0, 0] = 1
        assert ds[0, 10:20, 10:20].sum() == 5 * 100
        assert ds[1, 0, 0] == 1
        with ngio_async.create_like(ds, tmp_path / "like.zarr", dtype="uint8") as like:
            assert like.shape == ds.shape
            assert like.dtype == np.uint8
    with ngio_async.open(url) as back:
        assert back.mode == "r"
        with pytest.raises(ReadOnlyError):
            back[0, 0, 0] = 1
        assert back[1].sum() == 9 * 64 * 64 - 8
    with ngio_async.open(url, mode="r+") as rw:
        rw[1] = 0
        assert rw[1].sum() == 0


# ---------------------------------------------------------------- safety
async def _snapshot(store: AsyncStore) -> dict[str, bytes]:
    return {k: bytes(await store.get(k) or b"") for k in await store.list_prefix("")}


@pytest.mark.parametrize("version", ["0.5", "0.4"])
async def test_existing_image_is_refused_and_untouched(tmp_path: Path, version: str) -> None:
    url = tmp_path / "img.zarr"
    async with ngio_async.create_async(
        url,
        shape=(2, 32, 32),
        dtype="uint8",
        chunks=(1, 16, 16),
        ngff_version=version,  # type: ignore[arg-type]
    ) as ds:
        await ds.write_at(..., 7)
    async with open_store(url) as plain:
        before = await _snapshot(plain)
        store = InstrumentedStore(plain)
        with pytest.raises(ExistsError, match=r"img\.zarr") as info:
            await ngio_async.create_async(store, shape=(4, 4), dtype="uint8")
        assert isinstance(info.value, FileExistsError)
        assert "overwrite=True" in str(info.value)
        assert set(store.method_counts) == {"exists"}  # nothing but existence checks
        assert await _snapshot(plain) == before
        # a bare zarr array is refused as well
        await plain.put("arr/.zarray", b"{}")
        with pytest.raises(ExistsError):
            await ngio_async.create_async(plain, path="arr", shape=(4, 4), dtype="uint8")


async def test_overwrite_replaces_the_old_image(tmp_path: Path) -> None:
    url = tmp_path / "img.zarr"
    async with ngio_async.create_async(
        url, shape=(2, 64, 64), dtype="uint8", chunks=(1, 16, 16), levels=2
    ) as ds:
        await ds.write_at(..., 7)
    async with ngio_async.create_async(
        url, shape=(32, 32), dtype="float32", ngff_version="0.4", overwrite=True
    ) as ds:
        assert ds.shape == (32, 32)
        assert (await ds.read() == 0).all()
    async with open_store(url) as store:
        keys = await store.list_prefix("")
    assert sorted(keys) == [".zattrs", ".zgroup", "0/.zarray"]
    async with ngio_async.open_async(url) as back:
        assert back.metadata.ngff_version == "0.4"


async def test_leftover_arrays_count_as_a_node_and_other_files_are_kept(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    async with ngio_async.create_async(tmp_path, shape=(8, 8), dtype="uint8"):
        pass
    (tmp_path / "zarr.json").unlink()  # like an interrupted create: level metadata only
    with pytest.raises(ExistsError, match=r"0/zarr\.json"):
        await ngio_async.create_async(tmp_path, shape=(8, 8), dtype="uint8")
    async with ngio_async.create_async(tmp_path, shape=(4, 4), dtype="uint8", overwrite=True):
        pass
    assert not (tmp_path / "notes.txt").exists()  # overwrite deletes everything under the node
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    async with ngio_async.create_async(other, shape=(4, 4), dtype="uint8", overwrite=True):
        pass
    assert (other / "notes.txt").read_text() == "keep me"  # no node there: nothing deleted


@pytest.mark.parametrize("version", ["0.5", "0.4"])
async def test_chunks_left_by_an_interrupted_overwrite_never_become_new_pixels(
    tmp_path: Path, version: str
) -> None:
    # an overwrite deletes the metadata first; interrupted there, it leaves the old chunks
    # behind: a new image at that place read them as its own pixels (7 instead of 0)
    def fail(method: str, key: str) -> Exception | None:
        metadata = key.rsplit("/", 1)[-1] in ("zarr.json", ".zattrs", ".zgroup", ".zarray")
        return PermissionError("injected") if method == "delete" and not metadata else None

    options: dict[str, Any] = {
        "shape": (32, 32),
        "dtype": "uint8",
        "chunks": (16, 16),
        "ngff_version": version,
    }
    async with ngio_async.create_async(tmp_path, **options) as ds:
        await ds.write_at(..., 7)
    store = InstrumentedStore(open_store(tmp_path), fail=fail)
    with pytest.raises(PermissionError, match="injected"):
        await ngio_async.create_async(store, overwrite=True, **options)
    await store.aclose()
    with pytest.raises(ExistsError, match=r"chunks without metadata \(0/"):
        await ngio_async.create_async(tmp_path, **options)
    async with ngio_async.create_async(tmp_path, overwrite=True, **options) as ds:
        assert not (await ds.read()).any()  # fill value: the old chunks are gone


async def test_overwrite_without_listing_is_refused(tmp_path: Path) -> None:
    async with ngio_async.create_async(tmp_path, shape=(8, 8), dtype="uint8"):
        pass
    store = InstrumentedStore(open_store(tmp_path))
    store.supports_listing = False
    with pytest.raises(UnsupportedError, match="cannot list"):
        await ngio_async.create_async(store, shape=(8, 8), dtype="uint8", overwrite=True)
    await store.aclose()


@pytest.mark.parametrize("version", ["0.5", "0.4"])
async def test_interrupted_create_never_leaves_dangling_group_metadata(
    tmp_path: Path, version: str
) -> None:
    n_puts = 3 + 1 + (1 if version == "0.4" else 0)  # 3 levels + group (+ .zgroup)
    for fail_at in range(1, n_puts + 1):
        root = tmp_path / f"f{fail_at}"
        root.mkdir()
        seen = {"puts": 0}

        def fail(
            method: str, key: str, fail_at: int = fail_at, seen: dict[str, int] = seen
        ) -> BaseException | None:
            if method != "put":
                return None
            seen["puts"] += 1
            return OSError("injected") if seen["puts"] == fail_at else None

        store = InstrumentedStore(open_store(root), fail=fail)
        with pytest.raises((StoreError, OSError)):
            await ngio_async.create_async(
                store,
                shape=(2, 600, 600),
                dtype="uint8",
                levels=3,
                ngff_version=version,  # type: ignore[arg-type]
            )
        await store.aclose()
        group_key = root / ("zarr.json" if version == "0.5" else ".zattrs")
        if group_key.exists():  # only if every array is there: it must open and validate
            async with ngio_async.open_async(root) as ds:
                assert len(ds.levels) == 3
        else:
            with pytest.raises(ngio_async.NotFoundError):
                await ngio_async.open_async(root)
    # and the last put failing means the group metadata is absent
    assert not (tmp_path / f"f{n_puts}" / ("zarr.json" if version == "0.5" else ".zattrs")).exists()


# ---------------------------------------------------------------- metadata edits
async def test_set_channels_and_scale_keep_unknown_keys(tmp_path: Path) -> None:
    url = tmp_path / "img.zarr"
    async with ngio_async.create_async(
        url, shape=(2, 64, 64), dtype="uint8", channels=["a", "b"], levels=2, scale=0.5
    ):
        pass
    group = zarr.open_group(url, mode="a")
    attrs: dict[str, Any] = group.attrs.asdict()
    attrs["mine"] = {"keep": True}
    attrs["ome"]["omero"]["channels"][0]["custom"] = 1
    attrs["ome"]["multiscales"][0]["metadata"] = {"method": "mean"}
    group.attrs.put(attrs)

    async with ngio_async.open_async(url, mode="r+") as ds:
        store = InstrumentedStore(ds.store)
        ds.store = store  # count the metadata edit's requests
        await ds.set_channels(labels=["DAPI", None], colors=["ff0000", "00FF00"])
        assert store.method_counts == {"get": 1, "put": 1}
        await ds.set_channels(windows=[(1, 2), None])
        await ds.set_scale([1, 0.25, 0.125], units={"y": "nanometer"})
        await ds.set_scale(translation={"x": 3.0})
        assert ds.levels[1].scale == (1.0, 0.5, 0.25)
        assert ds.levels[1].translation == (0.0, 0.0, 3.0)
        assert ds.metadata.channels[0].label == "DAPI"
    new: dict[str, Any] = zarr.open_group(url, mode="r").attrs.asdict()
    assert new["mine"] == {"keep": True}
    ome = new["ome"]
    assert ome["omero"]["channels"][0]["custom"] == 1
    assert ome["omero"]["channels"][0]["label"] == "DAPI"
    assert ome["omero"]["channels"][0]["color"] == "FF0000"
    assert ome["omero"]["channels"][0]["window"]["start"] == 1.0
    assert ome["omero"]["channels"][1]["label"] == "b"  # None keeps the label
    assert ome["multiscales"][0]["metadata"] == {"method": "mean"}
    assert [a.get("unit") for a in ome["multiscales"][0]["axes"]] == [
        None,
        "nanometer",
        "micrometer",
    ]
    schema("0.5", "image").validate(new)
    async with ngio_async.open_async(url) as back:
        assert back.metadata.spatial_calibration[0].scale == (1.0, 0.25, 0.125)


async def test_set_metadata_on_04(tmp_path: Path) -> None:
    url = tmp_path / "img.zarr"
    async with ngio_async.create_async(
        url, shape=(2, 16, 16), dtype="uint8", axes="cyx", ngff_version="0.4"
    ) as ds:
        (url / ".zattrs").write_text(
            json.dumps({**json.loads((url / ".zattrs").read_text()), "extra": [1]})
        )
        await ds.set_channels(labels=["p", "q"])
        await ds.set_scale(2.0, units="nanometer")
    attrs = json.loads((url / ".zattrs").read_text())
    assert attrs["extra"] == [1]
    assert [c["label"] for c in attrs["omero"]["channels"]] == ["p", "q"]
    schema("0.4", "image").validate(attrs)
    async with ngio_async.open_async(url) as back:
        assert back.metadata.spatial_calibration[0].scale == (1.0, 2.0, 2.0)


async def test_read_only_dataset_refuses_writes_before_any_io(tmp_path: Path) -> None:
    async with ngio_async.create_async(tmp_path, shape=(2, 32, 32), dtype="uint8"):
        pass
    store = InstrumentedStore(open_store(tmp_path))
    async with ngio_async.open_async(store) as ds:
        store.reset()
        attempts: list[Any] = [
            lambda: ds.write(1, c=0),
            lambda: ds.write_at(..., 1),
            lambda: ds.levels[0].write((slice(0, 1), slice(0, 2), slice(0, 2)), 1),
            lambda: ds.levels[0].setitem(0, 1),
            lambda: ds.set_channels(labels=["a", "b"]),
            lambda: ds.set_scale(1.0),
        ]
        for attempt in attempts:
            with pytest.raises(ReadOnlyError, match="read-only"):
                await attempt()
        with pytest.raises(ReadOnlyError):
            ds.writer()
        assert store.total_requests == 0
    with pytest.raises(ValueError, match="mode"):
        ngio_async.open_async(tmp_path, mode="w")
    await store.aclose()


def test_plan_is_anyio_free() -> None:
    # planning is pure: usable (and testable) without an event loop
    plan = plan_image(shape=(3, 3), dtype="uint8")
    assert [k for k, _ in plan.array_documents()] == ["0/zarr.json"]
    assert [k for k, _ in plan.group_documents()] == ["zarr.json"]
    assert anyio  # imported for the async tests


# ---------------------------------------------------------------- argument checks
NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"scale": NAN}, ValueError, r"scale must be a finite number, got nan"),
        ({"scale": INF}, ValueError, r"scale must be a finite number, got inf"),
        ({"scale": 0}, ValueError, r"scale must be positive, got 0"),
        ({"scale": -1.0}, ValueError, r"scale must be positive, got -1"),
        ({"scale": [1, NAN, 1]}, ValueError, r"scale\['y'\] must be a finite number"),
        ({"scale": {"x": -INF}}, ValueError, r"scale\['x'\] must be a finite number"),
        ({"scale": "1"}, TypeError, r"scale must be a number"),
        ({"scale": True}, TypeError, r"scale must be a number"),
        ({"translation": (NAN, 0, 0)}, ValueError, r"translation\['c'\] must be a finite"),
        ({"translation": {"y": INF}}, ValueError, r"translation\['y'\] must be a finite"),
        (
            {"channels": [{"window": (0, INF)}, "b"]},
            ValueError,
            r"channels\[0\] window end must be a finite number",
        ),
        (
            {"channels": ["a", {"window": {"max": NAN}}]},
            ValueError,
            r"channels\[1\] window max must be a finite number",
        ),
        ({"shape": (2.7, 64, 64)}, TypeError, r"shape\[0\] \(axis 'c'\) must be an integer"),
        ({"shape": (2, True, 64)}, TypeError, r"shape\[1\] \(axis 'y'\) must be an integer"),
        ({"shape": (2, -1, 64)}, ValueError, r"shape\[1\] \(axis 'y'\) must be >= 0"),
        ({"chunks": (1, 0, 8)}, ValueError, r"chunks\[1\] \(axis 'y'\) must be >= 1"),
        ({"chunks": (1, 8.0, 8)}, TypeError, r"chunks\[1\] \(axis 'y'\) must be an integer"),
        ({"chunks": (1, 8)}, ValueError, r"chunks \(1, 8\) needs 3 sizes"),
        ({"levels": 1.5}, TypeError, r"levels must be an integer"),
        ({"downscale": 0}, ValueError, r"downscale must be >= 1"),
        ({"units": {"q": "nanometer"}}, ValueError, r"units: unknown axis 'q'"),
        ({"units": {"Y": "nanometer"}}, ValueError, r"units: unknown axis 'Y'"),
        ({"units": ["micrometer", 1, None]}, TypeError, r"units\['y'\] must be a string"),
        ({"units": 5}, TypeError, r"units must be a unit name, one per axis or a mapping"),
        ({"axes": "yyx"}, ValueError, r"^axes 'yyx': duplicate axis name 'y'$"),
        ({"axes": "xyc"}, ValueError, r"^axes 'xyc': axis 'c' of type 'channel' is out of order"),
        ({"axes": "CYX"}, ValueError, r"^axes 'CYX': expected 2 or 3 axes of type 'space', got 0"),
        ({"axes": ["c", "y", 3]}, TypeError, r"axes must be a string"),
        ({"fill_value": 70000}, ValueError, r"fill_value 70000 is not a uint16 value"),
        ({"fill_value": -1}, ValueError, r"fill_value -1 is not a uint16 value"),
        ({"fill_value": 3.5}, ValueError, r"fill_value 3.5 is not a uint16 value"),
        ({"fill_value": NAN}, ValueError, r"fill_value nan is not a uint16 value"),
        ({"fill_value": "abc"}, ValueError, r"fill_value 'abc' is not a uint16 value"),
        ({"fill_value": [1]}, ValueError, r"fill_value must be one uint16 value"),
        ({"fill_value": 1e40, "dtype": "float32"}, ValueError, r"fill_value 1e\+40 .* float32"),
    ],
)
async def test_create_rejects_bad_values_before_writing(
    tmp_path: Path, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    args: dict[str, Any] = {"shape": (2, 64, 64), "dtype": "uint16", "axes": "cyx", **kwargs}
    url = tmp_path / "img.zarr"
    with pytest.raises(error, match=match) as info:
        await ngio_async.create_async(url, **args)
    assert "\x1f" not in str(info.value)
    assert not url.exists()  # refused while planning: nothing written


async def test_numpy_scalars_and_integers_are_accepted(tmp_path: Path) -> None:
    async with ngio_async.create_async(
        tmp_path,
        shape=np.array([2, 64, 48]),  # type: ignore[arg-type]
        dtype="uint8",
        axes="cyx",
        chunks=(np.int64(1), np.int32(32), np.uint16(16)),  # type: ignore[arg-type]
        levels=np.int64(2),  # type: ignore[arg-type]
        scale=np.float32(0.5),  # type: ignore[arg-type]
        translation={"x": np.float64(1.5), "y": np.int64(2)},  # type: ignore[dict-item]
        channels=["a", {"window": (np.float32(1), np.int16(9))}],
    ) as ds:
        assert ds.shape == (2, 64, 48)
        assert ds.levels[0].chunks == (1, 32, 16)
        cal = ds.metadata.spatial_calibration
        assert cal[0].scale == (1.0, 0.5, 0.5)
        assert cal[1].scale == (1.0, 1.0, 1.0)
        assert cal[0].translation == (0.0, 2.0, 1.5)
        assert ds.metadata.channels[1].window == (1.0, 9.0)
        await ds.set_scale(np.int64(2), translation=[np.float32(0), 0, np.int8(3)])  # type: ignore[arg-type, list-item]
        assert ds.metadata.spatial_calibration[0].scale == (1.0, 2.0, 2.0)
        await ds.set_scale(np.array([1.0, 0.25, 0.125]))  # type: ignore[arg-type]
        assert ds.metadata.spatial_calibration[0].scale == (1.0, 0.25, 0.125)
        assert ds.metadata.nearest_level(np.float32(0.5)) == 1  # type: ignore[arg-type]
    async with ngio_async.open_async(tmp_path) as back:
        assert back.metadata.spatial_calibration[0].scale == (1.0, 0.25, 0.125)
        assert back.metadata.spatial_calibration[0].translation == (0.0, 0.0, 3.0)


async def test_numpy_strings_and_flags_are_accepted(tmp_path: Path) -> None:
    # channel names from an array (np.str_), a numpy flag, name and unit: plain JSON strings
    # (they failed with "Encoding objects of type numpy.str_ is unsupported")
    async with ngio_async.create_async(
        tmp_path,
        shape=(2, 8, 8),
        dtype="uint8",
        axes="cyx",
        channels=[np.array(["DAPI", "GFP"])[0], {"label": np.str_("GFP"), "active": np.False_}],
        name=np.str_("cells"),
        units={"y": np.str_("nanometer")},
    ) as ds:
        assert ds.metadata.channels[1].active is False
    back = json.loads((tmp_path / "zarr.json").read_text())["attributes"]["ome"]
    assert [c["label"] for c in back["omero"]["channels"]] == ["DAPI", "GFP"]
    assert back["omero"]["channels"][1]["active"] is False
    assert back["multiscales"][0]["name"] == "cells"
    assert [a.get("unit") for a in back["multiscales"][0]["axes"]] == [
        None,
        "nanometer",
        "micrometer",
    ]
    async with ngio_async.create_async(
        tmp_path / "b",
        shape=(2, 8, 8),
        dtype="uint8",
        channels=np.array(["a", "b"]),  # type: ignore[arg-type]
    ) as ds:
        assert [c.label for c in ds.metadata.channels] == ["a", "b"]


@pytest.mark.parametrize("version", ["0.5", "0.4"])
async def test_zero_extent_is_kept(tmp_path: Path, version: str) -> None:
    url = tmp_path / "img.zarr"
    async with ngio_async.create_async(
        url,
        shape=(2, 0, 600),
        dtype="uint16",
        axes="cyx",
        ngff_version=version,  # type: ignore[arg-type]
    ) as ds:
        assert [lvl.shape for lvl in ds.levels] == [(2, 0, 600), (2, 0, 300), (2, 0, 150)]
        assert all(c >= 1 for lvl in ds.levels for c in lvl.chunks)
        await ds.write(np.zeros((2, 0, 600), np.uint16), pyramid=True)
        assert (await ds.read(level=1)).shape == (2, 0, 300)
    async with ngio_async.open_async(url) as back:
        assert back.shape == (2, 0, 600)
    group = zarr.open_group(url, mode="r")
    shapes = [cast("zarr.Array[Any]", group[str(i)]).shape for i in range(3)]
    assert shapes == [(2, 0, 600), (2, 0, 300), (2, 0, 150)]


async def test_units_mapping_works_like_scale(tmp_path: Path) -> None:
    async with ngio_async.create_async(
        tmp_path, shape=(2, 64, 64), dtype="uint8", axes="zyx", units={"z": "nanometer"}
    ) as ds:
        assert [a.unit for a in ds.metadata.axes] == ["nanometer", "micrometer", "micrometer"]
        with pytest.raises(ValueError, match="units: unknown axis 'q'"):
            await ds.set_scale(units={"q": "meter"})
        await ds.set_scale(units={"x": "millimeter"})
        assert [a.unit for a in ds.metadata.axes] == ["nanometer", "micrometer", "millimeter"]


async def test_metadata_edits_refuse_non_finite_values_before_any_io(tmp_path: Path) -> None:
    async with ngio_async.create_async(
        tmp_path, shape=(2, 64, 64), dtype="float32", axes="cyx", channels=["a", "b"]
    ):
        pass
    before = (tmp_path / "zarr.json").read_bytes()
    store = InstrumentedStore(open_store(tmp_path))
    async with ngio_async.open_async(store, mode="r+") as ds:
        store.reset()
        attempts: list[tuple[Any, str]] = [
            (lambda: ds.set_scale(NAN), r"scale must be a finite number, got nan"),
            (lambda: ds.set_scale(0), r"scale must be positive"),
            (lambda: ds.set_scale({"x": INF}), r"scale\['x'\] must be a finite number"),
            (lambda: ds.set_scale([1, 1, -2]), r"scale\['x'\] must be positive"),
            (lambda: ds.set_scale(translation=(NAN, 0, 0)), r"translation\['c'\] must be"),
            (
                lambda: ds.set_channels(windows=[(0, INF), None]),
                r"windows\[0\] end must be a finite number, got inf",
            ),
            (
                lambda: ds.set_channels(windows=[None, {"start": NAN}]),
                r"windows\[1\] start must be a finite number",
            ),
        ]
        for attempt, match in attempts:
            with pytest.raises(ValueError, match=match):
                await attempt()
        assert store.total_requests == 0
    assert (tmp_path / "zarr.json").read_bytes() == before
    async with ngio_async.open_async(tmp_path) as back:  # still opens
        assert back.metadata.spatial_calibration[0].scale == (1.0, 1.0, 1.0)


@pytest.mark.parametrize("version", ["0.5", "0.4"])
async def test_create_below_an_array_is_refused(tmp_path: Path, version: str) -> None:
    async with ngio_async.create_async(
        tmp_path,
        shape=(64, 64),
        dtype="uint8",
        levels=1,
        ngff_version=version,  # type: ignore[arg-type]
    ):
        pass
    array_doc = "zarr.json" if version == "0.5" else ".zarray"
    for path in ("0/sub", "0/a/b"):
        for overwrite in (False, True):
            with pytest.raises(ExistsError, match=rf"parent '0' is a zarr array \(0/{array_doc}\)"):
                await ngio_async.create_async(
                    tmp_path, path=path, shape=(8, 8), dtype="uint8", overwrite=overwrite
                )
    assert sorted(p.name for p in (tmp_path / "0").iterdir()) == [array_doc]
    # below a group (the image itself) is fine
    async with ngio_async.create_async(tmp_path, path="extra/img", shape=(8, 8), dtype="uint8"):
        pass


@pytest.mark.parametrize("version", ["0.5", "0.4"])
async def test_create_at_a_url_below_an_array_is_refused(tmp_path: Path, version: str) -> None:
    """The store is rooted at the URL given: the arrays above it are local directories it
    cannot see, checked on disk (nothing made or deleted in them, whatever ``overwrite``)."""
    image = tmp_path / "img.zarr"
    async with ngio_async.create_async(
        image,
        shape=(8, 8),
        dtype="uint8",
        levels=1,
        ngff_version=version,  # type: ignore[arg-type]
    ) as ds:
        await ds.write(np.full((8, 8), 7, "uint8"))
    array_doc = "zarr.json" if version == "0.5" else ".zarray"
    before = sorted(p.relative_to(image) for p in image.rglob("*"))
    targets: list[Any] = [image / "0" / "sub", f"file://{image}/0/a%20b/c", str(image / "0/d")]
    targets.append(open_store(image / "0" / "e", mkdir=True))
    for target in targets:
        for overwrite in (False, True):
            with pytest.raises(ExistsError, match=rf"parent '{image / '0'}' is a zarr array") as e:
                await ngio_async.create_async(
                    target, shape=(4, 4), dtype="uint8", overwrite=overwrite
                )
            assert e.value.kind == "parent" and e.value.key == array_doc
    (image / "0" / "e").rmdir()  # the store opened above made it
    assert sorted(p.relative_to(image) for p in image.rglob("*")) == before
    async with ngio_async.open_async(image) as back:
        assert (await back.read()).tolist() == [[7] * 8] * 8


async def test_overwrite_at_a_url_inside_an_array_deletes_none_of_its_chunks(
    tmp_path: Path,
) -> None:
    """``img.zarr/0/c`` is the chunk directory of array ``0``: an overwrite there found its
    chunks as "stored chunks without metadata" and deleted them."""
    image = tmp_path / "img.zarr"
    async with ngio_async.create_async(image, shape=(16, 16), dtype="uint8", chunks=(8, 8)) as ds:
        await ds.write(np.full((16, 16), 7, "uint8"))
    with pytest.raises(ExistsError, match="is a zarr array"):
        await ngio_async.create_async(
            image / "0" / "c", shape=(4, 4), dtype="uint8", chunks=(2, 2), overwrite=True
        )
    async with ngio_async.open_async(image) as back:
        assert (await back.read() == 7).all()


@pytest.mark.parametrize("version", ["0.5", "0.4"])
async def test_create_at_a_cloud_url_inside_an_array_is_refused(
    s3_server: S3Server, version: Literal["0.5", "0.4"]
) -> None:
    """The store is rooted at the URL's prefix: the arrays above it are asked of the bucket.
    An overwrite at ``img.zarr/0/c`` (the chunks of array ``0``) deleted them."""
    url, options = s3_server.fresh_url() + "/img.zarr", s3_server.options()
    async with ngio_async.create_async(
        url, shape=(16, 16), dtype="uint8", chunks=(8, 8), ngff_version=version, **options
    ) as ds:
        await ds.write(np.full((16, 16), 7, "uint8"))
    array_doc = "zarr.json" if version == "0.5" else ".zarray"
    for below in ("0/c", "0/a/b"):
        for overwrite in (False, True):
            with pytest.raises(ExistsError, match=rf"parent {url}/0 is a zarr array") as e:
                await ngio_async.create_async(
                    f"{url}/{below}", shape=(4, 4), dtype="uint8", overwrite=overwrite, **options
                )
            assert e.value.kind == "parent" and e.value.key == array_doc
    async with ngio_async.open_async(url, **options) as back:
        assert (await back.read() == 7).all()
    # below a group (the image itself) is fine
    async with ngio_async.create_async(f"{url}/extra/img", shape=(4, 4), dtype="uint8", **options):
        pass


@pytest.mark.parametrize("version", ["0.5", "0.4"])
async def test_complex_nan_fill_value(tmp_path: Path, version: str) -> None:
    fill = complex(float("nan"), float("-inf"))
    async with ngio_async.create_async(
        tmp_path,
        shape=(8, 8),
        dtype="complex64",
        fill_value=fill,
        ngff_version=version,  # type: ignore[arg-type]
    ) as ds:
        value = (await ds.read())[0, 0]
        assert np.isnan(value.real) and value.imag == -np.inf
    doc = json.loads(
        (tmp_path / "0" / ("zarr.json" if version == "0.5" else ".zarray")).read_text()
    )
    assert doc["fill_value"] == ["NaN", "-Infinity"]
    back = cast(
        "np.complex64", cast("zarr.Array[Any]", zarr.open_group(tmp_path, mode="r")["0"])[0, 0]
    )
    assert np.isnan(back.real) and back.imag == -np.inf


def test_shards_larger_than_a_small_image_are_cut_to_it(tmp_path: Path) -> None:
    """One shard shape for images of every size (convert --shards 1,4096,4096): a shard past the
    image is cut to the chunks covering it, as default chunks are cut to the image."""
    data = np.arange(300 * 260, dtype="uint16").reshape(300, 260)
    with ngio_async.create(
        tmp_path / "a.zarr", shape=(300, 260), dtype="uint16", axes="yx", shards=(4096, 4096)
    ) as ds:
        assert ds.levels[0].shards == (300, 260)
        ds[...] = data
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "a.zarr" / "0")[...], data)
    with pytest.raises(ValueError, match=r"multiples of the chunks \(256, 256\)"):
        ngio_async.create(
            tmp_path / "b.zarr", shape=(3000, 2600), dtype="uint16", axes="yx",
            chunks=(256, 256), shards=(1000, 1000),
        )  # fmt: skip


def test_overwrite_with_fewer_axes_leaves_no_chunk_directories_in_the_way(tmp_path: Path) -> None:
    """Overwriting a 4-D image with a 2-D one at the same path: the old chunk directories
    (0/c/0/0/...) are removed with their chunks, so the new chunk files (0/c/0/0) can be written
    (it failed with 'Unable to rename file: Is a directory')."""
    path = tmp_path / "img.zarr"
    with ngio_async.create(path, shape=(2, 3, 300, 260), dtype="uint16", axes="czyx") as ds:
        ds[...] = 1
    data = np.arange(300 * 260, dtype="uint16").reshape(300, 260)
    with ngio_async.create(path, shape=(300, 260), dtype="uint16", axes="yx", overwrite=True) as ds:
        ds[...] = data
    np.testing.assert_array_equal(zarr.open_array(path / "0")[...], data)


@pytest.mark.parametrize("off", [None, False, "none", "NONE"])
def test_no_compression_spelled_every_way(tmp_path: Path, off: Any) -> None:
    """convert says False for uncompressed (its None keeps the source's); create took only None."""
    with ngio_async.create(
        tmp_path / "a.zarr", shape=(16, 16), dtype="uint8", axes="yx", compressor=off
    ) as ds:
        ds[...] = 3
    doc = json.loads((tmp_path / "a.zarr" / "0" / "zarr.json").read_text())
    assert [c["name"] for c in doc["codecs"]] == ["bytes"]
    with pytest.raises(ValueError, match=r"unknown compressor 'lz5': .*None / 'none'"):
        ngio_async.create(tmp_path / "b.zarr", shape=(4, 4), dtype="uint8", compressor="lz5")
