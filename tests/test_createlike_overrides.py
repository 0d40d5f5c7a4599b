"""Every ``create_like`` override the README documents, checked in the documents written: what
is given wins, and what it makes wrong falls back to create's default while the rest stays. A
mapping axis -> value (``scale``, ``units``, ``translation``) changes the axes it names only: the
others kept the defaults of create (``scale={"x": 0.25}`` made y's pixel size 1)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async
from ngio_async import ExistsError

if TYPE_CHECKING:
    from pathlib import Path


def _array(path: Path, level: str = "0") -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((path / level / "zarr.json").read_text())
    return doc


def _inner(doc: dict[str, Any]) -> tuple[list[int], list[int] | None, list[str]]:
    """(chunks, shards or None, codec names of the chunks) of a zarr v3 array document."""
    grid = doc["chunk_grid"]["configuration"]["chunk_shape"]
    codecs = doc["codecs"]
    if codecs[0]["name"] == "sharding_indexed":
        conf = codecs[0]["configuration"]
        return conf["chunk_shape"], grid, [c["name"] for c in conf["codecs"]]
    return grid, None, [c["name"] for c in codecs]


@pytest.fixture
def src(tmp_path: Path) -> str:
    url = str(tmp_path / "src.ome.zarr")
    with ngio_async.create(
        url, shape=(2, 100, 120), dtype="uint16", axes="cyx", levels=3, scale=(1, 0.5, 0.5),
        chunks=(1, 32, 32), shards=(1, 64, 64), compressor="gzip", fill_value=7,
        channels=["A", {"label": "B", "color": "FF0000", "window": (10, 200)}],
    ):  # fmt: skip
        pass
    return url


def test_no_override_copies_the_layout(src: str, tmp_path: Path) -> None:
    dst = tmp_path / "same.zarr"
    with ngio_async.open(src) as ds, ngio_async.create_like(ds, dst) as copy:
        assert [lvl.shape for lvl in copy.levels] == [lvl.shape for lvl in ds.levels]
        assert copy.metadata.channels == ds.metadata.channels
        assert int(copy[0, 0, 0]) == 7  # the fill value
    assert _inner(_array(dst)) == ([1, 32, 32], [1, 64, 64], ["bytes", "gzip"])


@pytest.mark.parametrize(
    ("overrides", "chunks", "shards", "codecs"),
    [
        ({"chunks": (1, 16, 16)}, [1, 16, 16], [1, 64, 64], ["bytes", "gzip"]),
        # 48 does not divide the 64 of the source's shards: default shards (8 chunks, capped)
        ({"chunks": (1, 48, 48)}, [1, 48, 48], [1, 144, 144], ["bytes", "gzip"]),
        ({"shards": (1, 128, 128)}, [1, 32, 32], [1, 128, 128], ["bytes", "gzip"]),
        ({"shards": False, "compressor": None}, [1, 32, 32], None, ["bytes"]),
        ({"compressor": "blosc-zstd"}, [1, 32, 32], [1, 64, 64], ["bytes", "blosc"]),
    ],
)
def test_layout_overrides(
    src: str,
    tmp_path: Path,
    overrides: dict[str, Any],
    chunks: list[int],
    shards: list[int] | None,
    codecs: list[str],
) -> None:
    dst = tmp_path / "copy.zarr"
    with ngio_async.open(src) as ds, ngio_async.create_like(ds, dst, **overrides) as copy:
        assert copy.metadata.channels == ds.metadata.channels
        copy.write(np.full((2, 100, 120), 5, "uint16"), pyramid=True)
    assert _inner(_array(dst)) == (chunks, shards, codecs)
    with ngio_async.open(dst) as back:
        assert int(back.levels[2][1, 24, 29]) == 5


def test_shape_levels_scale_units_fill_and_name(src: str, tmp_path: Path) -> None:
    dst = tmp_path / "copy.zarr"
    with ngio_async.open(src) as ds:
        with ngio_async.create_like(
            ds, dst, shape=(2, 64, 64), levels=2, scale={"x": 0.25}, units="nanometer",
            fill_value=3, name="other", translation={"y": 4.0},
        ) as copy:  # fmt: skip
            assert [lvl.shape for lvl in copy.levels] == [(2, 64, 64), (2, 32, 32)]
            cal = copy.metadata.spatial_calibration
            # a mapping changes the axes it names; the others keep the source's (y: 0.5)
            assert [c.scale for c in cal] == [(1.0, 0.5, 0.25), (1.0, 1.0, 0.5)]
            assert [a.unit for a in copy.metadata.axes] == [None, "nanometer", "nanometer"]
            assert copy.metadata.name == "other"
            assert cal[0].translation == (0.0, 4.0, 0.0)
            assert int(copy[1, 63, 63]) == 3
            assert copy.metadata.channels == ds.metadata.channels  # same channel count
            with ngio_async.create_like(copy, tmp_path / "u.zarr", units={"x": "meter"}) as u:
                assert [a.unit for a in u.metadata.axes] == [None, "nanometer", "meter"]
        with pytest.raises(ValueError, match=r"scale: unknown axis 'z'"):
            ngio_async.create_like(ds, tmp_path / "z.zarr", scale={"z": 2.0})
        with pytest.raises(ExistsError, match="overwrite=True"):
            ngio_async.create_like(ds, dst)
        with ngio_async.create_like(ds, dst, overwrite=True, ngff_version="0.4") as copy:
            assert (copy.shape, copy.metadata.ngff_version) == ((2, 100, 120), "0.4")
    doc = json.loads((dst / "0" / ".zarray").read_text())
    assert (doc["chunks"], doc["compressor"]["id"], doc["fill_value"]) == ([1, 32, 32], "gzip", 7)
    assert not (dst / "zarr.json").exists()  # the 0.5 image it replaced is gone
