"""A label image of a narrower image keeps the image's chunks but not 4x its shard bytes: a
whole-shard write holds a shard in memory (``uint32`` labels of a ``uint8`` image with 64 MiB
shards had 256 MiB shards)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize(
    ("dtype", "image_shards", "shards"),
    [("uint8", (1, 8192, 8192), (4096, 4096)), ("uint16", (1, 4096, 4096), (4096, 4096))],
)
def test_label_shards_hold_at_most_64_mib(
    tmp_path: Path, dtype: str, image_shards: tuple[int, ...], shards: tuple[int, int]
) -> None:
    with ngio_async.create(
        tmp_path / "a.ome.zarr", shape=(2, 8192, 8192), dtype=dtype, axes="cyx", levels=2
    ) as ds:
        assert ds.levels[0].shards == image_shards  # 64 MiB (uint8) or 32 MiB (uint16)
        with ds.labels.create("cells") as lab:
            top = lab.levels[0]
            assert top.chunks == ds.levels[0].chunks[1:]  # tiles stay aligned with the image's
            assert top.shards == shards
            assert math.prod(top.shards) * 4 <= max(64 << 20, math.prod(image_shards) * 2)
            assert all(s % c == 0 for s, c in zip(top.shards, top.chunks, strict=True))
    with ngio_async.open(tmp_path / "a.ome.zarr") as again, again.labels.open("cells") as lab:
        assert lab.levels[0].shards == shards  # as stored


def test_small_images_keep_the_image_shards(tmp_path: Path) -> None:
    with ngio_async.create(
        tmp_path / "a.ome.zarr", shape=(512, 512), dtype="uint8", axes="yx", shards=(512, 512),
        chunks=(128, 128), levels=1,
    ) as ds, ds.labels.create("cells") as lab:  # fmt: skip
        assert lab.levels[0].shards == (512, 512)  # 1 MiB of labels: under the 64 MiB floor
