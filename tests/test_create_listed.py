"""create at a place a group above lists (a level, a label image, a well): refused, whatever
``overwrite``, before anything is deleted; whole images are still replaced."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async
from ngio_async import ExistsError
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server

    from ngio_async.stores import AsyncStore

pytestmark = pytest.mark.anyio


async def _image(url: Any, version: str = "0.5", **options: Any) -> None:
    """A 2-level 16x16 image of 7s at ``url`` (a label image ``cells`` of 1s below it)."""
    async with ngio_async.create_async(
        url,
        shape=(16, 16),
        dtype="uint8",
        chunks=(8, 8),
        levels=2,
        ngff_version=version,  # type: ignore[arg-type]
        **options,
    ) as ds:
        await ds.write(np.full((16, 16), 7, "uint8"), pyramid=True)
        cells = await ds.labels.create("cells", dtype="uint8")
        await cells.write(np.ones((16, 16), "uint8"), pyramid=True)


async def _intact(url: Any, **options: Any) -> None:
    async with ngio_async.open_async(url, **options) as back:
        assert [lvl.shape for lvl in back.levels] == [(16, 16), (8, 8)]
        assert (await back.read() == 7).all() and (await back.read(level=1) == 7).all()
        assert await back.labels.names() == ["cells"]
        cells = await back.labels.open("cells")
        assert (await cells.read(level=1) == 1).all()


async def _refused(target: Any, match: str, **options: Any) -> None:
    for overwrite in (False, True):
        with pytest.raises(ExistsError, match=match) as e:
            await ngio_async.create_async(
                target, shape=(4, 4), dtype="uint8", overwrite=overwrite, **options
            )
        assert e.value.kind == "parent" and not e.value.overwrite_replaces


@pytest.mark.parametrize("version", ["0.5", "0.4"])
async def test_create_at_a_level_of_a_local_image_is_refused(tmp_path: Path, version: str) -> None:
    """``img.zarr/0`` replaced by an image left ``img.zarr``'s multiscales naming a group."""
    image = tmp_path / "img.zarr"
    await _image(image, version)
    doc = "zarr.json" if version == "0.5" else ".zattrs"
    level = rf"it is level '0' of the image file://{image} \({doc}\)"
    for target in (image / "0", f"file://{image}/0", str(image / "1")):
        await _refused(target, level.replace("'0'", f"'{str(target)[-1]}'"))
    await _refused(open_store(image / "0"), level)  # a store rooted at the level
    store = open_store(image)
    await _refused(store, rf"it is level '0' of the image file://{image} \({doc}\)", path="0")
    # the label image's levels, above the store root and inside it
    cells = f"file://{image}/labels/cells"
    await _refused(image / "labels" / "cells" / "1", rf"level '1' of the image {cells} \(")
    await _refused(store, rf"level '1' of the image {cells} \(", path="labels/cells/1")
    await _intact(image)


async def test_create_at_a_level_on_memory_and_s3_is_refused(s3_server: S3Server) -> None:
    memory = open_store("memory://")
    await _image(memory, path="img.zarr")
    await _refused(memory, r"it is level '0' of the image memory://img.zarr \(img.zarr/zarr.json\)",
                   path="img.zarr/0")  # fmt: skip
    await _intact(memory, path="img.zarr")
    url, options = s3_server.fresh_url() + "/img.zarr", s3_server.options()
    await _image(url, **options)
    await _refused(f"{url}/0", rf"level '0' of the image {url} \(zarr.json\)", **options)
    await _refused(
        f"{url}/labels/cells/0", rf"level '0' of the image {url}/labels/cells", **options
    )
    wrapped: AsyncStore = InstrumentedStore(open_store(f"{url}/1", **options))
    await _refused(wrapped, rf"level '1' of the image {url} \(zarr.json\)")
    await _intact(url, **options)


async def test_an_instrumented_cloud_store_sees_the_arrays_above_its_root(
    s3_server: S3Server,
) -> None:
    """The check of the prefixes above a cloud store's root saw nothing through the wrapper:
    an overwrite at ``img.zarr/0/c`` deleted the chunks of array ``0``."""
    url, options = s3_server.fresh_url() + "/img.zarr", s3_server.options()
    await _image(url, **options)
    for below in ("0/c", "0/x/y"):
        wrapped = InstrumentedStore(open_store(f"{url}/{below}", **options))
        await _refused(wrapped, rf"its parent {url}/0 is a zarr array \(zarr.json\)")
    await _intact(url, **options)


