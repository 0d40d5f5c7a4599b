"""Review of zipped OME-Zarr reading (review27z): zip files odd and hostile, made by hand where
Python's zipfile does not make them, read through the zip store of a local file. Each reads
right or fails with an error naming the file (and the entry); never the bytes of another
entry, of the central directory, or of bytes before the archive. Tests marked
``xfail(strict=True)`` name a defect left open."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from ngio_async import StoreError, UnsupportedError
from ngio_async.stores import InstrumentedStore, open_store
from ngio_async.stores._base import OffsetByteRequest, RangeByteRequest, SuffixByteRequest
from ngio_async.stores._zip import TAIL, ZipStore

if TYPE_CHECKING:
    from pathlib import Path

LOCAL = struct.Struct("<4s5H3L2H")
CENTRAL = struct.Struct("<4s6H3L5H2L")
END = struct.Struct("<4s4H2LH")


@dataclass
class Entry:
    """One file of a zip made by :func:`make_zip`."""

    name: bytes
    data: bytes
    flags: int = 0
    deflate: bool = False
    local_extra: bytes = b""
    central_extra: bytes = b""
    gap: bytes = b""  # bytes after its data (and data descriptor), before the next header
    length: int | None = None  # the uncompressed size the headers state (default: the true one)


def make_zip(
    entries: list[Entry], *, comment: bytes = b"", before: bytes = b"", disk: int = 0
) -> bytes:
    """The zip of ``entries`` (offsets counted from the archive's first byte; ``before``:
    bytes prepended to the file, as a self-extracting archive's program)."""
    body = bytearray()
    central = bytearray()
    for e in entries:
        stored = e.data
        if e.deflate:
            packer = zlib.compressobj(6, zlib.DEFLATED, -15)
            stored = packer.compress(e.data) + packer.flush()
        crc = zlib.crc32(e.data)
        length = len(e.data) if e.length is None else e.length
        method = 8 if e.deflate else 0
        offset = len(body)
        sizes = (0, 0, 0) if e.flags & 0x8 else (crc, len(stored), length)  # (a descriptor's)
        body += LOCAL.pack(b"PK\x03\x04", 20, e.flags, method, 0, 0, *sizes, len(e.name),
                           len(e.local_extra))  # fmt: skip
        body += e.name + e.local_extra + stored
        if e.flags & 0x8:  # a data descriptor after the data
            body += struct.pack("<4s3L", b"PK\x07\x08", crc, len(stored), length)
        body += e.gap
        central += CENTRAL.pack(b"PK\x01\x02", 20, 20, e.flags, method, 0, 0, crc, len(stored),
                                length, len(e.name), len(e.central_extra), 0, 0, 0, 0, offset)  # fmt: skip
        central += e.name + e.central_extra
    end = END.pack(b"PK\x05\x06", disk, disk, len(entries), len(entries), len(central),
                   len(body), len(comment))  # fmt: skip
    return before + bytes(body) + bytes(central) + end + comment


def _python_zip(entries: list[tuple[str, bytes]], comment: bytes = b"") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, data in entries:
            zf.writestr(name, data)
        zf.comment = comment
    return buf.getvalue()


async def _read(path: Path, *keys: str) -> list[bytes | None]:
    async with open_store(path) as store:
        assert isinstance(store, ZipStore)
        out = []
        for key in keys:
            got = await store.get(key)
            out.append(None if got is None else bytes(got))
        return out


A, B = b"A" * 1000 + b"a-end", b"B" * 1000 + b"b-end"


# ------------------------------------------------------------------------------ what held


async def test_comments_and_end_signatures_in_data(tmp_path: Path) -> None:
    """An RFC-9 JSON comment, the longest comment, and an end-record signature inside the
    last entry's stored data: the end record is the real one."""
    cases = {
        "json.ozx": _python_zip([("zarr.json", A)], b'{"ome": {"version": "0.5"}}'),
        "long.ozx": _python_zip([("zarr.json", A)], b"c" * 0xFFFF),
        "sig.ozx": _python_zip([("zarr.json", A), ("z", b"PK\x05\x06" + bytes(18))]),
    }
    for name, raw in cases.items():
        (tmp_path / name).write_bytes(raw)
        assert (await _read(tmp_path / name, "zarr.json"))[0] == A


async def test_extra_fields_differing_and_data_descriptors(tmp_path: Path) -> None:
    """Local extra fields longer and shorter than the central ones (Info-ZIP's timestamps,
    a ZIP64 field in one header only), entries DEFLATE-compressed with a data descriptor
    after them (flag bit 3: sizes 0 in the local header), bytes between entries."""
    entries = [
        Entry(
            b"a", A, local_extra=b"UT\x09\x00" + bytes(9), central_extra=b"UT\x05\x00" + bytes(5)
        ),
        Entry(b"b", B, local_extra=b"\x01\x00\x10\x00" + bytes(16)),
        Entry(b"c", A, central_extra=b"\xfe\xca\x04\x00" + bytes(4), gap=b"????"),
        Entry(b"d", B, flags=0x8, deflate=True),
        Entry(b"e", A, gap=b"\0" * 8),
    ]
    (tmp_path / "odd.ozx").write_bytes(make_zip(entries))
    assert await _read(tmp_path / "odd.ozx", "a", "b", "c", "d", "e") == [A, B, A, B, A]
    async with open_store(tmp_path / "odd.ozx") as store:  # ranges read first, headers read
        for key, data in (("e", A), ("c", A), ("b", B)):
            got = await store.get_ranges(key, [(0, 3), (len(data) - 5, len(data) + 50)])
            assert got is not None and [bytes(g) for g in got] == [data[:3], data[-5:]]


async def test_names_directories_duplicates_and_listing(tmp_path: Path) -> None:
    """Directory entries are no keys; backslashes are separators; a name twice: the later
    (as Python's zipfile); names as cp437 without the UTF-8 flag, UTF-8 with it; keys with
    a trailing "/" are refused as on any store; listings by folder."""
    entries = [
        Entry(b"0/", b""),
        Entry(b"0\\zarr.json", A),
        Entry(b"0/c/0", B),
        Entry(b"zarr.json", b"first"),
        Entry(b"zarr.json", b"second"),
        Entry("labels/zellen-ä/zarr.json".encode(), A, flags=0x800),
        Entry(b"t/\x81", B),  # (cp437: ü)
    ]
    (tmp_path / "names.ozx").write_bytes(make_zip(entries))
    async with open_store(tmp_path / "names.ozx") as store:
        assert await store.list_prefix("") == [
            "0/c/0", "0/zarr.json", "labels/zellen-ä/zarr.json", "t/ü", "zarr.json"
        ]  # fmt: skip
        assert await store.list_dir("") == (["0", "labels", "t"], ["zarr.json"])
        assert await store.list_dir("0") == (["0/c"], ["0/zarr.json"])
        assert await store.list_prefix("0/c") == ["0/c/0"]
        assert bytes(await store.get("zarr.json") or b"") == b"second"
        assert bytes(await store.get("labels/zellen-ä/zarr.json") or b"") == A
        assert not await store.exists("0") and not await store.exists("0/c")
        assert await store.get("0") is None
        with pytest.raises(ValueError, match="invalid store key '0/'"):
            await store.exists("0/")
        assert await store.size("0/c/0") == len(B)


async def test_ranges_stay_inside_their_entry(tmp_path: Path) -> None:
    """Ranges past an entry's end are clamped to the entry (never its neighbour's bytes nor
    the central directory's); suffixes; coalesced ranges of one entry slice right."""
    (tmp_path / "r.ozx").write_bytes(_python_zip([("a", A), ("b", B)]))
    async with open_store(tmp_path / "r.ozx") as store:
        assert bytes(await store.get("a", RangeByteRequest(990, 5000)) or b"") == A[990:]
        assert bytes(await store.get("b", RangeByteRequest(990, 5000)) or b"") == B[990:]
        assert bytes(await store.get("b", SuffixByteRequest(5000)) or b"") == B
        assert bytes(await store.get("a", SuffixByteRequest(7)) or b"") == A[-7:]
        assert bytes(await store.get("a", OffsetByteRequest(1000)) or b"") == A[1000:]
        with pytest.raises(StoreError, match=r"'a' at file://\S+r\.ozx: requested range"):
            await store.get("a", OffsetByteRequest(len(A)))
        got = await store.get_ranges("a", [(0, 4), (10, 20), (1000, 2000), (1002, 1003)])
        assert got is not None
        assert [bytes(g) for g in got] == [A[:4], A[10:20], A[1000:], A[1002:1003]]
        with pytest.raises(StoreError, match="starts past the end of the object"):
            await store.get_ranges("a", [(0, 4), (len(A) + 2, len(A) + 9)])


async def test_unreadable_entries_and_archives_name_the_file(tmp_path: Path) -> None:
    """Encrypted entries, multi-part archives, an empty file, a file cut in half."""
    cases = {
        "enc.ozx": (make_zip([Entry(b"zarr.json", A, flags=0x1)]), UnsupportedError,
                    r"'zarr.json' in file://\S+enc\.ozx is encrypted"),
        "disk.ozx": (make_zip([Entry(b"zarr.json", A)], disk=1), UnsupportedError,
                     r"file://\S+disk\.ozx is a multi-part zip file"),
        "empty.ozx": (b"", StoreError, r"file://\S+empty\.ozx is not a readable zip file"),
        "half.ozx": (make_zip([Entry(b"zarr.json", A)])[:600], StoreError,
                     r"file://\S+half\.ozx is not a readable zip file"),
    }  # fmt: skip
    for name, (raw, error, message) in cases.items():
        (tmp_path / name).write_bytes(raw)
        with pytest.raises(error, match=message):
            await _read(tmp_path / name, "zarr.json")


async def test_a_big_central_directory_takes_two_reads(tmp_path: Path) -> None:
    """6,000 entries (a directory of about 600 KB, past the first read of the file's tail):
    the directory in two reads, then one per entry."""
    names = [f"0/c/{i // 100}/{i % 100}/{'x' * 50}" for i in range(6000)]
    with zipfile.ZipFile(tmp_path / "many.ozx", "w") as zf:
        for i, name in enumerate(names):
            zf.writestr(name, i.to_bytes(4, "little"))
    counted = InstrumentedStore(open_store(tmp_path))
    async with ZipStore(counted, "many.ozx") as store:
        assert bytes(await store.get(names[4321]) or b"") == (4321).to_bytes(4, "little")
        assert counted.method_counts == {"get": 3}
        assert len(await store.list_prefix("0/c/59")) == 100
        assert counted.method_counts == {"get": 3}


# ------------------------------------------------------------------------------ defects


async def test_an_end_signature_inside_the_comment(tmp_path: Path) -> None:
    fake = END.pack(b"PK\x05\x06", 0, 0, 0, 0, 0, 0, 0)
    (tmp_path / "c.ozx").write_bytes(_python_zip([("zarr.json", A)], b'{"x": 1}' + fake))
    assert (await _read(tmp_path / "c.ozx", "zarr.json"))[0] == A


@pytest.mark.parametrize("kind", ["prepended", "start cut"])
async def test_offsets_of_a_zip_not_at_the_file_start(tmp_path: Path, kind: str) -> None:
    big_a, big_b = A * 200, B * 200  # (the file: 400 KB, the first read: its last 256 KiB)
    raw = make_zip([Entry(b"a", big_a), Entry(b"b", big_b)])
    raw = b"MZ program" * 1000 + raw if kind == "prepended" else raw[5000:]
    assert len(raw) > TAIL
    (tmp_path / "x.ozx").write_bytes(raw)
    got = []
    for key in ("a", "b"):
        try:
            got.append((await _read(tmp_path / "x.ozx", key))[0])
        except StoreError as exc:
            assert "x.ozx" in str(exc)
            got.append(None)
    if kind == "prepended":
        assert got == [big_a, big_b]  # (as Python's zipfile reads it)
    else:
        assert got[0] is None and got[1] in (None, big_b)


async def test_a_stored_entry_whose_sizes_differ(tmp_path: Path) -> None:
    raw = make_zip([Entry(b"a", A, length=len(A) + 100), Entry(b"b", B)])
    (tmp_path / "s.ozx").write_bytes(raw)
    async with open_store(tmp_path / "s.ozx") as store:
        for rng in (RangeByteRequest(len(A) - 5, len(A) + 60), SuffixByteRequest(50)):
            try:
                got = await store.get("a", rng)
            except StoreError as exc:
                assert "'a'" in str(exc) and "s.ozx" in str(exc)
                continue
            assert got is not None and b"PK" not in bytes(got) and b"B" not in bytes(got)


async def test_a_name_not_utf8_under_the_utf8_flag(tmp_path: Path) -> None:
    raw = make_zip([Entry(b"zarr.json", A), Entry(b"bad\xff\xfe", B, flags=0x800)])
    (tmp_path / "n.ozx").write_bytes(raw)
    try:
        assert (await _read(tmp_path / "n.ozx", "zarr.json"))[0] == A  # (that entry skipped)
    except StoreError as exc:
        assert "n.ozx" in str(exc)


async def test_an_end_record_cut_short(tmp_path: Path) -> None:
    (tmp_path / "t.ozx").write_bytes(_python_zip([("zarr.json", A)])[:-5])
    with pytest.raises(StoreError, match=r"t\.ozx is not a readable zip file"):
        await _read(tmp_path / "t.ozx", "zarr.json")


async def test_names_with_dot_or_slash_prefixes(tmp_path: Path) -> None:
    for prefix in (b"./", b"/"):
        (tmp_path / "p.ozx").write_bytes(make_zip([Entry(prefix + b"zarr.json", A)]))
        try:
            assert (await _read(tmp_path / "p.ozx", "zarr.json"))[0] == A
        except StoreError as exc:
            assert prefix.decode() + "zarr.json" in str(exc)


async def test_a_header_offset_past_the_end_names_the_entry(tmp_path: Path) -> None:
    raw = bytearray(make_zip([Entry(b"zarr.json", A)]))
    at = raw.index(b"PK\x01\x02")
    struct.pack_into("<L", raw, at + 42, 10**6)
    (tmp_path / "o.ozx").write_bytes(raw)
    with pytest.raises(StoreError, match=r"'zarr.json'.*o\.ozx|o\.ozx.*'zarr.json'"):
        await _read(tmp_path / "o.ozx", "zarr.json")


async def test_an_entry_running_into_its_neighbour(tmp_path: Path) -> None:
    raw = bytearray(make_zip([Entry(b"a", A), Entry(b"b", B)]))
    for at in (raw.index(b"PK\x01\x02"), raw.rindex(b"PK\x01\x02")):  # (both: 50 bytes more)
        size = struct.unpack_from("<L", raw, at + 20)[0]
        struct.pack_into("<LL", raw, at + 20, size + 50, size + 50)
    (tmp_path / "r.ozx").write_bytes(raw)
    async with open_store(tmp_path / "r.ozx") as store:
        for key in ("a", "b"):  # (b: into the central directory)
            with pytest.raises(StoreError, match=rf"'{key}'.*r\.ozx|r\.ozx.*'{key}'"):
                await store.get(key)


async def test_a_deflated_shard_is_inflated_once(tmp_path: Path) -> None:
    import numpy as np

    import ngio_async

    data = np.arange(64 * 64, dtype=np.uint16).reshape(1, 64, 64)
    src = tmp_path / "s.ome.zarr"
    async with await ngio_async.create_async(
        src, shape=data.shape, dtype="uint16", chunks=(1, 16, 16), shards=(1, 64, 64), axes="cyx"
    ) as ds:
        await ds.write(data)
    with zipfile.ZipFile(tmp_path / "d.ozx", "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(src.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(src).as_posix())
    counted = InstrumentedStore(open_store(tmp_path))
    async with ngio_async.open_async(ZipStore(counted, "d.ozx")) as ds:
        counted.reset()
        for y, x in ((0, 0), (16, 48), (48, 16), (32, 32)):  # one chunk each
            got = await ds.read(y=slice(y, y + 16), x=slice(x, x + 16))
            np.testing.assert_array_equal(got, data[:, y : y + 16, x : x + 16])
        assert counted.method_counts["get"] <= 2  # (each read: the index, the chunk: 8 reads)
