"""Regressions found by running ``ngio-async`` as a user does (``main(argv)``, real files)."""

from __future__ import annotations

import json
import os
import socket
import sys
import uuid
from typing import TYPE_CHECKING

import numpy as np
import pytest
import tifffile
from cli_run import run

import ngio_async
from ngio_async.cli import main

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server, StaticServer


@pytest.fixture(autouse=True)
def _no_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NGIO_ASYNC_NO_PROGRESS", "1")


def multi_file_ome_tiff(root: Path, planes: np.ndarray, compression: str | None = None) -> Path:
    """One z plane per file, every file's OME-XML listing all of them by UUID (as
    Bio-Formats writes a multi-file OME-TIFF); returns the first file."""
    uuids = [f"urn:uuid:{uuid.uuid4()}" for _ in planes]
    names = [f"scan_z{i}.ome.tif" for i in range(len(planes))]
    tiff_data = "".join(
        f'<TiffData FirstZ="{i}" IFD="0" PlaneCount="1">'
        f'<UUID FileName="{name}">{u}</UUID></TiffData>'
        for i, (name, u) in enumerate(zip(names, uuids, strict=True))
    )
    nz, ny, nx = planes.shape
    for i, (name, u) in enumerate(zip(names, uuids, strict=True)):
        xml = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f'<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06" UUID="{u}">'
            '<Image ID="Image:0" Name="scan"><Pixels ID="Pixels:0" DimensionOrder="XYZCT" '
            f'Type="uint16" SizeX="{nx}" SizeY="{ny}" SizeZ="{nz}" SizeC="1" SizeT="1" '
            'PhysicalSizeZ="3.0">'
            f'<Channel ID="Channel:0:0" SamplesPerPixel="1"/>{tiff_data}</Pixels></Image></OME>'
        )
        tifffile.imwrite(
            root / name, planes[i], description=xml, metadata=None, compression=compression
        )
    return root / names[0]


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_multi_file_ome_tiff_reads_every_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], compression: str | None
) -> None:
    """Uncompressed planes of the other files were read from the opened file (every z plane
    was plane 0): the converted image was silently wrong."""
    planes = np.arange(3 * 40 * 56, dtype=np.uint16).reshape(3, 40, 56)
    first = multi_file_ome_tiff(tmp_path, planes, compression)
    with tifffile.TiffFile(first) as tif:  # the premise: tifffile reads the three files
        assert np.array_equal(tif.series[0].asarray(), planes)
    with ngio_async.open(str(first)) as ds:
        assert ds.axes == ("z", "y", "x")
        assert np.array_equal(ds[...], planes)
    dst = tmp_path / "scan.ome.zarr"
    code, _, err = run(["convert", "-q", str(first), str(dst)], capsys)
    assert code == 0, err
    with ngio_async.open(str(dst)) as ds:
        assert np.array_equal(ds[...], planes)
        assert ds.metadata.spatial_calibration[0].axes[0].scale == 3.0


def test_multi_file_ome_tiff_truncated_other_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A truncated second file is named in one error line (exit 1), nothing converted."""
    planes = np.arange(3 * 40 * 56, dtype=np.uint16).reshape(3, 40, 56)
    first = multi_file_ome_tiff(tmp_path, planes)
    last = tmp_path / "scan_z2.ome.tif"
    data = last.read_bytes()
    with tifffile.TiffFile(last) as tif:
        ifd_end = int(tif.pages.first.dataoffsets[0])
    last.write_bytes(data[: ifd_end + 100])
    dst = tmp_path / "scan.ome.zarr"
    code, _, err = run(["convert", "-q", str(first), str(dst)], capsys)
    assert code == 1
    assert err.count("\n") == 1 and "scan_z2.ome.tif" in err and "truncated" in err, err
    assert not (dst / "zarr.json").exists()


def test_readme_batch_shards_fit_images_of_fewer_axes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's ``convert scans/*.tif out/ --shards 1,1,4096,4096`` failed for every yx
    or cyx TIFF ("has 4 values: expected 2"); leading 1s beyond an image's axes are ignored,
    other extra values are still refused, naming the option."""
    plane = np.arange(300 * 200, dtype=np.uint16).reshape(300, 200)
    tifffile.imwrite(tmp_path / "a.tif", plane)
    tifffile.imwrite(tmp_path / "b.ome.tif", np.stack([plane, plane]), metadata={"axes": "CYX"})
    out = tmp_path / "out"
    argv = [str(tmp_path / "a.tif"), str(tmp_path / "b.ome.tif"), str(out) + "/"]
    code, _, err = run(["convert", "-q", *argv, "--shards", "1,1,4096,4096"], capsys)
    assert code == 0, err
    with ngio_async.open(str(out / "a.ome.zarr")) as ds:
        assert ds.levels[0].shards == (300, 200)  # one shard over the image
        assert np.array_equal(ds[...], plane)
    with ngio_async.open(str(out / "b.ome.zarr")) as ds:
        assert ds.levels[0].shards is not None and ds.levels[0].shards[0] == 1
    code, _, err = run(
        ["convert", "-q", *argv[1:2], str(tmp_path / "c.zarr"), "--shards", "2,1,4096,4096"],
        capsys,
    )
    assert code == 2
    assert "shards (2, 1, 4096, 4096) has 4 values: expected 3" in err, err
    assert not (tmp_path / "c.zarr").exists()


