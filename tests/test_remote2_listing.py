"""A folder of inputs on an object store is listed one level at a time, once per command: it
was listed in full (every chunk of every OME-Zarr directory in it), twice (the command line
listed it to tell a folder from an image, then ``convert_many`` listed it again)."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest
import tifffile
from cli_run import run

import ngio_async
from ngio_async.convert import _inputs
from ngio_async.stores import open_store
from ngio_async.stores._obstore import ObstoreStore

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server


def _plane(k: int) -> np.ndarray[Any, Any]:
    return (np.arange(32 * 40).reshape(32, 40) + k).astype(np.uint16)


def _tiff(k: int) -> bytes:
    buf = io.BytesIO()
    tifffile.imwrite(buf, _plane(k))
    return buf.getvalue()


def _folder(url: str, options: dict[str, Any], chunks: tuple[int, int]) -> None:
    """``url``: a.tif, sub/b.tif and x.ome.zarr (chunked by ``chunks``)."""

    async def put() -> None:
        async with open_store(url, **options) as store:
            await store.put("a.tif", _tiff(1))
            await store.put("sub/b.tif", _tiff(2))
            await store.put("src.tif", _tiff(3))

    anyio.run(put)
    ngio_async.convert_sync(
        f"{url}/src.tif",
        f"{url}/x.ome.zarr",
        chunks=chunks,
        levels=1,
        shards=False,
        src_options=options,
        dst_options=options,
    )

    async def drop() -> None:
        async with open_store(url, **options) as store:
            await store.delete("src.tif")

    anyio.run(drop)


class _Listed:
    """Counts the keys and folders every object-store listing returns."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.entries = 0
        self.folders_listed = 0
        full, one_level = ObstoreStore._list_once, ObstoreStore._list_dir_once

        async def list_once(store: ObstoreStore, prefix: str) -> list[str]:
            keys = await full(store, prefix)
            self.entries += len(keys)
            return keys

        async def list_dir_once(store: ObstoreStore, prefix: str) -> tuple[list[str], list[str]]:
            folders, keys = await one_level(store, prefix)
            self.entries += len(folders) + len(keys)
            return folders, keys

        real = _inputs._list_folder

        async def list_folder(*args: Any) -> Any:
            self.folders_listed += 1
            return await real(*args)

        monkeypatch.setattr(ObstoreStore, "_list_once", list_once)
        monkeypatch.setattr(ObstoreStore, "_list_dir_once", list_dir_once)
        monkeypatch.setattr(_inputs, "_list_folder", list_folder)


def test_the_keys_listed_do_not_grow_with_the_chunks(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = s3_server.options()
    few, many = s3_server.fresh_url(), s3_server.fresh_url()
    _folder(few, options, (32, 40))  # one chunk
    _folder(many, options, (4, 4))  # 80 chunks
    counts = []
    for url in (few, many):
        listed = _Listed(monkeypatch)
        found = anyio.run(_inputs.remote_folder_inputs, url, options)
        assert found == [f"{url}/a.tif", f"{url}/sub/b.tif", f"{url}/x.ome.zarr"]
        counts.append(listed.entries)
    assert counts[0] == counts[1] == 4, counts  # a.tif, sub/, x.ome.zarr/; sub/b.tif
    monkeypatch.undo()

    async def chunks() -> int:
        async with open_store(many, **options) as store:
            return len(await store.list_prefix("x.ome.zarr"))

    assert anyio.run(chunks) > 80  # was listed in full: every one of them


def test_a_folder_holding_a_zarr_json_is_not_listed_below(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = s3_server.options()
    url = s3_server.fresh_url()
    _folder(url, options, (4, 4))

    async def rename() -> None:  # an OME-Zarr directory not named *.zarr
        async with open_store(url, **options) as store:
            for key in await store.list_prefix("x.ome.zarr"):
                data = await store.get(key)
                assert data is not None
                await store.put("plain/" + key.removeprefix("x.ome.zarr/"), data)
                await store.delete(key)

    anyio.run(rename)
    listed = _Listed(monkeypatch)
    found = anyio.run(_inputs.remote_folder_inputs, url, options)
    assert found == [f"{url}/a.tif", f"{url}/plain", f"{url}/sub/b.tif"]
    assert listed.entries < 12, listed.entries  # plain/'s top level only: zarr.json, 0/


def test_the_command_line_lists_a_folder_once(
    tmp_path: Path,
    s3_server: S3Server,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    options = s3_server.options()
    url = s3_server.fresh_url()
    _folder(url, options, (4, 4))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_access_key)
    listed = _Listed(monkeypatch)
    args = ["--endpoint", s3_server.endpoint, "--region", s3_server.region]
    code, stdout, err = run(["convert", url + "/", str(tmp_path / "out"), *args], capsys)
    assert code == 0, err
    assert stdout.count("wrote ") == 3, stdout
    assert listed.folders_listed == 1  # was 2: the command line's, then convert_many's
    with ngio_async.open(tmp_path / "out" / "sub" / "b.ome.zarr") as ds:
        np.testing.assert_array_equal(ds[...], _plane(2))


@pytest.mark.parametrize("kind", ["local", "memory", "file-url"])
def test_list_dir_lists_one_level(tmp_path: Path, kind: str) -> None:
    url = {"local": str(tmp_path), "memory": "memory://", "file-url": tmp_path.as_uri()}[kind]

    async def check() -> None:
        async with open_store(url) as store:
            for key in ("a.tif", "d/b.tif", "d/e/c.tif", "z.zarr/zarr.json"):
                await store.put(key, b"x")
            assert await store.list_dir() == (["d", "z.zarr"], ["a.tif"])
            assert await store.list_dir("d/") == (["d/e"], ["d/b.tif"])
            assert await store.list_dir("nothing") == ([], [])

    anyio.run(check)
