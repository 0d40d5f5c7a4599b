"""``create_like(..., shape=...)`` of a small template for a larger (or much smaller) image: the
template's chunks and shards, capped by its own extent, and its level count are what the new
shape no longer fits, so create's defaults apply (a 3000 x 3000 copy of a 100 x 120 template
got 100 x 120 chunks unsharded, 1,500 objects; a 2 x 2 one was refused for the template's 3
levels)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path


def _template(path: Path, **options: object) -> str:
    with ngio_async.create(
        str(path), shape=(2, 100, 120), dtype="uint16", axes="cyx", levels=3, **options
    ):
        pass
    return str(path)


def test_a_larger_shape_gets_default_chunks_and_shards(tmp_path: Path) -> None:
    src = _template(tmp_path / "src.zarr")
    with ngio_async.open(src) as ds:
        assert (ds.levels[0].chunks, ds.levels[0].shards) == ((1, 100, 120), None)
        with ngio_async.create_like(ds, tmp_path / "big.zarr", shape=(2, 3000, 3000)) as big:
            assert big.levels[0].chunks == (1, 512, 512)  # create's default for uint16
            assert big.levels[0].shards == (1, 3072, 3072)
            assert len(big.levels) == 3  # the template's, which fit
        # chunks smaller than the template stay; so do chunks given
        with ngio_async.create_like(
            ds, tmp_path / "given.zarr", shape=(2, 3000, 3000), chunks=(1, 100, 120)
        ) as given:
            assert given.levels[0].chunks == (1, 100, 120)


def test_chunks_within_the_template_are_kept(tmp_path: Path) -> None:
    src = _template(tmp_path / "src.zarr", chunks=(1, 32, 32), shards=(1, 64, 64))
    with (
        ngio_async.open(src) as ds,
        ngio_async.create_like(ds, tmp_path / "a.zarr", shape=(2, 1000, 1000)) as big,
    ):
        assert (big.levels[0].chunks, big.levels[0].shards) == ((1, 32, 32), (1, 64, 64))
    # shards covering the template (default ones, capped: 128 of 8 x 32) get the default
    src = _template(tmp_path / "src2.zarr", chunks=(1, 32, 32))
    with ngio_async.open(src) as ds:
        assert ds.levels[0].shards == (1, 128, 128)
        with ngio_async.create_like(ds, tmp_path / "b.zarr", shape=(2, 1000, 1000)) as big:
            assert (big.levels[0].chunks, big.levels[0].shards) == ((1, 32, 32), (1, 256, 256))


def test_a_smaller_shape_gets_the_levels_it_has(tmp_path: Path) -> None:
    src = _template(tmp_path / "src.zarr")
    with ngio_async.open(src) as ds:
        with ngio_async.create_like(ds, tmp_path / "small.zarr", shape=(2, 2, 2)) as small:
            assert [lvl.shape for lvl in small.levels] == [(2, 2, 2)]
        with ngio_async.create_like(ds, tmp_path / "flat.zarr", downscale=1) as flat:
            assert len(flat.levels) == 1
