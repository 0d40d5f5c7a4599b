"""Review of zipped OME-Zarr reading over HTTP (both backends) and S3 (moto) (review27z):
the directory read once however many first reads race for it, a server ignoring ``Range``,
an empty file, a zip replaced under a reader, writes refused before any request that writes,
``forbidden_is_missing``. Tests marked ``xfail(strict=True)`` name a defect left open."""

from __future__ import annotations

import io
import os
import zipfile
from typing import TYPE_CHECKING

import anyio
import pytest
from servers import Faults

import ngio_async
from ngio_async import ChangedError, NotFoundError, ReadOnlyError, StoreError, UnsupportedError
from ngio_async.stores import open_store
from ngio_async.stores._base import RangeByteRequest
from ngio_async.stores._zip import ZipStore

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server, StaticServer


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


OLD = _zip({"a": b"A" * 3000, "b": b"B" * 3000})
NEW = _zip({"a": b"x" * 100, "b": b"y" * 5900})  # (the same size as OLD)


@pytest.mark.parametrize("backend", ["aiohttp", "obstore"])
async def test_the_directory_read_once_and_range_ignored(
    http_server: StaticServer, http_root: Path, backend: str
) -> None:
    """Twenty first reads at once: one GET of the tail; a server that ignores Range (200,
    the whole file) gives each entry its own bytes, ranges clamped to the entry (obstore's
    client: an error saying to use the default backend)."""
    (http_root / "z.ozx").write_bytes(OLD)
    async with open_store(f"{http_server.url}z.ozx", backend=backend) as store:  # type: ignore[arg-type]
        assert isinstance(store, ZipStore)
        got: dict[int, bytes] = {}

        async def one(i: int) -> None:
            got[i] = bytes(await store.get("ab"[i % 2]) or b"")

        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(one, i)
        assert {got[i] for i in range(0, 20, 2)} == {b"A" * 3000}
        assert {got[i] for i in range(1, 20, 2)} == {b"B" * 3000}
        tails = [r for r in http_server.requests if (r.range or "").startswith("bytes=-")]
        assert len(tails) == 1
        http_server.faults = Faults(ignore_range=True)
        if backend == "obstore":  # (it cannot cut ranges from whole answers: it says so)
            with pytest.raises(UnsupportedError, match=r"'z\.ozx'.*the server ignores Range"):
                await store.get("b")
            return
        assert bytes(await store.get("a", RangeByteRequest(2990, 9000)) or b"") == b"A" * 10
        assert bytes(await store.get("b") or b"") == b"B" * 3000
    async with open_store(f"{http_server.url}z.ozx", backend=backend) as store:  # type: ignore[arg-type]
        assert bytes(await store.get("b", RangeByteRequest(0, 9000)) or b"") == b"B" * 3000


async def test_an_empty_or_missing_file_over_http(
    http_server: StaticServer, http_root: Path
) -> None:
    (http_root / "empty.ozx").write_bytes(b"")
    async with open_store(f"{http_server.url}empty.ozx") as store:
        with pytest.raises(StoreError, match=r"http://\S+/empty\.ozx is not a readable zip"):
            await store.get("zarr.json")
    with pytest.raises(NotFoundError, match=r"no such file: http://\S+/absent\.ozx"):
        ngio_async.open(f"{http_server.url}absent.ozx")


async def test_on_s3_replaced_under_a_reader(s3_server: S3Server) -> None:
    """A zip replaced on S3 (its ETag another): ChangedError, never the new zip's bytes at the
    old directory's offsets (whole reads and ranges); the store then reads the new zip's
    directory (test_zip27_replaced.py): the next reads are the new zip's entries."""
    url = s3_server.fresh_url()
    opts = s3_server.options()
    async with open_store(url, **opts) as bucket:
        await bucket.put("z.ozx", OLD)
        async with open_store(f"{url}/z.ozx", **opts) as store:
            assert bytes(await store.get("a") or b"") == b"A" * 3000
            await bucket.put("z.ozx", NEW)
            with pytest.raises(ChangedError, match=r"z\.ozx"):
                await store.get("b")
            assert bytes(await store.get("b", RangeByteRequest(0, 10)) or b"") == b"y" * 10
            await bucket.put("z.ozx", OLD)
            with pytest.raises(ChangedError, match=r"z\.ozx"):
                await store.get("b", RangeByteRequest(0, 10))
            assert bytes(await store.get("b") or b"") == b"B" * 3000


