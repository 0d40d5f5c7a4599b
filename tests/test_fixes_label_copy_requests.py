"""A label image's copy into ``<image>/labels/<name>`` (``create_like``) reads the image's
metadata once (it was read twice: once to follow the ``source`` link, once to open the image),
leaves the ``labels`` group's version check to the create, which reads that group anyway
(``_check_listing`` asked the store again whether its documents exist), and brings the
consolidated copies above up to date once, with the listing (the create did so too)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal

import pytest

import ngio_async
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from pathlib import Path

# every request of the copy: the counts it was cut from in comments
_TOTAL = {"0.5": 26, "0.4": 30}  # were 33 and 42


@pytest.mark.parametrize("version", ["0.5", "0.4"])
async def test_a_label_copy_reads_the_image_once(version: str) -> None:
    store = InstrumentedStore(open_store("memory://"))
    shape: dict[str, Any] = {
        "shape": (16, 16), "dtype": "uint8", "axes": "yx", "levels": 2, "ngff_version": version
    }  # fmt: skip
    group = "zarr.json" if version == "0.5" else ".zattrs"
    try:
        async with (
            ngio_async.create_async(store, path="src.zarr", **shape) as src,
            ngio_async.create_async(store, path="img.zarr", **shape) as img,
        ):
            label = await src.labels.create("cells", dtype="uint8")
            store.reset()
            async with ngio_async.create_like_async(label, store, path="img.zarr/labels/c") as c:
                assert c.metadata.ome.image_label is not None
                source = c.metadata.ome.image_label.source
                assert source is not None and source.image == "../../"  # kept: an image
            await label.aclose()
            counts = store.calls.copy()
            total = store.total_requests
            assert await img.labels.names() == ["c"]
            # opened once (its levels too), plus the create's look at the groups above
            assert (
                counts[("get", "img.zarr/0/" + ("zarr.json" if version == "0.5" else ".zarray"))]
                == 1
            )
            assert counts[("exists", "img.zarr/labels/zarr.json")] == 0
            assert counts[("exists", "img.zarr/labels/.zattrs")] == 0
            assert total == _TOTAL[version], sorted(counts.items())
            assert counts[("get", f"img.zarr/{group}")] == (3 if version == "0.5" else 2)
    finally:
        await store.aclose()


@pytest.mark.parametrize("version", ["0.5", "0.4"])
async def test_a_label_copy_into_a_labels_group_of_the_other_version_is_refused(
    version: Literal["0.5", "0.4"],
) -> None:
    """The check moved into the create: still refused, before anything is written."""
    store = open_store("memory://")
    shape: dict[str, Any] = {"shape": (16, 16), "dtype": "uint8", "axes": "yx", "levels": 1}
    try:
        async with (
            ngio_async.create_async(store, path="src.zarr", ngff_version=version, **shape) as src,
            ngio_async.create_async(store, path="img.zarr", ngff_version=version, **shape),
        ):
            other = "0.4" if version == "0.5" else "0.5"
            if other == "0.4":
                await store.put("img.zarr/labels/.zgroup", b'{"zarr_format":2}')
                await store.put("img.zarr/labels/.zattrs", json.dumps({"labels": []}).encode())
            else:
                doc = {"zarr_format": 3, "node_type": "group", "attributes": {}}
                await store.put("img.zarr/labels/zarr.json", json.dumps(doc).encode())
            label = await src.labels.create("cells", dtype="uint8")
            try:
                before = sorted(await store.list_prefix("img.zarr"))
                with pytest.raises(ngio_async.UnsupportedError, match="version must be the same"):
                    await ngio_async.create_like_async(label, store, path="img.zarr/labels/c")
                assert sorted(await store.list_prefix("img.zarr")) == before
            finally:
                await label.aclose()
    finally:
        await store.aclose()


def test_a_label_copy_to_a_url_in_a_labels_group_of_the_other_version_is_refused(
    tmp_path: Path,
) -> None:
    """Created at its own URL (a store rooted at the label), the create sees no group above
    it: the image's labels group is checked before anything is written."""
    image = tmp_path / "img.zarr"
    shape: dict[str, Any] = {"shape": (16, 16), "dtype": "uint8", "axes": "yx", "levels": 1}
    with (
        ngio_async.create(tmp_path / "src.zarr", **shape) as src,
        src.labels.create("cells", dtype="uint8") as label,
    ):
        ngio_async.create(image, **shape).close()
        (image / "labels").mkdir()
        (image / "labels" / ".zgroup").write_text('{"zarr_format": 2}')
        (image / "labels" / ".zattrs").write_text('{"labels": []}')
        with pytest.raises(ngio_async.UnsupportedError, match="version must be the same"):
            ngio_async.create_like(label, image / "labels" / "c")
    assert sorted(p.name for p in (image / "labels").iterdir()) == [".zattrs", ".zgroup"]
