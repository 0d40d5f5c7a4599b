"""Zipped OME-Zarr (``.ozx``, NGFF RFC-9) opens read-only from a local path: the image, its
levels, labels, tables, tiles, ``ds[...]`` and dask read as from the folder it was zipped
from, for zips made by ngff-zarr (sharded) and by Python's zipfile (stored, ZIP64, DEFLATE);
writes are refused naming the file; a truncated or non-zip file is an error naming it."""

from __future__ import annotations

import os
import pickle
import re
import shutil
import warnings
import zipfile
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest

import ngio_async
from ngio_async import NotFoundError, ReadOnlyError, StoreError, UnsupportedError
from ngio_async.stores import InstrumentedStore, open_store
from ngio_async.stores._zip import ZipStore

if TYPE_CHECKING:
    from pathlib import Path

DATA = np.random.default_rng(27).integers(0, 1000, (2, 64, 64), dtype=np.uint16)
LABEL = (DATA[0] > 500).astype(np.uint32)


def write_source(folder: Path) -> Path:
    """An image ngio_async writes (two levels, a label image, a table) at ``folder``."""
    path = folder / "img.ome.zarr"
    with ngio_async.create(
        path,
        shape=DATA.shape,
        dtype="uint16",
        chunks=(1, 16, 16),
        shards=False,
        axes="cyx",
        levels=2,
    ) as ds:
        ds.write(DATA, pyramid=True)
        ds.labels.create("cells").write(LABEL, pyramid=True)
        ds.tables.write("facts", {"size": np.arange(4, dtype=np.int64)}, backend="json")
    return path


def zip_folder(src: Path, dst: Path, *, zip64: bool = False, deflate: bool = False) -> Path:
    """``src`` zipped as RFC-9 says (root ``zarr.json`` first, then the others), with
    Python's zipfile: entries stored (or DEFLATE-compressed), ZIP64 records if asked."""
    names = sorted(
        str(p.relative_to(src)).replace(os.sep, "/") for p in src.rglob("*") if p.is_file()
    )
    names.sort(key=lambda n: (n != "zarr.json", not n.endswith("zarr.json")))
    method = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(dst, "w", method) as zf:
        for name in names:
            with zf.open(name, "w", force_zip64=zip64) as out:
                out.write((src / name).read_bytes())
    return dst


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_source(tmp_path_factory.mktemp("ozx27"))


def _same_as_source(zipped: Any, source: Path) -> None:
    with ngio_async.open(source) as src:
        assert zipped.metadata.ome == src.metadata.ome
        assert [lvl.shape for lvl in zipped.levels] == [lvl.shape for lvl in src.levels]
        for mine, theirs in zip(zipped.levels, src.levels, strict=True):
            np.testing.assert_array_equal(mine[...], theirs[...])
    np.testing.assert_array_equal(zipped[...], DATA)
    np.testing.assert_array_equal(zipped[1, 10:40, 5:60], DATA[1, 10:40, 5:60])
    assert zipped.labels.names() == ["cells"]
    np.testing.assert_array_equal(zipped.labels["cells"][...], LABEL)
    assert zipped.tables.names() == ["facts"]
    np.testing.assert_array_equal(zipped.tables.read("facts").columns["size"], np.arange(4))
    tiles = list(zipped.tiles(level=0))
    assert len(tiles) == 2 * 4 * 4
    for tile in tiles:
        np.testing.assert_array_equal(tile.data, DATA[tile.region])
    da = pytest.importorskip("dask.array")
    np.testing.assert_array_equal(da.from_array(zipped, chunks=(1, 32, 32)).compute(), DATA)


@pytest.mark.parametrize("kind", ["stored", "zip64", "deflate"])
def test_a_zip_of_an_image_reads_as_the_folder(source: Path, tmp_path: Path, kind: str) -> None:
    ozx = zip_folder(source, tmp_path / "img.ozx", zip64=kind == "zip64", deflate=kind == "deflate")
    with ngio_async.open(ozx) as zipped:
        _same_as_source(zipped, source)


def test_a_zip_named_otherwise_given_as_the_image(source: Path, tmp_path: Path) -> None:
    """A zip file by its bytes (``img.data``), and a ``file://`` URL of a ``.zip``."""
    other = zip_folder(source, tmp_path / "img.data")
    with ngio_async.open(other) as zipped:
        np.testing.assert_array_equal(zipped[...], DATA)
    named = zip_folder(source, tmp_path / "img.zip")
    with ngio_async.open(f"file://{named}") as zipped:
        np.testing.assert_array_equal(zipped.levels[1][...], zipped.levels[1][...])
        assert zipped.metadata.paths == ("0", "1")