@pytest.mark.parametrize("version", ["0.5", "0.4"])
async def test_a_listed_label_image_is_replaced_by_label_images_only(
    tmp_path: Path, version: str
) -> None:
    """A plain image over ``labels/cells`` left the labels group listing an image without
    ``image-label``: refused; a label image (``create_like`` of one) replaces it."""
    image = tmp_path / "img.zarr"
    await _image(image, version)
    doc = "zarr.json" if version == "0.5" else ".zattrs"
    label = rf"it is label image 'cells' of file://{image}/labels \({{}}{doc}\), .* labels.create"
    await _refused(image / "labels" / "cells", label.format(""))
    await _refused(open_store(image), label.format("labels/"), path="labels/cells")
    await _intact(image)
    async with ngio_async.open_async(image / "labels" / "cells") as old:
        # a copy of another label image (one over itself is refused: it would delete it)
        other = await ngio_async.create_like_async(old, tmp_path / "other.zarr")
    async with other:
        new = await ngio_async.create_like_async(other, image / "labels" / "cells", overwrite=True)
        async with new:
            await new.write(np.full((16, 16), 2, "uint8"))
    async with ngio_async.open_async(image) as back:
        assert await back.labels.names() == ["cells"]
        cells = await back.labels.open("cells")
        assert cells.metadata.ome.image_label is not None
        assert (await cells.read() == 2).all()


async def test_create_in_a_plate_refuses_wells_and_levels_and_replaces_fields(
    tmp_path: Path,
) -> None:
    root = tmp_path / "plate.zarr"
    async with ngio_async.create_plate_async(root, rows=["A"], columns=["1"]) as plate:
        fov = await plate.add_image("A", "1", field="0", shape=(16, 16), dtype="uint8", levels=2)
        async with fov:
            await fov.write(np.full((16, 16), 7, "uint8"), pyramid=True)
    level = rf"it is level '1' of the image file://{root}/A/1/0 \(zarr.json\)"
    await _refused(root / "A" / "1" / "0" / "1", level)
    await _refused(root / "A" / "1", rf"it is well 'A/1' of the plate file://{root} \(zarr.json\)")
    await _refused(root / "A", rf"it holds well 'A/1' of the plate file://{root} \(zarr.json\)")
    async with ngio_async.open_plate_async(root) as plate:
        assert plate.wells == ["A/1"]
        async with await plate.image("A", "1", field=0) as back:
            assert (await back.read(level=1) == 7).all()
    # a field is an image: replaced whole
    async with ngio_async.create_async(
        root / "A" / "1" / "0", shape=(4, 4), dtype="uint8", overwrite=True
    ):
        pass
    async with (
        ngio_async.open_plate_async(root) as plate,
        await plate.image("A", "1", field=0) as back,
    ):
        assert back.shape == (4, 4)


async def test_create_at_a_group_holding_a_level_is_refused(tmp_path: Path) -> None:
    """Levels at nested paths (``s0/data``): an overwrite of ``s0`` deleted the level."""
    image = tmp_path / "img.zarr"
    async with ngio_async.create_async(image, shape=(8, 8), dtype="uint8", levels=1) as ds:
        await ds.write(np.full((8, 8), 7, "uint8"))
    (image / "s0").mkdir()
    (image / "0").rename(image / "s0" / "data")
    doc = json.loads((image / "zarr.json").read_text())
    doc["attributes"]["ome"]["multiscales"][0]["datasets"][0]["path"] = "s0/data"
    (image / "zarr.json").write_text(json.dumps(doc))
    await _refused(image / "s0", rf"it holds level 's0/data' of the image file://{image} \(")
    await _refused(open_store(image), r"it holds level 's0/data' of the image", path="s0")
    async with ngio_async.open_async(image) as back:
        assert (await back.read() == 7).all()


async def test_an_overwrite_through_an_instrumented_s3_store_deletes_in_bulk(
    s3_server: S3Server, caplog: pytest.LogCaptureFixture
) -> None:
    """The wrapper deleted one key per request where the S3 store it wraps sends one bulk
    request: what it measured was not what the store does."""
    url, options = s3_server.fresh_url(), s3_server.options()
    async with ngio_async.create_async(
        url, shape=(64, 64), dtype="uint8", chunks=(8, 8), shards=False, levels=1, **options
    ) as ds:
        await ds.write(np.ones((64, 64), "uint8"))  # 64 chunks
    store = InstrumentedStore(open_store(url, **options))
    caplog.set_level("INFO", logger="werkzeug")
    async with store, await ngio_async.create_async(store, shape=(4, 4), dtype="uint8",
                                                    overwrite=True):  # fmt: skip
        pass
    requests = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    assert not [r for r in requests if '"DELETE /' in r]
    assert len([r for r in requests if "?delete" in r]) == 3  # group doc, chunks, array doc
    assert store.method_counts["delete"] == 66
