"""``convert(src, "out.ozx")`` (and ``ngio_async convert SRC out.ozx``) writes a zipped
OME-Zarr (NGFF RFC-9): entries stored, the root ``zarr.json`` first and the other
``zarr.json`` documents next (breadth-first), RFC-9's archive comment when every array is
sharded; it reads back (ngio_async, ngff-zarr) as the folder convert writes; a failed
conversion leaves neither the zip nor its temporary folder; an existing zip is replaced only
with ``overwrite=True``."""

from __future__ import annotations

import json
import os
import shutil
import threading
import warnings
import zipfile
from typing import TYPE_CHECKING

import anyio
import numpy as np
import pytest

import ngio_async
from ngio_async import CodecError, ExistsError, ReadOnlyError, UnsupportedError
from ngio_async.cli import main

if TYPE_CHECKING:
    from pathlib import Path

DATA = np.random.default_rng(2711).integers(0, 1000, (2, 64, 64), dtype=np.uint16)
LABEL = (DATA[0] > 500).astype(np.uint32)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sharded NGFF 0.5 image: two levels, a label image, a table."""
    path = tmp_path_factory.mktemp("ozxw27") / "img.ome.zarr"
    with ngio_async.create(
        path,
        shape=DATA.shape,
        dtype="uint16",
        chunks=(1, 16, 16),
        shards=(1, 32, 32),
        axes="cyx",
        levels=2,
        ngff_version="0.5",
    ) as ds:
        ds.write(DATA, pyramid=True)
        ds.labels.create("cells").write(LABEL, pyramid=True)
        ds.tables.write("facts", {"size": np.arange(4, dtype=np.int64)}, backend="json")
    return path


def _convert(src: Path, dst: Path, **options: object) -> ngio_async.ConvertResult:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r".*tables/ .* are not converted")
        return ngio_async.convert_sync(src, dst, **options)


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_the_zip_follows_rfc9(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.ozx"
    result = _convert(source, out)
    assert result.dst == str(out) and result.ngff_version == "0.5" and result.levels == 2
    assert _listing(tmp_path) == ["out.ozx"]  # no temporary folder, no .partial
    with zipfile.ZipFile(out) as zf:
        infos = zf.infolist()
        assert json.loads(zf.comment) == {"ome": {"version": "0.5"}}
    names = [i.filename for i in infos]
    assert all(i.compress_type == zipfile.ZIP_STORED for i in infos)
    assert names[0] == "zarr.json"
    docs = [n for n in names if n.endswith("zarr.json")]
    assert names[: len(docs)] == docs  # every zarr.json before any chunk
    assert [n.count("/") for n in docs] == sorted(n.count("/") for n in docs)  # breadth-first
    assert {"0/zarr.json", "1/zarr.json", "labels/cells/0/zarr.json"} <= set(docs)
    offsets = [i.header_offset for i in infos]
    assert offsets == sorted(offsets)  # the entries lie in the file in that order too
    assert len(names) == len(set(names)) and not any(n.endswith("/") for n in names)


def test_it_reads_as_the_folder_convert(source: Path, tmp_path: Path) -> None:
    _convert(source, tmp_path / "out.ozx")
    _convert(source, tmp_path / "out.ome.zarr")
    with (
        ngio_async.open(tmp_path / "out.ozx") as zipped,
        ngio_async.open(tmp_path / "out.ome.zarr") as folder,
    ):
        assert zipped.metadata.ome == folder.metadata.ome
        assert [lvl.shape for lvl in zipped.levels] == [lvl.shape for lvl in folder.levels]
        for mine, theirs in zip(zipped.levels, folder.levels, strict=True):
            np.testing.assert_array_equal(mine[...], theirs[...])
        np.testing.assert_array_equal(zipped[...], DATA)
        assert zipped.labels.names() == ["cells"]
        np.testing.assert_array_equal(zipped.labels["cells"][...], LABEL)
        np.testing.assert_array_equal(
            zipped.labels["cells"].levels[1][...], folder.labels["cells"].levels[1][...]
        )


def test_ngff_zarr_reads_it(source: Path, tmp_path: Path) -> None:
    nz = pytest.importorskip("ngff_zarr")
    from ngff_zarr.rfc9_zip import read_ozx_version

    out = tmp_path / "out.ozx"
    _convert(source, out)
    assert read_ozx_version(out) == "0.5"
    theirs = nz.from_ngff_zarr(str(out))
    assert len(theirs.images) == 2
    np.testing.assert_array_equal(np.asarray(theirs.images[0].data), DATA)


def test_zip64_records_read_back(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sizes and offsets past ZIP64's limit (lowered to 1 KiB here: fault injection, not
    4 GiB of data) get ZIP64 records, which ngio_async reads."""
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 1024)
    out = tmp_path / "out.ozx"
    _convert(source, out)
    monkeypatch.undo()
    raw = out.read_bytes()
    assert b"PK\x06\x06" in raw[-4096:] and b"PK\x06\x07" in raw[-4096:]  # ZIP64 end records
    with ngio_async.open(out) as ds:
        np.testing.assert_array_equal(ds[...], DATA)
        np.testing.assert_array_equal(ds.labels["cells"][...], LABEL)


