"""Small images served by real servers for the tile-stream sweeps (fixtures in conftest.py):
``served_http`` (a loopback HTTP server) and ``served_s3`` (moto), one copy of each per module."""

from __future__ import annotations

from images import Spec

# 0.5 sharded: 4 x 4 shards of 4 x 4 chunks of 16 x 16; the others: 256 chunks of 16 x 16
SPECS = {
    "0.5-sharded": Spec(
        version="0.5", shape=(1, 256, 256), chunks=(1, 16, 16), shards=(1, 64, 64), levels=1
    ),
    "0.5-plain": Spec(version="0.5", shape=(1, 256, 256), chunks=(1, 16, 16), levels=1),
    "0.4": Spec(version="0.4", shape=(1, 256, 256), chunks=(1, 16, 16), levels=1),
}


def places(*names: str) -> list[tuple[str, str]]:
    """(where, image) pairs for the sweeps: every image over HTTP (the default client), one
    through the aiohttp client and on moto S3 (the sharded one when named), keeping the suite
    short (moto serves ~10x slower)."""
    names = names or tuple(SPECS)
    one = "0.5-sharded" if "0.5-sharded" in names else names[0]
    return [*(("http", name) for name in names), ("aiohttp", one), ("s3", one)]
