"""Review of NGFF 0.1 - 0.3 reading (review27o): a conversion mends an old image's omero block
as it mends a 0.4 one's (keeping the scales derived from the level shapes), and ``validate``
of a bioformats2raw container of old images (bioformats2raw 0.3 wrote NGFF 0.2 series under a
root stating no version) reports them read, not a version mismatch."""

from __future__ import annotations

import io
import json
import warnings
from typing import TYPE_CHECKING

import numpy as np
import pytest
import zarr
from aiohttp.test_utils import TestClient, TestServer
from cli_run import run
from test_oldngff27_read import write_old, write_old_labels
from test_oldngff27_writes import _old_plate

import ngio_async
from ngio_async import MetadataError, UnsupportedError
from ngio_async.meta import MetadataWarning, validate
from ngio_async.web import create_app

if TYPE_CHECKING:
    from pathlib import Path

    from servers import StaticServer


def test_convert_mends_an_old_omero_block_keeping_derived_scales(tmp_path: Path) -> None:
    src = tmp_path / "old.zarr"
    write_old(src, "0.3", axes=["c", "y", "x"])
    write_old_labels(src, "0.3", ["c", "y", "x"])
    doc = json.loads((src / ".zattrs").read_text())
    for channel in doc["omero"]["channels"]:
        channel.pop("window")  # no window: a 0.4 source's converted gets the dtype's range
    (src / ".zattrs").write_text(json.dumps(doc))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MetadataWarning)
        ngio_async.convert_sync(src, tmp_path / "v5.zarr", ngff_version="0.5")
    assert any("carried mended" in str(w.message) for w in caught)
    ome = json.loads((tmp_path / "v5.zarr" / "zarr.json").read_text())["attributes"]["ome"]
    windows = [c["window"] for c in ome["omero"]["channels"]]
    assert windows == [{"min": 0, "max": 65535, "start": 0, "end": 65535}] * 3
    assert [c["label"] for c in ome["omero"]["channels"]] == ["DAPI", "GFP", "RFP"]
    scales = [d["coordinateTransformations"][0]["scale"] for d in ome["multiscales"][0]["datasets"]]
    assert scales == [[1, 1, 1], [1, pytest.approx(45 / 23), 2], [1, 3.75, 4]]
    label = json.loads((tmp_path / "v5.zarr" / "labels" / "cells" / "zarr.json").read_text())
    colors = label["attributes"]["ome"]["image-label"]["colors"]
    assert colors == [{"label-value": 1, "rgba": [255, 0, 0, 255]}]


def _bf2raw(root: Path) -> None:
    """bioformats2raw 0.3's layout: a root stating no NGFF version, NGFF 0.2 series 0 and 1."""
    root.mkdir()
    (root / ".zgroup").write_text('{"zarr_format": 2}')
    (root / ".zattrs").write_text(json.dumps({"bioformats2raw.layout": 3}))
    for series in ("0", "1"):
        write_old(root / series, "0.2")
    (root / "OME").mkdir()
    (root / "OME" / ".zgroup").write_text('{"zarr_format": 2}')
    pixels = 'DimensionOrder="XYZCT" Type="uint16" SizeX="40" SizeY="45" SizeZ="1" SizeC="3"'
    images = "".join(
        f'<Image ID="Image:{i}"><Pixels ID="Pixels:{i}" {pixels} SizeT="2"><MetadataOnly/>'
        "</Pixels></Image>"
        for i in range(2)
    )
    xml = f'<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">{images}</OME>'
    (root / "OME" / "METADATA.ome.xml").write_text(xml)


