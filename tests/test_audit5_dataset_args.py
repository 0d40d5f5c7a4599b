"""Audit of issue 5, the dataset's side: ``set_channels(labels="xy")`` on a 2-channel image took
the string as one label per letter (channels "x" and "y"), as it did ``colors`` and ``active``
strings of the right length; ``ds.writer(max_pending="4")`` was refused only when its block
was entered, not at the call."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"labels": "xy"}, "labels"),
        ({"labels": b"xy"}, "labels"),
        ({"colors": "ab"}, "colors"),
        ({"active": "10"}, "active"),
    ],
)
async def test_a_string_is_no_list_of_channel_values(
    tmp_path: Path, kwargs: dict[str, Any], name: str
) -> None:
    url = tmp_path / "img.ome.zarr"
    async with ngio_async.create_async(
        url, shape=(2, 16, 16), dtype="uint8", axes="cyx", levels=1, channels=["DAPI", "GFP"]
    ):
        pass
    before = (url / "zarr.json").read_bytes()
    async with ngio_async.open_async(url, mode="r+") as ds:
        with pytest.raises(TypeError, match=re.escape(f"{name} must be one value per channel")):
            await ds.set_channels(**kwargs)
        assert [c.label for c in ds.metadata.channels] == ["DAPI", "GFP"]
        await ds.set_channels(labels=["x", "y"])  # a list of the same letters is taken
        assert [c.label for c in ds.metadata.channels] == ["x", "y"]
    assert before != (url / "zarr.json").read_bytes()


@pytest.mark.parametrize(
    ("value", "error"), [("4", TypeError), (2.5, TypeError), (True, TypeError), (0, ValueError)]
)
async def test_a_bad_max_pending_is_refused_at_the_call(
    tmp_path: Path, value: Any, error: type[Exception]
) -> None:
    async with ngio_async.create_async(
        tmp_path / "img.ome.zarr", shape=(1, 16, 16), dtype="uint8", axes="cyx", levels=1
    ) as ds:
        with pytest.raises(error, match="max_pending must be"):
            ds.writer(max_pending=value)  # not entered
