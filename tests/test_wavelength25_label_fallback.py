"""channel_index(wavelength_id=...) on channels written without a wavelength_id matches their
labels, as ngio 1.1.3 reads such channels (its wavelength_id defaults to the label), so a
Fractal-style selection finds the same channel in both; nothing is written by the lookup."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import ngio
import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path


def _files(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_a_channel_without_wavelength_id_answers_to_its_label(
    tmp_path: Path, version: str
) -> None:
    url = str(tmp_path / "img.zarr")
    channels: list[str | dict[str, str]] = [
        "DAPI",
        {"label": "GFP", "wavelength_id": "A01_C02"},
        "RFP",
    ]
    async with ngio_async.create_async(
        url,
        shape=(3, 16, 16),
        dtype="uint8",
        axes="cyx",
        levels=1,
        channels=channels,
        ngff_version=version,  # type: ignore[arg-type]
    ) as ds:
        await ds.write(np.arange(3 * 256, dtype="uint8").reshape(3, 16, 16) % 251)
    before = _files(tmp_path)
    theirs = ngio.open_ome_zarr_container(url)
    async with await ngio_async.open_async(url) as ds:
        for wid in ("DAPI", "A01_C02", "RFP"):
            assert ds.channel_index(wavelength_id=wid) == theirs.get_channel_idx(wavelength_id=wid)
        assert ds.channel_index(wavelength_id="RFP") == 2
        with pytest.raises(KeyError, match="wavelength_id 'GFP' names no channel"):
            ds.channel_index(wavelength_id="GFP")  # GFP's wavelength_id is A01_C02
    after = _files(tmp_path)
    assert after == before
    doc = tmp_path / "img.zarr" / ("zarr.json" if version == "0.5" else ".zattrs")
    text = json.loads(doc.read_text())
    ome = text["attributes"]["ome"] if version == "0.5" else text
    assert [c.get("wavelength_id") for c in ome["omero"]["channels"]] == [None, "A01_C02", None]
