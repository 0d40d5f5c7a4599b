"""NGFF versions other than 0.4 / 0.5: 0.1 - 0.3 read with their version (see
tests/test_oldngff27_*.py), others refused naming the version."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

import ngio_async
from ngio_async import MetadataError
from ngio_async.meta import to_attrs, validate

if TYPE_CHECKING:
    from pathlib import Path

YX = [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
OLD_DOCS: dict[str, dict[str, Any]] = {
    # 0.1 / 0.2: datasets without transformations, no axes
    "image-0.1": {"multiscales": [{"version": "0.1", "datasets": [{"path": "0"}]}]},
    "image-0.2": {"multiscales": [{"version": "0.2", "datasets": [{"path": "0"}]}]},
    # 0.3: axes as a list of names
    "image-0.3": {
        "multiscales": [{"version": "0.3", "axes": ["y", "x"], "datasets": [{"path": "0"}]}]
    },
    # 0.3 plate: wells without indices
    "plate-0.3": {
        "plate": {
            "version": "0.3",
            "rows": [{"name": "A"}],
            "columns": [{"name": "1"}],
            "wells": [{"path": "A/1"}],
        }
    },
    "well-0.1": {"well": {"version": "0.1", "images": [{"path": "0"}]}},
}


@pytest.mark.parametrize("name", list(OLD_DOCS))
def test_versions_before_04_are_read_not_invalid(name: str) -> None:
    """They failed on a 0.4 rule (a missing 'coordinateTransformations', ...) as if invalid;
    they are read now (oldngff27), keeping their version."""
    version = name.split("-")[1]
    assert validate(OLD_DOCS[name]).version == version


def test_given_version_04_still_rejects_another_version_string() -> None:
    doc: dict[str, Any] = {
        "multiscales": [
            {
                "version": "0.3",
                "axes": YX,
                "datasets": [
                    {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1]}]}
                ],
            }
        ]
    }
    with pytest.raises(MetadataError, match=r"version must be '0\.4'") as info:
        validate(doc, version="0.4")
    assert info.value.path == "$.multiscales[0].version"
    doc["multiscales"][0]["version"] = "0.5"
    with pytest.raises(MetadataError, match=r"0\.5 metadata is under 'ome'"):
        validate(doc)


def test_opening_a_03_image_reads_it_as_one(tmp_path: Path) -> None:
    root = tmp_path / "old.zarr"
    root.mkdir()
    (root / ".zgroup").write_text('{"zarr_format": 2}')
    (root / ".zattrs").write_text(json.dumps(OLD_DOCS["image-0.3"]))
    with pytest.raises(ngio_async.NotFoundError, match=r"level '0' .*0/\.zarray does not exist"):
        ngio_async.open(root)  # an image (its level is missing here), no longer refused


def test_the_version_asked_for_must_be_the_documents() -> None:
    """validate(doc, version='0.5') took any ome.version ('x', '', '0.4') as 0.5."""
    doc: dict[str, Any] = {"ome": {"version": "0.5", "labels": ["cells"]}}
    assert validate(doc, version="0.5").labels == ["cells"]
    for other in ("0.4", "x", ""):
        doc["ome"]["version"] = other
        with pytest.raises(MetadataError, match=f"version must be '0.5'.*got '{other}'") as info:
            validate(doc, version="0.5")
        assert info.value.path == "$.ome.version"


def test_a_vector_has_a_value_per_axis_so_at_least_two() -> None:
    """NGFF 0.4 only warns about a length that is not the axis count; a one-value vector
    breaks the official schema's minItems 2 (it was accepted)."""
    doc: dict[str, Any] = {
        "multiscales": [
            {
                "axes": YX,
                "datasets": [
                    {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1]}]}
                ],
            }
        ]
    }
    with pytest.raises(MetadataError, match="length >= 2") as info:
        validate(doc)
    assert info.value.path == "$.multiscales[0].datasets[0].coordinateTransformations[0].scale"


def test_a_groups_own_attributes_stay_group_attributes_across_versions() -> None:
    """to_attrs(0.5 doc, '0.4') dropped the keys beside 'ome' (README: unknown keys are kept);
    to_attrs(0.4 doc, '0.5') put a 0.4 group's own keys inside 'ome'."""
    doc5 = {"ome": {"version": "0.5", "labels": ["a"], "ngff-extra": 1}, "fractal": {"x": 1}}
    as_04 = to_attrs(validate(doc5), "0.4")
    assert as_04 == {"labels": ["a"], "ngff-extra": 1, "fractal": {"x": 1}}
    doc4 = {"labels": ["a"], "fractal": {"x": 1}}
    as_05 = to_attrs(validate(doc4), "0.5")
    assert as_05 == {"fractal": {"x": 1}, "ome": {"version": "0.5", "labels": ["a"]}}
    assert to_attrs(validate(as_05), "0.4") == doc4  # and back
    # a key beside 'ome' never replaces an NGFF key of the 0.4 document
    clash = {"ome": {"version": "0.5", "labels": ["a"]}, "labels": ["b"]}
    assert to_attrs(validate(clash), "0.4") == {"labels": ["a"]}