@pytest.mark.xfail(
    strict=True,
    reason="review27z: creating an image at a remote .ozx URL (s3://b/new.ozx) reads the zip "
    "first and says 'no such file' (a local .ozx path: ReadOnlyError at once, saying zips are "
    "not written in place)",
)
async def test_creating_at_a_remote_ozx_refused_at_once(s3_server: S3Server) -> None:
    url = s3_server.fresh_url()
    opts = s3_server.options()
    with pytest.raises(ReadOnlyError, match=r"new\.ozx: it names a zip file"):
        await ngio_async.create_async(f"{url}/new.ozx", shape=(4, 4), dtype="uint8", **opts)


@pytest.mark.xfail(
    strict=True,
    reason="review27z: over a server sending no ETag, a zip replaced under a reader is read "
    "at the old directory's offsets: the new zip's bytes come back as the entry (no "
    "ChangedError, no local header checked)",
)
async def test_replaced_on_a_server_without_etags(
    http_server: StaticServer, http_root: Path
) -> None:
    http_server.faults = Faults(no_validators=True)
    (http_root / "z.ozx").write_bytes(OLD)
    async with open_store(f"{http_server.url}z.ozx") as store:
        assert bytes(await store.get("a") or b"") == b"A" * 3000
        (http_root / "new.ozx").write_bytes(NEW)
        os.replace(http_root / "new.ozx", http_root / "z.ozx")
        try:
            got = bytes(await store.get("b") or b"")
        except (ChangedError, StoreError) as exc:
            assert "z.ozx" in str(exc)
        else:
            assert got in (b"B" * 3000, b"y" * 5900)  # one zip's entry, whole


async def test_forbidden_is_missing_on_a_zip(http_server: StaticServer, http_root: Path) -> None:
    (http_root / "z.ozx").write_bytes(OLD)
    http_server.faults = Faults(status=403, status_times=-1)
    async with open_store(f"{http_server.url}z.ozx", forbidden_is_missing=True) as store:
        try:
            assert await store.get("a") is None
        except NotFoundError as exc:
            assert "z.ozx" in str(exc)


@pytest.mark.xfail(
    strict=True,
    reason="review27z: over a server that ignores Range every entry read downloads the whole "
    "zip again (the HTTP store cuts the range from the 200's body): reading k entries costs "
    "k + 1 times the zip's size",
)
async def test_a_server_ignoring_range_sends_the_zip_once(
    http_server: StaticServer, http_root: Path
) -> None:
    entries = {f"0/c/{i}": bytes([i]) * 20_000 for i in range(10)}
    (http_root / "z.ozx").write_bytes(_zip(entries))
    http_server.faults = Faults(ignore_range=True)
    async with open_store(f"{http_server.url}z.ozx") as store:
        for key, data in entries.items():
            assert bytes(await store.get(key) or b"") == data
    assert http_server.count("GET") <= 2  # (each answer: the whole zip)


async def test_bytes_before_the_archive_over_http(
    http_server: StaticServer, http_root: Path
) -> None:
    big = {"a": b"A" * 200_000, "b": b"B" * 200_000}
    (http_root / "sfx.ozx").write_bytes(b"MZ program" * 1000 + _zip(big))
    async with open_store(f"{http_server.url}sfx.ozx") as store:
        for key in ("a", "b"):
            try:
                got = await store.get(key)
            except StoreError as exc:
                assert f"{key!r}" in str(exc) and "sfx.ozx" in str(exc)
            else:
                assert got is not None and bytes(got) == big[key]


@pytest.mark.parametrize("backend", ["aiohttp", "obstore"])
async def test_an_empty_entry_over_http(
    http_server: StaticServer, http_root: Path, backend: str
) -> None:
    (http_root / "e.ozx").write_bytes(_zip({"empty": b"", "a": b"abc", "last": b""}))
    async with open_store(f"{http_server.url}e.ozx", backend=backend) as store:  # type: ignore[arg-type]
        for key in ("empty", "last", "a"):
            got = await store.get(key)
            assert got is not None and bytes(got) == {"a": b"abc"}.get(key, b"")
