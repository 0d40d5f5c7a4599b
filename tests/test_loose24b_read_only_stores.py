"""A store that takes no writes (a plain HTTP server) is refused at open with ``mode="r+"``
and as the target of ``create``, ``create_plate`` and ``convert``, naming the URL and why,
before any request: ``open(mode="r+")`` used to succeed and the first write failed with
"is read-only (cannot write '0/c/0/0')". The read-only error of a ``mode='r'`` image over
HTTP no longer advises ``mode='r+'``, which cannot work there."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

import ngio_async
from ngio_async import ReadOnlyError, UnsupportedError
from ngio_async.stores import open_store

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from servers import StaticServer

WHY = "http:// is read-only here"
WAY_OUT = "write to a local path, s3://, gs:// or az://"


@pytest.fixture
def served(http_root: Path, http_server: StaticServer) -> str:
    """The URL of a small image (with one label) on the loopback HTTP server."""
    with ngio_async.create(
        http_root / "img.zarr", shape=(32, 32), axes="yx", dtype="uint8", chunks=(16, 16)
    ) as ds:
        ds.write(np.ones((32, 32), np.uint8))
        ds.labels.create("cells")
    return http_server.url + "img.zarr"


def _refused(call: Callable[[], object], url: str) -> str:
    with pytest.raises(UnsupportedError) as info:
        call()
    message = str(info.value)
    assert url in message and WHY in message and WAY_OUT in message
    return message


def test_open_r_plus_is_refused_before_any_request(served: str, http_server: StaticServer) -> None:
    http_server.reset()
    message = _refused(lambda: ngio_async.open(served, mode="r+"), served)
    assert "mode='r+'" in message
    _refused(lambda: ngio_async.open_plate(served, mode="r+"), served)
    assert http_server.count() == 0
    with ngio_async.open(served) as ds:  # reading still works
        assert int(ds[...].sum()) == 32 * 32


def test_open_r_plus_of_an_open_http_store_and_of_a_label(
    served: str, http_server: StaticServer
) -> None:
    async def go() -> None:
        async with open_store(http_server.url) as store:
            with pytest.raises(UnsupportedError, match=r"img\.zarr with mode='r\+': http://"):
                await ngio_async.open_async(store, path="img.zarr", mode="r+")
            assert not store.closed  # the caller's store stays open
            async with ngio_async.open_async(store, path="img.zarr") as ds:
                with pytest.raises(UnsupportedError, match=r"labels/cells with mode='r\+'"):
                    await ds.labels.open("cells", mode="r+")
                assert (await ds.labels.open("cells")).shape == (32, 32)

    import anyio

    anyio.run(go)


def test_creating_on_http_is_refused_before_any_request(
    served: str, http_server: StaticServer, tmp_path: Path
) -> None:
    http_server.reset()
    new = http_server.url + "new.zarr"
    _refused(lambda: ngio_async.create(new, shape=(8, 8), axes="yx", dtype="uint8"), new)
    _refused(lambda: ngio_async.create_plate(new, rows=["A"], columns=["1"]), new)
    assert http_server.count() == 0
    with pytest.raises(UnsupportedError, match=rf"{new}.*read-only"):  # convert's own check
        ngio_async.convert_sync(served, new)
    assert http_server.count(path="/new.zarr/zarr.json") == 0


def test_read_only_error_over_http_does_not_advise_r_plus(served: str) -> None:
    zeros = np.zeros((2, 2), np.uint8)
    with ngio_async.open(served) as ds:
        writes: list[Callable[[], object]] = [
            lambda: ds.write(zeros, y=slice(0, 2), x=slice(0, 2)),
            lambda: ds.levels[0].__setitem__((slice(0, 2), slice(0, 2)), zeros),
            lambda: ds.labels.create("more"),
        ]
        for write in writes:
            with pytest.raises(ReadOnlyError) as info:
                write()
            message = str(info.value)
            assert served in message and WHY in message and WAY_OUT in message
            assert "mode='r+' to write" not in message


def test_local_read_only_error_still_advises_r_plus(tmp_path: Path) -> None:
    with ngio_async.create(tmp_path / "a.zarr", shape=(8, 8), axes="yx", dtype="uint8"):
        pass
    with (
        ngio_async.open(tmp_path / "a.zarr") as ds,
        pytest.raises(ReadOnlyError, match=r"open it with mode='r\+' to write"),
    ):
        ds.write(np.zeros((8, 8), np.uint8))
