"""Audit of issue 5: ``channels=`` that is no list of channels is refused naming it (a string
was split into one channel per letter, a mapping into its keys, a number or a list of numbers
failed with a bare Python TypeError), and nothing is created; so is a ``name=`` that is no
string (it was named by its JSON path only, without the value)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("channels", "match"),
    [
        ("DAPI", r"channels must be a list of channels \(labels or mappings\), got 'DAPI'"),
        ({"label": "DAPI"}, r"channels must be a list of channels .*got \{'label': 'DAPI'\}"),
        (4, r"channels must be a list of channels .*got 4"),
        ([1, 2, 3, 4], r"channels\[0\] must be a label \(str\) or a mapping .*got 1"),
        (["a", "b", None, "d"], r"channels\[2\] must be a label \(str\) or a mapping .*got None"),
    ],
)
@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_channels_that_are_no_list_of_channels_are_refused_naming_them(
    tmp_path: Path, channels: Any, match: str, version: str
) -> None:
    path = tmp_path / "img.ome.zarr"
    with pytest.raises(TypeError, match=match):
        await ngio_async.create_async(
            path, shape=(4, 16, 16), dtype="uint8", axes="cyx", channels=channels,
            ngff_version=version,  # type: ignore[arg-type]
        )  # fmt: skip
    assert not path.exists()


async def test_a_tuple_or_an_array_of_labels_is_still_taken(tmp_path: Path) -> None:
    import numpy as np

    for i, channels in enumerate([("a", "b"), np.array(["a", "b"]), [{"label": "a"}, "b"]]):
        async with ngio_async.create_async(
            tmp_path / f"{i}.ome.zarr", shape=(2, 8, 8), dtype="uint8", axes="cyx",
            channels=channels,  # type: ignore[arg-type]
        ) as ds:  # fmt: skip
            assert [c.label for c in ds.metadata.channels] == ["a", "b"]


@pytest.mark.parametrize("name", [5, ["a"], b"img"])
async def test_a_name_that_is_no_string_is_refused_naming_it(tmp_path: Path, name: Any) -> None:
    path = tmp_path / "img.ome.zarr"
    with pytest.raises(TypeError, match=re.escape(f"name must be a string, got {name!r}")):
        await ngio_async.create_async(path, shape=(8, 8), dtype="uint8", name=name)
    assert not path.exists()
