"""The factor between two levels whose shapes fit two (7 -> 3: ``floor(7 / 2)`` and
``ceil(7 / 3)``; 5 -> 2 likewise): ome-zarr-py 0.18 writes such levels of odd-sized images as
``floor(n / 2)`` with exact scales (7 / 3 times the level above's), and its ``local_mean``
pixels are the means of 2 x 2 windows. The build took 3 (ceil first, the ratio being no
integer): a rebuild of its file changed its last level. Now a ratio that is no integer takes
``floor`` first; an integer one still decides, and without a scale ours (ceil) comes first."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest
from interop_writers import WARNING_FILTERS

import ngio_async
from ngio_async.images._pyramid import _factor

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [
    *(pytest.mark.filterwarnings(f) for f in WARNING_FILTERS),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]


def test_the_factor_of_levels_two_factors_fit() -> None:
    assert _factor(7, 3, 7 / 3, "x") == 2  # exact scales (ome-zarr-py): floor(7 / 2)
    assert _factor(5, 2, 5 / 2, "x") == 2
    assert _factor(61, 30, 61 / 30, "x") == 2
    assert _factor(7, 3, 3.0, "x") == 3  # an integer ratio that fits decides
    assert _factor(7, 3, 2.0, "x") == 2
    assert _factor(7, 3, None, "x") == 3  # no scale: ceil (our levels) first
    assert _factor(7, 4, 7 / 4, "x") == 2  # one fits: that one, whatever the ratio


def _stored_and_rebuilt(path: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    with ngio_async.open(path) as ds:
        stored = [lvl[...] for lvl in ds.levels]
    with ngio_async.open(path, mode="r+") as ds:
        ds.build_pyramid(method="mean")
        rebuilt = [lvl[...] for lvl in ds.levels]
    return stored, rebuilt


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_a_rebuild_of_ome_zarr_py_local_mean_levels_gives_its_pixels(
    tmp_path: Path, version: str
) -> None:
    zarr = pytest.importorskip("zarr")
    writer = pytest.importorskip("ome_zarr.writer")
    fmt = pytest.importorskip("ome_zarr.format")
    f = fmt.FormatV04() if version == "0.4" else fmt.FormatV05()
    data = np.random.default_rng(0).integers(0, 1000, (61, 45)).astype("float32")  # (exact means)
    group = zarr.open_group(
        str(tmp_path / "oz.zarr"), mode="w", zarr_format=2 if version == "0.4" else 3
    )
    writer.write_image(
        data, group, axes="yx", fmt=f, scale_factors=(2, 4, 8, 16), method="local_mean"
    )
    stored, rebuilt = _stored_and_rebuilt(tmp_path / "oz.zarr")
    assert [a.shape for a in stored] == [(61, 45), (30, 22), (15, 11), (7, 5), (3, 2)]
    for i, (a, b) in enumerate(zip(stored, rebuilt, strict=True)):
        np.testing.assert_array_equal(b, a, err_msg=f"level {i}")


def test_a_rebuild_of_ngff_zarr_bin_shrink_levels_gives_its_pixels(tmp_path: Path) -> None:
    nz = pytest.importorskip("ngff_zarr")
    data = np.random.default_rng(1).integers(0, 1000, (61, 45)).astype("float32")
    image = nz.to_ngff_image(data, dims=("y", "x"))
    multiscales = nz.to_multiscales(
        image, scale_factors=[2, 4, 8, 16], method=nz.Methods.DASK_BIN_SHRINK
    )
    nz.to_ngff_zarr(str(tmp_path / "nz.zarr"), multiscales)
    stored, rebuilt = _stored_and_rebuilt(tmp_path / "nz.zarr")
    assert [a.shape for a in stored] == [(61, 45), (30, 22), (15, 11), (7, 5), (3, 2)]
    for i, (a, b) in enumerate(zip(stored, rebuilt, strict=True)):
        np.testing.assert_array_equal(b, a, err_msg=f"level {i}")
