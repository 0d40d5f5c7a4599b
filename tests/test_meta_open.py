"""Opening images whose metadata is odd: what is read, what is refused, what is warned about."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async
from ngio_async import MetadataError
from ngio_async.meta import MetadataWarning, validate

if TYPE_CHECKING:
    from pathlib import Path


def small_image(path: Path, version: str) -> Path:
    with ngio_async.create(
        str(path),
        shape=(2, 8, 8),
        dtype="uint8",
        axes="cyx",
        channels=["DAPI", "GFP"],
        ngff_version=version,
    ) as ds:
        ds.write(np.arange(128, dtype=np.uint8).reshape(2, 8, 8))
    return path / (".zattrs" if version == "0.4" else "zarr.json")


def edit_ngff(doc_path: Path, version: str, edit: Any) -> dict[str, Any]:
    doc = json.loads(doc_path.read_text())
    edit(doc["attributes"]["ome"] if version == "0.5" else doc)
    doc_path.write_text(json.dumps(doc))
    attrs: dict[str, Any] = doc["attributes"] if version == "0.5" else doc
    return attrs


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("version", ["0.4", "0.5"])
@pytest.mark.parametrize(
    ("channel", "where"),
    [
        ({"label": "DAPI", "color": "#0000FF"}, ".channels[0].color"),  # CSS-style colour
        ({"label": "DAPI", "color": "0000FF"}, ".channels[0]"),  # no window
        ({"label": "DAPI", "window": {"min": 0, "max": 9, "start": 0, "end": 9}}, ".channels[0]"),
    ],
)
def test_an_invalid_omero_block_is_warned_about_not_fatal(
    tmp_path: Path, version: str, channel: dict[str, Any], where: str
) -> None:
    """omero is transitional display metadata: an image whose omero breaks a rule opens
    (without it) with a warning naming the key; ``validate`` still rejects the document."""
    path = tmp_path / "img.zarr"
    doc_path = small_image(path, version)
    attrs = edit_ngff(doc_path, version, lambda ngff: ngff["omero"].update(channels=[channel]))
    with pytest.raises(MetadataError):
        validate(attrs)
    before = snapshot(path)
    prefix = "$.attributes.ome" if version == "0.5" else "$"
    expected = re.escape(f"at `{prefix}.omero{where}`") + ".*without its 'omero'"
    with pytest.warns(MetadataWarning, match=expected):
        ds = ngio_async.open(path)
    with ds:
        assert ds.metadata.channels == []
        assert int(ds[1, 7, 7]) == 127
    assert snapshot(path) == before  # opening changes nothing


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_errors_outside_omero_still_refuse_the_image(tmp_path: Path, version: str) -> None:
    path = tmp_path / "img.zarr"
    doc_path = small_image(path, version)

    def edit(ngff: dict[str, Any]) -> None:
        ngff["omero"]["channels"][0]["color"] = "blue"
        ngff["multiscales"][0]["axes"][1]["name"] = "x"

    edit_ngff(doc_path, version, edit)
    with pytest.raises(MetadataError, match="duplicate axis name 'x'"):
        ngio_async.open(path)
