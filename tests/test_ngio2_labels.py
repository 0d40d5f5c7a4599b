"""ngio 1.1.3's label operations in ngio_async: ``delete_label`` (``ds.labels.delete``) and
``Label.relabel_sequential`` (``ds.labels.relabel_sequential``), compared with ngio on the same
images (NGFF 0.4 and 0.5), on local files and the moto S3 server."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async
from ngio_async import NotFoundError, ReadOnlyError

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]


def _labels() -> Any:
    lab = np.zeros((3, 32, 40), np.uint32)
    lab[0, 2:10, 3:9] = 50
    lab[1, 20:30, 20:35] = 7
    lab[2, 0:3, 30:40] = 1000
    lab[0, 25:30, 0:5] = 3
    lab[2, 10:12, 10:40] = 50  # one object in two shards
    return lab


def _image(path: Path, version: str) -> Any:
    import ngio

    data = np.arange(2 * 3 * 32 * 40, dtype=np.uint16).reshape(2, 3, 32, 40)
    c: Any = ngio.create_ome_zarr_from_array(
        str(path),
        data,
        pixelsize=0.5,
        z_spacing=2.0,
        levels=2,
        axes_names="czyx",
        chunks=(1, 1, 16, 16),
        ngff_version=version,  # type: ignore[arg-type]
    )
    for name in ("nuclei", "cells", "spare"):
        label = c.derive_label(name)
        label.set_array(_labels())
        label.consolidate()
    return c


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_delete_matches_ngio_and_keeps_the_others(tmp_path: Path, version: str) -> None:
    import ngio

    _image(tmp_path / "a.zarr", version)
    shutil.copytree(tmp_path / "a.zarr", tmp_path / "b.zarr")
    ngio.open_ome_zarr_container(str(tmp_path / "a.zarr")).delete_label("cells")
    async with ngio_async.open_async(tmp_path / "b.zarr", mode="r+") as ds:
        await ds.labels.delete("cells")
        assert await ds.labels.names() == ["nuclei", "spare"]
        with pytest.raises(NotFoundError, match="cells"):
            await ds.labels.delete("cells")
        await ds.labels.delete("cells", missing_ok=True)  # nothing to do
        async with ds.labels.open("nuclei") as lab:
            np.testing.assert_array_equal(await lab.read(), _labels())
    assert not (tmp_path / "b.zarr" / "labels" / "cells").exists()
    theirs = ngio.open_ome_zarr_container(str(tmp_path / "b.zarr"))
    assert theirs.list_labels() == ["nuclei", "spare"]
    assert ngio.open_ome_zarr_container(str(tmp_path / "a.zarr")).list_labels() == [
        "nuclei",
        "spare",
    ]
    np.testing.assert_array_equal(theirs.get_label("spare").get_as_numpy(), _labels())


async def test_delete_is_refused_read_only_naming_the_label(tmp_path: Path) -> None:
    _image(tmp_path / "a.zarr", "0.5")
    async with ngio_async.open_async(tmp_path / "a.zarr") as ds:
        with pytest.raises(ReadOnlyError, match="'cells'"):
            await ds.labels.delete("cells")
        assert await ds.labels.names() == ["nuclei", "cells", "spare"]


async def test_a_failed_delete_of_the_data_leaves_no_listing_of_it(tmp_path: Path) -> None:
    """Fault injection: the object deletes fail after the listing was edited; the label is
    unlisted (never listed with missing data), and a second delete is a NotFoundError."""
    _image(tmp_path / "a.zarr", "0.5")
    async with ngio_async.open_async(tmp_path / "a.zarr", mode="r+") as ds:
        store: Any = ds.store
        real = store.delete_many

        async def failing(keys: Any) -> None:
            raise OSError("injected: the store fails")

        store.delete_many = failing
        try:
            with pytest.raises(OSError, match="injected"):
                await ds.labels.delete("cells")
        finally:
            store.delete_many = real
        assert await ds.labels.names() == ["nuclei", "spare"]
    async with ngio_async.open_async(tmp_path / "a.zarr") as ds:
        assert await ds.labels.names() == ["nuclei", "spare"]


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_relabel_sequential_matches_ngio(tmp_path: Path, version: str) -> None:
    import ngio

    _image(tmp_path / "a.zarr", version)
    shutil.copytree(tmp_path / "a.zarr", tmp_path / "b.zarr")
    theirs = ngio.open_ome_zarr_container(str(tmp_path / "a.zarr")).get_label("nuclei")
    assert theirs.relabel_sequential() == 4
    async with ngio_async.open_async(tmp_path / "b.zarr", mode="r+") as ds:
        assert await ds.labels.relabel_sequential("nuclei") == 4
        async with ds.labels.open("nuclei") as lab:
            got = await lab.read()
            np.testing.assert_array_equal(got, theirs.get_as_numpy())
            assert sorted(np.unique(got).tolist()) == [0, 1, 2, 3, 4]
            low = await lab.read(level=1)  # rebuilt from level 0: only the new values
            assert set(np.unique(low).tolist()) <= {0, 1, 2, 3, 4}
            blocks = got.reshape(3, 16, 2, 20, 2)  # each pixel of level 1: one of its 2x2 block
            assert all(
                low[z, y, x] in blocks[z, y, :, x, :]
                for z, y, x in np.ndindex(low.shape)  # (the old values are not there)
            )
        assert await ds.labels.relabel_sequential("nuclei") == 4  # already dense: no write
        async with ds.labels.open("cells") as lab:
            np.testing.assert_array_equal(await lab.read(), _labels())  # the others untouched


async def test_relabel_sorted_and_colors_follow(tmp_path: Path) -> None:
    lab = _labels()
    async with ngio_async.create_async(
        tmp_path / "a.zarr", shape=(3, 32, 40), dtype="uint8", axes="zyx", chunks=(1, 16, 16)
    ) as ds:
        label = await ds.labels.create(
            "nuclei", colors={3: "#FF0000", 50: "#00FF00", 999: "#0000FF"}
        )
        await label.write(lab, pyramid=True)
        await label.aclose()
        assert await ds.labels.relabel_sequential("nuclei", order="sorted") == 4
        async with ds.labels.open("nuclei") as out:
            got = await out.read()
            image_label = out.metadata.ome.image_label
            assert image_label is not None
            colors = {c.label_value: c.rgba for c in image_label.colors or ()}
    want = np.zeros_like(lab)
    for new, old in enumerate([3, 7, 50, 1000], start=1):
        want[lab == old] = new
    np.testing.assert_array_equal(got, want)
    # 3 -> 1 and 50 -> 3 keep their colors; 999 (no pixel) is dropped; 7 and 1000 had none
    assert colors[1] == [255, 0, 0, 255] and colors[3] == [0, 255, 0, 255]
    assert 999 not in colors


async def test_delete_and_relabel_on_s3(s3_server: S3Server) -> None:
    url = s3_server.fresh_url() + "/img.zarr"
    options = s3_server.options()
    async with ngio_async.create_async(
        url, shape=(3, 32, 40), dtype="uint8", axes="zyx", chunks=(1, 16, 16), **options
    ) as ds:
        for name in ("nuclei", "cells"):
            label = await ds.labels.create(name)
            await label.write(_labels(), pyramid=True)
            await label.aclose()
    async with ngio_async.open_async(url, mode="r+", **options) as ds:
        assert await ds.labels.relabel_sequential("nuclei") == 4
        await ds.labels.delete("cells")
        assert await ds.labels.names() == ["nuclei"]
        assert await ds.store.list_prefix("labels/cells") == []
        async with ds.labels.open("nuclei") as lab:
            assert np.unique(await lab.read()).tolist() == [0, 1, 2, 3, 4]


async def test_delete_drops_the_label_from_consolidated_metadata(tmp_path: Path) -> None:
    """zarr-python trusts consolidated metadata: after the delete it no longer finds the
    label's arrays there."""
    import zarr

    _image(tmp_path / "a.zarr", "0.5")
    zarr.consolidate_metadata(str(tmp_path / "a.zarr"))
    async with ngio_async.open_async(tmp_path / "a.zarr", mode="r+") as ds:
        await ds.labels.delete("cells")
    group = zarr.open_group(str(tmp_path / "a.zarr"), mode="r")
    assert group.metadata.consolidated_metadata is not None
    kept = set(group.metadata.consolidated_metadata.flattened_metadata)
    assert "labels/nuclei/0" in kept
    assert not any(k.startswith("labels/cells") for k in kept)
    ome: Any = group["labels"].attrs["ome"]
    assert ome["labels"] == ["nuclei", "spare"]


