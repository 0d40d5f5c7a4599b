"""``convert`` checks its URLs as ``info``, ``validate`` and ``bench`` do: a DST whose scheme lost
its colon (``s3//bucket/x.zarr``) was written as the local directories ``s3/bucket/x.zarr``
with exit status 0; and a ``memory://`` DST (a store that ends with the process) reported
"wrote" for data nobody can read."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest
import tifffile
from cli_run import run

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def tiff(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((16, 16), np.uint8))
    return tmp_path / "a.tif"


def test_a_destination_with_a_scheme_typo_is_refused(
    tiff: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["convert", str(tiff), "s3//bucket/x.zarr"], capsys)
    assert code == 2
    assert "did you mean s3://bucket/x.zarr?" in err
    assert err.count("\n") == 1 and not out
    assert not (tmp_path / "s3").exists()


def test_a_source_with_a_scheme_typo_is_refused(
    tiff: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["convert", "s3//bucket/x.tif", str(tmp_path / "o.zarr")], capsys)
    assert code == 2
    assert "did you mean s3://bucket/x.tif?" in err


def test_a_memory_destination_is_refused(tiff: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["convert", str(tiff), "memory://x.zarr"], capsys)
    assert code == 2
    assert "memory://" in err and "wrote" not in out
