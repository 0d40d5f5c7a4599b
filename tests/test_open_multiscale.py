"""A group of several multiscales: ``open_async(url, multiscale=name_or_index)`` picks one (the
first was always used); "not an image" names the group without a trailing slash and says what
to open instead, for API and command-line users alike."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import pytest

import ngio_async
from ngio_async import UnsupportedError

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio


def _two_multiscales(tmp_path: Path, version: str) -> str:
    """An image whose group lists a second multiscale ``small`` over level ``1`` only."""
    url = str(tmp_path / "img.ome.zarr")
    with ngio_async.create(
        url, shape=(64, 32), dtype="uint8", axes="yx", levels=2, ngff_version=version
    ) as ds:
        ds.write(np.arange(64 * 32, dtype=np.uint16).reshape(64, 32) % 251, pyramid=True)
    key = tmp_path / "img.ome.zarr" / (".zattrs" if version == "0.4" else "zarr.json")
    doc = json.loads(key.read_text())
    attrs = doc if version == "0.4" else doc["attributes"]["ome"]
    first = attrs["multiscales"][0]
    second = {**first, "name": "small", "datasets": [first["datasets"][1]]}
    attrs["multiscales"].append(second)
    key.write_text(json.dumps(doc))
    return url


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_pick_a_multiscale(tmp_path: Path, version: str) -> None:
    url = _two_multiscales(tmp_path, version)
    async with ngio_async.open_async(url) as ds:
        assert ds.shape == (64, 32) and len(ds.levels) == 2
        level1 = await ds.levels[1][...]
    for pick in ("small", 1, -1):
        async with ngio_async.open_async(url, multiscale=pick) as ds:
            assert ds.metadata.name == "small" and ds.metadata.index == 1
            assert ds.shape == (32, 16) and len(ds.levels) == 1
            assert np.array_equal(await ds.read(), level1)
            assert ds.levels[0].scale == (2.0, 2.0)


async def test_edits_and_pyramids_on_a_picked_multiscale(tmp_path: Path) -> None:
    url = _two_multiscales(tmp_path, "0.5")
    async with ngio_async.open_async(url, mode="r+") as ds:
        await ds.labels.create("nuclei")
    async with ngio_async.open_async(url, multiscale="small", mode="r+") as ds:
        await ds.set_scale(3.0)  # the picked multiscale's scale, not the first's
        assert ds.levels[0].scale == (3.0, 3.0) and ds.metadata.name == "small"
        with pytest.raises(UnsupportedError, match="first multiscale"):
            await ds.build_pyramid()
        with pytest.raises(UnsupportedError, match="first multiscale"):
            await ds.write(np.zeros((32, 16), "uint8"), pyramid=True)
        with pytest.raises(UnsupportedError, match="first multiscale"):
            await ds.labels.create("cells")  # label images are shaped like the first
    async with ngio_async.open_async(url) as ds:
        assert ds.levels[0].scale == (1.0, 1.0)
    async with ngio_async.open_async(url, multiscale=1) as ds:
        assert ds.levels[0].scale == (3.0, 3.0)
        nuclei = await ds.labels.open("nuclei")  # follows the first multiscale, not this one
        assert nuclei.shape == (64, 32) and nuclei.levels[0].scale == (1.0, 1.0)
        await nuclei.aclose()


async def test_unknown_multiscale_names_those_there_are(tmp_path: Path) -> None:
    url = _two_multiscales(tmp_path, "0.5")
    there = r"\(multiscales: 0 \('img'\), 1 \('small'\)\)"
    with pytest.raises(ValueError, match=rf"no multiscale named 'big' {there}"):
        await ngio_async.open_async(url, multiscale="big")
    with pytest.raises(IndexError, match=rf"no multiscale 2: it has 2 {there}"):
        await ngio_async.open_async(url, multiscale=2)
    with pytest.raises(TypeError, match="index or a name"):
        ngio_async.open_async(url, multiscale=1.0)


def test_not_an_image_says_what_to_open(tmp_path: Path) -> None:
    root = tmp_path / "plate.ome.zarr"
    with (
        ngio_async.create_plate(str(root), rows=["B"], columns=["3"]) as plate,
        plate.add_image("B", "3", field="f0", shape=(8, 8), dtype="uint8", axes="yx"),
    ):
        pass
    for url in (str(root), f"{root}/", f"file://{root}/"):
        with pytest.raises(UnsupportedError) as err:
            ngio_async.open(url)
        message = str(err.value)
        assert message.startswith(f"file://{root} is not an image (its NGFF metadata: plate)")
        assert f"e.g. file://{root}/B/3/0" in message and "ngio-async info" in message
        assert "open it with ngio_async.open_plate" not in message
    with pytest.raises(UnsupportedError) as err:
        ngio_async.open(f"{root}/B/3/")
    assert str(err.value).startswith(f"file://{root}/B/3 is not an image")
    assert f"(e.g. file://{root}/B/3/f0)" in str(err.value)


def test_a_labels_group_names_a_label_image(tmp_path: Path) -> None:
    url = str(tmp_path / "img.ome.zarr")
    with ngio_async.create(url, shape=(8, 8), dtype="uint8", axes="yx") as ds:
        ds.labels.create("cells")
    with pytest.raises(UnsupportedError) as err:
        ngio_async.open(f"{url}/labels")
    assert str(err.value) == (
        f"file://{url}/labels is not an image (its NGFF metadata: labels): it lists label "
        f"images, each an image (e.g. file://{url}/labels/cells)"
    )


def test_the_blocking_open_picks_one_and_its_pickles_keep_it(tmp_path: Path) -> None:
    import pickle

    url = _two_multiscales(tmp_path, "0.5")
    with ngio_async.open(url, multiscale="small") as ds:
        assert ds.shape == (32, 16)
        copy = pickle.loads(pickle.dumps(ds))
        assert copy.shape == (32, 16)
        assert np.array_equal(np.asarray(copy), ds[...])
        copy.close()