def test_an_ozx_ngff_zarr_wrote(tmp_path: Path) -> None:
    nz = pytest.importorskip("ngff_zarr")
    image = nz.to_ngff_image(DATA, dims=["c", "y", "x"], scale={"y": 0.5, "x": 0.5})
    multiscales = nz.to_multiscales(image, scale_factors=[2], chunks=16)
    path = tmp_path / "nz.ozx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nz.to_ngff_zarr(str(path), multiscales, version="0.5")
    with zipfile.ZipFile(path) as zf:  # as RFC-9 asks: root zarr.json first, stored
        assert zf.namelist()[0] == "zarr.json"
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_STORED}
    with ngio_async.open(path) as ds:
        assert ds.axes == ("c", "y", "x")
        np.testing.assert_array_equal(ds[...], DATA)
        theirs = nz.from_ngff_zarr(str(path))
        for level, image in zip(ds.levels, theirs.images, strict=True):
            np.testing.assert_array_equal(level[...], np.asarray(image.data))
        assert [lvl.scale for lvl in ds.levels] == [(1.0, 0.5, 0.5), (1.0, 1.0, 1.0)]


def test_writes_are_refused_naming_the_file(source: Path, tmp_path: Path) -> None:
    ozx = zip_folder(source, tmp_path / "img.ozx")
    before = ozx.read_bytes()
    with pytest.raises(UnsupportedError, match=r"img\.ozx.*read-only"):
        ngio_async.open(ozx, mode="r+")
    with ngio_async.open(ozx) as ds, pytest.raises(ReadOnlyError):
        ds.write(DATA)
    for target in (ozx, tmp_path / "new.ozx"):  # (an image to create there)
        with pytest.raises(ReadOnlyError, match=rf"cannot write {target}: it names a zip file"):
            ngio_async.create(target, shape=(4, 4), dtype="uint8", overwrite=True)
    assert ozx.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.ozx"]


async def test_convert_reads_a_zip(source: Path, tmp_path: Path) -> None:
    ozx = zip_folder(source, tmp_path / "img.ozx")
    await ngio_async.convert(ozx, tmp_path / "out.ome.zarr")
    async with ngio_async.open_async(tmp_path / "out.ome.zarr") as ds:
        np.testing.assert_array_equal(await ds.read(), DATA)
        assert (await ds.tables.read("facts")).columns["size"].tolist() == [0, 1, 2, 3]


async def test_the_store_refuses_writes_and_lists_entries(source: Path, tmp_path: Path) -> None:
    zip_folder(source, tmp_path / "img.ozx")
    async with open_store(tmp_path / "img.ozx") as store:
        assert isinstance(store, ZipStore)
        with pytest.raises(ReadOnlyError, match=r"'0/zarr.json'.*img\.ozx is a zip file"):
            await store.put("0/zarr.json", b"{}")
        with pytest.raises(ReadOnlyError, match=r"img\.ozx"):
            await store.delete("zarr.json")
        folders, keys = await store.list_dir("")
        assert (folders, keys) == (["0", "1", "labels", "tables"], ["zarr.json"])
        assert await store.exists("0/zarr.json") and not await store.exists("0/nothing")
        assert await store.get("nothing") is None
        doc = (source / "0" / "zarr.json").read_bytes()
        assert bytes(await store.get("0/zarr.json") or b"") == doc
        assert await store.size("0/zarr.json") == len(doc)
        part = await store.get_ranges("0/zarr.json", [(0, 5), (10, 20)])
        assert part is not None and [bytes(p) for p in part] == [doc[:5], doc[10:20]]


def test_truncated_missing_and_non_zip_files_name_the_file(source: Path, tmp_path: Path) -> None:
    whole = zip_folder(source, tmp_path / "whole.ozx").read_bytes()
    cut = tmp_path / "cut.ozx"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(StoreError, match=r"cut\.ozx is not a readable zip file"):
        ngio_async.open(cut)
    junk = tmp_path / "junk.ozx"
    junk.write_bytes(b"not a zip at all" * 100)
    with pytest.raises(StoreError, match=r"junk\.ozx is not a readable zip file"):
        ngio_async.open(junk)
    with pytest.raises(NotFoundError, match=r"no such file: .*absent\.ozx"):
        ngio_async.open(tmp_path / "absent.ozx")


async def test_one_read_for_the_directory_then_one_per_chunk(source: Path, tmp_path: Path) -> None:
    """The directory: one GET of the zip's tail; each entry then one ranged GET (metadata
    documents, chunks: their local header comes along)."""
    zip_folder(source, tmp_path / "img.ozx")
    counted = InstrumentedStore(open_store(tmp_path))
    async with ngio_async.open_async(ZipStore(counted, "img.ozx")) as ds:
        opened = counted.method_counts["get"]
        assert opened == 1 + 1 + 2  # the directory, the group's zarr.json, the levels'
        counted.reset()
        np.testing.assert_array_equal(await ds.read(level=0, c=1), DATA[1])
        assert counted.method_counts == {"get": 16}  # 16 chunks of one plane
        counted.reset()
        np.testing.assert_array_equal(await ds.read(level=0, c=1), DATA[1])
        assert counted.method_counts == {"get": 16}  # no header read again


