"""Multi-file OME-TIFFs on an object store: a companion set (``.companion.ome``) and a
Micro-Manager set (the first TIFF holds the OME-XML, the others are ``BinaryOnly``) were
refused ("read from local files only"); now a set converts once, from any of its files, as a
local set does, in a folder too."""

from __future__ import annotations

import tempfile
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest
from cli_run import run
from tiffs import write_companion_set

import ngio_async
from ngio_async import NotFoundError
from ngio_async.stores import open_store

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server


def _stack() -> np.ndarray[Any, Any]:
    return (np.arange(3 * 16 * 20).reshape(3, 16, 20) * 7).astype(np.uint16)


def _upload(tmp_path: Path, s3: S3Server, master: str, skip: str = "") -> str:
    """A set written by ``write_companion_set`` under a fresh prefix's ``acq/``, beside
    ``a.ome.tif`` (a whole image); ``skip``: a file left out."""
    local = tmp_path / f"set-{master}"
    local.mkdir()
    write_companion_set(local, _stack(), master=master)
    url = s3.fresh_url()

    async def put() -> None:
        async with open_store(url, **s3.options()) as store:
            for p in sorted(local.iterdir()):
                if p.name != skip:
                    await store.put(f"acq/{p.name}", p.read_bytes())
            import io

            import tifffile

            buf = io.BytesIO()
            tifffile.imwrite(buf, _stack()[0], ome=True)
            await store.put("acq/a.ome.tif", buf.getvalue())

    anyio.run(put)
    return url


@pytest.fixture
def temp_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


def test_a_companion_set_in_an_s3_folder_converts_once(
    tmp_path: Path, s3_server: S3Server, temp_root: Path
) -> None:
    src = _upload(tmp_path, s3_server, "scan.companion.ome")
    out = tmp_path / "out"
    results = ngio_async.convert_many_sync(src, out, src_options=s3_server.options())
    assert sorted(results) == [f"{src}/acq/a.ome.tif", f"{src}/acq/scan.companion.ome"]
    done = results[f"{src}/acq/scan.companion.ome"]
    assert not isinstance(done, Exception), done
    assert sorted(done.members) == [f"{src}/acq/scan_z{i}.ome.tif" for i in range(3)]
    with ngio_async.open(out / "acq" / "scan.ome.zarr") as ds:
        assert ds.axes == ("c", "z", "y", "x")  # its one channel named
        np.testing.assert_array_equal(ds[...][0], _stack())
    assert list(temp_root.iterdir()) == []  # the staged copy is removed


def test_a_micro_manager_set_converts_from_the_cli_and_from_any_file(
    tmp_path: Path,
    s3_server: S3Server,
    temp_root: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    src = _upload(tmp_path, s3_server, "scan_z0.ome.tif")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_access_key)
    opts = ["--endpoint", s3_server.endpoint, "--region", s3_server.region]
    out = tmp_path / "out"
    code, stdout, err = run(["convert", src + "/", str(out), *opts], capsys)
    assert code == 0, err
    assert stdout.count("wrote ") == 2, stdout  # a.ome.tif, and the set once
    assert "one multi-file OME-TIFF: scan_z0.ome.tif with scan_z1.ome.tif, scan_z2" in stdout
    with ngio_async.open(out / "acq" / "scan_z0.ome.zarr") as ds:
        np.testing.assert_array_equal(ds[...][0], _stack())
    # one of its BinaryOnly files, named alone: the whole set
    one = tmp_path / "one.ome.zarr"
    ngio_async.convert_sync(f"{src}/acq/scan_z2.ome.tif", one, src_options=s3_server.options())
    with ngio_async.open(one) as ds:
        np.testing.assert_array_equal(ds[...][0], _stack())
    assert list(temp_root.iterdir()) == []


def test_a_missing_file_of_a_set_is_named(
    tmp_path: Path, s3_server: S3Server, temp_root: Path
) -> None:
    src = _upload(tmp_path, s3_server, "scan.companion.ome", skip="scan_z1.ome.tif")
    with pytest.raises(NotFoundError, match=r"names scan_z1\.ome\.tif, not found beside it"):
        ngio_async.convert_sync(
            f"{src}/acq/scan.companion.ome",
            tmp_path / "o.ome.zarr",
            src_options=s3_server.options(),
        )
    assert not (tmp_path / "o.ome.zarr").exists()
    assert list(temp_root.iterdir()) == []
