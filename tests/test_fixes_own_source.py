"""``create_like(ds, <where ds is>, overwrite=True)`` deleted the open source before the copy
existed (its pixels lost); it is refused now, before any I/O, however the place is spelled,
and also above or inside the source. ``convert`` refuses the same places."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server


def _image(path: Path) -> np.ndarray:
    data = np.arange(2 * 32 * 32, dtype="uint16").reshape(2, 32, 32)
    with ngio_async.create(path, shape=data.shape, dtype="uint16", axes="cyx", levels=1) as ds:
        ds.write(data)
    return data


def _files(path: Path) -> list[tuple[str, int]]:
    return sorted(
        (os.path.join(d, f), os.stat(os.path.join(d, f)).st_mtime_ns)
        for d, _, fs in os.walk(path)
        for f in fs
    )


@pytest.mark.parametrize(
    "spelling", ["same", "slash", "file", "dotdot", "above", "inside", "path-option"]
)
def test_create_like_over_its_own_source_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spelling: str
) -> None:
    src = tmp_path / "a" / "img.ome.zarr"
    data = _image(src)
    monkeypatch.chdir(tmp_path)
    dst, options = {
        "same": (str(src), {}),
        "slash": (str(src) + "/", {}),
        "file": (src.as_uri(), {}),
        "dotdot": ("./a/../a/img.ome.zarr", {}),
        "above": (str(tmp_path / "a"), {}),
        "inside": (str(src / "labels" / "x"), {}),
        "path-option": (str(tmp_path / "a"), {"path": "img.ome.zarr"}),
    }[spelling]
    before = _files(tmp_path)
    with ngio_async.open(str(src)) as ds:
        with pytest.raises(ValueError, match="would delete the source") as info:
            ngio_async.create_like(ds, dst, overwrite=True, **options)
        assert dst in str(info.value)  # names the URL given
        np.testing.assert_array_equal(np.asarray(ds), data)
    assert _files(tmp_path) == before  # nothing deleted, rewritten or created


async def test_create_like_async_over_its_own_source_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "img.ome.zarr"
    data = _image(src)
    async with ngio_async.open_async(src) as ds:
        with pytest.raises(ValueError, match="is the source"):
            ngio_async.create_like_async(ds, f"file://{src}/", overwrite=True)
        np.testing.assert_array_equal(await ds.read(), data)
        # beside it, or without overwrite (refused as an existing node), nothing is lost
        async with ngio_async.create_like_async(ds, tmp_path / "b.zarr", overwrite=True) as b:
            assert b.shape == ds.shape
        with pytest.raises(ngio_async.ExistsError):
            await ngio_async.create_like_async(ds, src)
        np.testing.assert_array_equal(await ds.read(), data)


async def test_create_like_over_its_own_source_on_s3_is_refused(s3_server: S3Server) -> None:
    url = s3_server.fresh_url() + "/img.ome.zarr"
    options = s3_server.options()
    data = np.arange(32 * 32, dtype="uint8").reshape(32, 32)
    async with ngio_async.create_async(url, shape=(32, 32), dtype="uint8", **options) as ds:
        await ds.write(data)
    async with ngio_async.open_async(url, **options) as ds:
        for dst in (url + "/", url.rsplit("/", 1)[0], url.replace("/img.", "/./img.")):
            with pytest.raises(ValueError, match="would delete the source"):
                ngio_async.create_like_async(ds, dst, overwrite=True, **options)
        np.testing.assert_array_equal(await ds.read(), data)


def test_a_label_copy_over_itself_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "img.ome.zarr"
    _image(src)
    with ngio_async.open(src, mode="r+") as ds:
        with ds.labels.create("cells", dtype="uint8") as lab:
            lab.write(np.full((32, 32), 3, "uint8"))
        with pytest.raises(ValueError, match="is the source"):
            ngio_async.create_like(ds.labels["cells"], src / "labels" / "cells", overwrite=True)
        assert (np.asarray(ds.labels["cells"]) == 3).all()


@pytest.mark.parametrize("spelling", ["slash", "file", "dotdot", "path-option"])
def test_convert_over_its_own_source_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spelling: str
) -> None:
    src = tmp_path / "a" / "img.ome.zarr"
    data = _image(src)
    monkeypatch.chdir(tmp_path)
    dst, options = {
        "slash": (str(src) + "/", None),
        "file": (src.as_uri(), None),
        "dotdot": ("./a/../a/img.ome.zarr", None),
        "path-option": (str(tmp_path / "a"), {"path": "img.ome.zarr"}),
    }[spelling]
    before = _files(tmp_path)
    with pytest.raises(ValueError, match="destroy the source"):
        ngio_async.convert_sync(str(src), dst, overwrite=True, dst_options=options)
    assert _files(tmp_path) == before
    with ngio_async.open(src) as ds:
        np.testing.assert_array_equal(np.asarray(ds), data)


@pytest.mark.parametrize("spelling", ["slash", "file", "inside"])
def test_convert_of_a_plate_over_itself_is_refused(tmp_path: Path, spelling: str) -> None:
    plate_path = tmp_path / "plate.zarr"
    data = np.arange(32 * 32, dtype="uint8").reshape(32, 32)
    with (
        ngio_async.create_plate(plate_path, rows=["A"], columns=["1"]) as plate,
        plate.add_image("A", "1", shape=(32, 32), dtype="uint8", axes="yx") as field,
    ):
        field.write(data)
    dst = {
        "slash": str(plate_path) + "/",
        "file": plate_path.as_uri(),
        "inside": str(plate_path / "A" / "1" / "copy"),
    }[spelling]
    before = _files(tmp_path)
    with pytest.raises(ValueError, match="destroy the source"):
        ngio_async.convert_sync(str(plate_path), dst, overwrite=True)
    assert _files(tmp_path) == before
    with ngio_async.open_plate(plate_path) as plate, plate.image("A", "1") as field:
        np.testing.assert_array_equal(np.asarray(field), data)


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../..", "/"])
def test_labels_create_never_reaches_the_image_itself(tmp_path: Path, name: str) -> None:
    """A label image always goes below the image's labels/: a name that would lead elsewhere
    (the image itself, above it) is refused before anything is deleted."""
    src = tmp_path / "img.ome.zarr"
    data = _image(src)
    before = _files(tmp_path)
    with ngio_async.open(src, mode="r+") as ds:
        with pytest.raises(ValueError, match="invalid label name"):
            ds.labels.create(name, overwrite=True)
        np.testing.assert_array_equal(np.asarray(ds), data)
    assert _files(tmp_path) == before