def test_serve_port_out_of_range_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--port 99999 ended in 'OverflowError: bind(): port must be 0-65535.'"""
    code, _, err = run(["serve", str(tmp_path), "--port", "99999"], capsys)
    assert code == 2
    assert "argument --port: expected a port from 0 to 65535, got 99999" in err


def test_serve_address_in_use_names_host_and_port(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A taken port, an address not ours or an unknown host: one line naming host:port (a
    host that does not resolve gave '[Errno -2] Name or service not known' alone)."""
    url = str(tmp_path / "img.ome.zarr")
    with ngio_async.create(url, shape=(32, 32), dtype="uint8", axes="yx") as ds:
        ds.write(np.zeros((32, 32), "uint8"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, err = run(["serve", "-q", url, "--port", str(port)], capsys)
    assert code == 2
    assert err.startswith(f"ngio-async: error: cannot listen on 127.0.0.1:{port}: "), err
    assert err.count("\n") == 1
    assert "serving" not in out


def test_levels_past_one_pixel_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--levels 50 on a 600 x 700 TIFF wrote 50 levels, the last 39 all 3x1x1 with the pixel
    size doubling at each (up to 2**49 times level 0's): refused now, naming the most levels
    the image has; as many as that still convert, from a TIFF and from an OME-Zarr."""
    data = np.arange(2 * 40 * 56, dtype=np.uint16).reshape(2, 40, 56)
    src = tmp_path / "s.ome.tif"
    tifffile.imwrite(src, data, metadata={"axes": "CYX"})
    dst = tmp_path / "a.zarr"
    code, _, err = run(["convert", "-q", "--levels", "50", str(src), str(dst)], capsys)
    assert code == 2
    assert "levels 50: a 2x40x56 image stops shrinking at level 6 (2x1x1): at most 7" in err
    assert not dst.exists()
    code, _, err = run(["convert", "-q", "--levels", "7", str(src), str(dst)], capsys)
    assert code == 0, err
    with ngio_async.open(str(dst)) as ds:
        assert [lvl.shape for lvl in ds.levels][-2:] == [(2, 2, 2), (2, 1, 1)]
    two = tmp_path / "two.zarr"
    code, _, err = run(["convert", "-q", "--levels", "2", str(src), str(two)], capsys)
    assert code == 0, err
    again = tmp_path / "b.zarr"
    code, _, err = run(["convert", "-q", "--levels", "8", str(two), str(again)], capsys)
    assert code == 2
    assert "levels 8: a 2x40x56 image stops shrinking at level 6 (2x1x1): at most 7" in err
    assert not again.exists()
    code, _, err = run(["convert", "-q", "--levels", "7", str(two), str(again)], capsys)
    assert code == 0, err
    with ngio_async.open(str(again)) as ds:
        assert len(ds.levels) == 7 and ds.levels[-1].shape == (2, 1, 1)


def test_multi_file_ome_tiff_with_a_missing_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A companion file missing: tifffile zeroes its planes (a warning nobody saw) and the
    conversion looked complete; refused now, naming the missing file (exit 2)."""
    planes = np.arange(3 * 40 * 56, dtype=np.uint16).reshape(3, 40, 56) + 1
    first = multi_file_ome_tiff(tmp_path, planes)
    (tmp_path / "scan_z2.ome.tif").unlink()
    dst = tmp_path / "scan.ome.zarr"
    code, _, err = run(["convert", "-q", str(first), str(dst)], capsys)
    assert code == 2
    assert "multi-file OME-TIFF" in err and "scan_z2.ome.tif" in err and err.count("\n") == 1
    assert not dst.exists()
    with pytest.raises(ngio_async.NotFoundError, match=r"scan_z2\.ome\.tif"):
        ngio_async.open(str(first))
    (tmp_path / "scan_z1.ome.tif").unlink()  # tifffile names the first missing file only
    code, _, err = run(["convert", "-q", str(first), str(dst)], capsys)
    assert code == 2 and "scan_z1.ome.tif and 1 more file, which" in err, err


def test_remote_multi_file_ome_tiff_is_refused(
    http_server: StaticServer, http_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Over HTTP the other files were not read at all: planes 1 and 2 converted as zeros;
    then refused; now the set's files are read from beside it (tests/test_remote2_sets.py)."""
    planes = np.arange(3 * 40 * 56, dtype=np.uint16).reshape(3, 40, 56) + 1
    multi_file_ome_tiff(http_root, planes)
    dst = http_root.parent / "remote.ome.zarr"
    code, _, err = run(["convert", "-q", http_server.url + "scan_z0.ome.tif", str(dst)], capsys)
    assert code == 0, err
    with ngio_async.open(dst) as ds:
        np.testing.assert_array_equal(np.squeeze(ds[...]), planes)


def test_info_names_an_unfinished_conversion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """After a convert failed part-way, ``info DST`` said "has no 'ome' attributes: not an
    OME-Zarr 0.5 group"; it says the conversion is unfinished and how to finish it."""
    src = tmp_path / "src.ome.zarr"
    data = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    with ngio_async.create(str(src), shape=(64, 64), dtype="uint16", axes="yx") as ds:
        ds.write(data)
    chunk = src / "0" / "c" / "0" / "0"
    good = chunk.read_bytes()
    chunk.write_bytes(b"not zstd")
    dst = tmp_path / "dst.ome.zarr"
    code, _, err = run(["convert", "-q", str(src), str(dst)], capsys)
    assert code == 1 and "c/0/0" in err, err
    code, out, err = run(["info", str(dst)], capsys)
    assert (code, out) == (1, "")
    assert err == (
        f"ngio-async: error: {dst.as_uri()} is an unfinished conversion (interrupted or "
        "failed): run the same `ngio-async convert` again to finish it\n"
    )
    chunk.write_bytes(good)
    assert run(["convert", "-q", str(src), str(dst)], capsys)[0] == 0
    code, out, _ = run(["info", str(dst)], capsys)
    assert code == 0 and "64x64" in out


def test_convert_leaves_stderr_empty_when_it_is_no_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a terminal the transient progress bar left an empty line on stderr (as the
    validate spinner did); the 'wrote' line is on stdout alone."""
    monkeypatch.delenv("NGIO_ASYNC_NO_PROGRESS")
    src = tmp_path / "a.tif"
    tifffile.imwrite(src, np.zeros((64, 64), np.uint8))
    code, out, err = run(["convert", str(src), str(tmp_path / "a.zarr")], capsys)
    assert (code, err) == (0, "")
    assert out.startswith("wrote ") and out.count("\n") == 1


def test_a_closed_pipe_is_not_reported_as_invalid_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``validate --json VALID | head -1`` exited 1, the status of invalid data; a writer
    the pipe ended exits 141 (128 + SIGPIPE), as a shell reports it."""
    url = str(tmp_path / "img.ome.zarr")
    with ngio_async.create(url, shape=(32, 32), dtype="uint8", axes="yx") as ds:
        ds.write(np.zeros((32, 32), "uint8"))
    assert main(["validate", "-q", url]) == 0
    for argv in (["validate", "--json", url], ["info", url]):
        read, write = os.pipe()
        os.close(read)  # the reader has gone
        with os.fdopen(write, "w", buffering=1) as closed:
            monkeypatch.setattr(sys, "stdout", closed)
            assert main(argv) == 141


def test_tifffile_warnings_are_one_line_notes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """tifffile's log records reached stderr bare, through Python's last-resort handler
    (``<tifffile.TiffFile 'x.tif'> contains no pages`` above the error); they are
    ``ngio-async: warning:`` lines now, and ``--quiet`` drops the warnings."""
    empty = tmp_path / "empty.tif"
    empty.write_bytes(b"II*\x00\x00\x00\x00\x00")  # a header, no pages (a failed write)
    dst = str(tmp_path / "e.zarr")
    code, _, err = run(["convert", str(empty), dst], capsys)
    assert code == 1
    lines = err.splitlines()
    assert lines[-1].startswith("ngio-async: error: cannot decode: ") and "holds no image" in err
    assert len(lines) == 2 and lines[0].startswith("ngio-async: warning: "), err
    assert "contains no pages" in lines[0]
    code, _, err = run(["convert", "-q", str(empty), dst], capsys)
    assert code == 1 and err.count("\n") == 1 and err.startswith("ngio-async: error: "), err


def test_a_remote_glob_pattern_is_explained(
    s3_server: S3Server,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """``convert 's3://bucket/scans/*.tif' out/`` said only "no TIFF at s3://.../*.tif"."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_access_key)
    argv = ["convert", "-q", f"s3://{s3_server.bucket}/nothing-here/*.tif", str(tmp_path / "o")]
    argv += ["--endpoint", s3_server.endpoint, "--region", s3_server.region, "--allow-http"]
    code, _, err = run(argv, capsys)
    assert code == 2 and err.count("\n") == 1
    assert "are expanded for local paths only: list the URLs" in err, err


def test_info_of_a_containers_ome_group(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``info container/OME`` (its ``series`` list) printed "(unknown)  NGFF metadata: ome"."""
    with tifffile.TiffWriter(tmp_path / "two.ome.tif", ome=True) as tif:
        tif.write(np.zeros((2, 16, 16), np.uint8), metadata={"axes": "CYX"})
        tif.write(np.zeros((2, 8, 16), np.uint8), metadata={"axes": "CYX"})
    dst = tmp_path / "two.ome.zarr"
    assert run(["convert", "-q", str(tmp_path / "two.ome.tif"), str(dst)], capsys)[0] == 0
    code, out, _ = run(["info", "--json", str(dst / "OME")], capsys)
    assert code == 0
    doc = json.loads(out)
    assert (doc["kind"], doc["series"]) == ("series", ["0", "1"])
    code, out, _ = run(["info", str(dst / "OME")], capsys)
    assert code == 0 and "(series)" in out and "series (paths in the container): 0, 1" in out
