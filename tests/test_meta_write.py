"""Metadata writes keep peer tools' consolidated metadata up to date.

ngff-zarr and zarr-python's ``consolidate_metadata`` keep a copy of every metadata document in
``.zmetadata`` (zarr v2) or the root ``zarr.json`` (v3); zarr-python's readers trust it alone.
Adding levels, editing scales or creating an image below such a group must edit that copy.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async
from ngio_async.meta import MetadataWarning

if TYPE_CHECKING:
    from pathlib import Path

zarr = pytest.importorskip("zarr")
nz = pytest.importorskip("ngff_zarr")

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:zarr", "ignore::FutureWarning")


def _ngff_zarr_image(path: Path, version: str) -> None:
    img = nz.to_ngff_image(
        np.arange(64 * 64, dtype="uint16").reshape(64, 64),
        dims=["y", "x"],
        scale={"y": 0.5, "x": 0.5},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nz.to_ngff_zarr(str(path), nz.to_multiscales(img, scale_factors=[2]), version=version)


def _ome(group: Any) -> dict[str, Any]:
    attrs = dict(group.attrs)
    return attrs.get("ome", attrs)  # type: ignore[no-any-return]


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_consolidated_ngff_zarr_sees_new_levels_and_scale(tmp_path: Path, version: str) -> None:
    path = tmp_path / "img.ome.zarr"
    _ngff_zarr_image(path, version)
    with ngio_async.open(path, mode="r+") as ds:
        ds.build_pyramid(levels=3)
        ds.set_scale(2.0)
        expected = ds.levels[2].shape
    group = zarr.open_consolidated(str(path), zarr_format=2 if version == "0.4" else 3)
    assert group["scale2/image"].shape == expected
    datasets = _ome(group)["multiscales"][0]["datasets"]
    assert [d["path"] for d in datasets] == ["scale0/image", "scale1/image", "scale2/image"]
    assert datasets[0]["coordinateTransformations"][0]["scale"] == [2.0, 2.0]
    ms = nz.from_ngff_zarr(str(path))
    assert len(ms.images) == 3 and ms.images[0].scale == {"y": 2.0, "x": 2.0}


@pytest.mark.parametrize("fmt", [2, 3])
def test_consolidated_above_image_gets_its_documents(tmp_path: Path, fmt: int) -> None:
    """An image created inside a consolidated group (overwritten with fewer levels) is listed
    by the copy, with the old levels' entries gone."""
    root = tmp_path / "root.zarr"
    outer = zarr.open_group(str(root), mode="w", zarr_format=fmt)
    outer.create_group("well")
    version = "0.4" if fmt == 2 else "0.5"
    opts: dict[str, Any] = {"dtype": "uint8", "axes": "cyx", "ngff_version": version}
    with ngio_async.create(root, path="well/img", shape=(1, 64, 64), levels=3, **opts):
        pass
    zarr.consolidate_metadata(str(root))
    with ngio_async.create(
        root, path="well/img", shape=(1, 32, 32), levels=1, overwrite=True, **opts
    ) as ds:
        ds.set_channels(labels=["DAPI"])
    group = zarr.open_consolidated(str(root), zarr_format=fmt)
    members = sorted(k for k, _ in group.members(max_depth=None))
    assert members == ["well", "well/img", "well/img/0"]
    assert group["well/img/0"].shape == (1, 32, 32)
    assert _ome(group["well/img"])["omero"]["channels"][0]["label"] == "DAPI"


def test_consolidated_copy_of_unknown_kind_is_removed_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "img.ome.zarr"
    with ngio_async.create(path, shape=(64, 64), dtype="uint8", axes="yx", levels=1):
        pass
    doc = json.loads((path / "zarr.json").read_text())
    doc["consolidated_metadata"] = {"kind": "remote", "must_understand": False}
    (path / "zarr.json").write_text(json.dumps(doc))
    with ngio_async.open(path, mode="r+") as ds, pytest.warns(MetadataWarning, match="removed"):
        ds.build_pyramid(levels=2)
    assert "consolidated_metadata" not in json.loads((path / "zarr.json").read_text())
    assert zarr.open_group(str(path), mode="r")["1"].shape == (32, 32)


