"""Creates ask for no consolidated copy where none can be: a zarr v2 array's directory (a
``.zmetadata`` GET per level of every 0.4 create, in vain); and ``labels.create`` brings the
consolidated copies above up to date once, with its listing (it did so twice)."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Literal

import numpy as np
import pytest
import zarr

import ngio_async
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from pathlib import Path

# requests of create (3 levels) and of labels.create on it, were: 18 / 40 (0.4), 14 / 31 (0.5)
_COUNTS = {"0.4": (15, 30), "0.5": (14, 27)}


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_create_and_labels_create_requests(version: Literal["0.4", "0.5"]) -> None:
    store = InstrumentedStore(open_store("memory://"))
    try:
        async with ngio_async.create_async(
            store, path="img.zarr", shape=(2, 64, 64), dtype="uint8", axes="cyx", levels=3,
            ngff_version=version,
        ) as img:  # fmt: skip
            created = store.total_requests
            in_arrays = [k for m, k in store.calls if k.endswith(".zmetadata") and k.count("/") > 1]
            assert in_arrays == []
            store.reset()
            async with await img.labels.create("cells", dtype="uint8"):
                pass
            assert (created, store.total_requests) == _COUNTS[version]
            assert await img.labels.names() == ["cells"]
    finally:
        await store.aclose()


@pytest.mark.parametrize("version", ["0.4", "0.5"])
@pytest.mark.parametrize("overwrite", [False, True])
def test_labels_create_keeps_the_consolidated_copy_right(
    tmp_path: Path, version: Literal["0.4", "0.5"], overwrite: bool
) -> None:
    path = tmp_path / "img.zarr"
    fmt: Literal[2, 3] = 2 if version == "0.4" else 3
    with ngio_async.create(
        path, shape=(2, 32, 32), dtype="uint8", axes="cyx", levels=2, ngff_version=version
    ) as ds:
        if overwrite:
            ds.labels.create("cells", dtype="uint16").close()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr: v3 consolidated metadata is no spec yet
        zarr.consolidate_metadata(str(path), zarr_format=fmt)
    with (
        ngio_async.open(path, mode="r+") as ds,
        ds.labels.create("cells", dtype="uint8", overwrite=overwrite) as cells,
    ):
        cells.write(np.full((32, 32), 5, "uint8"), pyramid=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        group = zarr.open_consolidated(str(path), zarr_format=fmt)
        label = group["labels/cells/1"]
    assert isinstance(label, zarr.Array)
    assert label.dtype == np.dtype("uint8") and label.shape == (16, 16)
    np.testing.assert_array_equal(label[...], np.full((16, 16), 5, "uint8"))
