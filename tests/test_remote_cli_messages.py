"""What ``ngio-async convert`` prints around a batch: a broken TIFF's error was preceded by
tifffile's log lines saying the same (``<tifffile.TiffPages @...> invalid offset to first
page``, a broken page chain's reports in a batch), now the error alone; the progress bar's
label counted a multi-file OME-TIFF's files and a file given twice ("converting 5 inputs"
above a bar of 2), now the bar alone counts the inputs, from the start."""

from __future__ import annotations

import logging
import struct
from typing import TYPE_CHECKING, Any

import numpy as np
import tifffile
from cli_run import run
from tiffs import write_companion_set

from ngio_async.cli._common import one_line_logs

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


def _plane(k: int) -> np.ndarray[Any, Any]:
    return (np.arange(16 * 20).reshape(16, 20) + k).astype(np.uint16)


def _no_first_page(path: Path) -> Path:
    tifffile.imwrite(path, _plane(0))
    raw = bytearray(path.read_bytes())
    raw[4:8] = struct.pack("<I", 10**6)  # the first IFD's offset, past the end
    path.write_bytes(bytes(raw))
    return path


def _cut_stack(path: Path) -> Path:
    """A 4-page stack cut in half: tifffile logs a broken page chain and a failed reshape."""
    data = (np.arange(4 * 128 * 128) % 60000).astype(np.uint16).reshape(4, 128, 128)
    tifffile.imwrite(path, data, tile=(64, 64), photometric="minisblack")
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    return path


def test_a_broken_tiff_is_told_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = _no_first_page(tmp_path / "bad.tif")
    code, out, err = run(["convert", str(bad), str(tmp_path / "o")], capsys)
    assert code == 1 and not out
    assert (
        err == f"ngio-async: error: cannot decode: {bad} holds no image (a corrupt or empty TIFF)\n"
    )
    cut = _cut_stack(tmp_path / "cut.tif")
    tifffile.imwrite(tmp_path / "ok.tif", _plane(1))
    code, out, err = run(
        ["convert", str(cut), str(tmp_path / "ok.tif"), str(tmp_path / "b")], capsys
    )
    assert code == 1 and out.startswith("wrote "), err
    assert "tifffile" not in err, err  # was: its two log lines, saying the same as the error
    assert err == (
        f"ngio-async: error: {cut}: cannot decode: {cut} is truncated or corrupt: invalid page "
        "offset 66032\n"
    )


def test_other_tifffile_warnings_still_show(capsys: pytest.CaptureFixture[str]) -> None:
    log = logging.getLogger("tifffile")
    with one_line_logs("tifffile", quiet=False):
        log.warning("<tifffile.TiffTag 270 @42> coercing invalid ASCII to bytes")
        log.warning("<tifffile.TiffPages @8> invalid offset to first page 1000000")
    assert capsys.readouterr().err == (
        "ngio-async: warning: <tifffile.TiffTag 270 @42> coercing invalid ASCII to bytes\n"
    )


def test_the_bar_counts_what_converts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "scans"
    src.mkdir()
    tifffile.imwrite(src / "a.tif", _plane(1))
    write_companion_set(src, np.stack([_plane(2)] * 3), master="scan_z0.ome.tif")
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich draws its bar as on a terminal
    monkeypatch.setenv("COLUMNS", "200")
    code, out, err = run(["convert", str(src), str(src / "a.tif"), str(tmp_path / "o")], capsys)
    assert code == 0, err
    assert out.count("wrote ") == 2, out
    assert "converting inputs" in err, err  # was: "converting 5 inputs"
    assert "2/2" in err and "/5" not in err and "5 inputs" not in err, err