def _break_omero(path: Path, version: str) -> dict[str, Any]:
    """Give the image an omero block that breaks a rule; return the block."""
    bad = {"channels": [{"color": "FF0000", "window": {"start": 0}}], "mine": 1}  # no end
    name = ".zattrs" if version == "0.4" else "zarr.json"
    doc = json.loads((path / name).read_text())
    (doc if version == "0.4" else doc["attributes"]["ome"])["omero"] = bad
    (path / name).write_text(json.dumps(doc))
    return bad


def _omero(path: Path, version: str) -> Any:
    if version == "0.4":
        return json.loads((path / ".zattrs").read_text())["omero"]
    return json.loads((path / "zarr.json").read_text())["attributes"]["ome"]["omero"]


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_set_channels_replaces_an_invalid_omero_block(tmp_path: Path, version: str) -> None:
    path = tmp_path / "img.ome.zarr"
    opts: dict[str, Any] = {"dtype": "uint8", "axes": "cyx", "ngff_version": version}
    with ngio_async.create(path, shape=(2, 32, 32), channels=["a", "b"], **opts):
        pass
    bad = _break_omero(path, version)
    with pytest.warns(MetadataWarning, match="without its 'omero'"):
        ds = ngio_async.open(path, mode="r+")
    with ds:
        ds.set_scale(2.0)  # not a channel edit: the block is kept as it is
        assert _omero(path, version) == bad
        with pytest.warns(MetadataWarning, match="replaced the invalid 'omero' block"):
            ds.set_channels(colors=["FF0000", "00FF00"])
        assert [c.color for c in ds.metadata.channels] == ["FF0000", "00FF00"]
    with ngio_async.open(path) as again:  # opens without a warning
        assert [c.color for c in again.metadata.channels] == ["FF0000", "00FF00"]
        assert again.metadata.spatial_calibration[0]["x"].scale == 2.0


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_created_images_pass_the_strict_profile(tmp_path: Path, version: str) -> None:
    """name (the directory's), type and metadata (how levels are computed) are written: the
    official strict schema, ``validate --strict`` and ome-zarr-models accept the image."""
    from test_meta import schema

    from ngio_async.cli import main
    from ngio_async.meta import validate

    path = tmp_path / "cells.ome.zarr"
    opts: dict[str, Any] = {"dtype": "uint8", "axes": "cyx", "ngff_version": version}
    with ngio_async.create(path, shape=(1, 64, 64), channels=["DAPI"], levels=2, **opts) as ds:
        ds.write(np.ones((1, 64, 64), "uint8"), pyramid=True)
    name = ".zattrs" if version == "0.4" else "zarr.json"
    doc = json.loads((path / name).read_text())
    attrs = doc if version == "0.4" else doc["attributes"]
    schema(version, "strict_image").validate(attrs)
    ms = validate(attrs, strict=True).multiscales[0]  # type: ignore[index]
    assert (ms.name, ms.type) == ("cells", "mean")
    assert ms.metadata is not None and ms.metadata["kwargs"] == {"method": "mean"}
    assert main(["validate", "--strict", str(path)]) == 0
    # ome-zarr-models in a fresh interpreter (importing ngio makes it refuse v2 arrays)
    pytest.importorskip("ome_zarr_models")
    code = (
        "import sys, zarr\n"
        f"from ome_zarr_models.v0{version[-1]}.image import Image\n"
        "print(Image.from_zarr(zarr.open_group(sys.argv[1], mode='r')).ome_attributes.multiscales[0].name)"
    )
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().split() == ["cells"]
    with ngio_async.create(tmp_path / "a.zarr", path="B/2/0", shape=(8, 8), dtype="uint8") as ds:
        assert ds.metadata.name == "0"


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_consolidated_group_new_to_the_copy_brings_its_nodes(
    tmp_path: Path, version: str
) -> None:
    """An image written below a group not stored yet (a first label image before the
    ``labels`` group) is left out of the copy (zarr-python cannot read a node whose parent it
    lacks) until the group is written, which brings everything stored below it."""
    from ngio_async.images._consolidated import update_consolidated

    path = tmp_path / "img.ome.zarr"
    opts: dict[str, Any] = {"dtype": "uint8", "axes": "yx", "ngff_version": version}
    with ngio_async.create(path, shape=(64, 64), levels=2, **opts):
        pass
    fmt = 2 if version == "0.4" else 3
    zarr.consolidate_metadata(str(path), zarr_format=fmt)
    async with ngio_async.open_async(path) as ds:
        async with ngio_async.create_async(ds.store, path="extra/img", shape=(8, 8), **opts):
            pass
        group = zarr.open_consolidated(str(path), zarr_format=fmt)  # readable, without them
        assert sorted(k for k, _ in group.members(max_depth=None)) == ["0", "1"]
        if version == "0.4":
            docs = [("extra/.zgroup", b'{"zarr_format":2}'), ("extra/.zattrs", b'{"a":1}')]
        else:
            docs = [
                ("extra/zarr.json", b'{"zarr_format":3,"node_type":"group","attributes":{"a":1}}')
            ]
        for key, data in docs:
            (path / key).write_bytes(data)
        await update_consolidated(ds.store, docs)
    group = zarr.open_consolidated(str(path), zarr_format=fmt)
    members = sorted(k for k, _ in group.members(max_depth=None))
    assert members == ["0", "1", "extra", "extra/img", "extra/img/0"]
    assert dict(group["extra"].attrs) == {"a": 1}
    assert _ome(group["extra/img"])["multiscales"][0]["name"] == "img"


