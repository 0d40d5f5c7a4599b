"""JSON numbers: an integer field takes ``3.0`` as the official JSON schemas do, never ``3.5``."""

from __future__ import annotations

import json
from typing import Any

import pytest
from corpus_files import CORPUS
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from ngio_async import MetadataError
from ngio_async.meta import to_attrs, validate


def schema_04(name: str) -> Draft202012Validator:
    schemas = [json.loads(p.read_text()) for p in (CORPUS / "0.4" / "schemas").glob("*.schema")]
    reg: Registry[Any] = Registry().with_resources(
        (s["$id"], Resource.from_contents(s, default_specification=DRAFT202012)) for s in schemas
    )
    target = next(s for s in schemas if s["$id"].endswith("/" + name + ".schema"))
    return Draft202012Validator(target, registry=reg)


PLATE = {
    "plate": {
        "version": "0.4",
        "rows": [{"name": "A"}],
        "columns": [{"name": "1"}],
        "wells": [{"path": "A/1", "rowIndex": 0.0, "columnIndex": 0}],
        "acquisitions": [{"id": 0.0, "maximumfieldcount": 2.0, "starttime": 1.7e9}],
        "field_count": 3.0,
    }
}
LABEL = {
    "image-label": {"version": "0.4", "colors": [{"label-value": 1.0, "rgba": [255.0, 0, 0, 255]}]}
}
WELL = {"well": {"version": "0.4", "images": [{"path": "0", "acquisition": 0.0}]}}


@pytest.mark.parametrize(("doc", "name"), [(PLATE, "plate"), (LABEL, "label"), (WELL, "well")])
def test_integral_floats_are_integers(doc: dict[str, Any], name: str) -> None:
    """Written by Python from float-typed values; the schema accepts them, so must we (it was
    'Expected `int`, got `float`')."""
    assert schema_04(name).is_valid(doc)
    meta = validate(doc)
    out = to_attrs(meta, "0.4")
    if name == "plate":
        assert meta.plate is not None and meta.plate.wells[0].row_index == 0
        assert out["plate"]["acquisitions"][0] == {
            "id": 0,
            "maximumfieldcount": 2,
            "starttime": 1700000000,
        }
        assert type(out["plate"]["field_count"]) is int
    elif name == "label":
        assert out["image-label"]["colors"][0] == {"label-value": 1, "rgba": [255, 0, 0, 255]}
    else:
        assert out["well"]["images"][0] == {"path": "0", "acquisition": 0}


def test_fractions_and_strings_are_still_refused() -> None:
    doc = json.loads(json.dumps(LABEL))
    doc["image-label"]["colors"][0]["rgba"][3] = 254.5
    with pytest.raises(MetadataError, match="Expected `int`, got `float`") as info:
        validate(doc)
    assert info.value.path == "$.image-label.colors[0].rgba[3]"
    doc = json.loads(json.dumps(WELL))
    doc["well"]["images"][0]["acquisition"] = "0"
    with pytest.raises(MetadataError, match="got `str`") as info:
        validate(doc)
    assert info.value.path == "$.well.images[0].acquisition"
