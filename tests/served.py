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
