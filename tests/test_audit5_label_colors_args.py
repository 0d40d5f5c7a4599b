"""Audit of issue 5: ``colors=`` and ``properties=`` of ``labels.create`` / ``labels.set_colors``
that are neither a mapping nor a list of entries are refused naming the argument and the value
(``colors=[1, 2]`` or ``colors="FF0000"`` failed with "'int' object has no attribute 'get'",
``colors=5`` / ``properties=5`` with "'int' object is not iterable"), before anything is
written."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("colors", "message"),
    [
        (
            [1, 2],
            "colors[0]: expected a dict with 'label-value' and 'rgba' (or a LabelColor), got 1",
        ),
        (
            "FF0000",
            "colors must be a mapping label value -> color or a list of dicts, got 'FF0000'",
        ),
        (5, "colors must be a mapping label value -> color or a list of dicts, got 5"),
    ],
)
@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_colors_of_no_usable_shape_are_named(
    tmp_path: Path, colors: Any, message: str, version: str
) -> None:
    path = tmp_path / "img.ome.zarr"
    async with ngio_async.create_async(
        path,
        shape=(8, 8),
        dtype="uint8",
        axes="yx",
        ngff_version=version,  # type: ignore[arg-type]
    ) as ds:
        with pytest.raises(TypeError, match=re.escape(message)):
            await ds.labels.create("cells", dtype="uint8", colors=colors)
        assert not (path / "labels").exists()
        lab = await ds.labels.create("cells", dtype="uint8")
        await lab.aclose()
        with pytest.raises(TypeError, match=re.escape(message)):
            await ds.labels.set_colors("cells", colors)
        lab = await ds.labels.open("cells")
        assert lab.metadata.ome.image_label is not None
        assert not lab.metadata.ome.image_label.colors  # unchanged
        await lab.aclose()


@pytest.mark.parametrize("properties", [5, "area"])
async def test_properties_of_no_usable_shape_are_named(tmp_path: Path, properties: Any) -> None:
    path = tmp_path / "img.ome.zarr"
    async with ngio_async.create_async(path, shape=(8, 8), dtype="uint8", axes="yx") as ds:
        message = f"properties must be a mapping label value -> dict or a list of dicts, got {properties!r}"
        with pytest.raises(TypeError, match=re.escape(message)):
            await ds.labels.create("cells", dtype="uint8", properties=properties)
        assert not (path / "labels").exists()
