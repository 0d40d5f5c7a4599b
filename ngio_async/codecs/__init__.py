"""Pure, synchronous chunk codecs: stored bytes <-> numpy arrays for zarr v2 and v3.

No I/O and no event loop here. Build a pipeline once per array, then call it from worker threads::

    codec = ChunkCodec.from_meta(meta)        # ChunkCodec, or ShardCodec for sharded v3 arrays
    chunk = codec.decode(raw_bytes, key)      # ndarray of the chunk (or shard) shape
    raw = codec.encode(chunk, key)            # bytes, as zarr-python writes them

numcodecs does the (de)compression; this package runs the pipeline (v3 ``bytes``, ``transpose``,
``blosc``, ``zstd``, ``gzip``, ``crc32c``, ``sharding_indexed``, nested too, and zarr-python's
``numcodecs.*`` codecs; v2 compressors and filters via numcodecs, v2 ``order="F"``; strings:
``vlen-utf8``, v3 ``string`` and v2 ``|O``, as ``object`` arrays of ``str``; bytes->bytes
codecs after ``sharding_indexed`` compress whole shards: :meth:`ShardCodec.unwrap` and
:meth:`ShardCodec.wrap`). Failures raise :class:`~ngio_async._errors.CodecError` naming the key.
"""

from __future__ import annotations

from ngio_async.codecs._pipeline import ChunkCodec, all_equal
from ngio_async.codecs._sharding import (
    EMPTY,
    ShardCodec,
    ShardedChunkCodec,
    ShardIndex,
    morton_order,
    past_end_error,
)

__all__ = [
    "EMPTY",
    "ChunkCodec",
    "ShardCodec",
    "ShardIndex",
    "ShardedChunkCodec",
    "all_equal",
    "morton_order",
    "past_end_error",
]