async def test_a_directory_beyond_the_first_read_takes_a_second(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ngio_async.stores import _zip

    monkeypatch.setattr(_zip, "TAIL", 256)  # the directory no longer comes with the tail
    zip_folder(source, tmp_path / "img.ozx", zip64=True)
    counted = InstrumentedStore(open_store(tmp_path))
    async with ngio_async.open_async(ZipStore(counted, "img.ozx")) as ds:
        assert counted.method_counts["get"] == 2 + 1 + 2
        with ngio_async.open(source) as src:
            want = src.levels[1][...]
        np.testing.assert_array_equal(await ds.read(level=1), want)


def test_a_folder_named_ozx_stays_a_folder(source: Path, tmp_path: Path) -> None:
    folder = tmp_path / "dir.ozx"
    shutil.copytree(source, folder)
    with ngio_async.open(folder, mode="r+") as ds:
        np.testing.assert_array_equal(ds[...], DATA)


class _Unseekable:
    """A file that cannot seek: zipfile then writes a data descriptor after each entry."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("wb")
        self._at = 0

    def write(self, data: bytes) -> int:
        self._at += len(data)
        return self._file.write(data)

    def tell(self) -> int:
        return self._at

    def seekable(self) -> bool:
        return False

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def test_entries_followed_by_data_descriptors(source: Path, tmp_path: Path) -> None:
    """Streamed zips (flag bit 3: sizes after the data) leave the layout unsure: each entry's
    local header tells where its data starts."""
    out = _Unseekable(tmp_path / "streamed.ozx")
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        for p in sorted(source.rglob("*"), key=lambda p: p.name != "zarr.json"):
            if p.is_file():
                zf.writestr(str(p.relative_to(source)).replace(os.sep, "/"), p.read_bytes())
    out.close()
    with zipfile.ZipFile(tmp_path / "streamed.ozx") as zf:
        assert all(info.flag_bits & 0x8 for info in zf.infolist())
    with ngio_async.open(tmp_path / "streamed.ozx") as ds:
        np.testing.assert_array_equal(ds[...], DATA)
        np.testing.assert_array_equal(ds.labels["cells"][...], LABEL)


def test_bytes_between_entries(source: Path, tmp_path: Path) -> None:
    """Bytes the directory does not account for after each entry: the layout then guesses
    each data offset wrong, and the local headers correct it (whole reads and ranges)."""
    path = tmp_path / "gaps.ozx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for p in sorted(source.rglob("*"), key=lambda p: p.name != "zarr.json"):
            if p.is_file():
                zf.writestr(str(p.relative_to(source)).replace(os.sep, "/"), p.read_bytes())
                assert zf.fp is not None
                zf.fp.write(b"padding")  # (zipfile writes the next entry at start_dir)
                zf.start_dir = zf.fp.tell()
    with ngio_async.open(path) as ds:
        np.testing.assert_array_equal(ds[...], DATA)
        np.testing.assert_array_equal(ds.labels["cells"][...], LABEL)

    async def ranges() -> None:
        async with open_store(path) as store:
            doc = (source / "1" / "zarr.json").read_bytes()
            got = await store.get_ranges("1/zarr.json", [(3, 9), (40, 50)])
            assert got is not None and [bytes(g) for g in got] == [doc[3:9], doc[40:50]]
            assert bytes(await store.get("1/zarr.json") or b"") == doc

    anyio.run(ranges)


def test_a_zipped_plate(tmp_path: Path) -> None:
    """A plate zipped: ``open_plate`` reads its wells and fields, ``open(path=...)`` one
    field."""
    src = tmp_path / "plate.ome.zarr"
    with ngio_async.create_plate(src, rows=["A", "B"], columns=["1", "2"]) as plate:
        for row, column in (("A", "1"), ("B", "2")):
            with plate.add_image(
                row, column, field="0", shape=DATA.shape, dtype="uint16", axes="cyx"
            ) as fov:
                fov.write(DATA if row == "A" else DATA[::-1])
    ozx = zip_folder(src, tmp_path / "plate.ozx")
    with ngio_async.open_plate(ozx) as plate:
        assert (plate.rows, plate.columns, plate.wells) == (["A", "B"], ["1", "2"], ["A/1", "B/2"])
        with plate.image("B", "2", field=0) as fov:
            np.testing.assert_array_equal(fov[...], DATA[::-1])
    with ngio_async.open(ozx, path="A/1/0") as fov:
        np.testing.assert_array_equal(fov[...], DATA)
    with pytest.raises(
        UnsupportedError, match=r"it is an HCS plate.*e\.g\. file://\S+/plate\.ozx/A/1/0"
    ):
        ngio_async.open(ozx)
    with ngio_async.open(f"file://{ozx}/B/2/0") as fov:  # the URL that error suggests
        assert fov.url == f"file://{ozx}/B/2/0"
        again = pickle.loads(pickle.dumps(fov))  # (opened again by its URL)
    with again:
        np.testing.assert_array_equal(again[...], DATA[::-1])
    assert ngio_async.open_well(f"{ozx}/B/2").fields == ["0"]


def test_a_zip_of_the_folder_says_which_path_opens_it(source: Path, tmp_path: Path) -> None:
    """Zipped with its folder (``img.ome.zarr/zarr.json``: not RFC-9's layout) the error
    names the group inside and the ``path=`` that opens it; that opens it."""
    path = tmp_path / "folder.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for p in sorted(source.rglob("*")):
            if p.is_file():
                zf.write(p, f"img.ome.zarr/{p.relative_to(source)}")
    with pytest.raises(
        NotFoundError, match=r"holds one at img\.ome\.zarr; open it with path='img\.ome\.zarr'"
    ):
        ngio_async.open(path)
    with ngio_async.open(path, path="img.ome.zarr") as ds:
        np.testing.assert_array_equal(ds[...], DATA)


def test_parts_of_big_deflated_entries_are_refused_naming_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A DEFLATE-compressed shard bigger than INFLATE_RANGED: a read of one of its chunks
    would inflate it whole; refused, naming the entry and how to rezip it."""
    from ngio_async.stores import _zip

    src = tmp_path / "sharded.ome.zarr"
    with ngio_async.create(src, shape=DATA.shape, dtype="uint16", chunks=(1, 16, 16),
                           shards=(1, 64, 64), axes="cyx") as ds:  # fmt: skip
        ds.write(DATA)
    ozx = zip_folder(src, tmp_path / "deflated.ozx", deflate=True)
    with ngio_async.open(ozx) as ds:  # small enough: inflated whole for each read
        np.testing.assert_array_equal(ds[1, :16, 16:32], DATA[1, :16, 16:32])
    monkeypatch.setattr(_zip, "INFLATE_RANGED", 1000)
    with ngio_async.open(ozx) as ds, pytest.raises(UnsupportedError) as caught:
        ds[1, :16, 16:32]
    assert "'0/c/1/0/0' in file://" in str(caught.value)
    assert re.search(r"is DEFLATE-compressed \(\d+ bytes\)", str(caught.value))
    assert "rezip it with its entries stored" in str(caught.value)


def test_entries_compressed_otherwise_are_refused_naming_them(source: Path, tmp_path: Path) -> None:
    path = tmp_path / "bz.ozx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_BZIP2) as zf:
        zf.write(source / "zarr.json", "zarr.json")
    with pytest.raises(UnsupportedError, match=r"'zarr.json' in file://\S+bz\.ozx is compressed with bzip2"):  # fmt: skip
        ngio_async.open(path)


async def test_blocking_reads_only_over_a_store_that_has_them(source: Path, tmp_path: Path) -> None:
    zip_folder(source, tmp_path / "img.ozx")
    doc = (source / "zarr.json").read_bytes()
    async with open_store(tmp_path / "img.ozx") as store:
        assert store.blocking_reads
        assert await store.exists("zarr.json")
        got, version = store.get_blocking_versioned("zarr.json")
        assert bytes(got or b"") == doc and version == await store.version("zarr.json")
    async with ZipStore(InstrumentedStore(open_store(tmp_path)), "img.ozx") as store:
        assert not store.blocking_reads
        with pytest.raises(UnsupportedError, match="no blocking reads"):
            store.get_blocking("zarr.json")
        with pytest.raises(UnsupportedError, match="no blocking reads"):
            store.get_blocking_versioned("zarr.json")


def test_zip64_records_of_a_big_archive(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What zipfile writes past 2 GiB (offsets, sizes and the directory in ZIP64 records:
    the 32-bit fields 0xFFFFFFFF), made small by lowering its limit to 1000 bytes."""
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 1000)
    path = zip_folder(source, tmp_path / "big.ozx")
    monkeypatch.undo()
    raw = path.read_bytes()
    assert b"PK\x06\x06" in raw[-200:] and b"PK\x06\x07" in raw[-100:]  # ZIP64 end records
    assert raw.count(b"\xff\xff\xff\xff") > 10  # offsets, sizes in the ZIP64 extra fields
    from ngio_async.stores import _zip

    for tail in (_zip.TAIL, 512):  # the whole file read first; its last 512 bytes
        monkeypatch.setattr(_zip, "TAIL", tail)
        with ngio_async.open(path) as ds:
            np.testing.assert_array_equal(ds[...], DATA)
            np.testing.assert_array_equal(ds.labels["cells"][...], LABEL)
