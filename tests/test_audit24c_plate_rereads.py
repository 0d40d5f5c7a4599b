"""A plate's refusals read its documents again at most once each, and only what may have
changed: a field missing from a well read just now is refused without reading the well again;
one missing from a well read earlier (cached) is looked for in it read again, once. Over HTTP
(read-only) the GETs are counted; mode ``"r"`` never writes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

import ngio_async
from ngio_async._errors import NotFoundError

if TYPE_CHECKING:
    from pathlib import Path

    from servers import StaticServer

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]

KW: dict[str, Any] = {"shape": (4, 4), "dtype": "uint8"}


async def test_a_missing_field_costs_one_read_of_its_well_and_a_grown_plate_is_found(
    http_root: Path, http_server: StaticServer
) -> None:
    root = http_root / "p.zarr"
    async with ngio_async.create_plate_async(str(root), rows=["A", "B"], columns=["1"]) as p:
        await (await p.add_image("A/1", **KW)).aclose()
    before = {f: f.stat().st_mtime_ns for f in root.rglob("*")}
    async with await ngio_async.open_plate_async(http_server.url + "p.zarr") as plate:
        assert plate.mode == "r"
        http_server.reset()
        with pytest.raises(NotFoundError, match="has no field '3'"):
            await plate.image("A", "1", field="3")  # the well read now: not read again
        assert http_server.count("GET", "/p.zarr/A/1/zarr.json") == 1
        assert http_server.count("GET", "/p.zarr/zarr.json") == 0
        http_server.reset()
        with pytest.raises(NotFoundError, match="no well 'B/1'"):
            await plate.well("B", "1")
        assert http_server.count("GET", "/p.zarr/zarr.json") == 1  # read again once
        after = {f: f.stat().st_mtime_ns for f in root.rglob("*")}
        assert after == before  # (nothing written through the HTTP plate)
        async with await ngio_async.open_plate_async(str(root), mode="r+") as other:
            await (await other.add_image("A/1", field="1", **KW)).aclose()
            await (await other.add_image("B/1", **KW)).aclose()
        http_server.reset()
        async with await plate.image("A", "1", field="1") as fov:  # the cached well: again
            assert fov.shape == (4, 4)
        assert http_server.count("GET", "/p.zarr/A/1/zarr.json") == 1
        async with await plate.image("B", "1") as fov:  # listed since: the plate read again
            assert fov.shape == (4, 4)
        assert http_server.count("GET", "/p.zarr/zarr.json") == 1
        http_server.reset()
        with pytest.raises(NotFoundError, match="has no field '7'"):
            await plate.image("A", "1", field="7")  # cached: read again once, still refused
        assert http_server.count("GET", "/p.zarr/A/1/zarr.json") == 1
