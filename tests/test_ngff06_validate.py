"""NGFF 0.6rc0 (RFC-5) validation: the rules behind the corpus verdicts, the 0.5-shaped view
of a 0.6 image and the typed 0.6 document it keeps."""

from __future__ import annotations

import copy
import warnings
from typing import Any

import pytest
from corpus_files import load, manifest

from ngio_async import MetadataError, UnsupportedError
from ngio_async.meta import (
    MetadataWarning,
    Multiscale06,
    ngff06_of,
    to_attrs,
    validate,
    validate_transformations,
)
from ngio_async.meta._transforms06 import Affine, ByDimension, MapAxis, Sequence

ROWS = {r["path"]: r for r in manifest()}


def _doc(name: str) -> Any:
    return load(ROWS[f"0.6rc0/{name}"])


def _repaired(doc: Any) -> Any:
    """``doc`` with the bare-string ``input`` / ``output`` of the upstream "transforms" cases
    made objects, so that only the rule each case is about can reject it."""
    doc = copy.deepcopy(doc)
    ms = doc["ome"]["multiscales"][0]
    for ds in ms["datasets"]:
        t = ds["coordinateTransformations"][0]
        if isinstance(t.get("input"), str):
            t["input"] = {"path": ds["path"]}
        if isinstance(t.get("output"), str):
            t["output"] = {"name": t["output"]}
    for t in ms.get("coordinateTransformations", ()):
        for key in ("input", "output"):
            if isinstance(t.get(key), str):
                t[key] = {"name": t[key]}
    return doc


def _quiet(doc: Any, **kw: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetadataWarning)
        return validate(doc, **kw)


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("bad_affine_no_affine", "exactly one of 'affine', 'path'"),
        ("bad_affine_no_input_output", "must be an object naming a coordinate system"),
        ("bad_byDimension_no_input_output_axes", "needs axis indices"),
        ("bad_byDimension_wrong_axes_type", "needs axis indices"),
        ("bad_mapaxis", "length <= 5"),
        ("bad_mapaxis2", "not a permutation"),
        ("bad_mapaxis3", "not a permutation"),
        ("bad_mapaxis4", "not a permutation"),
        ("bad_mapaxis5", "missing required field `mapAxis`"),
        ("bad_rotation", "Expected `array`, got `int`"),
        ("bad_rotation2", "exactly one of 'rotation', 'path'"),
        ("bad_rotation3", "square"),
        ("bad_scale_path_not_allowed", "missing required field `scale`"),
        ("bad_translate_path_not_allowed", "missing required field `translation`"),
        ("multiscales_transform_missing_params", "exactly one of 'affine', 'path'"),
    ],
)
def test_transform_rules(name: str, match: str) -> None:
    """The upstream "transforms" cases, their refs made objects: still rejected, by the rule
    each is about, at the multiscale-level transformation."""
    doc = _repaired(_doc(f"image/invalid/{name}.json"))
    with pytest.raises(MetadataError, match=match) as info:
        _quiet(doc, version="0.6rc0")
    assert info.value.path.startswith("$.ome.multiscales[0].coordinateTransformations[0]")


def test_dataset_transform_rules() -> None:
    """A level's transformation: one of scale / identity / sequence[scale, translation], from
    its array ({"path"}) to the same named system for every level."""
    base = _doc("image/valid/mapAxis.json")
    swapped = copy.deepcopy(base)
    seq = swapped["ome"]["multiscales"][0]["datasets"][1]["coordinateTransformations"][0]
    seq["transformations"].reverse()
    with pytest.raises(MetadataError, match="followed by one 'translation'") as info:
        validate(swapped)
    assert info.value.path == "$.ome.multiscales[0].datasets[1].coordinateTransformations[0]"
    other = copy.deepcopy(base)
    other["ome"]["multiscales"][0]["datasets"][2]["coordinateTransformations"][0]["output"] = {
        "name": "sheared"
    }
    with pytest.raises(MetadataError, match="same \\(intrinsic\\)") as info:
        validate(other)
    assert info.value.path.endswith("datasets[2].coordinateTransformations[0].output.name")
    unknown = copy.deepcopy(base)
    for ds in unknown["ome"]["multiscales"][0]["datasets"]:
        ds["coordinateTransformations"][0]["output"] = {"name": "nowhere"}
    with pytest.raises(MetadataError, match="'nowhere' is not a coordinate system"):
        validate(unknown)