async def test_edits_warn_about_what_they_bring_in_once(tmp_path: Path) -> None:
    """A unit outside UDUNITS-2 warns once per axis when set, and not again on unrelated
    edits (the document was validated twice per edit: before and after, each warning)."""
    path = tmp_path / "img.ome.zarr"
    async with ngio_async.create_async(path, shape=(2, 8, 8), dtype="uint8", axes="cyx") as ds:
        with pytest.warns(MetadataWarning) as record:
            await ds.set_scale(units="furlong")
        assert sorted(str(w.message).split("`")[1] for w in record) == [
            "$.ome.multiscales[0].axes[1].unit",
            "$.ome.multiscales[0].axes[2].unit",
        ]
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            await ds.set_channels(labels=["a", "b"])
            await ds.set_scale(2.0)
        assert ds.metadata.axes[1].unit == "furlong"


async def test_metadata_writes_where_missing_keys_are_denied(tmp_path: Path) -> None:
    """Looking for consolidated copies (``.zmetadata`` of every parent) on a store that
    answers 403 for a missing key (S3 without s3:ListBucket) reads as 'no copy'."""
    from ngio_async import PermissionDeniedError
    from ngio_async.stores import InstrumentedStore, open_store

    def deny(method: str, key: str) -> Exception | None:
        if method == "get" and not (tmp_path / key).exists():
            return PermissionDeniedError(f"access denied (HTTP 403) to {key!r}", key=key)
        return None

    store = InstrumentedStore(open_store(str(tmp_path)), fail=deny)
    opts: dict[str, Any] = {"dtype": "uint8", "axes": "yx", "ngff_version": "0.4"}
    async with ngio_async.create_async(store, path="a/img", shape=(64, 64), levels=1, **opts) as ds:
        await ds.write(np.full((64, 64), 3, "uint8"))
        await ds.set_scale(2.0)
        await ds.build_pyramid(levels=2)
    assert any(m == "get" and k.endswith(".zmetadata") for m, k in store.calls)
    await store.aclose()
    with ngio_async.open(tmp_path / "a" / "img") as back:
        assert back.metadata.paths == ("0", "1") and back.levels[1].scale == (4.0, 4.0)