def test_validate_reads_a_bioformats2raw_container_of_old_series(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _bf2raw(tmp_path / "bf.zarr")
    code, out, err = run(["validate", str(tmp_path / "bf.zarr")], capsys)
    assert code == 0, out + err
    assert "differs from its parent" not in out
    assert "NGFF 0.2, a version before 0.4: read, not validated" in out
    with ngio_async.open(tmp_path / "bf.zarr", path="1") as ds:
        assert ds.metadata.ngff_version == "0.2" and ds.shape == (2, 3, 1, 45, 40)


def test_a_stated_04_parent_of_old_children_is_still_a_mismatch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    well = tmp_path / "well.zarr"
    well.mkdir()
    (well / ".zgroup").write_text('{"zarr_format": 2}')
    (well / ".zattrs").write_text(
        json.dumps({"well": {"version": "0.4", "images": [{"path": "0"}]}})
    )
    write_old(well / "0", "0.2")
    code, out, _ = run(["validate", str(well)], capsys)
    assert code == 1
    assert "NGFF version 0.2 differs from its parent's 0.4" in out


def _image_04(root: Path, version: str) -> None:
    """A 0.4-shaped image (axes objects, scales stated) whose multiscale states ``version``."""
    write_old(root, "0.3", axes=["c", "y", "x"])
    doc = json.loads((root / ".zattrs").read_text())
    ms = doc["multiscales"][0]
    ms["version"] = version
    ms["axes"] = [
        {"name": n, "type": t} for n, t in zip("cyx", ("channel", "space", "space"), strict=True)
    ]
    for i, level in enumerate(ms["datasets"]):
        level["coordinateTransformations"] = [{"type": "scale", "scale": [1, 2**i, 2**i]}]
    (root / ".zattrs").write_text(json.dumps(doc))


@pytest.mark.parametrize("version", ["0.4.1", "0.5-dev"])
def test_a_04_document_with_a_garbled_version_is_invalid_at_its_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], version: str
) -> None:
    """An error at the version's JSON path (validate lists it, exit 1), as an unknown
    'ome.version' is, not 'unsupported' (exit 2, no path; it was since 0.1 - 0.3 are read)."""
    _image_04(tmp_path / "img.zarr", version)
    doc = json.loads((tmp_path / "img.zarr" / ".zattrs").read_text())
    with pytest.raises(MetadataError, match=f"unknown NGFF version '{version}'") as info:
        validate(doc)
    assert info.value.path == "$.multiscales[0].version"
    code, out, err = run(["validate", str(tmp_path / "img.zarr")], capsys)
    assert code == 1, out + err
    assert f"`$.multiscales[0].version`: unknown NGFF version '{version}'" in out


async def test_the_tile_server_serves_an_old_image(tmp_path: Path) -> None:
    """Its dataset digest wrote the attributes in the image's version: 'cannot write NGFF
    version 0.3' at start-up (as 0.6 images before b0fc197); now those of its 0.4 view."""
    levels = write_old(tmp_path / "old.zarr", "0.3", axes=["c", "y", "x"])
    app = create_app({"img": str(tmp_path / "old.zarr")})
    async with TestClient(TestServer(app)) as client:
        listing = await (await client.get("/api/datasets")).json()
        assert [d["name"] for d in listing["datasets"]] == ["img"]
        described = await (await client.get("/api/datasets/img")).json()
        assert described["ngff_version"] == "0.3"
        resp = await client.get("/api/datasets/img/region.npy?c=1&y=0:4&x=0:4")
        assert resp.status == 200
        np.testing.assert_array_equal(np.load(io.BytesIO(await resp.read())), levels[0][1, :4, :4])


def test_convert_of_old_data_converts_its_tables_and_keeps_row_attributes(
    tmp_path: Path,
) -> None:
    """Their tables/ and rows were looked for as zarr v3 (zarr.json): the tables left out
    silently, the rows' own attributes dropped. (Tables are converted since convtables27.)"""
    src = tmp_path / "old.zarr"
    write_old(src, "0.3", axes=["c", "y", "x"])
    for group, attrs in (
        ("tables", {"tables": ["t"]}),
        ("tables/t", {"backend": "json", "type": "generic_table"}),
        ("tables/t/table", {"a": [1, 2]}),
    ):
        (src / group).mkdir()
        (src / group / ".zgroup").write_text('{"zarr_format": 2}')
        (src / group / ".zattrs").write_text(json.dumps(attrs))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MetadataWarning)
        ngio_async.convert_sync(src, tmp_path / "v4.zarr")
    assert not any("table" in str(w.message) for w in caught)
    with ngio_async.open(tmp_path / "v4.zarr") as ds:
        assert ds.tables.read("t").columns["a"].tolist() == [1, 2]
    plate = tmp_path / "plate.zarr"
    _old_plate(plate)
    (plate / "A" / ".zattrs").write_text(json.dumps({"note": "row A"}))
    ngio_async.convert_sync(plate, tmp_path / "plate4.zarr")
    assert json.loads((tmp_path / "plate4.zarr" / "A" / ".zattrs").read_text()) == {"note": "row A"}


