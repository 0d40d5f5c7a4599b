"""``ds.labels.create``: layout like the image without ``c``, valid metadata, the labels listing,
label data and its ``mode`` pyramid, read back (ours and zarr-python)."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pytest
import zarr
from test_meta import schema
from zarr_nodes import zarr_read

import ngio_async
from ngio_async import ExistsError, MetadataError, ReadOnlyError
from ngio_async.engine.pyramid import downsample
from ngio_async.meta import validate
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio

LAYOUTS = [
    pytest.param("0.4", (1, 1, 8, 8), None, id="0.4"),
    pytest.param("0.5", (1, 1, 8, 8), False, id="0.5-chunks"),
    pytest.param("0.5", (1, 1, 4, 4), (1, 1, 8, 16), id="0.5-sharded"),
]
SHAPE = (2, 3, 37, 51)  # czyx


def attrs_of(path: Path, version: Literal["0.4", "0.5"]) -> dict[str, Any]:
    if version == "0.5":
        return json.loads((path / "zarr.json").read_text())["attributes"]  # type: ignore[no-any-return]
    return json.loads((path / ".zattrs").read_text())  # type: ignore[no-any-return]


def label_data(shape: tuple[int, ...] = SHAPE[1:]) -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(0, 5, size=shape).astype(np.uint32) * 1000


async def make_image(
    path: Path, version: Literal["0.4", "0.5"], chunks: Any, shards: Any, **extra: Any
) -> Any:
    options: dict[str, Any] = {} if shards is None else {"shards": shards}
    return await ngio_async.create_async(
        path,
        shape=SHAPE,
        dtype="uint16",
        axes="czyx",
        chunks=chunks,
        levels=3,
        scale=(1.0, 2.0, 0.5, 0.5),
        translation=(0.0, 1.0, 2.0, 3.0),
        channels=["DAPI", "GFP"],
        ngff_version=version,
        **options,
        **extra,
    )


@pytest.mark.parametrize(("version", "chunks", "shards"), LAYOUTS)
async def test_create_label_like_the_image(
    tmp_path: Path, version: Literal["0.4", "0.5"], chunks: Any, shards: Any
) -> None:
    ds = await make_image(tmp_path, version, chunks, shards)
    try:
        cells = await ds.labels.create(
            "cells",
            colors={1000: (255, 0, 0, 255), 2000: [0, 255, 0, 128]},
            properties=[{"label-value": 1000, "class": "nucleus"}],
        )
        assert cells.mode == "r+"
        assert cells.axes == ("z", "y", "x")
        assert cells.dtype == np.dtype("uint32")
        assert len(cells.levels) == len(ds.levels)
        for img, lab in zip(ds.levels, cells.levels, strict=True):
            assert lab.shape == img.shape[1:]
            assert lab.chunks == img.chunks[1:]
            assert lab.shards == (img.shards[1:] if img.shards is not None else None)
            assert lab.scale == img.scale[1:]
            assert lab.translation == img.translation[1:]
        lab0 = label_data()
        await cells.write(lab0)
        await cells.build_pyramid()  # a label image: mode by default
        want = [lab0]
        for _ in range(2):
            want.append(downsample(want[-1], (1, 2, 2), "mode"))
        for i, w in enumerate(want):
            np.testing.assert_array_equal(await cells.levels[i][...], w)
        await cells.aclose()
        assert await ds.labels.names() == ["cells"]
        back = await ds.labels.open("cells")
        try:
            assert back.mode == "r+"  # the image's mode
            meta = back.metadata.ome.image_label
            assert meta is not None
            assert meta.source is not None and meta.source.image == "../../"
            assert [(c.label_value, c.rgba) for c in meta.colors or []] == [
                (1000, [255, 0, 0, 255]),
                (2000, [0, 255, 0, 128]),
            ]
            assert meta.properties is not None
            assert meta.properties[0].extra == {"class": "nucleus"}
            for i, w in enumerate(want):
                np.testing.assert_array_equal(await back.levels[i][...], w)
        finally:
            await back.aclose()
    finally:
        await ds.aclose()
    attrs = attrs_of(tmp_path / "labels" / "cells", version)
    schema(version, "label").validate(attrs)
    schema(version, "image").validate(attrs)
    validate(attrs)
    group = zarr.open_group(tmp_path / "labels" / "cells", mode="r")
    for i, w in enumerate(want):
        np.testing.assert_array_equal(zarr_read(group, str(i)), w, err_msg=f"zarr level {i}")
    listing = attrs_of(tmp_path / "labels", version)
    if version == "0.5":
        assert listing == {"ome": {"version": "0.5", "labels": ["cells"]}}
    else:
        assert listing == {"labels": ["cells"]}
        assert json.loads((tmp_path / "labels" / ".zgroup").read_text()) == {"zarr_format": 2}


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_listing_keeps_existing_names_and_order_of_writes(
    tmp_path: Path, version: Literal["0.4", "0.5"]
) -> None:
    store = InstrumentedStore(open_store(tmp_path, mkdir=True))
    ds = await ngio_async.create_async(
        store, shape=(2, 40, 40), dtype="uint8", axes="tyx", levels=2, ngff_version=version
    )
    try:
        await (await ds.labels.create("a")).aclose()
        # someone else's listing attributes (and names) are kept
        key = "labels/zarr.json" if version == "0.5" else "labels/.zattrs"
        doc = json.loads(bytes(await store.get(key) or b""))
        if version == "0.5":
            doc["attributes"]["ome"]["labels"].insert(0, "old")
            doc["attributes"]["other"] = 1
        else:
            doc["labels"].insert(0, "old")
            doc["other"] = 1
        await store.put(key, json.dumps(doc).encode())
        store.reset()
        order: list[str] = []
        inner_put = store._put_once

        async def put(key: str, data: Any, *, if_absent: bool) -> bool:
            order.append(key)
            return await inner_put(key, data, if_absent=if_absent)

        store._put_once = put  # type: ignore[method-assign]
        b = await ds.labels.create("b", dtype="int16")
        assert b.axes == ("t", "y", "x")  # t kept: no channel axis to drop
        assert b.shape == ds.shape
        await b.aclose()
        assert await ds.labels.names() == ["old", "a", "b"]
        array_doc = "zarr.json" if version == "0.5" else ".zarray"
        last_array = max(order.index(f"labels/b/{i}/{array_doc}") for i in (0, 1))
        group_doc = "labels/b/zarr.json" if version == "0.5" else "labels/b/.zattrs"
        assert last_array < order.index(group_doc) < order.index(key) == len(order) - 1
        doc = json.loads(bytes(await store.get(key) or b""))
        assert (doc["attributes"] if version == "0.5" else doc)["other"] == 1
        # the same name again: refused, then replaced with overwrite=True (listed once)
        with pytest.raises(ExistsError):
            await ds.labels.create("b")
        await (await ds.labels.create("b", overwrite=True)).aclose()
        assert await ds.labels.names() == ["old", "a", "b"]
    finally:
        await ds.aclose()


async def test_refusals(tmp_path: Path) -> None:
    ds = await ngio_async.create_async(tmp_path, shape=(3, 20, 20), dtype="uint16", axes="cyx")
    try:
        with pytest.raises(TypeError, match="integer data type"):
            await ds.labels.create("x", dtype="float32")
        with pytest.raises(TypeError, match="integer data type"):
            await ds.labels.create("x", dtype=bool)
        with pytest.raises(ValueError, match="invalid label name"):
            await ds.labels.create("a/b")
        with pytest.raises(MetadataError, match="duplicate label-value"):
            await ds.labels.create("x", colors=[{"label-value": 1}, {"label-value": 1}])
        with pytest.raises(MetadataError):
            await ds.labels.create("x", colors={1: (300, 0, 0, 255)})
        with pytest.raises(ValueError, match="label-value"):
            await ds.labels.create("x", properties=[{"class": "a"}])
        assert await ds.labels.names() == []  # nothing written by a refusal
        assert not (tmp_path / "labels").exists()
    finally:
        await ds.aclose()
    async with ngio_async.open_async(tmp_path) as ro:
        with pytest.raises(ReadOnlyError):
            await ro.labels.create("x")


def test_sync_labels_create(tmp_path: Path) -> None:
    with ngio_async.create(tmp_path, shape=(2, 32, 32), dtype="uint8", axes="cyx", levels=2) as ds:
        with ds.labels.create("cells", dtype="uint16") as cells:
            assert cells.axes == ("y", "x")
            cells[...] = np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) % 3
            cells.build_pyramid()
            np.testing.assert_array_equal(
                cells.levels[1][...],
                downsample(np.arange(32 * 32).reshape(32, 32) % 3, (2, 2), "mode"),
            )
        assert ds.labels.names() == ["cells"]
        with ds.labels["cells"] as back:
            assert back.shape == (32, 32)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_failed_overwrite_never_lists_a_label_that_does_not_open(
    tmp_path: Path, version: Literal["0.4", "0.5"]
) -> None:
    """Fail each write or delete of ``labels.create(name, overwrite=True)`` in turn: afterwards
    every listed label opens and reads, and a retry with overwrite=True succeeds."""

    async def setup(root: Path, fail: Any = None) -> tuple[Any, InstrumentedStore]:
        store = InstrumentedStore(open_store(root, mkdir=True), fail=fail)
        ds = await ngio_async.create_async(
            store, shape=(1, 64, 64), dtype="uint16", axes="cyx", levels=2, ngff_version=version
        )
        for name in ("a", "cells", "z"):
            label = await ds.labels.create(name)
            await label.write_at(..., 1)
            await label.aclose()
        return ds, store

    ds, store = await setup(tmp_path / "probe")
    store.reset()
    await (await ds.labels.create("cells", overwrite=True)).aclose()
    steps = [(m, k) for (m, k) in store.calls if m in ("put", "delete")]
    group_doc = "labels/cells/zarr.json" if version == "0.5" else "labels/cells/.zattrs"
    listing = "labels/zarr.json" if version == "0.5" else "labels/.zattrs"
    assert {("delete", group_doc), ("put", group_doc), ("put", listing)} <= set(steps)
    assert store.calls[("put", listing)] == 2  # unlisted first, listed again last
    assert await ds.labels.names() == ["a", "cells", "z"]  # overwritten in place
    await ds.aclose()

    for i, (method, key) in enumerate(steps):
        armed = {"on": False}

        def fail(
            m: str, k: str, method: str = method, key: str = key, armed: dict[str, bool] = armed
        ) -> BaseException | None:
            return OSError("injected") if armed["on"] and (m, k) == (method, key) else None

        ds, store = await setup(tmp_path / f"f{i}", fail)
        try:
            armed["on"] = True
            with pytest.raises(OSError, match="injected"):
                await ds.labels.create("cells", overwrite=True)
            armed["on"] = False
            names = await ds.labels.names()
            assert {"a", "z"} <= set(names), (method, key)
            for name in names:
                label = await ds.labels.open(name)
                try:
                    data = await label.read()
                    assert data.shape == (64, 64)
                finally:
                    await label.aclose()
            await (await ds.labels.create("cells", overwrite=True)).aclose()
            assert sorted(await ds.labels.names()) == ["a", "cells", "z"]
        finally:
            await ds.aclose()


async def test_label_images_follow_the_image_calibration(tmp_path: Path) -> None:
    async with ngio_async.create_async(
        tmp_path / "img", shape=(2, 64, 64), dtype="uint8", axes="cyx", levels=2, scale=0.5
    ) as ds:
        cells = await ds.labels.create("cells")
        await cells.aclose()
        await ds.set_scale(0.25, units="nanometer", translation={"x": 3.0})
        assert ds.levels[1].scale == (1.0, 0.5, 0.5)
    async with ngio_async.open_async(tmp_path / "img") as ds:
        label = await ds.labels.open("cells")
        cal = label.metadata.spatial_calibration
        assert [lvl.scale for lvl in label.levels] == [(0.25, 0.25), (0.5, 0.5)]
        assert [lvl.translation for lvl in label.levels] == [(0.0, 3.0), (0.0, 3.0)]
        assert cal[0]["y"].unit == cal[0]["x"].unit == "nanometer"
        await label.aclose()


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_label_rules_hold_under_races_mixing_and_plain_groups(
    tmp_path: Path, version: Literal["0.4", "0.5"]
) -> None:
    def small(root: Path) -> Any:
        return ngio_async.create_async(
            root,
            shape=(1, 32, 32),
            dtype="uint8",
            axes="cyx",
            levels=1,
            ngff_version=version,
        )

    async with small(tmp_path / "img") as ds:
        # two creates of one name at once: one label, the other refused
        outcome = await asyncio.gather(
            ds.labels.create("seg", dtype="uint8"),
            ds.labels.create("seg", dtype="uint32"),
            return_exceptions=True,
        )
        assert sorted(type(o).__name__ for o in outcome) == ["Dataset", "ExistsError"]
        for o in outcome:
            if not isinstance(o, BaseException):
                await o.aclose()
        assert await ds.labels.names() == ["seg"]
        # a label image cannot have more levels than its image
        seg = await ds.labels.open("seg", mode="r+")
        with pytest.raises(ValueError, match="one level per level of its image"):
            await seg.build_pyramid(levels=3)
        await seg.aclose()
        # label values and channel flags are integers and booleans, never coerced
        with pytest.raises(ngio_async.MetadataError, match=r"label-value"):
            await ds.labels.create("bad", colors={1.7: [255, 0, 0, 255]})
        with pytest.raises(TypeError, match=r"active\[0\]"):
            await ds.set_channels(active=["false"])
    # a plain `labels` group (nothing listed) is no label at all: image edits go through
    other = tmp_path / "plain"
    async with small(other) as ds:
        zarr.open_group(other / "labels", mode="w", zarr_format=2 if version == "0.4" else 3)
        assert await ds.labels.names() == []
        await ds.set_scale(0.5)
        await ds.build_pyramid(levels=2)
    # a labels group of the other NGFF version is refused, not hidden by a second document
    mixed = tmp_path / "mixed"
    async with small(mixed) as ds:
        zarr.open_group(mixed / "labels", mode="w", zarr_format=3 if version == "0.4" else 2)
        with pytest.raises(ngio_async.UnsupportedError, match="must be the same throughout"):
            await ds.labels.create("x")


async def test_numpy_label_values_colors_and_properties_are_taken(tmp_path: Path) -> None:
    # colors and properties are usually computed from the label data (np.unique): numpy scalars
    # and arrays are written as JSON numbers and lists (they were refused or failed to encode)
    mask = np.zeros((16, 16), dtype=np.uint16)
    mask[2:6, 2:9] = 3
    values, counts = np.unique(mask[mask > 0], return_counts=True)
    async with ngio_async.create_async(tmp_path, shape=(16, 16), dtype="uint8", levels=1) as ds:
        cells = await ds.labels.create(
            "cells",
            dtype="uint16",
            colors={v: np.array([255, 0, 0, 255]) for v in values},  # type: ignore[misc]
            properties=[
                {"label-value": v, "area": n, "mean": np.float32(0.5), "box": np.array([2, 6])}
                for v, n in zip(values, counts, strict=True)
            ],
        )
        await cells.aclose()
    doc = attrs_of(tmp_path / "labels" / "cells", "0.5")["ome"]["image-label"]
    assert doc["colors"] == [{"label-value": 3, "rgba": [255, 0, 0, 255]}]
    assert doc["properties"] == [{"label-value": 3, "area": 28, "mean": 0.5, "box": [2, 6]}]
