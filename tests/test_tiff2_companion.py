"""Multi-file OME-TIFFs whose OME-XML is in one file only: a Bio-Formats companion file
(``.companion.ome``) or the set's first TIFF (Micro-Manager), every other TIFF ``BinaryOnly``.
Converting one of those TIFFs converted its own plane alone, uncalibrated, as if it were the
whole image; the companion file had no reader."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from tiffs import write_companion_set

import ngio_async
from ngio_async import NotFoundError

if TYPE_CHECKING:
    from pathlib import Path

    from servers import StaticServer


def _planes() -> np.ndarray[Any, Any]:
    return (np.arange(3 * 16 * 20) * 3 % 5000).reshape(3, 16, 20).astype(np.uint16)


def _check(dst: Path, planes: np.ndarray[Any, Any]) -> None:
    with ngio_async.open(dst) as ds:
        assert ds.axes == ("c", "z", "y", "x")
        np.testing.assert_array_equal(ds[...], planes[None])
        assert ds.metadata.spatial_calibration[0].scale == (1.0, 3.0, 0.5, 0.5)
        assert [c.label for c in ds.metadata.channels] == ["dapi"]


@pytest.mark.parametrize("start", ["scan.companion.ome", "scan_z1.ome.tif", "scan_z0.ome.tif"])
def test_any_file_of_a_companion_set_converts_the_whole_image(tmp_path: Path, start: str) -> None:
    planes = _planes()
    write_companion_set(tmp_path, planes)
    ngio_async.convert_sync(tmp_path / start, tmp_path / "out.zarr")
    _check(tmp_path / "out.zarr", planes)
    with ngio_async.open(tmp_path / start) as tif:  # read directly: the same image
        np.testing.assert_array_equal(tif[...], planes[None])


def test_a_binary_only_tiff_whose_metadata_is_the_first_tiff(tmp_path: Path) -> None:
    planes = _planes()
    write_companion_set(tmp_path, planes, master="scan_z0.ome.tif")
    ngio_async.convert_sync(tmp_path / "scan_z2.ome.tif", tmp_path / "out.zarr")
    _check(tmp_path / "out.zarr", planes)


def test_a_missing_companion_file_is_named(tmp_path: Path) -> None:
    write_companion_set(tmp_path, _planes())
    (tmp_path / "scan.companion.ome").unlink()
    with pytest.raises(NotFoundError, match=r"scan_z1\.ome\.tif .*scan\.companion\.ome"):
        ngio_async.convert_sync(tmp_path / "scan_z1.ome.tif", tmp_path / "out.zarr")
    assert not (tmp_path / "out.zarr").exists()


def test_a_missing_tiff_of_a_companion_set_is_named(tmp_path: Path) -> None:
    write_companion_set(tmp_path, _planes())
    (tmp_path / "scan_z2.ome.tif").unlink()
    with pytest.raises(NotFoundError, match=r"scan_z2\.ome\.tif"):
        ngio_async.convert_sync(tmp_path / "scan.companion.ome", tmp_path / "out.zarr")
    assert not (tmp_path / "out.zarr").exists()


def test_a_binary_only_tiff_on_a_server_is_refused_naming_its_metadata_file(
    http_server: StaticServer, http_root: Path, tmp_path: Path
) -> None:
    # was refused; now the set is read from beside it (tests/test_remote2_sets.py)
    write_companion_set(http_root, _planes())
    ngio_async.convert_sync(http_server.url + "scan_z1.ome.tif", tmp_path / "out.zarr")
    with ngio_async.open(tmp_path / "out.zarr") as ds:
        np.testing.assert_array_equal(np.squeeze(ds[...]), _planes())


def test_a_companion_file_on_a_server_is_refused_as_such(
    http_server: StaticServer, http_root: Path, tmp_path: Path
) -> None:
    write_companion_set(http_root, _planes())
    url = http_server.url + "scan.companion.ome"  # was refused; now read with its TIFFs
    ngio_async.convert_sync(url, tmp_path / "out.zarr")
    with ngio_async.open(tmp_path / "out.zarr") as ds:
        np.testing.assert_array_equal(np.squeeze(ds[...]), _planes())
