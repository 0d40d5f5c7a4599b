"""set_channels(labels=[..., None]) keeps that channel's label, as None keeps colors, windows,
active flags and wavelength_ids (the README: "None keeps it"); it cleared the label. The
blocking twin takes None in colors and active too."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]


async def test_none_keeps_a_label(tmp_path: Path) -> None:
    url = tmp_path / "img.zarr"
    async with ngio_async.create_async(
        url, shape=(3, 16, 16), dtype="uint8", channels=["a", "b", "c"], levels=1
    ):
        pass
    async with ngio_async.open_async(url, mode="r+") as ds:
        await ds.set_channels(labels=[None, "B", None], colors=[None, "00FF00", None])
    async with ngio_async.open_async(url) as ds:
        assert [c.label for c in ds.metadata.channels] == ["a", "B", "c"]
        assert ds.metadata.channels[1].color == "00FF00"


def test_blocking_none_keeps_every_field(tmp_path: Path) -> None:
    url = tmp_path / "img.zarr"
    with ngio_async.create(url, shape=(2, 16, 16), dtype="uint8", channels=["a", "b"], levels=1):
        pass
    with ngio_async.open(url, mode="r+") as ds:
        before = list(ds.metadata.channels)
        ds.set_channels(labels=["x", None], colors=[None, "FF00FF"], active=[False, None])
    with ngio_async.open(url) as ds:
        after = ds.metadata.channels
        assert [c.label for c in after] == ["x", "b"]
        assert [c.color for c in after] == [before[0].color, "FF00FF"]
        assert [c.active for c in after] == [False, before[1].active]
