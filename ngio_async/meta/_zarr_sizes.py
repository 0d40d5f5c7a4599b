"""Zarr sizes both versions check: shapes and chunk shapes, chunks numpy can address, and shard
indexes of a bounded size."""

from __future__ import annotations

import math
from typing import Final

from ngio_async._errors import MetadataError

#: numpy's largest size (``intp``): no dimension, and no chunk's byte count, may exceed it
_MAX_SIZE: Final = 2**63 - 1


#: inner chunks per shard: the index of one (16 bytes each) is read whole; 2**24 is 256 MiB
_MAX_INNER_CHUNKS: Final = 2**24


def _check_dims(shape: tuple[int, ...], chunks: tuple[int, ...], chunks_path: str) -> None:
    for i, s in enumerate(shape):
        if s < 0:
            raise MetadataError(f"shape must be non-negative, got {s}", f"$.shape[{i}]")
        if s > _MAX_SIZE:
            raise MetadataError(
                f"shape {s} exceeds 2**63 - 1, the most numpy indexes", f"$.shape[{i}]"
            )
    if len(chunks) != len(shape):
        raise MetadataError(
            f"chunk shape has {len(chunks)} dimensions, the array has {len(shape)}", chunks_path
        )
    for i, c in enumerate(chunks):
        if c <= 0:
            raise MetadataError(f"chunk sizes must be positive, got {c}", f"{chunks_path}[{i}]")


def _check_chunk_bytes(chunks: tuple[int, ...], itemsize: int, path: str) -> None:
    """A chunk (the unit decoded at once) must fit numpy's addressable size."""
    nbytes = math.prod(chunks) * itemsize
    if nbytes > _MAX_SIZE:
        raise MetadataError(
            f"a chunk of shape {list(chunks)} holds {nbytes} bytes, more than 2**63 - 1", path
        )


def _check_inner_chunks(shard: tuple[int, ...], chunks: tuple[int, ...], path: str) -> None:
    """Refuse a shard whose index (one entry per inner chunk, read whole) is absurdly large."""
    n = math.prod(s // c for s, c in zip(shard, chunks, strict=True))
    if n > _MAX_INNER_CHUNKS:
        raise MetadataError(
            f"a shard of shape {list(shard)} holds {n} inner chunks of shape {list(chunks)} "
            f"(an index of {16 * n} bytes); at most {_MAX_INNER_CHUNKS} are supported",
            path,
        )
