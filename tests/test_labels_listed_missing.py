"""A label image listed in ``labels/`` but missing says so (it said 'no label' and listed it)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_a_listed_label_without_its_group(tmp_path: Path, version: str) -> None:
    url = str(tmp_path / "img.ome.zarr")
    with ngio_async.create(
        url, shape=(32, 32), dtype="uint8", axes="yx", ngff_version=version
    ) as ds:
        ds.labels.create("cells")
    labels = tmp_path / "img.ome.zarr" / "labels"
    if version == "0.4":
        attrs = json.loads((labels / ".zattrs").read_text())
        attrs["labels"].append("ghost")
        (labels / ".zattrs").write_text(json.dumps(attrs))
    else:
        doc = json.loads((labels / "zarr.json").read_text())
        doc["attributes"]["ome"]["labels"].append("ghost")
        (labels / "zarr.json").write_text(json.dumps(doc))
    with ngio_async.open(url) as ds:
        assert ds.labels.names() == ["cells", "ghost"]
        with pytest.raises(ngio_async.NotFoundError, match=r"'ghost' is listed in .* cannot be"):
            ds.labels["ghost"]
        with pytest.raises(
            ngio_async.NotFoundError, match=r"no label 'nope' .*\['cells', 'ghost'\]"
        ):
            ds.labels["nope"]
