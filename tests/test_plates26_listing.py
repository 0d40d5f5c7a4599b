"""plates26: listing a plate's fields (``image_paths``) read every well's document, one request
per well (1536 GETs for a 1536-well plate on S3), even when the plate's consolidated metadata
(0.5 ``zarr.json``, 0.4 ``.zmetadata``; zarr-python's ``consolidate_metadata``) holds them all.
Read-only and asked for (``consolidated=True``: a stale copy leaves fields out, see
test_review26c_plate_listing), they are now taken from it: one request; a well it lacks is
read from its own document, and a plate open for writing reads the documents (as an image's
levels)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
import zarr

import ngio_async
from ngio_async.images._consolidated import _put_all
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server

pytestmark = pytest.mark.anyio

ROWS = [chr(65 + i) for i in range(26)] + ["AA", "AB", "AC", "AD", "AE", "AF"]  # 32
COLUMNS = [f"{i:02d}" for i in range(1, 49)]  # 48


def _group(attrs: dict[str, Any]) -> dict[str, Any]:
    return {"zarr_format": 3, "node_type": "group", "attributes": attrs}


def plate_1536() -> list[tuple[str, bytes]]:
    """The documents of a 0.5 plate of 1536 wells (well ``r/c`` has fields ``0`` and, in row
    AF, ``1`` too), consolidated as zarr-python consolidates; no field images (listing reads
    none)."""
    wells: list[dict[str, Any]] = [
        {"path": f"{r}/{c}", "rowIndex": i, "columnIndex": j}
        for i, r in enumerate(ROWS)
        for j, c in enumerate(COLUMNS)
    ]
    docs: dict[str, Any] = {r: _group({}) for r in ROWS}
    for w in wells:
        images = [{"path": "0"}, {"path": "1"}] if w["path"].startswith("AF/") else [{"path": "0"}]
        docs[w["path"]] = _group({"ome": {"version": "0.5", "well": {"images": images}}})
    rows, columns = [{"name": r} for r in ROWS], [{"name": c} for c in COLUMNS]
    plate = {"rows": rows, "columns": columns, "wells": wells, "name": "big"}
    top = _group({"ome": {"version": "0.5", "plate": plate}})
    top["consolidated_metadata"] = {"kind": "inline", "must_understand": False, "metadata": docs}
    out = [(f"{k}/zarr.json", json.dumps(v).encode()) for k, v in docs.items()]
    return [*out, ("zarr.json", json.dumps(top).encode())]


async def test_a_1536_well_plates_fields_are_listed_in_one_request(s3_server: S3Server) -> None:
    url = s3_server.fresh_url() + "/big.zarr"
    async with open_store(url, **s3_server.options()) as store:
        await _put_all(store, plate_1536())
    async with (
        InstrumentedStore(open_store(url, **s3_server.options())) as store,
        ngio_async.open_plate_async(store) as plate,
    ):
        assert store.total_requests == 1 and len(plate.wells) == 1536
        paths = await plate.image_paths(consolidated=True)
        # was 1536 GETs, one per well
        assert store.total_requests == 2, dict(store.method_counts)
        assert len(paths) == 1536 + 48 and paths[-2:] == [("AF/48", "0"), ("AF/48", "1")]
        assert (await plate.well("AF", 1)).fields == ["0", "1"]
        assert store.total_requests == 2


@pytest.mark.filterwarnings("ignore:Consolidated metadata is currently not part")
@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_a_consolidated_plate_lists_from_its_copy(tmp_path: Path, version: str) -> None:
    path = tmp_path / "plate.zarr"
    async with ngio_async.create_plate_async(
        path,
        rows=["A", "B"],
        columns=["1", "2"],
        ngff_version=version,  # type: ignore[arg-type]
    ) as plate:
        for well in ("A/1", "A/2", "B/1"):
            await (await plate.add_image(well, shape=(4, 4), dtype="uint8")).aclose()
    zarr.consolidate_metadata(str(path))
    async with ngio_async.open_plate_async(path, mode="r+") as plate:  # kept current
        await (await plate.add_image("B/2", shape=(4, 4), dtype="uint8")).aclose()
        await (await plate.add_image("A/1", field="1", shape=(4, 4), dtype="uint8")).aclose()
    # a well the copy lacks (another tool added it without consolidating) is read itself
    zmeta = path / ".zmetadata" if version == "0.4" else path / "zarr.json"
    doc = json.loads(zmeta.read_text())
    entries = doc["metadata"] if version == "0.4" else doc["consolidated_metadata"]["metadata"]
    del entries["B/1/.zattrs" if version == "0.4" else "B/1"]
    zmeta.write_text(json.dumps(doc))
    expected = [("A/1", "0"), ("A/1", "1"), ("A/2", "0"), ("B/1", "0"), ("B/2", "0")]
    async with (
        InstrumentedStore(open_store(path)) as store,
        ngio_async.open_plate_async(store) as plate,
    ):
        store.reset()
        assert await plate.image_paths(consolidated=True) == expected
        got = sorted(k for (m, k), n in store.calls.items() if m == "get" for _ in range(n))
        well_doc = ".zattrs" if version == "0.4" else "zarr.json"
        assert got == sorted([zmeta.name, f"B/1/{well_doc}"]), got
    async with (  # open for writing: the wells' own documents (another tool may have added)
        InstrumentedStore(open_store(path)) as store,
        ngio_async.open_plate_async(store, mode="r+") as plate,
    ):
        store.reset()
        assert await plate.image_paths() == expected
        assert store.method_counts["get"] == 4
