"""``validate`` against the NGFF rules that need the store (RULES.md sections 2-7): one small
real hierarchy in ``tmp_path`` per rule, NGFF 0.4 and 0.5."""

from __future__ import annotations

import json
import warnings
from typing import TYPE_CHECKING, Any

import anyio
import pytest

import ngio_async
from ngio_async import MetadataError
from ngio_async.cli._validate import Report, validate_hierarchy
from ngio_async.meta import MetadataWarning, validate

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

VERSIONS = ["0.4", "0.5"]


def image(path: Path, version: str, **options: Any) -> Path:
    spec: dict[str, Any] = {"shape": (2, 32, 32), "axes": "cyx", "levels": 2, "dtype": "uint16"}
    with ngio_async.create(str(path), ngff_version=version, **{**spec, **options}):
        pass
    return path


def group(path: Path, version: str, body: dict[str, Any]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if version == "0.5":
        body = {"ome": {"version": "0.5", **body}} if body else {}
        doc = {"zarr_format": 3, "node_type": "group", "attributes": body}
        (path / "zarr.json").write_text(json.dumps(doc))
        return
    (path / ".zgroup").write_text('{"zarr_format": 2}')
    (path / ".zattrs").write_text(json.dumps(body))


def edit(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Change the NGFF object of a group document (0.5: ``attributes.ome``) or an array's."""
    doc = json.loads(path.read_text())
    change(doc["attributes"]["ome"] if "ome" in doc.get("attributes", {}) else doc)
    path.write_text(json.dumps(doc))


def check(path: Path) -> Report:
    return anyio.run(lambda: validate_hierarchy(str(path)))


def meta_file(version: str) -> str:
    return "zarr.json" if version == "0.5" else ".zattrs"


@pytest.mark.parametrize("version", VERSIONS)
def test_levels_must_go_largest_first(tmp_path: Path, version: str) -> None:
    """M3 is a MUST: reversed levels are an error (they were a warning)."""
    path = image(tmp_path / "img.ome.zarr", version)
    assert check(path).problems == []
    edit(path / meta_file(version), lambda m: m["multiscales"][0]["datasets"].reverse())
    (problem,) = check(path).errors
    assert problem.key == meta_file(version)
    assert problem.path.endswith("multiscales[0].datasets")
    assert "must go from largest (highest resolution) to smallest" in problem.message


def test_05_levels_must_have_dimension_names(tmp_path: Path) -> None:
    """V4 (0.5.2): dimension_names MUST be there; a level without them was accepted."""
    path = image(tmp_path / "img.ome.zarr", "0.5")
    edit(path / "1" / "zarr.json", lambda a: a.pop("dimension_names"))
    (problem,) = check(path).errors
    assert (problem.key, problem.path) == ("1/zarr.json", "$.dimension_names")
    assert "name their dimensions as the axes (c, y, x)" in problem.message


@pytest.mark.parametrize("version", VERSIONS)
def test_omero_channels_match_the_channel_axis(tmp_path: Path, version: str) -> None:
    """omero: one channel per index of the channel axis (SHOULD: a warning)."""
    path = image(tmp_path / "img.ome.zarr", version, channels=["a", "b"])
    assert check(path).problems == []
    edit(path / meta_file(version), lambda m: m["omero"]["channels"].pop())
    report = check(path)
    assert report.valid
    (warning,) = report.warnings
    assert "omero has 1 channels and the image 2" in warning.message


@pytest.mark.parametrize("version", VERSIONS)
def test_groups_between_labels_and_label_images_hold_no_metadata(
    tmp_path: Path, version: str
) -> None:
    path = image(tmp_path / "img.ome.zarr", version)
    image(path / "labels" / "seg" / "cells", version, dtype="uint8")
    group(path / "labels", version, {"labels": ["seg/cells"]})
    group(path / "labels" / "seg", version, {})
    assert check(path).errors == []
    group(path / "labels" / "seg", version, {"labels": ["cells"]})
    (problem,) = check(path).errors
    assert problem.key == f"labels/seg/{meta_file(version)}"
    assert "groups must not hold NGFF metadata" in problem.message


def plate(root: Path, version: str, acquisitions: list[int], field: dict[str, Any]) -> Path:
    path = root / "plate.ome.zarr"
    body: dict[str, Any] = {
        "rows": [{"name": "A"}],
        "columns": [{"name": "1"}],
        "wells": [{"path": "A/1", "rowIndex": 0, "columnIndex": 0}],
        "acquisitions": [{"id": i} for i in acquisitions],
    }
    group(path, version, {"plate": body})
    group(path / "A", version, {})
    group(path / "A" / "1", version, {"well": {"images": [field]}})
    image(path / "A" / "1" / field["path"], version)
    return path


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    ("acquisitions", "field", "error"),
    [
        ([0, 1], {"path": "0", "acquisition": 1}, None),
        ([0, 1], {"path": "0"}, "missing: the plate has 2 acquisitions [0, 1]"),
        ([0, 1], {"path": "0", "acquisition": 5}, "acquisition 5 is not one of the plate's"),
        ([0], {"path": "0"}, None),
        ([0], {"path": "0", "acquisition": 3}, "acquisition 3 is not one of the plate's [0]"),
    ],
)
def test_field_acquisitions(
    tmp_path: Path,
    version: str,
    acquisitions: list[int],
    field: dict[str, Any],
    error: str | None,
) -> None:
    """W3: with several acquisitions every field names one, and it is one of the plate's."""
    report = check(plate(tmp_path, version, acquisitions, field))
    if error is None:
        assert report.problems == []
        return
    (problem,) = report.errors
    assert problem.key == f"A/1/{meta_file(version)}"
    assert problem.path.endswith("well.images[0].acquisition")
    assert problem.message.startswith(error)


@pytest.mark.parametrize("version", VERSIONS)
def test_plate_rows_are_groups(tmp_path: Path, version: str) -> None:
    """HCS layout: a group per row between the plate and its wells (MUST)."""
    path = plate(tmp_path, version, [0], {"path": "0"})
    for name in ("zarr.json", ".zgroup", ".zattrs"):
        (path / "A" / name).unlink(missing_ok=True)
    (problem,) = check(path).errors
    assert problem.key == "A"
    assert problem.message.startswith("missing row group")


@pytest.mark.parametrize("version", VERSIONS)
def test_three_space_axes_should_be_zyx(version: str) -> None:
    """A7 (SHOULD): x, y, z space axes give a warning, z, y, x none."""
    axes = [{"name": n, "type": "space"} for n in "xyz"]
    ms: dict[str, Any] = {
        "axes": axes,
        "datasets": [{"path": "0", "coordinateTransformations": []}],
    }
    ms["datasets"][0]["coordinateTransformations"] = [{"type": "scale", "scale": [1, 1, 1]}]
    doc: dict[str, Any] = {"multiscales": [ms]}
    if version == "0.5":
        doc = {"ome": {"version": "0.5", **doc}}
    with pytest.warns(MetadataWarning, match="three space axes should be ordered z, y, x"):
        validate(doc)
    axes.reverse()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        validate(doc)


def test_ome_object_with_version_04() -> None:
    """0.4 metadata under 'ome' said only 'no NGFF metadata found - at `$`'."""
    axes = [{"name": n, "type": "space"} for n in "yx"]
    ct = [{"type": "scale", "scale": [1, 1]}]
    ms = {"axes": axes, "datasets": [{"path": "0", "coordinateTransformations": ct}]}
    with pytest.raises(MetadataError, match=r"NGFF 0\.4 metadata is at the top level") as info:
        validate({"ome": {"version": "0.4", "multiscales": [ms]}})
    assert info.value.path == "$.ome.version"


@pytest.mark.parametrize("version", VERSIONS)
def test_label_source_is_an_image_group(tmp_path: Path, version: str) -> None:
    """image-label.source.image MUST lead to an image group."""
    path = image(tmp_path / "img.ome.zarr", version)
    with ngio_async.open(str(path), mode="r+") as ds:
        ds.labels.create("cells", dtype="uint8").close()
    label = path / "labels" / "cells" / meta_file(version)
    for source, valid in (("../../", True), ("../..", True), ("../../nope", False)):

        def set_source(m: dict[str, Any], s: str = source) -> None:
            m["image-label"].update(source={"image": s})

        edit(label, set_source)
        report = check(path)
        assert report.valid is valid, source
    (problem,) = report.errors
    assert problem.key == f"labels/cells/{meta_file(version)}"
    assert problem.path.endswith("image-label.source.image")
    assert problem.message.startswith("'../../nope' leads to 'nope', which is not an image group")


@pytest.mark.parametrize("version", VERSIONS)
def test_label_image_should_have_image_label(tmp_path: Path, version: str) -> None:
    """L3 (SHOULD): a label image without 'image-label' is valid, with a warning."""
    path = image(tmp_path / "img.ome.zarr", version)
    with ngio_async.open(str(path), mode="r+") as ds:
        ds.labels.create("cells", dtype="uint8").close()
    assert check(path).problems == []
    edit(path / "labels" / "cells" / meta_file(version), lambda m: m.pop("image-label"))
    report = check(path)
    assert report.valid
    (warning,) = report.warnings
    assert "no 'image-label'" in warning.message


@pytest.mark.parametrize("version", VERSIONS)
def test_label_images_are_integers(tmp_path: Path, version: str) -> None:
    """L2: a float label image listed by the labels group, even without 'image-label', is an
    error from 0.5 on and a warning (with its key and path) in 0.4."""
    path = image(tmp_path / "img.ome.zarr", version)
    image(path / "labels" / "cells", version, dtype="float32")
    group(path / "labels", version, {"labels": ["cells"]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetadataWarning)
        report = check(path)
    array_key = "zarr.json" if version == "0.5" else ".zarray"
    found = [p for p in report.problems if p.key == f"labels/cells/0/{array_key}"]
    assert [(p.severity, p.path) for p in found] == [
        (
            "error" if version == "0.5" else "warning",
            "$.data_type" if version == "0.5" else "$.dtype",
        )
    ]
    assert found[0].message == "label level '0' has dtype float32; labels are integers"


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", ["cells", "seg/cells"])
def test_label_levels_match_the_image(tmp_path: Path, version: str, name: str) -> None:
    """M10: one label level per image level, also for a label image in a nested path (its
    image was looked up one group too low, so the rule was skipped)."""
    path = image(tmp_path / "img.ome.zarr", version, levels=2)
    image(path / "labels" / name, version, levels=1, dtype="uint8")
    group(path / "labels", version, {"labels": [name]})
    (problem,) = check(path).errors
    assert problem.key == f"labels/{name}/{meta_file(version)}"
    assert "the label image has 1 levels and its image 2" in problem.message


def test_05_child_without_version_is_a_warning(tmp_path: Path) -> None:
    """A 0.5 group's 'ome' MUST have 'version': a child without one (ome-zarr-py 0.18's labels
    group) is validated as its parent's version, with a warning (it passed silently)."""
    path = image(tmp_path / "img.ome.zarr", "0.5")
    with ngio_async.open(str(path), mode="r+") as ds:
        ds.labels.create("cells", dtype="uint8").close()
    edit(path / "labels" / "zarr.json", lambda m: m.pop("version"))
    report = check(path)
    assert report.valid
    (warning,) = report.warnings
    assert (warning.key, warning.path) == ("labels/zarr.json", "$.attributes.ome")
    assert warning.message.startswith("no 'version': NGFF 0.5 requires one")
