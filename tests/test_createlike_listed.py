"""A label image copied with ``create_like`` into an image's ``labels/<name>`` is listed by that
image (it was written but listed by nothing: no reader found it), and one of the other NGFF
version than the image's is refused before anything is written (a hierarchy has one version)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async
from ngio_async import UnsupportedError

if TYPE_CHECKING:
    from pathlib import Path


def _image(path: Path, version: str, *, label: bool = False) -> Path:
    with ngio_async.create(
        path, shape=(32, 32), dtype="uint8", axes="yx", levels=2, ngff_version=version
    ) as ds:
        if label:
            ds.labels.create("cells", dtype="uint16", colors={3: "#0000FF"})
    return path


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_a_label_copied_into_an_images_labels_is_listed(tmp_path: Path, version: str) -> None:
    src = _image(tmp_path / "src.zarr", version, label=True)
    other = _image(tmp_path / "other.zarr", version)
    with ngio_async.open(src) as ds:
        with ngio_async.create_like(ds.labels["cells"], other / "labels" / "nuclei") as lab:
            lab.write(np.full((32, 32), 3, "uint16"), pyramid=True)
        with ngio_async.create_like(ds.labels["cells"], other / "labels" / "cells") as lab:
            pass
    with ngio_async.open(other) as image:
        assert image.labels.names() == ["nuclei", "cells"]
        nuclei = image.labels["nuclei"]
        assert int(nuclei.levels[1][0, 0]) == 3
        assert nuclei.metadata.ome.image_label is not None
        assert nuclei.metadata.ome.image_label.source is not None


def test_a_label_of_another_version_than_the_image_is_refused(tmp_path: Path) -> None:
    src = _image(tmp_path / "src.zarr", "0.5", label=True)
    other = _image(tmp_path / "other.zarr", "0.4")
    place = other / "labels" / "cells"
    with ngio_async.open(src) as ds:
        with pytest.raises(UnsupportedError, match=r"ngff_version='0\.4'"):
            ngio_async.create_like(ds.labels["cells"], place)
        assert not place.exists()
        with ngio_async.create_like(ds.labels["cells"], place, ngff_version="0.4") as lab:
            assert lab.metadata.ngff_version == "0.4"
    with ngio_async.open(other) as image:
        assert image.labels.names() == ["cells"]


def test_the_label_images_of_the_source_are_not_copied(tmp_path: Path) -> None:
    """As documented: the copy is the image alone; ``labels.create`` adds label images."""
    src = _image(tmp_path / "src.zarr", "0.5", label=True)
    with ngio_async.open(src) as ds, ngio_async.create_like(ds, tmp_path / "copy.zarr") as copy:
        assert ds.labels.names() == ["cells"]
        assert copy.labels.names() == []
        assert not (tmp_path / "copy.zarr" / "labels").exists()
        cells = copy.labels.create("cells", dtype="uint16")
        assert [lvl.shape for lvl in cells.levels] == [(32, 32), (16, 16)]


def test_a_label_without_a_source_link_is_listed_too(tmp_path: Path) -> None:
    """ome-zarr-py writes no ``source``: its label's copy was not listed."""
    src = _image(tmp_path / "src.zarr", "0.5", label=True)
    other = _image(tmp_path / "other.zarr", "0.5")
    alone_url = tmp_path / "alone.zarr"
    with ngio_async.open(src) as ds, ngio_async.create_like(ds.labels["cells"], alone_url) as alone:
        assert alone.metadata.ome.image_label is not None
        assert alone.metadata.ome.image_label.source is None
        ngio_async.create_like(alone, other / "labels" / "cells").close()
    with ngio_async.open(other) as image:
        assert image.labels.names() == ["cells"]


async def test_a_copy_that_cannot_be_listed_is_removed() -> None:
    """As labels.create leaves it (the listing's write failed: injected), so that a retry
    creates it rather than being refused by an unlisted leftover."""
    from ngio_async import StoreError
    from ngio_async.stores import InstrumentedStore, open_store

    failing = [True]

    def listing_fails(method: str, key: str) -> Exception | None:
        if failing[0] and method == "put" and key == "img.zarr/labels/zarr.json":
            return StoreError("injected", url="memory://", key=key)
        return None

    store = InstrumentedStore(open_store("memory://"), fail=listing_fails)
    shape: dict[str, Any] = {"shape": (16, 16), "dtype": "uint8", "axes": "yx"}
    try:
        async with (
            ngio_async.create_async(store, path="src.zarr", **shape) as src,
            ngio_async.create_async(store, path="img.zarr", **shape) as img,
        ):
            label = await src.labels.create("cells", dtype="uint8")
            try:
                with pytest.raises(StoreError, match="injected"):
                    await ngio_async.create_like_async(label, store, path="img.zarr/labels/c")
                assert await store.list_prefix("img.zarr/labels/c") == []
                failing[0] = False
                async with ngio_async.create_like_async(label, store, path="img.zarr/labels/c"):
                    pass
                assert await img.labels.names() == ["c"]
            finally:
                await label.aclose()
    finally:
        await store.aclose()