def test_blocking_delete_and_relabel(tmp_path: Path) -> None:
    _image(tmp_path / "a.zarr", "0.4")
    with ngio_async.open(tmp_path / "a.zarr") as ds, pytest.raises(ReadOnlyError, match="'n"):
        ds.labels.relabel_sequential("nuclei")
    with ngio_async.open(tmp_path / "a.zarr", mode="r+") as ds:
        assert ds.labels.relabel_sequential("nuclei", order="sorted") == 4
        ds.labels.delete("spare")
        assert ds.labels.names() == ["nuclei", "cells"]
        with ds.labels.open("nuclei") as lab:
            assert np.unique(lab.read()).tolist() == [0, 1, 2, 3, 4]


async def test_ngff06_labels_are_refused_before_any_write(tmp_path: Path) -> None:
    """NGFF 0.6 is read, not written: delete, relabel and an axis rename are refused before
    anything is written (the level arrays and the listing stay as they were)."""
    import json

    import zarr
    from corpus_files import CORPUS

    from ngio_async import UnsupportedError

    def write(path: Path, name: str, shape: tuple[int, ...], dtype: str) -> None:
        doc = json.loads((CORPUS / "0.6rc0" / name).read_text())
        attrs = doc.get("attributes", doc)
        group = zarr.open_group(str(path), mode="w", zarr_format=3)
        group.attrs.update(attrs)
        ms = attrs["ome"]["multiscales"][0]
        names = [a["name"] for a in ms["coordinateSystems"][-1]["axes"]]
        arr = group.create_array(
            ms["datasets"][0]["path"], shape=shape, dtype=dtype, dimension_names=names
        )
        arr[...] = np.arange(int(np.prod(shape))).reshape(shape) % 3

    path = tmp_path / "img06.zarr"
    write(path, "image/valid/example-multiscales_reference_to_label.json", (4, 8, 8), "uint16")
    zarr.open_group(str(path / "labels"), mode="w", zarr_format=3).attrs.update(
        {"ome": {"version": "0.6rc0", "labels": ["cells"]}}
    )
    label = "zarr_json/valid/example-label-colors_properties.json"
    write(path / "labels" / "cells", label, (4, 8, 8), "uint8")
    before = {p: p.read_bytes() for p in path.rglob("*") if p.is_file()}
    async with ngio_async.open_async(path, mode="r+") as ds:
        with pytest.raises(UnsupportedError, match=r"NGFF 0\.6rc0"):
            await ds.labels.delete("cells")
        with pytest.raises(UnsupportedError, match=r"NGFF 0\.6rc0"):
            await ds.labels.relabel_sequential("cells")
        with pytest.raises(UnsupportedError, match=r"NGFF 0\.6rc0"):
            await ds.set_axes_names(["a", "b", "c"])
    assert {p: p.read_bytes() for p in path.rglob("*") if p.is_file()} == before


