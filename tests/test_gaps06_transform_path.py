"""NGFF 0.6rc0: a ``scale`` / ``translation`` given by ``path`` (its numbers in a Zarr array)
is refused by validation, naming the field and the rule (the spec's scale and translation
sections, and the schema, store the numbers inline only); inline ones stay valid."""

from __future__ import annotations

import copy
import re

import pytest
from test_ngff06_read import _attrs

from ngio_async import MetadataError
from ngio_async.meta import validate

DOC = "zarr_json/valid/example-image-multiscales_example.json"


@pytest.mark.parametrize("key", ["scale", "translation"])
def test_by_path_refused_naming_the_rule(key: str) -> None:
    attrs = _attrs(DOC)
    validate(copy.deepcopy(attrs))  # the corpus case, inline: valid
    ds = attrs["ome"]["multiscales"][0]["datasets"][0]
    t = ds["coordinateTransformations"][0]
    if key == "translation":  # a dataset's [scale, translation] sequence
        scale = dict(t)
        ds["coordinateTransformations"][0] = t = {
            "type": "sequence",
            "input": scale.pop("input"),
            "output": scale.pop("output"),
            "transformations": [scale, {"type": "translation", "path": "ct/t0"}],
        }
        where = r"coordinateTransformations\[0\]\.transformations\[1\]\.path"
    else:
        del t["scale"]
        t["path"] = "ct/t0"
        where = r"coordinateTransformations\[0\]\.path"
    with pytest.raises(
        MetadataError, match=rf"missing required field `{key}`: a {key} given by 'path'.*'ct/t0'"
    ) as err:
        validate(attrs)
    assert re.search(where, err.value.path)
    assert f"the spec's '{key}' section" in str(err.value)


def test_missing_numbers_still_named() -> None:
    attrs = _attrs(DOC)
    del attrs["ome"]["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"]
    with pytest.raises(MetadataError, match=r"missing required field `scale`"):
        validate(attrs)
