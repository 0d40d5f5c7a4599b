"""``get_blocking``: the one-hop read path of local and memory stores equals ``get``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import pytest

from ngio_async import ClosedError, StoreError, UnsupportedError
from ngio_async.stores import (
    OffsetByteRequest,
    RangeByteRequest,
    SuffixByteRequest,
    open_store,
)
from ngio_async.stores._local import LocalFileStore

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server

pytestmark = pytest.mark.anyio
DATA = bytes(range(256)) * 8


@pytest.mark.parametrize("kind", ["file", "file-plain", "memory"])
async def test_blocking_get_equals_get(tmp_path: Path, kind: str) -> None:
    url = "memory://" if kind == "memory" else str(tmp_path)
    opened = LocalFileStore(url) if kind == "file-plain" else open_store(url)
    async with opened as store:
        assert store.blocking_reads
        await store.put("a/b/chunk", DATA)
        await store.put("empty", b"")
        for request in (
            None,
            RangeByteRequest(10, 300),
            RangeByteRequest(2000, 5000),  # past the end: clipped
            OffsetByteRequest(2000),
            SuffixByteRequest(48),
            SuffixByteRequest(10_000),  # longer than the object: all of it
        ):
            want = await store.get("a/b/chunk", request)
            got = await anyio.to_thread.run_sync(store.get_blocking, "a/b/chunk", request)
            assert want is not None and got is not None
            assert bytes(got) == bytes(want)
        assert await anyio.to_thread.run_sync(store.get_blocking, "missing", None) is None
        assert await anyio.to_thread.run_sync(store.get_blocking, "a/b/chunk/x", None) is None
        empty = store.get_blocking("empty")
        assert empty is not None and bytes(empty) == b""
        if kind != "memory":  # a directory is no object
            assert store.get_blocking("a/b") is None
        for request in (OffsetByteRequest(len(DATA)), RangeByteRequest(len(DATA), len(DATA) + 2)):
            with pytest.raises(StoreError, match="a/b/chunk"):  # like get: past the end
                await store.get("a/b/chunk", request)
            with pytest.raises(StoreError, match="a/b/chunk"):
                store.get_blocking("a/b/chunk", request)
    with pytest.raises(ClosedError):
        store.get_blocking("a/b/chunk")


async def test_remote_stores_have_no_blocking_reads(s3_server: S3Server) -> None:
    async with open_store(s3_server.fresh_url(), **s3_server.options()) as store:
        assert not store.blocking_reads
        with pytest.raises(UnsupportedError, match="no blocking reads"):
            store.get_blocking("x")
