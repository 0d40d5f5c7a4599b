"""Unit tests of ngio_async.meta: rules, paths, versions, unknown keys and schema-valid output."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from corpus_files import CORPUS
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from ngio_async import MetadataError, UnsupportedError
from ngio_async.meta import (
    Axis,
    Channel,
    MetadataWarning,
    Multiscale,
    OmeMetadata,
    Scale,
    Window,
    decode_attrs,
    decode_zarr_json,
    encode_attrs,
    to_attrs,
    validate,
)


def schema(version: str, name: str) -> Draft202012Validator:
    schemas = [json.loads(p.read_text()) for p in (CORPUS / version / "schemas").glob("*.schema")]
    reg: Registry[Any] = Registry().with_resources(
        (s["$id"], Resource.from_contents(s, default_specification=DRAFT202012)) for s in schemas
    )
    target = next(s for s in schemas if s["$id"].endswith("/" + name + ".schema"))
    return Draft202012Validator(target, registry=reg)


def image_04(ndim_scale: int = 4) -> dict[str, Any]:
    return {
        "multiscales": [
            {
                "version": "0.4",
                "name": "img",
                "type": "local_mean",
                "axes": [
                    {"name": "c", "type": "channel"},
                    {"name": "z", "type": "space", "unit": "micrometer"},
                    {"name": "y", "type": "space", "unit": "micrometer"},
                    {"name": "x", "type": "space", "unit": "micrometer"},
                ],
                "datasets": [
                    {
                        "path": str(i),
                        "coordinateTransformations": [
                            {"type": "scale", "scale": [1.0] + [2.0**i] * (ndim_scale - 1)},
                            {"type": "translation", "translation": [0.0, 0.0, 0.5, 0.5]},
                        ],
                    }
                    for i in range(2)
                ],
                "metadata": {"method": "skimage.transform.downscale_local_mean", "custom": [1, 2]},
            }
        ],
        "omero": {
            "id": 1,
            "name": "img",
            "version": "0.4",
            "rdefs": {"defaultT": 0, "defaultZ": 3, "model": "color", "projection": "normal"},
            "channels": [
                {
                    "label": "DAPI",
                    "color": "0000FF",
                    "window": {"min": 0, "max": 65535, "start": 100, "end": 4000},
                    "active": True,
                    "family": "linear",
                    "coefficient": 1.0,
                    "inverted": False,
                    "vendor_key": {"anything": True},
                }
            ],
        },
        "_creator": {"name": "some-tool", "version": "9"},
    }


def to_05(doc04: dict[str, Any]) -> dict[str, Any]:
    return {"ome": {"version": "0.5", **copy.deepcopy(doc04)}}


def test_model_fields() -> None:
    meta = validate(image_04())
    ms = meta.multiscales
    assert ms is not None
    assert meta.version == "0.4"
    assert ms[0].axis_names == ["c", "z", "y", "x"]
    assert ms[0].datasets[1].scale == [1.0, 2.0, 2.0, 2.0]
    assert ms[0].datasets[1].translation == [0.0, 0.0, 0.5, 0.5]
    assert meta.omero is not None
    assert meta.omero.channels[0].label == "DAPI"
    assert meta.omero.channels[0].window.end == 4000
    assert meta.kinds == ["image"]


def test_unknown_keys_survive_round_trip() -> None:
    doc = image_04()
    out = to_attrs(validate(doc))
    assert out == doc  # omero extras, rdefs extras, custom metadata, top-level custom keys
    out5 = to_attrs(validate(to_05(doc)))
    # every key but 0.4's omero.version, which 0.5 does not have
    assert out5["ome"]["omero"] == {k: v for k, v in doc["omero"].items() if k != "version"}
    assert out5["ome"]["multiscales"][0]["metadata"] == doc["multiscales"][0]["metadata"]


def test_05_keeps_other_attributes() -> None:
    attrs = {**to_05(image_04()), "other-tool": {"x": 1}}
    del attrs["ome"]["_creator"]
    assert to_attrs(validate(attrs)) == {
        **attrs,
        "ome": {**attrs["ome"], "multiscales": [dict(attrs["ome"]["multiscales"][0])]},
    } | {"ome": to_attrs(validate(attrs))["ome"]}
    assert to_attrs(validate(attrs))["other-tool"] == {"x": 1}


def test_label_properties_keep_free_keys() -> None:
    doc = {
        "ome": {
            "version": "0.5",
            "image-label": {
                "colors": [{"label-value": 1, "rgba": [255, 0, 0, 255]}],
                "properties": [{"label-value": 1, "area (pixels)": 1200, "class": "cell"}],
                "source": {"image": "../../"},
            },
        }
    }
    assert to_attrs(validate(doc)) == doc


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_written_documents_pass_official_schemas(version: str) -> None:
    meta = validate(image_04())
    attrs = to_attrs(meta, version)
    schema(version, "strict_image").validate(attrs)
    if version == "0.5":
        assert attrs["ome"]["version"] == "0.5"
        assert "version" not in attrs["ome"]["multiscales"][0]
    else:
        assert attrs["multiscales"][0]["version"] == "0.4"


def test_edit_then_write() -> None:
    meta = validate(image_04())
    assert meta.omero is not None
    meta.omero.channels.append(
        Channel(color="FF0000", window=Window(min=0, max=255, start=0, end=200), label="GFP")
    )
    attrs = to_attrs(meta, "0.5")
    schema("0.5", "image").validate(attrs)
    chans = attrs["ome"]["omero"]["channels"]
    assert [c["label"] for c in chans] == ["DAPI", "GFP"]
    assert chans[0]["vendor_key"] == {"anything": True}  # the old channel keeps its extras
    assert "vendor_key" not in chans[1]


def test_bytes_decoders() -> None:
    raw = json.dumps(image_04()).encode()
    assert decode_attrs(raw).multiscales is not None
    zarr_json = {"zarr_format": 3, "node_type": "group", "attributes": to_05(image_04())}
    meta = decode_zarr_json(json.dumps(zarr_json).encode())
    assert meta.version == "0.5"
    assert json.loads(encode_attrs(meta))["ome"]["version"] == "0.5"


@pytest.mark.parametrize(
    ("mutate", "path", "rule"),
    [
        (
            lambda m: m["datasets"][1]["coordinateTransformations"].reverse(),
            "$.multiscales[0].datasets[1].coordinateTransformations[0]",
            "first transformation must be a 'scale'",
        ),
        (
            lambda m: m["datasets"][1]["coordinateTransformations"].append(
                {"type": "translation", "translation": [0, 0, 0, 0]}
            ),
            "$.multiscales[0].datasets[1].coordinateTransformations",
            "exactly one 'scale'",
        ),
        (lambda m: m["axes"].reverse(), "$.multiscales[0].axes[3]", "out of order"),
        (
            lambda m: (
                m["axes"][0].update(type="time")
                or m["axes"].insert(0, {"name": "t", "type": "time"})
            ),
            "$.multiscales[0].axes",
            "at most one axis of type 'time'",
        ),
        (
            lambda m: m["axes"].insert(0, {"name": "angle", "type": "custom"}),
            "$.multiscales[0].axes",
            "at most one axis of type 'channel'",
        ),
        (
            lambda m: m["axes"][2].update(name="z"),
            "$.multiscales[0].axes[2].name",
            "duplicate axis name 'z'",
        ),
        (lambda m: m["datasets"][1].update(path="0"), "$.multiscales[0].datasets", "unique"),
        (lambda m: m["axes"][0].update(name=5), "$.multiscales[0].axes[0].name", "Expected `str`"),
    ],
)
def test_rule_paths(mutate: Any, path: str, rule: str) -> None:
    for version in ("0.4", "0.5"):
        doc = image_04()
        mutate(doc["multiscales"][0])
        if version == "0.5":
            doc = to_05(doc)
            path = path.replace("$.multiscales", "$.ome.multiscales")
        with pytest.raises(MetadataError) as info:
            validate(doc)
        assert info.value.path == path
        assert rule in str(info.value)
        assert isinstance(info.value, ValueError)


def test_transform_length_is_an_error_in_05_and_a_warning_in_04() -> None:
    doc = image_04(ndim_scale=3)
    with pytest.raises(MetadataError, match="has 3 values, expected 4") as info:
        validate(to_05(doc))
    assert info.value.path == "$.ome.multiscales[0].datasets[0].coordinateTransformations[0].scale"
    with pytest.warns(MetadataWarning, match="has 3 values, expected 4"):
        validate(doc)


def test_unknown_unit_warns() -> None:
    doc = image_04()
    doc["multiscales"][0]["axes"][3]["unit"] = "micron"
    with pytest.warns(MetadataWarning, match="'micron'"):
        meta = validate(doc)
    assert meta.multiscales is not None


def test_label_values_must_be_integers() -> None:
    doc = {"image-label": {"colors": [{"label-value": 1.5}]}}
    with pytest.raises(MetadataError, match="Expected `int`") as info:
        validate(doc)
    assert info.value.path == "$.image-label.colors[0].label-value"


def test_well_path_must_match_indices() -> None:
    doc: dict[str, Any] = {
        "ome": {
            "version": "0.5",
            "plate": {
                "rows": [{"name": "A"}, {"name": "B"}],
                "columns": [{"name": "1"}],
                "wells": [{"path": "A/1", "rowIndex": 1, "columnIndex": 0}],
            },
        }
    }
    with pytest.raises(MetadataError, match="expected 'B/1'") as info:
        validate(doc)
    assert info.value.path == "$.ome.plate.wells[0].path"
    doc["ome"]["plate"]["wells"][0]["rowIndex"] = 2
    with pytest.raises(MetadataError, match="out of range") as info:
        validate(doc)
    assert info.value.path == "$.ome.plate.wells[0].rowIndex"


@pytest.mark.parametrize(
    ("doc", "kwargs", "error", "match"),
    [
        (b"{not json", {}, MetadataError, "invalid JSON"),
        ([1, 2], {}, MetadataError, "expected a JSON object"),
        ({"foo": 1}, {}, MetadataError, "no NGFF metadata found"),
        ({"ome": {"version": "0.7", "multiscales": []}}, {}, UnsupportedError, "'0.7'"),
        ({"ome": {"version": "0.6rc0", "multiscales": []}}, {}, MetadataError, "length >= 1"),
        ({"ome": {"version": "0.5"}} | {"x": 1}, {}, MetadataError, "no NGFF metadata"),
        (
            {"ome": {"version": "0.9", "labels": ["a"]}},
            {},
            MetadataError,
            "unknown NGFF version '0.9'",
        ),
        (
            {"multiscales": [{"version": "0.6", "axes": [], "datasets": []}]},
            {},
            MetadataError,
            r"length >= 1 - at `\$\.multiscales\[0\]\.datasets`",
        ),
        ({"labels": ["a"]}, {"version": "0.7"}, UnsupportedError, "0.7"),
        ({"labels": ["a"]}, {"version": "0.5"}, MetadataError, "under the 'ome' key"),
        ({"labels": ["a"]}, {"kind": "plate"}, MetadataError, "a plate document must have 'plate'"),
        (
            {"zarr_format": 3, "node_type": "array", "attributes": {}},
            {},
            MetadataError,
            "node_type",
        ),
    ],
)
def test_document_level_errors(
    doc: Any, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        validate(doc, **kwargs)


def test_strict_profile() -> None:
    doc = image_04()
    del doc["multiscales"][0]["name"]
    assert isinstance(validate(doc), OmeMetadata)
    with pytest.raises(MetadataError, match="strict profile") as info:
        validate(doc, strict=True)
    assert info.value.path == "$.multiscales[0].name"


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (
            lambda d: d["multiscales"][0]["datasets"][1]["coordinateTransformations"][0].update(
                scale=[1.0, 2.0, float("nan"), 2.0]
            ),
            "$.multiscales[0].datasets[1].coordinateTransformations[0].scale[2]",
        ),
        (
            lambda d: d["multiscales"][0]["datasets"][0]["coordinateTransformations"][1].update(
                translation=[0.0, float("-inf"), 0.5, 0.5]
            ),
            "$.multiscales[0].datasets[0].coordinateTransformations[1].translation[1]",
        ),
        (
            lambda d: d["omero"]["channels"][0]["window"].update(max=float("inf")),
            "$.omero.channels[0].window.max",
        ),
        (
            lambda d: d["omero"]["channels"][0].update(coefficient=float("nan")),
            "$.omero.channels[0].coefficient",
        ),
    ],
)
def test_non_finite_numbers_are_refused(mutate: Any, path: str) -> None:
    # JSON has no NaN / infinity: an encoder writes null, and the document would not reopen
    for version in ("0.4", "0.5"):
        doc = image_04()
        mutate(doc)
        want = path
        if version == "0.5":
            doc = to_05(doc)
            want = path.replace("$.", "$.ome.", 1)
        with pytest.raises(MetadataError, match="must be a finite number") as info:
            validate(doc)
        assert info.value.path == want


def test_rules_read_cleanly_when_models_are_built_in_python() -> None:
    # the same checks run on construction; the message names the sub path, no control bytes
    with pytest.raises(ValueError, match="must be a finite number") as info:
        Scale(scale=[1.0, float("inf")])
    assert str(info.value) == "must be a finite number, got inf - at `.scale[1]`"
    with pytest.raises(ValueError) as info:
        Window(min=0, max=float("nan"), start=0, end=1)
    assert str(info.value) == "must be a finite number, got nan - at `.max`"
    axes = [Axis(name=n, type="space") for n in "yyx"]
    with pytest.raises(ValueError) as info:
        Multiscale(axes=axes, datasets=[])
    assert str(info.value) == "duplicate axis name 'y' - at `.axes[1].name`"
    # and decoded documents still get the full JSON path
    doc = image_04()
    doc["multiscales"][0]["axes"][2]["name"] = "z"
    with pytest.raises(MetadataError) as err:
        validate(doc)
    assert err.value.path == "$.multiscales[0].axes[2].name"
    assert err.value.rule == "duplicate axis name 'z'"
