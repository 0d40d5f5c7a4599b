"""NGFF 0.5 levels written by tensorstore with unlabelled dimensions: tensorstore stores a
dimension it has no label for as a null ``dimension_names`` entry (``["y", null]``). ngio and
ome-zarr-py open such an image; ngio_async refused it as contradicting the axes. A null names
nothing, as absent ``dimension_names`` do: the image opens, ``validate`` reports the MUST rule,
and a name that does contradict the axes is still refused."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest
import zarr

import ngio_async
from ngio_async import MetadataError
from ngio_async.cli._validate import validate_hierarchy
from ngio_async.meta import Axis, Dataset, Multiscale, OmeMetadata, Scale, to_attrs

if TYPE_CHECKING:
    from pathlib import Path

    from numpy.typing import NDArray


def tensorstore_image(path: Path, labels: list[str] | None) -> NDArray[Any]:
    """A one-level 0.5 ``yx`` image whose array tensorstore created, its domain labelled
    ``labels``; its pixels."""
    ts = pytest.importorskip("tensorstore")
    spec: dict[str, Any] = {
        "driver": "zarr3",
        "kvstore": {"driver": "file", "path": str(path / "0")},
        "metadata": {"shape": [9, 7], "data_type": "uint16", "chunk_grid": {
            "name": "regular", "configuration": {"chunk_shape": [4, 4]}}},
        "create": True,
    }  # fmt: skip
    if labels is not None:
        spec["schema"] = {"domain": {"labels": labels}}
    array = ts.open(spec).result()
    data = np.arange(63, dtype=np.uint16).reshape(9, 7)
    array.write(data).result()
    multiscale = Multiscale(
        axes=[Axis(name="y", type="space"), Axis(name="x", type="space")],
        datasets=[Dataset(path="0", coordinate_transformations=[Scale(scale=[1.0, 1.0])])],
    )
    group = zarr.open_group(path, mode="a", zarr_format=3)
    group.attrs.update(to_attrs(OmeMetadata(version="0.5", multiscales=[multiscale]), "0.5"))
    return data


@pytest.mark.parametrize("labels", [["y", ""], ["", "x"]], ids=["x", "y"])
def test_null_dimension_names_open_and_are_reported(tmp_path: Path, labels: list[str]) -> None:
    path = tmp_path / "ts.ome.zarr"
    data = tensorstore_image(path, labels)
    stored = json.loads((path / "0" / "zarr.json").read_text())["dimension_names"]
    assert stored == [label or None for label in labels]  # as tensorstore writes them
    with ngio_async.open(path) as ds:
        assert ds.axes == ("y", "x")
        np.testing.assert_array_equal(ds[...], data)
    report = anyio.run(lambda: validate_hierarchy(str(path)))
    (problem,) = report.errors
    assert (problem.key, problem.path) == ("0/zarr.json", "$.dimension_names")
    assert "null ones" in problem.message


def test_a_dimension_name_contradicting_the_axes_is_still_refused(tmp_path: Path) -> None:
    path = tmp_path / "ts.ome.zarr"
    tensorstore_image(path, ["", "y"])
    with pytest.raises(MetadataError, match=r"dimension_names \[None, 'y'\]"):
        ngio_async.open(path)


def test_a_level_added_names_its_dimensions_by_the_axes(tmp_path: Path) -> None:
    """build_pyramid copied level 0's null names into the level it added (a new array
    breaking the rule)."""
    path = tmp_path / "ts.ome.zarr"
    tensorstore_image(path, ["", "x"])
    with ngio_async.open(path, mode="r+") as ds:
        ds.build_pyramid(levels=2)
        assert ds.levels[1].shape == (5, 4)
    stored = json.loads((path / "1" / "zarr.json").read_text())["dimension_names"]
    assert stored == ["y", "x"]
