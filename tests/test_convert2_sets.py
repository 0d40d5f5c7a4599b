"""Folders (and lists) of inputs holding a multi-file OME-TIFF (a Micro-Manager series whose
first TIFF holds the OME-XML, or a ``.companion.ome`` with its TIFFs): any file of the set
converts the whole set, so a batch converted it once per file (N identical outputs). Now the
set converts once, named after its companion file (else its first TIFF), its other files
listed as the result's ``members`` and on the summary line. Output names drop every double
suffix (``scan.companion.ome`` was ``scan.companion.ome.zarr``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import tifffile
from cli_run import run
from tiffs import write_companion_set

import ngio_async
from ngio_async.convert._batch import output_name

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server


def _planes() -> np.ndarray[Any, Any]:
    return (np.arange(3 * 16 * 20) * 7 % 3000).reshape(3, 16, 20).astype(np.uint16)


def _folder(tmp_path: Path, master: str) -> Path:
    src = tmp_path / "scans"
    src.mkdir()
    write_companion_set(src, _planes(), master=master)
    tifffile.imwrite(src / "other.tif", _planes()[0])
    return src


@pytest.mark.parametrize(
    ("master", "first"),
    [("scan_z0.ome.tif", "scan_z0.ome.tif"), ("scan.companion.ome", "scan.companion.ome")],
)
def test_a_folder_converts_a_multi_file_set_once(tmp_path: Path, master: str, first: str) -> None:
    src = _folder(tmp_path, master)
    results = ngio_async.convert_many_sync(src, tmp_path / "out")
    assert sorted(results) == [str(src / "other.tif"), str(src / first)]
    one = results[str(src / first)]
    assert not isinstance(one, Exception), one
    members = [f"scan_z{i}.ome.tif" for i in range(3) if f"scan_z{i}.ome.tif" != first]
    assert one.members == tuple(str(src / m) for m in members)
    assert one.dst.endswith("/scan_z0.ome.zarr" if first.endswith(".tif") else "/scan.ome.zarr")
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == sorted(["other.ome.zarr", output_name(first)])
    with ngio_async.open(one.dst) as ds:
        np.testing.assert_array_equal(ds[...], _planes()[None])
    again = ngio_async.convert_many_sync(src, tmp_path / "out")
    assert sorted(again) == sorted(results)
    skipped = again[str(src / first)]
    assert not isinstance(skipped, Exception) and skipped.skipped
    assert skipped.members == one.members


def test_the_summary_names_the_files_taken_with_a_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _folder(tmp_path, "scan.companion.ome")
    code, out, err = run(["convert", str(src), str(tmp_path / "out")], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 2, out
    assert "scan.ome.zarr" in lines[1]
    assert lines[1].endswith(
        "one multi-file OME-TIFF: scan.companion.ome with scan_z0.ome.tif, scan_z1.ome.tif, "
        "scan_z2.ome.tif"
    )
    code, out, err = run(["convert", str(src / "*.tif"), str(tmp_path / "out2")], capsys)
    assert code == 0, err  # a pattern matching the TIFFs only: the set once
    assert out.count("wrote") == 2 and "other.ome.zarr" in out
    assert "scan_z0.ome.zarr" in out  # no companion among the inputs: the first TIFF leads
    assert out.splitlines()[1].endswith(
        "one multi-file OME-TIFF: scan_z0.ome.tif with scan_z1.ome.tif, scan_z2.ome.tif"
    )


def test_a_set_in_a_list_to_s3(tmp_path: Path, s3_server: S3Server) -> None:
    src = _folder(tmp_path, "scan_z0.ome.tif")
    base = s3_server.fresh_url()
    files = [src / f"scan_z{i}.ome.tif" for i in (2, 1, 0)]  # any order
    results = ngio_async.convert_many_sync(files, base, dst_options=s3_server.options())
    assert list(results) == [str(src / "scan_z0.ome.tif")]
    one = results[str(src / "scan_z0.ome.tif")]
    assert not isinstance(one, Exception), one
    assert one.dst == f"{base}/scan_z0.ome.zarr"
    assert one.members == (str(src / "scan_z1.ome.tif"), str(src / "scan_z2.ome.tif"))
    with ngio_async.open(one.dst, **s3_server.options()) as ds:
        np.testing.assert_array_equal(ds[...], _planes()[None])


@pytest.mark.parametrize(
    "name",
    [
        "x.ome.tif",
        "x.ome.tiff",
        "x.ome.btf",
        "x.ome.tf2",
        "x.ome.tf8",
        "x.companion.ome",
        "x.svs",
        "x.qptiff",
        "x.lsm",
        "x.OME.TIF",
        "x.zarr",
        "x.ome.zarr/",
        "file:///data/x.ome.btf",
    ],
)
def test_output_names_drop_double_suffixes(name: str) -> None:
    assert output_name(name) == "x.ome.zarr"


def test_a_set_whose_every_tiff_holds_the_whole_ome_xml(tmp_path: Path) -> None:
    src = tmp_path / "scans"
    src.mkdir()
    files = write_companion_set(src, _planes(), master="scan_z0.ome.tif")
    with tifffile.TiffFile(files[0]) as tif:
        full = tif.pages.first.description
    for path in files[1:]:  # as writers that repeat the OME-XML in every file leave them
        with tifffile.TiffFile(path, mode="r+") as tif:
            tif.pages.first.tags["ImageDescription"].overwrite(full)
    results = ngio_async.convert_many_sync(src, tmp_path / "out")
    assert list(results) == [str(files[0])]
    one = results[str(files[0])]
    assert not isinstance(one, Exception), one
    assert one.members == (str(files[1]), str(files[2]))
