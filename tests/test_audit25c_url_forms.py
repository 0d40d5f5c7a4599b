"""HTTP store URLs as users write them: names with spaces, unicode, ``+``, ``%``, ``#``,
trailing slashes; the message for a ``#`` says how to write one."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

import pytest

from ngio_async._limits import Limits
from ngio_async.stores import RangeByteRequest, open_store

if TYPE_CHECKING:
    from pathlib import Path

    from servers import StaticServer

FAST = Limits(backoff_base=0.001, backoff_max=0.01, max_retries=1, timeout=10)
NAMES = ["my dir/a b.bin", "ünï/cödé.bin", "p+q/x=y.bin", "pct%20/a%2Fb.bin", "a#b/c.bin"]


@pytest.mark.parametrize("backend", ["default", "aiohttp", "obstore"])
async def test_odd_names_in_keys_and_in_the_url(
    http_root: Path, http_server: StaticServer, backend: str
) -> None:
    for name in NAMES:
        (http_root / name).parent.mkdir(parents=True, exist_ok=True)
        (http_root / name).write_bytes(name.encode() * 3)
    kwargs = {} if backend == "default" else {"backend": backend}
    async with open_store(http_server.url, limits=FAST, **kwargs) as store:  # type: ignore[arg-type]
        for _ in range(2):  # the default store: aiohttp first, then obstore's client
            for name in NAMES:
                assert bytes(await store.get(name) or b"") == name.encode() * 3, name
                got = await store.get(name, RangeByteRequest(1, 4))
                assert bytes(got or b"") == name.encode()[1:4], name
    for name in NAMES:
        folder, file = name.split("/")
        for slashes in ("/", "//", ""):
            url = f"{http_server.url}{quote(folder)}{slashes}"
            async with open_store(url, limits=FAST, **kwargs) as store:  # type: ignore[arg-type]
                assert bytes(await store.get(file) or b"") == name.encode() * 3, url


def test_a_fragment_is_refused_saying_how_to_write_a_hash(http_server: StaticServer) -> None:
    with pytest.raises(ValueError, match="%23") as info:
        open_store(f"{http_server.url}a#b/img.zarr")
    assert "#b" not in str(info.value)
    with pytest.raises(ValueError, match="fragment") as info:
        open_store(f"{http_server.url}img.zarr#token=s3cr3t")
    assert "s3cr3t" not in str(info.value)


@pytest.mark.parametrize("backend", ["default", "aiohttp", "obstore"])
async def test_a_url_pasted_with_a_space_or_newline_after_it(
    http_server: StaticServer, backend: str
) -> None:
    """The space went into the path ('data%20/small.txt'): every key read as missing, and
    an image 'not found' at a URL that looked right."""
    kwargs = {} if backend == "default" else {"backend": backend}
    for tail in (" ", "\n", " \t"):
        async with open_store(f"{http_server.url}data{tail}", limits=FAST, **kwargs) as store:  # type: ignore[arg-type]
            assert bytes(await store.get("small.txt") or b"") == b"hello world", repr(tail)
            assert store.url == f"{http_server.url}data"