def test_dimensions_checked_against_systems() -> None:
    """Parameters against the dimensions of the named input / output systems."""
    doc = _doc("image/valid/affine.json")
    doc["ome"]["multiscales"][0]["coordinateTransformations"][0]["affine"] = [[1, 0, 0]]
    with pytest.raises(MetadataError, match="has 1 rows, the output 2 axes") as info:
        validate(doc)
    assert info.value.path == "$.ome.multiscales[0].coordinateTransformations[0].affine"
    doc = _doc("image/valid/projectAxis.json")
    doc["ome"]["multiscales"][0]["coordinateTransformations"][0]["createdOutputs"] = [0]
    with pytest.raises(MetadataError, match="2 input axes - 0 dropped \\+ 1 created"):
        validate(doc)
    doc = _doc("image/valid/rotation.json")
    doc["ome"]["multiscales"][0]["coordinateTransformations"][0]["rotation"] = [[1, 1], [0, 1]]
    with pytest.raises(MetadataError, match="orthonormal"):
        validate(doc)
    frag = _doc("transform_fragment/invalid/byDimensionInvalid1.json")
    frag["coordinateTransformations"][0]["transformations"][0]["outputAxes"] = [1]
    with pytest.raises(MetadataError, match="cover each of the output's 2 axes") as info:
        validate_transformations(frag)
    assert info.value.path == "$.coordinateTransformations[0].transformations"


def test_labels_link_is_simple() -> None:
    """A transformation to a labels group's system is identity, scale or translation."""
    doc = _doc("image/valid/example-multiscales_reference_to_label.json")
    t = doc["ome"]["multiscales"][0]["coordinateTransformations"][0]
    t.update(type="mapAxis", mapAxis=[0, 1, 2])
    with pytest.raises(MetadataError, match="labels group's coordinate system"):
        validate(doc)


def test_view_and_typed_document() -> None:
    """The view: axes of the intrinsic system, per level scale / translation; the typed 0.6
    document keeps every coordinate system and transformation."""
    doc = _doc("image/valid/mapAxis.json")
    meta = validate(doc)  # detected from ome.version
    assert meta.version == "0.6rc0"
    assert meta.multiscales is not None
    ms = meta.multiscales[0]
    assert ms.axis_names == ["y", "x"]
    assert [d.scale for d in ms.datasets] == [[1, 1], [2, 2], [4, 4]]
    assert ms.datasets[2].translation == [2.1213, 2.1213]
    ome06 = ngff06_of(meta)
    assert ome06 is not None and ome06.multiscales is not None
    ms06 = ome06.multiscales[0]
    assert isinstance(ms06, Multiscale06)
    assert ms06.intrinsic.name == "physical"
    assert [cs.name for cs in ms06.coordinate_systems] == ["sheared", "physical"]
    assert ms06.coordinate_transformations is not None
    outer = ms06.coordinate_transformations[0]
    assert isinstance(outer, MapAxis) and outer.map_axis == [1, 0]
    assert isinstance(ms06.datasets[1].transform, Sequence)
    assert ngff06_of(_quiet(load(ROWS["0.5/image/valid/custom_type_axes.json"]))) is None


def test_typed_transforms() -> None:
    """byDimension parts, affine and nested transformations come typed."""
    frag = validate_transformations(_doc("transform_fragment/valid/byDimensionXarray.json"))
    assert frag.coordinate_transformations is not None
    t = frag.coordinate_transformations[0]
    assert isinstance(t, ByDimension)
    assert [(i.input_axes, i.output_axes) for i in t.items] == [([0], [0]), ([1], [1])]
    meta = _quiet(_doc("image/valid/multiscales_transform_additional_transforms.json"))
    ome06 = ngff06_of(meta)
    assert ome06 is not None and ome06.multiscales is not None
    outer = ome06.multiscales[0].coordinate_transformations
    assert outer is not None and isinstance(outer[0], Sequence)
    assert isinstance(outer[0].transformations[2], Affine)


def test_writes_refused_conversion_to_05() -> None:
    """A 0.6 view is not written back as 0.6 (ngio_async writes 0.4 / 0.5 only); as 0.5 it
    gives the intrinsic axes and the levels' transformations."""
    meta = validate(_doc("image/valid/example-multiscales_example.json"))
    with pytest.raises(UnsupportedError, match=r"0\.6rc0"):
        to_attrs(meta)
    attrs = to_attrs(meta, "0.5")
    back = validate(attrs)
    assert back.version == "0.5" and back.multiscales is not None
    assert back.multiscales[0].axis_names == ["t", "c", "z", "y", "x"]
    assert back.multiscales[0].datasets[1].translation == [0, 0, 0.25, 0.25, 0.25]


