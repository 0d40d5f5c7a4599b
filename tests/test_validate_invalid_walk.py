"""validate walks what an invalid group names: its errors are not hidden behind the first."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np

import ngio_async
from ngio_async.cli import main

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


def _edit(path: Path, edit: object) -> None:
    doc = json.loads(path.read_text())
    edit(doc)  # type: ignore[operator]
    path.write_text(json.dumps(doc))


def test_an_invalid_image_still_has_its_labels_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "img.zarr"
    with ngio_async.create(path, shape=(16, 16), dtype="uint8", ngff_version="0.4") as ds:
        ds.write(np.ones((16, 16), "uint8"))
        ds.labels.create("cells").close()

    def no_transforms(doc: dict[str, object]) -> None:
        doc["multiscales"][0]["datasets"][0]["coordinateTransformations"] = []  # type: ignore[index]

    def bad_color(doc: dict[str, object]) -> None:
        doc["image-label"]["colors"] = [{"label-value": "x", "rgba": [1]}]  # type: ignore[index]

    _edit(path / ".zattrs", no_transforms)
    _edit(path / "labels" / "cells" / ".zattrs", bad_color)
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert "labels/cells/.zattrs at `$.image-label.colors[0].label-value`" in out, out
    assert "3 groups checked, 2 errors" in out, out


def test_an_invalid_plate_still_has_its_wells_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "plate.zarr"
    with ngio_async.create_plate(path, rows=["A"], columns=["1"], ngff_version="0.4") as plate:
        plate.add_image("A", "1", shape=(1, 8, 8), dtype="uint8", axes="cyx").close()

    def no_columns(doc: dict[str, object]) -> None:
        del doc["plate"]["columns"]  # type: ignore[attr-defined]

    def bad_well(doc: dict[str, object]) -> None:
        doc["well"]["images"] = [{"path": "0", "acquisition": "one"}]  # type: ignore[index]

    _edit(path / ".zattrs", no_columns)
    _edit(path / "A" / "1" / ".zattrs", bad_well)
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert "A/1/.zattrs at `$.well.images[0].acquisition`" in out, out