async def test_relabel_of_a_sharded_label_matches_ngio(tmp_path: Path) -> None:
    """ngio numbers over the shard grid (its write units), so does relabel_sequential: 60
    objects in shards of 2x2 chunks, numbered alike."""
    import ngio
    import zarr

    rng = np.random.default_rng(3)
    lab = np.zeros((2, 64, 64), np.uint32)
    for _ in range(60):
        z, (y, x) = rng.integers(0, 2), rng.integers(0, 58, 2)
        lab[z, y : y + 6, x : x + 6] = rng.integers(1, 10**6)
    c: Any = ngio.create_ome_zarr_from_array(
        str(tmp_path / "a.zarr"),
        np.zeros((2, 64, 64), np.uint8),
        pixelsize=0.5,
        axes_names="zyx",
        levels=2,
        chunks=(1, 16, 16),
        shards=(1, 32, 32),
        ngff_version="0.5",
    )
    label = c.derive_label("n")
    label.set_array(lab)
    label.consolidate()
    shutil.copytree(tmp_path / "a.zarr", tmp_path / "b.zarr")
    count = (
        ngio.open_ome_zarr_container(str(tmp_path / "a.zarr")).get_label("n").relabel_sequential()
    )
    async with ngio_async.open_async(tmp_path / "b.zarr", mode="r+") as ds:
        assert await ds.labels.relabel_sequential("n") == count
    theirs = zarr.open_array(str(tmp_path / "a.zarr" / "labels" / "n" / "0"))
    assert theirs.shards == (1, 32, 32)
    mine = zarr.open_array(str(tmp_path / "b.zarr" / "labels" / "n" / "0"))
    np.testing.assert_array_equal(mine[...], theirs[...])