def _warned(doc: Any, **kw: Any) -> tuple[Any, list[str]]:
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always", MetadataWarning)
        meta = validate(doc, **kw)
    return meta, [str(w.message) for w in got]


def test_relaxed_rules_warn() -> None:
    """MUST rules the 0.6rc0 suite has valid cases breaking warn, naming the path."""
    meta, got = _warned(_doc("image/valid/strict-multiscales_example.json"), strict=True)
    assert (
        "'s1' is not the dataset's path '1' (read as '1') - at "
        "`$.ome.multiscales[0].datasets[1].coordinateTransformations[0].input.path`"
    ) in got
    assert meta.multiscales is not None and meta.multiscales[0].datasets[1].path == "1"
    _, got = _warned(_doc("image/valid/strict-image_omero.json"))
    assert any("'intrinsic' is no coordinate system of this multiscale" in m for m in got)
    assert any("links no system to the intrinsic one, 'physical'" in m for m in got)
    meta, got = _warned(_doc("image/valid/example-multiscales.json"))
    assert any("belongs in an 'ome' object" in m for m in got)
    assert meta.version == "0.6rc0"
    _, got = _warned(_doc("image/valid/invalid_axis_units.json"))
    assert any("unit 'micron' of space axis 'y'" in m for m in got)
    _, got = _warned(_doc("image/valid/scale.json"))
    assert got == []


def test_array_intrinsic_system_has_no_view() -> None:
    """A valid 0.6 image whose intrinsic system is an array one has no 0.5-shaped view
    (``multiscales`` None) but its typed document."""
    meta = _quiet(_doc("image/valid/byDimension.json"))
    assert meta.multiscales is None
    ome06 = ngff06_of(meta)
    assert ome06 is not None and ome06.multiscales is not None
    assert ome06.multiscales[0].intrinsic.name == "array_coordinates"


def test_scene_and_strict_kinds() -> None:
    """A scene document; strict rules are those of the kind asked for."""
    meta = validate(_doc("scene/valid/tile_stitching.json"), kind="scene")
    ome06 = ngff06_of(meta)
    assert ome06 is not None and ome06.scene is not None
    assert len(ome06.scene.coordinate_transformations) == 4
    with pytest.raises(MetadataError, match="a scene document must have 'scene'"):
        validate(_doc("image/valid/scale.json"), kind="scene")
    label = _doc("label/valid/example-colors_properties.json")
    validate(label, kind="label", strict=True)  # its multiscale lacks name: not a label rule
    with pytest.raises(MetadataError, match="SHOULD field is missing") as info:
        _quiet(label, kind="image", strict=True)
    assert info.value.path == "$.ome.multiscales[0].name"


def test_version_detection() -> None:
    """Any "0.6..." version reads as 0.6 (version="0.6" asks for any of them); an 'ome' of
    0.6 shape without a version is a 0.6 document missing it, not a 0.5 one."""
    doc = _doc("image/valid/scale.json")
    doc["ome"]["version"] = "0.6.dev4"
    assert validate(doc).version == "0.6.dev4"
    assert validate(doc, version="0.6").version == "0.6.dev4"
    with pytest.raises(MetadataError, match=r"version must be '0\.6rc0'"):
        validate(doc, version="0.6rc0")
    with pytest.raises(MetadataError, match=r"version must be '0\.6'"):
        validate(load(ROWS["0.5/image/valid/custom_type_axes.json"]), version="0.6")
    del doc["ome"]["version"]
    with pytest.raises(MetadataError, match=r"NGFF 0\.6 requires 'version'") as info:
        validate(doc)
    assert info.value.path == "$.ome"


def test_scene_refs_and_label_links() -> None:
    """A scene reference without a path names one of the scene's own coordinate systems; a
    link to a label image may also be a sequence of a scale and a translation."""
    doc = _doc("scene/valid/tile_stitching.json")
    doc["ome"]["scene"]["coordinateTransformations"][2]["output"] = {"name": "elsewhere"}
    with pytest.raises(MetadataError, match="'elsewhere' is no coordinate system of the scene"):
        validate(doc)
    doc = _doc("image/valid/example-multiscales_reference_to_label.json")
    t = doc["ome"]["multiscales"][0]["coordinateTransformations"][0]
    t.update(
        type="sequence",
        transformations=[
            {"type": "scale", "scale": [1, 2, 2]},
            {"type": "translation", "translation": [0, 0.5, 0.5]},
        ],
    )
    ome06 = ngff06_of(_quiet(doc))
    assert ome06 is not None and ome06.multiscales is not None
    t["transformations"].reverse()
    with pytest.raises(MetadataError, match="labels group's coordinate system"):
        _quiet(doc)
