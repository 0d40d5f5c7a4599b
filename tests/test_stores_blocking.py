"""``get_blocking``: the one-hop read path of local and memory stores equals ``get``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import pytest

from ngio_async import ClosedError, UnsupportedError
from ngio_async.stores import (
    OffsetByteRequest,
    RangeByteRequest,
    SuffixByteRequest,
    open_store,
)

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server

pytestmark = pytest.mark.anyio
DATA = bytes(range(256)) * 8


@pytest.mark.parametrize("kind", ["file", "memory"])
async def test_blocking_get_equals_get(tmp_path: Path, kind: str) -> None:
    url = str(tmp_path) if kind == "file" else "memory://"
    async with open_store(url) as store:
        assert store.blocking_reads
        await store.put("a/b/chunk", DATA)
        for request in (
            None,
            RangeByteRequest(10, 300),
            OffsetByteRequest(2000),
            SuffixByteRequest(48),
        ):
            want = await store.get("a/b/chunk", request)
            got = await anyio.to_thread.run_sync(store.get_blocking, "a/b/chunk", request)
            assert want is not None and got is not None
            assert bytes(got) == bytes(want)
        assert await anyio.to_thread.run_sync(store.get_blocking, "missing", None) is None
    with pytest.raises(ClosedError):
        store.get_blocking("a/b/chunk")


async def test_remote_stores_have_no_blocking_reads(s3_server: S3Server) -> None:
    async with open_store(s3_server.fresh_url(), **s3_server.options()) as store:
        assert not store.blocking_reads
        with pytest.raises(UnsupportedError, match="no blocking reads"):
            store.get_blocking("x")
