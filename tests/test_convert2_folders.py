"""Folder conversion as a user runs it: nested folders (each acquisition in its own folder, as
Micro-Manager saves them) were skipped without a word and now convert into the same folders
under the output; a folder converted into itself refused its re-run (``a.tif`` and its output
``a.ome.zarr`` "would all be written to a.ome.zarr"); mixed folders, clashes, broken files,
interrupted runs, ``--overwrite`` and S3 outputs give the summary and exit code they should."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import tifffile
from cli_run import run
from tiffs import write_companion_set

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

    import pytest
    from servers import S3Server


def _plane(k: int = 0) -> np.ndarray[Any, Any]:
    return (np.arange(16 * 20).reshape(16, 20) + k).astype(np.uint16)


def _tree(tmp_path: Path) -> Path:
    """scans/{a.tif, b.ome.tif, notes.txt, day1/{c.tif, e.czi, acq/scan_z*.ome.tif},
    .hidden/d.tif}."""
    src = tmp_path / "scans"
    (src / "day1" / "acq").mkdir(parents=True)
    (src / ".hidden").mkdir()
    tifffile.imwrite(src / "a.tif", _plane(1))
    tifffile.imwrite(src / "b.ome.tif", _plane(2), ome=True)
    (src / "notes.txt").write_text("not an image")
    (src / "day1" / "e.czi").write_bytes(b"ZISRAWFILE")  # no reader: named as left out
    tifffile.imwrite(src / "day1" / "c.tif", _plane(3))
    tifffile.imwrite(src / ".hidden" / "d.tif", _plane(4))
    write_companion_set(src / "day1" / "acq", np.stack([_plane(5)] * 2), master="scan_z0.ome.tif")
    return src


def _zarrs(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.ome.zarr"))


def test_nested_folders_convert_into_the_same_folders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _tree(tmp_path)
    out = tmp_path / "out"
    code, stdout, err = run(["convert", str(src), str(out)], capsys)
    assert code == 0, err
    assert _zarrs(out) == [
        "a.ome.zarr",
        "b.ome.zarr",
        "day1/acq/scan_z0.ome.zarr",
        "day1/c.ome.zarr",
    ]
    assert stdout.count("wrote ") == 4
    note = f"ngio-async: note: no reader for 2 files, left out: {src / 'day1' / 'e.czi'}, "
    assert note + f"{src / 'notes.txt'}" in err
    with ngio_async.open(out / "day1" / "c.ome.zarr") as ds:
        np.testing.assert_array_equal(ds[...], _plane(3))
    results = ngio_async.convert_many_sync(src, out)  # the API: the same inputs, all skipped
    assert sorted(results) == sorted(
        str(src / n) for n in ("a.tif", "b.ome.tif", "day1/c.tif", "day1/acq/scan_z0.ome.tif")
    )
    assert all(getattr(r, "skipped", False) for r in results.values()), results


def test_a_folder_converted_into_itself_runs_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _tree(tmp_path)
    code, stdout, err = run(["convert", str(src), str(src)], capsys)
    assert code == 0, err
    assert stdout.count("wrote ") == 4
    code, stdout, err = run(["convert", str(src), str(src)], capsys)
    assert code == 0, err  # was: 'a.ome.zarr', 'a.tif' would all be written to a.ome.zarr
    assert stdout.count("skipped ") == 4 and "wrote" not in stdout
    code, stdout, err = run(["convert", str(src), str(src), "--overwrite"], capsys)
    assert code == 0, err
    assert stdout.count("wrote ") == 4
    assert _zarrs(src) == [
        "a.ome.zarr",
        "b.ome.zarr",
        "day1/acq/scan_z0.ome.zarr",
        "day1/c.ome.zarr",
    ]


def test_an_interrupted_folder_run_then_a_rerun(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _tree(tmp_path)
    out = tmp_path / "out"
    assert run(["convert", str(src), str(out)], capsys)[0] == 0
    root = out / "day1" / "c.ome.zarr" / "zarr.json"  # as an interrupted run leaves it
    unfinished = {"zarr_format": 3, "node_type": "group", "attributes": {}}
    unfinished["attributes"] = {"ngio_async": {"convert": "unfinished"}}
    root.write_text(json.dumps(unfinished))
    code, stdout, err = run(["convert", str(src), str(out)], capsys)
    assert code == 0, err
    assert stdout.count("skipped ") == 3
    assert [line for line in stdout.splitlines() if line.startswith("wrote")] == [
        line for line in stdout.splitlines() if "day1/c.ome.zarr" in line
    ]
    with ngio_async.open(out / "day1" / "c.ome.zarr") as ds:
        np.testing.assert_array_equal(ds[...], _plane(3))


def test_a_broken_tiff_fails_alone_with_exit_code_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _tree(tmp_path)
    (src / "broken.tif").write_bytes(b"II*\x00" + b"\xff" * 40)
    code, stdout, err = run(["convert", str(src), str(tmp_path / "out")], capsys)
    assert code == 1
    assert stdout.count("wrote ") == 4
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1 and "broken.tif" in errors[0], err


def test_a_name_clash_is_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _tree(tmp_path)
    tifffile.imwrite(src / "day1" / "c.tiff", _plane(6))
    code, _, err = run(["convert", str(src), str(tmp_path / "out")], capsys)
    assert code == 2
    assert "c.tif', " in err and "c.tiff' would all be written to" in err
    assert "rename or move one of them" in err
    assert not (tmp_path / "out").exists() or _zarrs(tmp_path / "out") == []


def test_nested_folders_to_s3(tmp_path: Path, s3_server: S3Server) -> None:
    src = _tree(tmp_path)
    base = s3_server.fresh_url()
    opts = s3_server.options()
    results = ngio_async.convert_many_sync(src, base, dst_options=opts)
    dsts = sorted(r.dst for r in results.values() if not isinstance(r, Exception))
    assert dsts == [
        f"{base}/{n}"
        for n in ("a.ome.zarr", "b.ome.zarr", "day1/acq/scan_z0.ome.zarr", "day1/c.ome.zarr")
    ]
    with ngio_async.open(f"{base}/day1/c.ome.zarr", **opts) as ds:
        np.testing.assert_array_equal(ds[...], _plane(3))
    again = ngio_async.convert_many_sync(src, base, dst_options=opts)
    assert all(getattr(r, "skipped", False) for r in again.values()), again


def test_an_earlier_conversion_beside_its_tiff_is_no_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _tree(tmp_path)
    ngio_async.convert_sync(src / "a.tif", src / "a.ome.zarr")  # converted where it lies
    ngio_async.convert_sync(src / "a.tif", src / "kept.ome.zarr")  # another name: an input
    code, stdout, err = run(["convert", str(src), str(tmp_path / "out")], capsys)
    assert code == 0, err  # was: 'a.ome.zarr', 'a.tif' would all be written to out/a.ome.zarr
    assert stdout.count("wrote ") == 5
    assert "kept.ome.zarr" in stdout
    results = ngio_async.convert_many_sync([src / "a.ome.zarr", src / "a.tif"], tmp_path / "o2")
    assert list(results) == [str(src / "a.tif")]


def test_an_input_given_twice_converts_once(tmp_path: Path) -> None:
    src = _tree(tmp_path)
    day1 = src / "day1"
    results = ngio_async.convert_many_sync(
        [day1, day1 / "c.tif", src / "day1" / ".." / "day1" / "c.tif"], tmp_path / "out"
    )
    assert sorted(results) == [str(day1 / "acq" / "scan_z0.ome.tif"), str(day1 / "c.tif")]
    c = results[str(day1 / "c.tif")]
    assert not isinstance(c, Exception), c
    assert c.dst == f"{tmp_path / 'out'}/c.ome.zarr"
    sets = results[str(day1 / "acq" / "scan_z0.ome.tif")]
    assert not isinstance(sets, Exception), sets
    assert sets.members == (str(day1 / "acq" / "scan_z1.ome.tif"),)
