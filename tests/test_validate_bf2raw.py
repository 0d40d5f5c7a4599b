"""``validate`` on bioformats2raw containers (NGFF bf2raw, RULES.md section 8: B1-B4), NGFF 0.4
and 0.5, built in ``tmp_path`` with real image groups."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import anyio
import pytest

import ngio_async
from ngio_async import MetadataError
from ngio_async.cli._validate import Report, validate_hierarchy
from ngio_async.meta import validate

if TYPE_CHECKING:
    from pathlib import Path

    from servers import StaticServer

VERSIONS = ["0.4", "0.5"]
OME_XML = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">{}</OME>'
)
IMAGE_XML = (
    '<Image ID="Image:{i}"><Pixels ID="Pixels:{i}" DimensionOrder="XYZCT" Type="uint8" '
    'SizeX="8" SizeY="8" SizeZ="1" SizeC="1" SizeT="1">{data}</Pixels></Image>'
)


def group(path: Path, version: str, body: dict[str, Any]) -> None:
    """A zarr group at ``path`` with NGFF ``body`` (0.4 ``.zattrs``, 0.5 ``zarr.json``)."""
    path.mkdir(parents=True, exist_ok=True)
    if version == "0.5":
        doc = {"zarr_format": 3, "node_type": "group", "attributes": {"ome": body}}
        (path / "zarr.json").write_text(json.dumps(doc))
        return
    (path / ".zgroup").write_text('{"zarr_format": 2}')
    (path / ".zattrs").write_text(json.dumps(body))


def image(path: Path, version: str) -> None:
    with ngio_async.create(
        str(path), shape=(8, 8), dtype="uint8", axes="yx", ngff_version=version, levels=1
    ):
        pass


def container(
    root: Path,
    version: str,
    images: tuple[str, ...] = ("0", "1"),
    *,
    ome: dict[str, Any] | None = None,
    top: dict[str, Any] | None = None,
) -> Path:
    """A bioformats2raw container: the layout group, an ``OME`` group (``ome``: its NGFF keys;
    ``None``: no OME group) and the image groups ``images``."""
    path = root / f"bf2raw-{version}.ome.zarr"
    head = {"version": "0.5"} if version == "0.5" else {}
    group(path, version, {**head, "bioformats2raw.layout": 3, **(top or {})})
    if ome is not None:
        group(path / "OME", version, {**head, **ome})
    for name in images:
        image(path / name, version)
    return path


def check(path: Path) -> Report:
    return anyio.run(lambda: validate_hierarchy(str(path)))


def lines(report: Report) -> list[str]:
    return [p.line() for p in report.problems]


@pytest.mark.parametrize("version", VERSIONS)
def test_valid_containers(tmp_path: Path, version: str) -> None:
    """Numbered images with an OME group that has no ``series`` (it may hold only the OME-XML),
    and named images listed by ``series``: valid, every image walked."""
    path = container(tmp_path / "a", version, ome={})
    report = check(path)
    assert lines(report) == []
    assert sorted(report.nodes) == ["", "0", "1", "OME"]

    path = container(tmp_path / "b", version, ("x", "y"), ome={"series": ["y", "x"]})
    report = check(path)
    assert lines(report) == []
    assert sorted(report.nodes) == ["", "OME", "x", "y"]


@pytest.mark.parametrize("version", VERSIONS)
def test_plate_takes_precedence(tmp_path: Path, version: str) -> None:
    """B2: with a plate, the images are the plate's fields (no '0' group is looked for)."""
    plate: dict[str, Any] = {
        "rows": [{"name": "A"}],
        "columns": [{"name": "1"}],
        "wells": [{"path": "A/1", "rowIndex": 0, "columnIndex": 0}],
    }
    path = container(tmp_path, version, (), ome={}, top={"plate": plate})
    head = {"version": "0.5"} if version == "0.5" else {}
    group(path / "A", version, head)
    group(path / "A" / "1", version, {**head, "well": {"images": [{"path": "0"}]}})
    image(path / "A" / "1" / "0", version)
    report = check(path)
    assert lines(report) == []
    assert sorted(report.nodes) == ["", "A/1", "A/1/0", "OME"]


@pytest.mark.parametrize("version", VERSIONS)
def test_numbered_image_after_a_gap(tmp_path: Path, version: str) -> None:
    """B4: without ``series``, images are 0/, 1/, ... with no gap; '2' after a missing '1' is
    reported (it was silently left out)."""
    report = check(container(tmp_path, version, ("0", "2")))
    assert not report.valid
    (problem,) = report.errors
    assert problem.key == "2"
    assert "image group '2' after a gap ('1' is missing)" in problem.message


