"""A zip store whose zip is replaced (written beside it and renamed over it, as convert's
overwrite does): the read that meets the new version raises ChangedError, and the store then
reads the new zip's directory: later reads get the new entries (a plate's fields share one
store, and every read of any of them raised ChangedError for good). A local zip's versions
(the tile server's validators) follow the file's stat."""

from __future__ import annotations

import os
import zipfile
from typing import TYPE_CHECKING

import pytest

from ngio_async._errors import ChangedError
from ngio_async.stores import open_store
from ngio_async.stores._zip import ZipStore

if TYPE_CHECKING:
    from pathlib import Path


def _zip(path: Path, body: bytes) -> None:
    part = path.with_suffix(".partial")
    with zipfile.ZipFile(part, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("zarr.json", b'{"zarr_format": 3, "node_type": "group"}')
        z.writestr("a/c/0", body)
    os.replace(part, path)


@pytest.mark.parametrize("blocking", [False, True])
async def test_reads_after_a_replacement_see_the_new_zip(tmp_path: Path, blocking: bool) -> None:
    _zip(tmp_path / "x.ozx", b"old" * 100)
    async with ZipStore(open_store(tmp_path), "x.ozx") as store:
        assert await store.get("a/c/0") == b"old" * 100
        (before,) = store.versions_blocking(["a/c/0"]) or [None]
        _zip(tmp_path / "x.ozx", b"newer" * 200)
        if blocking:
            (after,) = store.versions_blocking(["a/c/0"]) or [None]  # (a tile's validator)
            assert after is not None
            assert after != before
        else:
            with pytest.raises(ChangedError):
                await store.get("a/c/0")
        assert bytes(await store.get("a/c/0") or b"") == b"newer" * 200
        assert store.versions_blocking(["a/c/0", "nothing"]) == [
            store.versions_blocking(["a/c/0"])[0],  # type: ignore[index]
            None,
        ]
