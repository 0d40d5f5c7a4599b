"""The URLs ``open`` takes for an image: a URL of the group's own document means the group."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import numpy as np
import pytest

import ngio_async
from ngio_async.stores import open_store

if TYPE_CHECKING:
    from pathlib import Path

    from servers import StaticServer


def test_a_documents_url_with_a_query_keeps_the_query(
    http_root: Path, http_server: StaticServer
) -> None:
    """``.../img.zarr/zarr.json?token=abc`` (pasted from a browser) opens the group and sends
    the query with every request (the document's name was cut from the query string, or
    ``.../zarr.json?...`` taken for the group: "not found")."""
    path = http_root / "img.zarr"
    with ngio_async.create(str(path), shape=(8, 8), dtype="uint8", axes="yx", levels=1) as ds:
        ds.write(np.full((8, 8), 9, "uint8"))
    with ngio_async.open(f"{http_server.url}img.zarr/zarr.json?token=abc") as ds:
        assert ds.url.startswith(f"{http_server.url}img.zarr") and "zarr.json" not in ds.url
        assert (ds.read() == 9).all()
    assert http_server.raw_targets and all(
        t.endswith("?token=abc") for t in http_server.raw_targets
    ), http_server.raw_targets
    assert "/img.zarr/zarr.json" in {r.path for r in http_server.requests}


_FIRST_HTTP_OPEN = """
import asyncio, sys, threading
import ngio_async

assert "aiohttp" not in sys.modules, "import ngio_async imported aiohttp"
seen = {}


class Spy:  # records the thread that imports aiohttp first
    def find_spec(self, name, path=None, target=None):
        if name == "aiohttp" and "thread" not in seen:
            seen["thread"] = threading.current_thread()
        return None


sys.meta_path.insert(0, Spy())


async def main():
    loop_thread = threading.current_thread()
    async with ngio_async.open_async(sys.argv[1]) as ds:
        data = await ds.read()
    assert int(data.sum()) == 8 * 8 * 9, data
    assert "thread" in seen, "aiohttp was never imported"
    assert seen["thread"] is not loop_thread, "aiohttp was imported on the event loop's thread"
    print("ok", seen["thread"].name)


asyncio.run(main())
"""


def test_the_first_http_open_imports_aiohttp_off_the_event_loop(
    http_root: Path, http_server: StaticServer
) -> None:
    """The HTTP store's first import (aiohttp: ~0.4 s, SSL contexts included) runs in a worker
    thread: on the loop it stalled every other task of an async service at its first open."""
    path = http_root / "img.zarr"
    with ngio_async.create(str(path), shape=(8, 8), dtype="uint8", axes="yx", levels=1) as ds:
        ds.write(np.full((8, 8), 9, "uint8"))
    done = subprocess.run(
        [sys.executable, "-c", _FIRST_HTTP_OPEN, f"{http_server.url}img.zarr"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok"), done.stdout


def test_limits_that_are_no_limits_object_are_a_type_error(tmp_path: Path) -> None:
    """``limits={"max_requests": 4}`` failed deep inside with ``AttributeError: 'dict' object
    has no attribute 'max_requests'``; now the call says what ``limits`` must be."""
    path = tmp_path / "img.zarr"
    with ngio_async.create(str(path), shape=(8, 8), dtype="uint8", axes="yx", levels=1) as ds:
        ds.write(np.full((8, 8), 9, "uint8"))
    with pytest.raises(TypeError, match=r"limits must be an ngio_async.Limits.*Limits\(\*\*it\)"):
        ngio_async.open(path, limits={"max_requests": 4})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"limits must be an ngio_async\.Limits, got 4"):
        open_store(str(path), limits=4)  # type: ignore[arg-type]
    with ngio_async.open(path, limits=ngio_async.Limits(max_requests=4)) as ds:
        assert (ds.read() == 9).all()
