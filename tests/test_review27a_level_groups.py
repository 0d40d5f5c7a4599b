"""The groups around nested level paths (``scale2`` of ``scale2/image``) that build_pyramid
writes: a group that is there already keeps its document (its attributes), in the zarr
format of the image (v2 ``.zgroup`` for 0.4, v3 ``zarr.json`` for 0.5); a pyramid of plain
level paths (``0, 1, 2``) costs no request more than it did (no group looked for)."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

import numpy as np
import pytest
import zarr

import ngio_async
from ngio_async.stores import open_store
from ngio_async.stores._instrumented import InstrumentedStore

if TYPE_CHECKING:
    from pathlib import Path


def nested_image(path: Path, version: str) -> None:
    """A two-level ``yx`` image with ngff-zarr's level paths ``scale0/image``, ``scale1/image``
    (each in its group), and a group ``scale2`` holding user attributes."""
    data = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    kw = {"shape": data.shape, "dtype": "uint16", "axes": "yx", "levels": 2}
    with ngio_async.create(path, ngff_version=version, **kw) as ds:
        ds.write(data, pyramid=True)
    v2 = version == "0.4"
    doc_path = path / (".zattrs" if v2 else "zarr.json")
    doc = json.loads(doc_path.read_text())
    datasets = (doc if v2 else doc["attributes"]["ome"])["multiscales"][0]["datasets"]
    for i, entry in enumerate(datasets):
        (path / f"scale{i}").mkdir()
        os.rename(path / str(i), path / f"scale{i}" / "image")
        entry["path"] = f"scale{i}/image"
    for i, attrs in enumerate([{}, {}, {"keep": 1}]):
        (path / f"scale{i}").mkdir(exist_ok=True)
        if v2:
            (path / f"scale{i}" / ".zgroup").write_text('{"zarr_format": 2}')
            (path / f"scale{i}" / ".zattrs").write_text(json.dumps(attrs))
        else:
            group = {"zarr_format": 3, "node_type": "group", "attributes": attrs}
            (path / f"scale{i}" / "zarr.json").write_text(json.dumps(group))
    doc_path.write_text(json.dumps(doc))


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_an_existing_level_group_keeps_its_attributes(tmp_path: Path, version: str) -> None:
    path = tmp_path / "img.ome.zarr"
    nested_image(path, version)
    with ngio_async.open(path, mode="r+") as ds:
        ds.build_pyramid(levels=4)
        assert ds.metadata.paths[2:] == ("scale2/image", "scale3/image")
        new = [ds.levels[i][...] for i in (2, 3)]
    group = zarr.open_group(path, mode="r", use_consolidated=False)
    kept, added = group["scale2"], group["scale3"]
    assert isinstance(kept, zarr.Group) and dict(kept.attrs) == {"keep": 1}
    assert isinstance(added, zarr.Group) and dict(added.attrs) == {}
    assert (path / "scale3" / (".zgroup" if version == "0.4" else "zarr.json")).exists()
    assert not (path / "scale3" / ("zarr.json" if version == "0.4" else ".zgroup")).exists()
    for key, want in zip(["scale2/image", "scale3/image"], new, strict=True):
        array = group[key]
        assert isinstance(array, zarr.Array)
        np.testing.assert_array_equal(array[...], want)


async def test_plain_level_paths_look_for_no_group(tmp_path: Path) -> None:
    store = InstrumentedStore(open_store(str(tmp_path)))
    kw = {"shape": (64, 64), "dtype": "uint16", "axes": "yx", "levels": 2}
    ds = await ngio_async.create_async(store, path="img", **kw)  # type: ignore[arg-type]
    try:
        store.reset()
        await ds.build_pyramid(levels=4)
        assert ds.metadata.paths == ("0", "1", "2", "3")
        assert store.method_counts["exists"] == 0
        written = {key for (method, key) in store.calls if method == "put"}
        assert "img/2/zarr.json" in written and "img/3/zarr.json" in written
        assert {k for k in written if not k.startswith(("img/2/", "img/3/"))} == {"img/zarr.json"}
    finally:
        await ds.aclose()
