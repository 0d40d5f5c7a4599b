"""``create_like`` of a label image keeps its ``image-label.source`` link only where it leads to
an image (it kept ``../../`` wherever it went: a standalone copy's link pointed at nothing)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import anyio
import pytest

import ngio_async
from ngio_async.cli._validate import validate_hierarchy

if TYPE_CHECKING:
    from pathlib import Path


def _image_with_label(path: Path, version: str) -> str:
    url = str(path)
    with ngio_async.create(
        url, shape=(2, 32, 32), dtype="uint8", axes="cyx", levels=2, ngff_version=version,
        channels=["DAPI", {"label": "GFP", "color": "00FF00", "window": (0, 90)}],
    ) as ds:  # fmt: skip
        ds.labels.create("cells", dtype="uint16", colors={1: "#FF0000"})
    return url


def _label_attrs(path: Path) -> dict[str, Any]:
    if (path / "zarr.json").exists():
        attrs = json.loads((path / "zarr.json").read_text())["attributes"]["ome"]
    else:
        attrs = json.loads((path / ".zattrs").read_text())
    label: dict[str, Any] = attrs["image-label"]
    return label


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_a_label_copied_alone_drops_the_source_link(tmp_path: Path, version: str) -> None:
    src = _image_with_label(tmp_path / "src.ome.zarr", version)
    alone = tmp_path / "alone.zarr"
    with ngio_async.open(src) as ds, ngio_async.create_like(ds.labels["cells"], alone) as copy:
        assert copy.metadata.ome.image_label is not None
        assert copy.metadata.ome.image_label.source is None
    label = _label_attrs(alone)
    assert "source" not in label  # '../../' of alone.zarr is the temporary directory
    assert label["colors"] == [{"label-value": 1, "rgba": [255, 0, 0, 255]}]
    report = anyio.run(lambda: validate_hierarchy(str(alone)))
    assert report.valid, report.errors


def test_a_label_copied_into_another_images_labels_keeps_the_link(tmp_path: Path) -> None:
    src = _image_with_label(tmp_path / "src.ome.zarr", "0.5")
    other = tmp_path / "other.ome.zarr"
    with ngio_async.open(src) as ds:
        ngio_async.create_like(ds, other).close()
        place = other / "labels" / "cells"
        with ngio_async.create_like(ds.labels["cells"], place) as copy:
            assert copy.metadata.ome.image_label is not None
            source = copy.metadata.ome.image_label.source
            assert source is not None
            assert source.image == "../../"
    assert _label_attrs(place)["source"] == {"image": "../../"}


async def test_the_link_is_followed_inside_a_store_given_as_an_object() -> None:
    """A ``memory://`` store: the image the link leads to is only in that store object."""
    store = ngio_async.stores.open_store("memory://")
    try:
        async with ngio_async.create_async(
            store, path="img.zarr", shape=(32, 32), dtype="uint8", axes="yx", levels=1
        ) as ds:
            label = await ds.labels.create("cells", dtype="uint8")
            try:
                inside = store, "img.zarr/labels/copy"
                alone = store, "alone.zarr"
                for (where, path), kept in ((inside, True), (alone, False)):
                    async with ngio_async.create_like_async(label, where, path=path) as copy:
                        assert copy.metadata.ome.image_label is not None
                        assert (copy.metadata.ome.image_label.source is not None) is kept, path
            finally:
                await label.aclose()
    finally:
        await store.aclose()


def test_a_narrower_label_copy_drops_colors_no_pixel_can_have(tmp_path: Path) -> None:
    """labels.create refuses a color for 300 in a uint8 label; a uint8 copy of a uint16 label
    kept it (and its properties)."""
    src = tmp_path / "src.zarr"
    with ngio_async.create(src, shape=(32, 32), dtype="uint8", axes="yx") as ds:
        ds.labels.create(
            "cells",
            dtype="uint16",
            colors={3: "#0000FF", 300: "#FF0000"},
            properties={3: {"kind": "a"}, 300: {"kind": "b"}},
        )
    with ngio_async.open(src) as ds:
        ngio_async.create_like(ds.labels["cells"], tmp_path / "u8.zarr", dtype="uint8").close()
        ngio_async.create_like(ds.labels["cells"], tmp_path / "i32.zarr", dtype="int32").close()
    label = _label_attrs(tmp_path / "u8.zarr")
    assert label["colors"] == [{"label-value": 3, "rgba": [0, 0, 255, 255]}]
    assert label["properties"] == [{"label-value": 3, "kind": "a"}]
    assert [c["label-value"] for c in _label_attrs(tmp_path / "i32.zarr")["colors"]] == [3, 300]
