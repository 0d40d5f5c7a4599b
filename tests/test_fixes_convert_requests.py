"""What ``convert`` of an opened OME-Zarr image reads of its source besides the pixels: the
group documents the open read are not read again (the image's own, to mend its ``omero``
block: only when the open had to mend it; the ``labels`` group: once for its listing and its
attributes, it was read twice), and a zarr v2 level's own ``.zattrs`` once, for the levels
copied only."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Literal

import numpy as np
import pytest

import ngio_async
from ngio_async.meta import MetadataWarning
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from pathlib import Path


def _image(path: Path, version: Literal["0.4", "0.5"]) -> None:
    with ngio_async.create(
        path, shape=(2, 64, 64), dtype="uint8", axes="cyx", levels=3, ngff_version=version
    ) as ds:
        ds.write(np.ones((2, 64, 64), "uint8"), pyramid=True)
        ds.labels.create("cells", dtype="uint8").close()


def _metadata_reads(store: InstrumentedStore) -> dict[str, int]:
    """GETs of metadata documents (chunk keys end with a digit), by key."""
    return {
        key: n
        for (method, key), n in store.calls.items()
        if method == "get" and not key.rsplit("/", 1)[-1].isdigit()
    }


@pytest.mark.parametrize("version", ["0.4", "0.5"])
@pytest.mark.parametrize("levels", [None, 2])
async def test_convert_reads_no_metadata_twice(
    tmp_path: Path, version: Literal["0.4", "0.5"], levels: int | None
) -> None:
    _image(tmp_path / "src.zarr", version)
    store = InstrumentedStore(open_store(tmp_path / "src.zarr"))
    async with ngio_async.open_async(store) as ds:
        opened = _metadata_reads(store)
        store.reset()
        await ngio_async.convert(ds, tmp_path / "out.zarr", levels=levels)
    reads = _metadata_reads(store)
    assert all(key not in reads for key in opened), reads  # the image's: read by the open
    copied = levels or 3
    if version == "0.4":
        expected = {"labels/.zattrs": 1, "labels/cells/.zattrs": 1}
        for i in range(3):
            expected[f"labels/cells/{i}/.zarray"] = 1  # the label's open
        for i in range(copied):  # each level's own attributes, once: v2 keeps them apart
            expected[f"{i}/.zattrs"] = 1
            expected[f"labels/cells/{i}/.zattrs"] = 1
    else:
        expected = {"labels/zarr.json": 1, "labels/cells/zarr.json": 1}
        for i in range(3):
            expected[f"labels/cells/{i}/zarr.json"] = 1
    assert reads == expected
    await store.aclose()


def test_an_omero_block_the_open_mended_is_still_carried_mended(tmp_path: Path) -> None:
    """The open read the image without the broken block (a warning): convert reads the stored
    document again and carries the block mended, as before."""
    src = tmp_path / "src.zarr"
    ngio_async.create(
        src, shape=(2, 16, 16), dtype="uint8", axes="cyx", levels=1, channels=["DAPI", "GFP"]
    ).close()
    doc = json.loads((src / "zarr.json").read_text())
    doc["attributes"]["ome"]["omero"]["channels"][1]["window"] = {"start": 1, "end": 9}
    (src / "zarr.json").write_text(json.dumps(doc))
    with pytest.warns(MetadataWarning) as seen:
        ngio_async.convert_sync(str(src), str(tmp_path / "out.zarr"))
    assert any("carried mended" in str(w.message) for w in seen)
    with ngio_async.open(tmp_path / "out.zarr") as out:
        assert [c.label for c in out.metadata.channels] == ["DAPI", "GFP"]
