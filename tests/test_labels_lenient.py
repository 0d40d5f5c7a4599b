"""A label image whose ``image-label`` colors / properties break a rule opens (its pixels were
unreachable: MetadataError), mended or without them, with a MetadataWarning naming the JSON
path; ``validate`` still reports the error. ``ds.labels.open`` is an async context manager."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async
from ngio_async import MetadataError
from ngio_async.cli import main
from ngio_async.meta import MetadataWarning

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio


def _label(tmp_path: Path, version: str, **image_label: Any) -> str:
    """An image with label ``c`` (all 1), its ``image-label`` keys set to ``image_label``."""
    url = str(tmp_path / "img.ome.zarr")
    with ngio_async.create(
        url, shape=(16, 16), dtype="uint8", axes="yx", ngff_version=version
    ) as ds:
        ds.labels.create("c", dtype="uint8").write(np.ones((16, 16), "uint8"))
    group = tmp_path / "img.ome.zarr" / "labels" / "c"
    key = group / (".zattrs" if version == "0.4" else "zarr.json")
    doc = json.loads(key.read_text())
    (doc if version == "0.4" else doc["attributes"]["ome"])["image-label"].update(image_label)
    key.write_text(json.dumps(doc))
    return url


CASES = [  # (image-label keys, colors read, properties read, where the warning points)
    (
        {"colors": [{"label-value": 1, "rgba": [0.5, 0, 0, 1]}]},  # napari's floats
        [(1, [128, 0, 0, 255])],
        None,
        "colors[0].rgba[0]",
    ),
    ({"colors": []}, None, None, "colors"),
    (
        {"colors": [{"label-value": 1, "rgba": [9, 9, 9, 255]}, {"label-value": 1}]},
        [(1, [9, 9, 9, 255])],
        None,
        "colors[1].label-value",
    ),
    (
        {"colors": [{"label-value": 1, "rgba": [255, 0, 0]}]},
        [(1, [255, 0, 0, 255])],
        None,
        "colors[0].rgba",
    ),
    (
        {"properties": [{"label-value": 1, "area": 3}, {"label-value": 1.5}]},
        None,
        [1],
        "properties[1].label-value",
    ),
    ({"source": "../../"}, None, None, "source"),
]


@pytest.mark.parametrize("version", ["0.4", "0.5"])
@pytest.mark.parametrize(("broken", "colors", "props", "where"), CASES)
def test_broken_colors_or_properties_open(
    tmp_path: Path,
    version: str,
    broken: dict[str, Any],
    colors: list[tuple[int, list[int]]] | None,
    props: list[int] | None,
    where: str,
) -> None:
    url = _label(tmp_path, version, **broken)
    at = "$.image-label." if version == "0.4" else "$.attributes.ome.image-label."
    with ngio_async.open(url) as ds:
        with pytest.warns(MetadataWarning, match=re.escape(f"at `{at}{where}`")):
            lab = ds.labels["c"]
        assert lab.read().tolist() == np.ones((16, 16)).tolist()
        image_label = lab.metadata.ome.image_label
        assert image_label is not None
        if "source" not in broken:
            assert image_label.source is not None and image_label.source.image == "../../"
        else:
            assert image_label.source is None
        got = (
            None
            if image_label.colors is None
            else [(c.label_value, c.rgba) for c in image_label.colors]
        )
        assert got == colors
        got_props = (
            None
            if image_label.properties is None
            else [p.label_value for p in image_label.properties]
        )
        assert got_props == props


def test_validate_still_reports_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = _label(tmp_path, "0.5", colors=[{"label-value": 1, "rgba": [0.5, 0, 0, 1]}])
    assert main(["validate", url]) == 1
    assert "image-label.colors[0].rgba" in capsys.readouterr().out
    doc = json.loads((tmp_path / "img.ome.zarr" / "labels" / "c" / "zarr.json").read_text())
    with pytest.raises(MetadataError, match="rgba"):
        ngio_async.meta.validate(doc)


def test_edits_keep_or_replace_the_stored_block(tmp_path: Path) -> None:
    url = _label(tmp_path, "0.4", colors=[{"label-value": 1, "rgba": [0.5, 0, 0, 1]}])
    key = tmp_path / "img.ome.zarr" / "labels" / "c" / ".zattrs"
    with ngio_async.open(url, mode="r+") as ds:
        with pytest.warns(MetadataWarning, match="read mended"):
            lab = ds.labels["c"]
        lab.set_scale(2.0)  # leaves image-label alone: stored as it was
        assert json.loads(key.read_text())["image-label"]["colors"][0]["rgba"] == [0.5, 0, 0, 1]
        with pytest.warns(MetadataWarning) as seen:  # read mended, then replaced
            ds.labels.set_colors("c", {1: [1, 2, 3, 255]})  # valid colors replace it
        assert any("replaced the invalid 'image-label' block" in str(w.message) for w in seen)
    assert json.loads(key.read_text())["image-label"]["colors"] == [
        {"label-value": 1, "rgba": [1, 2, 3, 255]}
    ]
    with ngio_async.open(url) as ds:
        ngio_async.meta.validate(json.loads(key.read_text()))
        image_label = ds.labels["c"].metadata.ome.image_label
        assert image_label is not None and image_label.colors is not None
        assert image_label.colors[0].rgba == [1, 2, 3, 255]


async def test_labels_open_is_an_async_context_manager(tmp_path: Path) -> None:
    url = _label(tmp_path, "0.5")
    async with ngio_async.open_async(url) as ds:
        async with ds.labels.open("c") as lab:
            assert (await lab.read())[0, 0] == 1
        assert lab.closed and not ds.closed
        lab = await ds.labels.open("c")  # still awaitable
        assert lab.shape == (16, 16)
        await lab.aclose()
