"""create(channels=[{"label": ..., "wavelength_id": ...}]) writes each channel's wavelength_id
where ngio 1.1.3 writes it (beside the omero channel's label), so ngio's
get_channel_idx(wavelength_id=...) and Fractal's channel selection find the channels; it was
refused as an unknown key, so a converter could not write the ids Fractal tasks select by.
Kept through set_channels(labels=...) and create_like (NGFF 0.4 and 0.5)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]

IDS = ["A01_C01", "A02_C03"]


def _omero_channels(path: Path) -> list[dict[str, Any]]:
    if (path / "zarr.json").exists():
        attrs = json.loads((path / "zarr.json").read_text())["attributes"]["ome"]
    else:
        attrs = json.loads((path / ".zattrs").read_text())
    return list(attrs["omero"]["channels"])


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_wavelength_ids_are_written_where_ngio_writes_them(
    tmp_path: Path, version: str
) -> None:
    import ngio
    from ngio.ome_zarr_meta.ngio_specs import Channel

    ngio.create_empty_ome_zarr(
        str(tmp_path / "theirs.zarr"),
        shape=(2, 16, 16),
        pixelsize=0.5,
        axes_names="cyx",
        levels=1,
        ngff_version=version,  # type: ignore[arg-type]
        channels_meta=[
            Channel.default_init(label=lab, wavelength_id=w)
            for lab, w in zip(["DAPI", "GFP"], IDS, strict=True)
        ],
    )
    channels: list[Any] = [
        {"label": "DAPI", "wavelength_id": IDS[0]},
        {"label": "GFP", "wavelength_id": np.str_(IDS[1])},
    ]
    async with ngio_async.create_async(
        tmp_path / "mine.zarr",
        shape=(2, 16, 16),
        dtype="uint16",
        axes="cyx",
        levels=1,
        ngff_version=version,  # type: ignore[arg-type]
        channels=channels,
    ) as ds:
        assert ds.channel_index(wavelength_id=IDS[1]) == 1
        await ds.set_channels(labels=["dapi", "gfp"])  # an edit keeps them
        async with ngio_async.create_like_async(ds, tmp_path / "like.zarr"):
            pass
    theirs = [c["wavelength_id"] for c in _omero_channels(tmp_path / "theirs.zarr")]
    assert theirs == IDS
    for name in ("mine.zarr", "like.zarr"):
        assert [c["wavelength_id"] for c in _omero_channels(tmp_path / name)] == IDS
        container = ngio.open_ome_zarr_container(str(tmp_path / name))
        assert container.wavelength_ids == IDS
        assert container.get_channel_idx(wavelength_id=IDS[1]) == 1
    assert container.channel_labels == ["dapi", "gfp"]


async def test_a_wavelength_id_that_is_no_string_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="channel 0: wavelength_id must be a string, got 3"):
        await ngio_async.create_async(
            tmp_path / "bad.zarr",
            shape=(1, 8, 8),
            dtype="uint8",
            axes="cyx",
            channels=[{"label": "DAPI", "wavelength_id": 3}],
        )
    assert not (tmp_path / "bad.zarr").exists()


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_set_channels_sets_wavelength_ids_as_ngio_does(tmp_path: Path, version: str) -> None:
    import ngio

    theirs = ngio.create_empty_ome_zarr(
        str(tmp_path / "theirs.zarr"),
        shape=(2, 16, 16),
        pixelsize=0.5,
        axes_names="cyx",
        levels=1,
        ngff_version=version,  # type: ignore[arg-type]
        channels_meta=["DAPI", "GFP"],
    )
    from ngio.ome_zarr_meta.ngio_specs import ChannelsMeta

    theirs.set_channel_meta(ChannelsMeta.default_init(labels=["DAPI", "GFP"], wavelength_id=IDS))
    with ngio_async.create(
        tmp_path / "mine.zarr",
        shape=(2, 16, 16),
        dtype="uint16",
        axes="cyx",
        levels=1,
        ngff_version=version,
        channels=[{"label": "DAPI", "wavelength_id": "old"}, "GFP"],
    ) as ds:  # the blocking twin
        ds.set_channels(wavelength_ids=[IDS[0], None])  # None keeps what is there (none)
        ds.set_channels(wavelength_ids=[None, IDS[1]], labels=["DAPI", "GFP"])
        with pytest.raises(TypeError, match=r"wavelength_ids\[1\] must be a string or None"):
            ds.set_channels(wavelength_ids=["x", 3])  # type: ignore[list-item]
        with pytest.raises(ValueError, match="wavelength_ids: 1 values for 2 channels"):
            ds.set_channels(wavelength_ids=["x"])
        assert ds.channel_index(wavelength_id=IDS[1]) == 1
    mine = [c["wavelength_id"] for c in _omero_channels(tmp_path / "mine.zarr")]
    assert mine == [c["wavelength_id"] for c in _omero_channels(tmp_path / "theirs.zarr")] == IDS
    assert ngio.open_ome_zarr_container(str(tmp_path / "mine.zarr")).wavelength_ids == IDS
