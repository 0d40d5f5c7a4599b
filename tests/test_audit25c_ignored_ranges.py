"""A server that ignores ``Range`` (200 with the whole body): a range starting at the end
of the object is an error, as the 416 of a server that honours ``Range`` makes it (and as
local, in-memory and S3 stores say); it read as empty bytes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from servers import Faults

from ngio_async import StoreError
from ngio_async._limits import Limits
from ngio_async.stores import OffsetByteRequest, RangeByteRequest, SuffixByteRequest, open_store

if TYPE_CHECKING:
    from pathlib import Path

    from servers import StaticServer

FAST = Limits(backoff_base=0.001, backoff_max=0.01, max_retries=1, timeout=10)


@pytest.mark.parametrize("ignore_range", [False, True])
@pytest.mark.parametrize("backend", ["default", "aiohttp"])
async def test_a_range_starting_at_the_end_is_an_error_either_way(
    http_root: Path, http_server: StaticServer, backend: str, ignore_range: bool
) -> None:
    (http_root / "data" / "empty.bin").write_bytes(b"")
    blob = (http_root / "data" / "blob.bin").read_bytes()
    http_server.faults = Faults(ignore_range=ignore_range)
    kwargs = {} if backend == "default" else {"backend": backend}
    async with open_store(http_server.url, limits=FAST, **kwargs) as store:  # type: ignore[arg-type]
        for _ in range(2):  # the default store: aiohttp first, then obstore's client
            assert bytes(await store.get("data/small.txt") or b"") == b"hello world"
            pasts: list[tuple[str, OffsetByteRequest | RangeByteRequest]] = [
                ("data/blob.bin", OffsetByteRequest(len(blob))),
                ("data/blob.bin", RangeByteRequest(len(blob), len(blob) + 5)),
                ("data/empty.bin", RangeByteRequest(0, 5)),
                ("data/empty.bin", OffsetByteRequest(0)),
            ]
            for key, past in pasts:
                with pytest.raises(StoreError, match=r"416|past the end"):
                    await store.get(key, past)
                with pytest.raises(StoreError, match=r"416|past the end"):
                    await store.get_ranges(key, [(0, 0), (past_start(past), past_start(past) + 1)])
            empty = await store.get("data/empty.bin", SuffixByteRequest(3))
            assert empty is not None and bytes(empty) == b""
            got = await store.get("data/blob.bin", RangeByteRequest(len(blob) - 2, len(blob) + 9))
            assert bytes(got or b"") == blob[-2:]


def past_start(request: OffsetByteRequest | RangeByteRequest) -> int:
    return request.offset if isinstance(request, OffsetByteRequest) else request.start
