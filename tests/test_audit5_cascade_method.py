"""Audit of issue 5: a pyramid written with ``write(..., pyramid="nearest")`` (or ``"mode"``, or
through ``writer(pyramid=...)``) that rewrites the whole of level 0 is described by the
multiscale's ``type`` / ``metadata`` as ``build_pyramid(method=...)`` describes it: the document
kept saying ``mean`` (what ``create`` wrote) over levels made by another method. A write of part
of level 0 leaves the description alone (the other pixels are still the old method's)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio


def multiscale(path: Path, version: str) -> dict[str, Any]:
    if version == "0.5":
        doc = json.loads((path / "zarr.json").read_bytes())["attributes"]["ome"]
    else:
        doc = json.loads((path / ".zattrs").read_bytes())
    return dict(doc["multiscales"][0])


@pytest.mark.parametrize("version", ["0.4", "0.5"])
@pytest.mark.parametrize("how", ["write", "writer"])
async def test_a_whole_level_0_written_with_a_method_is_described_by_it(
    tmp_path: Path, version: Literal["0.4", "0.5"], how: str
) -> None:
    path = tmp_path / "img.ome.zarr"
    data = np.random.default_rng(0).integers(0, 200, (2, 40, 36)).astype("uint8")
    async with ngio_async.create_async(
        path, shape=data.shape, dtype="uint8", axes="cyx", chunks=(1, 8, 8), levels=3,
        ngff_version=version,
    ) as ds:  # fmt: skip
        assert multiscale(path, version)["type"] == "mean"
        await ds.write(data[:, :8, :8], y=slice(0, 8), x=slice(0, 8), pyramid="nearest")
        assert multiscale(path, version)["type"] == "mean"  # part of level 0: unchanged
        if how == "write":
            await ds.write(data, pyramid="nearest")
        else:
            async with ds.writer(pyramid="nearest") as w:
                for y in range(0, 40, 8):
                    for x in range(0, 36, 8):
                        region = (slice(None), slice(y, y + 8), slice(x, x + 8))
                        await w.write((region, data[region]))
        assert (await ds.levels[2][...] == data[:, ::4, ::4]).all()
    ms = multiscale(path, version)
    assert ms["type"] == "nearest"
    assert ms["metadata"]["kwargs"] == {"method": "nearest"}
    async with ngio_async.open_async(path, mode="r+") as ds:
        await ds.build_pyramid(method="mean")  # and back
    assert multiscale(path, version)["type"] == "mean"
