"""Channels by wavelength_id, as Fractal tasks select them through ngio 1.1.3
(``get_channel_idx(wavelength_id=...)``), on an image ngio writes (NGFF 0.4 and 0.5)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_channels_by_wavelength_id_as_ngio(tmp_path: Path, version: str) -> None:
    import ngio
    from ngio.ome_zarr_meta.ngio_specs import ChannelsMeta

    data = np.arange(3 * 8 * 8, dtype=np.uint16).reshape(3, 8, 8)
    c: Any = ngio.create_ome_zarr_from_array(
        str(tmp_path / "img.zarr"),
        data,
        pixelsize=0.5,
        levels=1,
        axes_names="cyx",
        ngff_version=version,  # type: ignore[arg-type]
    )
    ids = ["A01_C01", "A02_C02", "A01_C01"]  # the first one twice
    c.set_channel_meta(ChannelsMeta.default_init(labels=["DAPI", "GFP", "RFP"], wavelength_id=ids))
    image = c.get_image()
    async with ngio_async.open_async(tmp_path / "img.zarr") as ds:
        assert ds.channel_index(wavelength_id="A02_C02") == image.get_channel_idx(
            wavelength_id="A02_C02"
        )
        assert ds.channel_index("RFP") == image.get_channel_idx(channel_label="RFP") == 2
        got = await ds.read(c=ds.channel_index(wavelength_id="A02_C02"))
        np.testing.assert_array_equal(got, data[1])
        with pytest.raises(KeyError, match=r"'A01_C01' is ambiguous: channels \[0, 2\]"):
            ds.channel_index(wavelength_id="A01_C01")
        with pytest.raises(KeyError, match=r"'B' names no channel .*1: 'GFP' \('A02_C02'\)"):
            ds.channel_index(wavelength_id="B")
        with pytest.raises(TypeError, match="exactly one"):
            ds.channel_index("DAPI", wavelength_id="A02_C02")
    with ngio_async.open(tmp_path / "img.zarr") as sds:
        assert sds.channel_index(wavelength_id="A02_C02") == 1


async def test_channel_index_by_label_checks_the_array(tmp_path: Path) -> None:
    """An omero block listing more channels than the array has: a label past the end is an
    IndexError naming it, as ``read(c=label)`` gives, not an index past the array."""
    import json

    data = np.arange(2 * 8 * 8, dtype=np.uint16).reshape(2, 8, 8)
    async with ngio_async.create_async(
        tmp_path / "img.zarr",
        shape=data.shape,
        dtype="uint16",
        axes="cyx",
        channels=["DAPI", "GFP"],
    ) as ds:
        await ds.write(data)
    doc_path = tmp_path / "img.zarr" / "zarr.json"
    doc = json.loads(doc_path.read_text())
    channels = doc["attributes"]["ome"]["omero"]["channels"]
    channels.append({**channels[1], "label": "RFP"})
    doc_path.write_text(json.dumps(doc))
    async with ngio_async.open_async(tmp_path / "img.zarr") as ds:
        assert ds.channel_index("GFP") == 1
        with pytest.raises(IndexError, match=r"'RFP' is channel 2 .* has 2 channels"):
            ds.channel_index("RFP")
        with pytest.raises(IndexError, match=r"'RFP' is channel 2"):
            await ds.read(c="RFP")