def test_unsharded_arrays_get_no_rfc9_comment(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.ozx"
    _convert(source, out, shards=False)
    with zipfile.ZipFile(out) as zf:
        assert zf.comment == b""  # not RFC-9's recommended variant: no comment
        assert zf.namelist()[0] == "zarr.json"
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_STORED}
    with ngio_async.open(out) as ds:
        np.testing.assert_array_equal(ds[...], DATA)


def test_a_failed_convert_leaves_nothing(source: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.ome.zarr"
    shutil.copytree(source, broken)
    (broken / "0" / "c" / "1" / "0" / "1").write_bytes(b"not a shard" * 10)  # fault
    out = tmp_path / "out" / "img.ozx"
    out.parent.mkdir()
    with pytest.raises(CodecError, match=r"shard '0/c/1/0/1' at .*broken\.ome\.zarr"):
        _convert(broken, out)
    assert _listing(out.parent) == []
    # the next run starts afresh
    _convert(source, out)
    assert _listing(out.parent) == ["img.ozx"]


def test_a_failure_while_zipping_leaves_nothing(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = zipfile.ZipFile.write
    written: list[str] = []

    def failing(self: zipfile.ZipFile, filename: str, arcname: str | None = None) -> None:
        if len(written) == 5:  # fault injection: the disk fills up midway
            raise OSError(28, "No space left on device")
        written.append(str(arcname))
        real(self, filename, arcname)

    monkeypatch.setattr(zipfile.ZipFile, "write", failing)
    with pytest.raises(OSError, match="No space left"):
        _convert(source, tmp_path / "out.ozx")
    assert len(written) == 5
    assert _listing(tmp_path) == []


async def test_a_cancel_while_zipping_leaves_nothing(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = zipfile.ZipFile.write
    reached, resume = threading.Event(), threading.Event()
    written: list[str] = []

    def held(self: zipfile.ZipFile, filename: str, arcname: str | None = None) -> None:
        if len(written) == 3:  # the zip is being written: hold it until cancelled
            reached.set()
            resume.wait()
        written.append(str(arcname))
        real(self, filename, arcname)

    monkeypatch.setattr(zipfile.ZipFile, "write", held)

    async def run() -> None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", r".*tables/ .* are not converted")
            await ngio_async.convert(source, tmp_path / "out.ozx")

    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            await anyio.to_thread.run_sync(reached.wait)
            scope.cancel()
            resume.set()
    assert scope.cancelled_caught
    assert _listing(tmp_path) == []


def test_an_existing_zip_is_replaced_only_with_overwrite(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.ozx"
    out.write_bytes(b"earlier")
    with pytest.raises(ExistsError, match=rf"{out} already exists; pass overwrite=True"):
        _convert(source, out)
    assert out.read_bytes() == b"earlier" and _listing(tmp_path) == ["out.ozx"]
    _convert(source, out, overwrite=True)
    with ngio_async.open(out) as ds:
        np.testing.assert_array_equal(ds[...], DATA)
    assert _listing(tmp_path) == ["out.ozx"]


def test_refused_outputs(source: Path, tmp_path: Path) -> None:
    with pytest.raises(UnsupportedError, match=r"out\.ozx as NGFF 0\.4"):
        _convert(source, tmp_path / "out.ozx", ngff_version="0.4")
    with pytest.raises(ReadOnlyError, match=r"s3://bucket/x/out\.ozx: .*local .ozx file"):
        _convert(source, "s3://bucket/x/out.ozx")  # type: ignore[arg-type]
    with pytest.raises(ReadOnlyError, match=r"ngio_async convert SRC out\.ozx"):
        ngio_async.create(tmp_path / "new.ozx", shape=(4, 4), dtype="uint8")
    assert _listing(tmp_path) == []


def test_the_command_line_writes_a_zip(
    source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli.ozx"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r".*tables/ .* are not converted")
        assert main(["convert", "--quiet", str(source), str(out)]) == 0
    assert zipfile.ZipFile(out).namelist()[0] == "zarr.json"
    with ngio_async.open(out) as ds:
        np.testing.assert_array_equal(ds[...], DATA)
    assert _listing(tmp_path) == ["cli.ozx"]
    assert not os.path.exists(f"{out}.partial")
