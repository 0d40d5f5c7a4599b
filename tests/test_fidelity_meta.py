"""Writing NGFF metadata back, in its version or the other, changes nothing but the versions:
values keep their JSON types (``0`` stays ``0``, ``1.0`` stays ``1.0``), unknown keys stay,
``omero.version`` comes back from a 0.4 -> 0.5 -> 0.4 trip. Compared as JSON text, since
Python's ``0 == 0.0``."""

from __future__ import annotations

import copy
import json
import warnings
from typing import Any

import pytest
from corpus_files import load, manifest

from ngio_async import MetadataError
from ngio_async.meta import MetadataWarning, encode_attrs, to_attrs, validate

ROWS = [
    r
    for r in manifest()
    if r["expected"] == "valid" and r["version"] in ("0.4", "0.5") and r["kind"] != "zarr_json"
]
VERSIONED = ("plate", "well", "image-label")


def text(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True)


def without_object_versions(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` without the per-object versions of multiscales, plate, well and image-label
    (what moves to and from ``ome.version``); ``omero.version`` stays."""
    doc = copy.deepcopy(doc)
    body = doc.get("ome", doc)
    for obj in [*(body.get("multiscales") or []), *(body.get(k) for k in VERSIONED)]:
        if isinstance(obj, dict):
            obj.pop("version", None)
    return doc


def decoded(doc: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetadataWarning)
        return validate(doc)


@pytest.mark.parametrize("row", ROWS, ids=[r["path"] for r in ROWS])
def test_corpus_examples_round_trip(row: dict[str, str]) -> None:
    doc = load(row)
    meta = decoded(doc)
    assert text(to_attrs(meta)) == text(doc)  # in its own version: exactly as stored
    other = "0.5" if row["version"] == "0.4" else "0.4"
    try:
        moved = to_attrs(meta, other)
        back = to_attrs(decoded(moved), row["version"])
    except MetadataError:  # a 0.4 example breaking a rule 0.5 makes an error (M6, P5)
        assert row["version"] == "0.4"
        return
    assert text(without_object_versions(back)) == text(without_object_versions(doc))


def test_omero_version_and_integer_windows_survive_04_05_04() -> None:
    doc = load({"path": "0.4/image/valid/strict-image_omero.json"})
    assert doc["omero"]["version"] == "0.4"
    doc["omero"]["channels"][0]["window"] = {"min": 0, "max": 65535, "start": 0, "end": 4000}
    assert type(doc["omero"]["channels"][1]["window"]["end"]) is float  # 815.0 stays too
    as05 = to_attrs(validate(doc), "0.5")
    assert "version" not in as05["ome"]["omero"]  # 0.5 has one version, ome.version
    assert text(as05["ome"]["omero"]["channels"]) == text(doc["omero"]["channels"])
    back = to_attrs(validate(as05), "0.4")
    assert text(back) == text(doc)


def test_05_keeps_its_per_object_versions_and_omero_version() -> None:
    doc = load({"path": "0.5/plate/valid/ozm-plate_example_1.json"})
    assert doc["ome"]["plate"]["version"] == "0.5"
    assert to_attrs(validate(doc))["ome"]["plate"]["version"] == "0.5"
    image = load({"path": "0.5/image/valid/strict-image_omero.json"})
    assert to_attrs(validate(image))["ome"]["omero"]["version"] == "0.5-dev"
    back = to_attrs(validate(to_attrs(validate(image), "0.4")), "0.5")
    assert back["ome"]["omero"]["version"] == "0.5-dev"


def test_a_04_object_without_version_stays_without() -> None:
    doc = load({"path": "0.4/image/valid/missing_version.json"})
    assert "version" not in doc["multiscales"][0]
    assert "version" not in to_attrs(validate(doc), "0.4")["multiscales"][0]
    # moved from 0.5, 0.4 states its version (as a created image does)
    assert (
        to_attrs(validate(to_attrs(validate(doc), "0.5")), "0.4")["multiscales"][0]["version"]
        == "0.4"
    )


def test_integer_fields_written_as_floats_leave_number_fields_alone() -> None:
    """An ``rgba`` of ``255.0`` is read as the integer it is; the scale's ``1.0`` next to it
    stays a float (all integral floats of the document became integers)."""
    doc = load({"path": "0.4/label/valid/example-colors_properties.json"})
    ms = load({"path": "0.4/image/valid/strict-image.json"})["multiscales"]
    doc = {**doc, "multiscales": ms}
    doc["image-label"]["colors"][0]["rgba"] = [255.0, 255, 255, 255]
    doc["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"][0] = 1.0
    doc["image-label"]["properties"][0]["area (pixels)"] = 1200.0  # unknown: as stored
    out = to_attrs(validate(doc))
    assert out["image-label"]["colors"][0]["rgba"] == [255, 255, 255, 255]
    assert type(out["image-label"]["colors"][0]["rgba"][0]) is int
    scale = out["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"]
    assert type(scale[0]) is float and type(scale[1]) is int
    assert type(out["image-label"]["properties"][0]["area (pixels)"]) is float


def test_a_04_top_level_version_and_json_ld_keys_survive() -> None:
    doc = load({"path": "0.4/well/valid/minimal_acquisitions.json"})
    doc = {**doc, "version": "0.4.0", "@id": "#w"}
    meta = validate(doc)
    assert text(to_attrs(meta)) == text(doc)
    as05 = to_attrs(meta, "0.5")
    assert as05["version"] == "0.4.0" and as05["ome"]["version"] == "0.5"
    assert as05["ome"]["@id"] == "#w"  # JSON-LD describes the NGFF metadata: it stays with it
    back = to_attrs(validate(as05), "0.4")
    assert back["version"] == "0.4.0" and back["@id"] == "#w"


def test_encode_attrs_writes_non_finite_unknown_values_back_as_stored() -> None:
    """zarr-python and ome-zarr-py write attributes with Python's ``json`` (bare ``NaN``);
    ``encode_attrs`` wrote them back as ``null``."""
    doc = load({"path": "0.4/image/valid/strict-image.json"})
    raw = json.dumps({**doc, "stats": {"mean": float("nan"), "max": float("inf")}}).encode()
    out = encode_attrs(validate(raw))
    assert out.endswith(b'"stats":{"mean":NaN,"max":Infinity}}')
    assert text(json.loads(out)) == text(json.loads(raw))
