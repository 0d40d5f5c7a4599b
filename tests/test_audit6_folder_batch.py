"""A folder of inputs is a batch (issue 6: "a folder (or glob) of inputs into one output each"):
``convert_many(folder, dst)`` and ``ngio-async convert FOLDER DST`` convert every image in it
(TIFFs, OME-Zarr directories), while an OME-Zarr directory itself stays one input."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest
import tifffile
from cli_run import run

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path


def _folder(tmp_path: Path) -> tuple[Path, np.ndarray]:
    src = tmp_path / "scans"
    src.mkdir()
    data = np.arange(40 * 50, dtype=np.uint16).reshape(40, 50)
    tifffile.imwrite(src / "a.tif", data)
    tifffile.imwrite(src / "b.ome.tiff", data + 1, ome=True)
    ngio_async.convert_sync(src / "a.tif", src / "c.ome.zarr")
    (src / "notes.txt").write_text("not an image")
    return src, data


def test_convert_many_takes_a_folder(tmp_path: Path) -> None:
    src, data = _folder(tmp_path)
    results = ngio_async.convert_many_sync(src, tmp_path / "out")
    assert sorted(results) == sorted(str(src / n) for n in ("a.tif", "b.ome.tiff", "c.ome.zarr"))
    assert not any(isinstance(r, Exception) for r in results.values()), results
    for name, plus in (("a", 0), ("b", 1), ("c", 0)):
        with ngio_async.open(tmp_path / "out" / f"{name}.ome.zarr") as ds:
            assert np.array_equal(ds[...], data + plus)
    again = ngio_async.convert_many_sync(str(src), tmp_path / "out")
    assert all(getattr(r, "skipped", False) for r in again.values())


def test_an_ome_zarr_folder_is_one_input(tmp_path: Path) -> None:
    src, _ = _folder(tmp_path)
    results = ngio_async.convert_many_sync(src / "c.ome.zarr", tmp_path / "out")
    assert list(results) == [str(src / "c.ome.zarr")]


def test_a_folder_without_images_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image"):
        ngio_async.convert_many_sync(tmp_path / "empty", tmp_path / "out")


def test_the_command_line_converts_a_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, data = _folder(tmp_path)
    code, out, err = run(["convert", str(src), str(tmp_path / "out")], capsys)
    assert code == 0, err
    assert out.count("wrote ") == 3
    for name in ("a", "b", "c"):
        with ngio_async.open(tmp_path / "out" / f"{name}.ome.zarr") as ds:
            assert ds.shape == data.shape


def test_an_output_directory_inside_the_folder_is_no_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, _ = _folder(tmp_path)
    out = src / "converted.zarr"
    first = ngio_async.convert_many_sync(src, out)
    assert len(first) == 3
    assert not any(isinstance(r, Exception) for r in first.values()), first
    again = ngio_async.convert_many_sync(src, out)  # the output folder is not listed
    assert sorted(again) == sorted(first)
    assert all(getattr(r, "skipped", False) for r in again.values())
    code, stdout, err = run(["convert", str(src), str(out)], capsys)
    assert code == 0, err
    assert stdout.count("skipped") == 3