def test_open_plate_of_an_old_image_names_its_zattrs(tmp_path: Path) -> None:
    write_old(tmp_path / "old.zarr", "0.3", axes=["c", "y", "x"])
    with pytest.raises(UnsupportedError, match=r"old\.zarr/\.zattrs has no 'plate' metadata"):
        ngio_async.open_plate(tmp_path / "old.zarr")


async def test_an_old_plate_s_wells_come_from_its_zmetadata(
    http_root: Path, http_server: StaticServer
) -> None:
    """image_paths(consolidated=True) of a 0.2 plate with a .zmetadata (zarr v2's
    consolidated metadata): one GET, no well document (it asked for a zarr.json)."""
    root = http_root / "plate.zarr"
    _old_plate(root)
    zarr.consolidate_metadata(str(root), zarr_format=2)
    plate = await ngio_async.open_plate_async(f"{http_server.url}plate.zarr")
    try:
        http_server.reset()
        paths = await plate.image_paths(consolidated=True)
        assert paths == [("A/1", "0"), ("A/2", "0")]
        assert http_server.count(path="/plate.zarr/.zmetadata") == 1
        assert http_server.count(path="/plate.zarr/A/1/.zattrs") == 0
        assert http_server.count(path="/plate.zarr/zarr.json") == 0
    finally:
        await plate.aclose()


def test_an_old_plate_s_refusal_names_a_plate_to_convert(tmp_path: Path) -> None:
    _old_plate(tmp_path / "plate.zarr")
    with ngio_async.open_plate(tmp_path / "plate.zarr", mode="r+") as plate:
        refused = r"`ngio_async convert <plate> <copy>`"
        with pytest.raises(UnsupportedError, match=refused):
            plate.add_row("B")


def test_held_a_03_level_naming_flat_keys_and_a_01_level_of_3_dims(tmp_path: Path) -> None:
    """(held) A 0.3 .zarray that names dimension_separator '.' is read with it, not '/';
    a 0.1 level of fewer than 5 dims is refused naming the level and the 5 axes."""
    src = tmp_path / "flat.zarr"
    levels = write_old(src, "0.3", axes=["c", "y", "x"])
    group = zarr.open_group(str(src), mode="a", zarr_format=2)
    for i, level in enumerate(levels):
        del group[str(i)]
        arr = group.create_array(
            str(i),
            shape=level.shape,
            dtype=level.dtype,
            chunks=(3, 16, 16),
            chunk_key_encoding={"name": "v2", "separator": "."},
        )
        arr[...] = level
    assert (src / "0" / "0.0.0").exists()
    with ngio_async.open(src) as ds:
        for i, level in enumerate(levels):
            np.testing.assert_array_equal(ds.read(level=i), level)
    doc = json.loads((src / ".zattrs").read_text())
    doc["multiscales"][0]["version"] = "0.1"
    del doc["multiscales"][0]["axes"]
    (src / ".zattrs").write_text(json.dumps(doc))
    with pytest.raises(MetadataError, match=r"level '0' has 3 dimensions, the multiscale has 5"):
        ngio_async.open(src)


async def test_held_a_stream_into_an_old_image_is_refused_at_the_call(tmp_path: Path) -> None:
    write_old(tmp_path / "old.zarr", "0.3", axes=["c", "y", "x"])
    before = (tmp_path / "old.zarr" / "0" / ".zarray").read_bytes()
    src = await ngio_async.open_async(tmp_path / "old.zarr")
    dst = await ngio_async.open_async(tmp_path / "old.zarr", mode="r+")
    try:
        with pytest.raises(UnsupportedError, match=r"NGFF 0\.3 image.*nothing was written"):
            await ngio_async.stream(src.tiles(), lambda t: t, out=dst)
    finally:
        await src.aclose()
        await dst.aclose()
    assert (tmp_path / "old.zarr" / "0" / ".zarray").read_bytes() == before