@pytest.mark.parametrize("version", VERSIONS)
def test_series_entry_without_image(tmp_path: Path, version: str) -> None:
    """B3: a ``series`` path names an image group; a missing one names the series entry."""
    path = container(tmp_path, version, ("a",), ome={"series": ["a", "b"]})
    (problem,) = check(path).errors
    ome_key = "OME/zarr.json" if version == "0.5" else "OME/.zattrs"
    where = "$.attributes.ome.series[1]" if version == "0.5" else "$.series[1]"
    assert problem.key == "b"
    assert problem.message.endswith(f"(named by {ome_key} `{where}`)")


@pytest.mark.parametrize("version", VERSIONS)
def test_layout_must_be_3(tmp_path: Path, version: str) -> None:
    """B1: any other layout is refused, naming the field."""
    path = container(tmp_path, version, top={"bioformats2raw.layout": 2})
    (problem,) = check(path).errors
    prefix = "$.attributes.ome" if version == "0.5" else "$"
    assert problem.path == f"{prefix}.bioformats2raw.layout"
    assert problem.message == "must be 3 (the one layout NGFF defines), got 2"


def test_layout_outside_ome_in_05() -> None:
    doc = {"bioformats2raw.layout": 3, "ome": {"version": "0.5"}}
    with pytest.raises(MetadataError, match=r"'bioformats2raw\.layout' must be inside 'ome'"):
        validate(doc)


@pytest.mark.parametrize("version", VERSIONS)
def test_ome_xml_has_one_metadata_only_image_per_image(tmp_path: Path, version: str) -> None:
    path = container(tmp_path, version, ome={})
    xml = path / "OME" / "METADATA.ome.xml"
    images = [IMAGE_XML.format(i=i, data="<MetadataOnly/>") for i in range(2)]
    xml.write_text(OME_XML.format("".join(images)))
    assert lines(check(path)) == []

    images[1] = IMAGE_XML.format(i=1, data="<TiffData/>")
    images.append(IMAGE_XML.format(i=2, data="<MetadataOnly/>"))
    xml.write_text(OME_XML.format("".join(images)))
    count, data = check(path).errors
    assert count.key == data.key == "OME/METADATA.ome.xml"
    assert count.message.startswith("3 OME-XML Image elements for 2 image groups")
    assert data.message.startswith("Image 1 has TiffData")


@pytest.mark.parametrize("version", VERSIONS)
def test_empty_series_is_a_warning(tmp_path: Path, version: str) -> None:
    report = check(container(tmp_path, version, ("0",), ome={"series": []}))
    assert report.valid
    (warning,) = report.warnings
    assert "'series' is empty" in warning.message


@pytest.mark.parametrize("version", VERSIONS)
def test_series_paths_are_unique(tmp_path: Path, version: str) -> None:
    """Two series entries for one group: two OME-XML Images in one group (walked twice)."""
    path = container(tmp_path, version, ("0", "1"), ome={"series": ["0", "1", "0"]})
    (problem,) = check(path).errors
    assert problem.key == f"OME/{'zarr.json' if version == '0.5' else '.zattrs'}"
    assert problem.path.endswith("series[2]")
    assert problem.message == "duplicate series path '0'"


@pytest.mark.parametrize("version", VERSIONS)
def test_over_http(http_root: Path, http_server: StaticServer, version: str) -> None:
    """A static HTTP server cannot list: the numbered images and the gap are found by reads."""
    container(http_root, version, ("0", "1", "3"), ome={})
    url = f"{http_server.url}bf2raw-{version}.ome.zarr"
    report = anyio.run(lambda: validate_hierarchy(url))
    assert sorted(report.nodes) == ["", "0", "1", "OME"]
    (problem,) = report.errors
    assert (problem.key, problem.message[:40]) == ("3", "image group '3' after a gap ('2' is miss")


def test_ome_group_version_matches_the_container(tmp_path: Path) -> None:
    """V3: a 0.4 OME group (.zattrs) in a 0.5 container is an error (it was not compared)."""
    path = container(tmp_path, "0.5", ("a",))
    group(path / "OME", "0.4", {"series": ["a"]})
    (problem,) = check(path).errors
    assert (problem.key, problem.path) == ("OME/.zattrs", "$")
    assert problem.message == "NGFF version 0.4 differs from its parent's 0.5"
