"""``make demo`` writes OME-Zarr that zarr-python reads and the official schemas accept."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import pytest
import zarr
from test_meta import schema

from ngio_async import demo

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.anyio
async def test_demo_writes_valid_ome_zarr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await demo.main(tmp_path)
    out = capsys.readouterr().out
    assert "NGFF 0.5 image" in out and "NGFF 0.4 image" in out
    attrs5 = json.loads((tmp_path / "demo-0.5.ome.zarr" / "zarr.json").read_text())["attributes"]
    schema("0.5", "image").validate(attrs5)
    attrs4 = json.loads((tmp_path / "demo-0.4.ome.zarr" / ".zattrs").read_text())
    schema("0.4", "image").validate(attrs4)
    for name in ("demo-0.5.ome.zarr", "demo-0.4.ome.zarr"):
        group = zarr.open_group(tmp_path / name, mode="r")
        level0, level2 = group["0"], group["2"]
        assert isinstance(level0, zarr.Array) and isinstance(level2, zarr.Array)
        assert level0.shape == demo.SHAPE
        np.testing.assert_array_equal(level2[:], level0[:][:, :, ::4, ::4])
