"""A script's whole-plane read of a freshly opened remote sharded image (``np.asarray(level[0, z])``):
each shard the region covers whole is fetched in one GET, with no separate GET of its index,
on S3 (moto) and over HTTP; a region covering part of a shard reads its index first (so the
counts below tell the two paths apart)."""

from __future__ import annotations

import logging
import re
from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np
from servers import S3Server, StaticServer

import ngio_async

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    import pytest

SHAPE = (1, 2, 128, 128)  # czyx: per plane 2x2 shards of 64x64, each of 2x2 inner 32x32 chunks
PIXELS = np.arange(np.prod(SHAPE), dtype="uint16").reshape(SHAPE)
CREATE: dict[str, Any] = {
    "shape": SHAPE, "dtype": "uint16", "axes": "czyx", "chunks": (1, 1, 32, 32),
    "shards": (1, 1, 64, 64), "levels": 1, "compressor": "blosc-zstd",
}  # fmt: skip
_LOGGED_GET = re.compile(r'GET (\S+) HTTP/1\.1\S*" (\d+)')  # (colour codes around 206 lines)


def _write(url: str, **options: Any) -> None:
    with ngio_async.create(url, **CREATE, **options) as ds:
        ds.write(PIXELS)


def _shard_gets(seen: list[tuple[str, bool]], ranged: bool = False) -> Counter[str]:
    """The GETs of shards among ``seen`` (request path, whether ranged) by key under the
    level (``0/c/...``): whole ones, or (``ranged``) ranged ones (a shard's index, its
    chunks)."""
    return Counter(p[p.index("/0/c/") + 1 :] for p, r in seen if "/0/c/" in p and r == ranged)


def _check_plane_reads(
    url: str, options: dict[str, Any], gets: Callable[[], list[tuple[str, bool]]]
) -> None:
    with ngio_async.open(url, **options) as ds:
        level = ds.levels[0]
        gets()  # (the opening's metadata GETs)
        for z in range(SHAPE[1]):
            np.testing.assert_array_equal(np.asarray(level[0, z]), PIXELS[0, z])
            seen = gets()
            assert _shard_gets(seen) == Counter(
                f"0/c/0/{z}/{y}/{x}" for y in range(2) for x in range(2)
            ), seen  # one whole GET per shard, none for an index
            assert len(seen) == 4, seen
        # one shard exactly: one GET
        np.testing.assert_array_equal(level[0, 1, 64:, :64], PIXELS[0, 1, 64:, :64])
        seen = gets()
        assert _shard_gets(seen) == Counter(["0/c/0/1/1/0"]), seen
        assert len(seen) == 1, seen
    with ngio_async.open(url, **options) as ds:  # part of a shard: its index, then a chunk
        level = ds.levels[0]
        gets()
        np.testing.assert_array_equal(level[0, 0, :32, :32], PIXELS[0, 0, :32, :32])
        seen = gets()
        assert _shard_gets(seen, ranged=True) == Counter({"0/c/0/0/0/0": 2}), seen
        assert len(seen) == 2, seen


def test_s3_whole_plane_reads_get_each_shard_once(
    s3_server: S3Server, caplog: pytest.LogCaptureFixture
) -> None:
    url = s3_server.fresh_url()
    options = s3_server.options()
    _write(url, **options)
    caplog.set_level(logging.INFO, logger="werkzeug")  # moto's access log: one line a request

    def gets() -> list[tuple[str, bool]]:
        found = [_LOGGED_GET.search(r.getMessage()) for r in caplog.records]
        caplog.clear()
        return [(m.group(1), m.group(2) == "206") for m in found if m is not None]

    _check_plane_reads(url, options, gets)


def test_http_whole_plane_reads_get_each_shard_once(tmp_path: Path) -> None:
    _write(str(tmp_path / "img.zarr"))
    server = StaticServer(tmp_path).start()
    try:

        def gets() -> list[tuple[str, bool]]:
            seen = [(r.path, r.range is not None) for r in server.requests if r.method == "GET"]
            server.reset()
            return seen

        _check_plane_reads(server.url + "img.zarr", {}, gets)
    finally:
        server.stop()
