"""Blocking reads of stored objects' bytes (local stores, worker threads): whole chunks, byte
ranges of a shard's inner chunks (conditional on the shard's version), and whole shards held in
memory (a compressed one decompressed first), their inner chunks cut out by the shard's index
(an index pointing past the shard's end or over itself is refused as corruption)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from .._errors import CodecError, StoreError
from ..codecs import ChunkCodec, ShardCodec, ShardIndex, past_end_error
from ..stores import ChangedError, RangeByteRequest
from ._chunk_decode import Targets, _by_chunk, _decode_into, _decode_to

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from numpy.typing import NDArray

    from ..engine import ChunkPlan, InnerChunkPlan, Region, ShardPlan
    from ..stores import AsyncStore, Buffer


class _Job(NamedTuple):
    """One chunk read: the byte range of ``key`` (None: whole) and where it decodes to."""

    key: str
    request: RangeByteRequest | None
    name: str
    chunk_sel: Region
    target: NDArray[Any]
    inner: tuple[int, ...] = ()  # a ranged read's inner chunk


def _stored_pieces(
    index: ShardIndex, plan: ShardPlan, out: NDArray[Any], fill_value: Any
) -> tuple[list[tuple[int, int]], list[InnerChunkPlan]]:
    """The byte ranges of the stored inner chunks of ``plan``, and their plans; the absent ones
    are filled with ``fill_value`` in ``out``."""
    wanted: list[tuple[int, int]] = []
    pieces: list[InnerChunkPlan] = []
    for inner in plan.chunks:
        rng = index.chunk_range(inner.coords)
        if rng is None:
            out[inner.out_selection] = fill_value
        else:
            wanted.append(rng)
            pieces.append(inner)
    return wanted, pieces


def _chunk_jobs(prefix: str, plans: Iterable[ChunkPlan], out: NDArray[Any]) -> list[_Job]:
    """Whole-object reads of plain chunks, decoded into their part of ``out``."""
    return [
        _Job(prefix + p.key, None, prefix + p.key, p.chunk_selection, out[p.out_selection])
        for p in plans
    ]


def _range_jobs(
    key: str, wanted: list[tuple[int, int]], pieces: list[tuple[InnerChunkPlan, NDArray[Any]]]
) -> list[_Job]:
    """Ranged reads of a shard's inner chunks, each decoded into its part of its output."""
    return [
        _Job(key, RangeByteRequest(*rng), inner_chunk_name(key, p.coords), p.chunk_selection,
             out[p.out_selection], p.coords)
        for rng, (p, out) in zip(wanted, pieces, strict=True)
    ]  # fmt: skip


def _fetch_decode(
    store: AsyncStore,
    codec: ChunkCodec,
    jobs: list[_Job],
    fill_value: Any,
    version: str | None = None,
) -> None:
    """Blocking reads (whole objects, or ranges of a shard: of its ``version`` if known)
    decoded into their targets."""
    for key, request, name, chunk_sel, target, inner in jobs:
        buf: Buffer | None
        if request is not None:
            buf = _get_range_blocking(store, key, (request.start, request.end), inner, version)
        else:
            buf = store.get_blocking(key)
        if buf is None:
            target[...] = fill_value
        else:
            _decode_into(codec, buf, name, chunk_sel, target)


def _get_range_blocking(
    store: AsyncStore,
    key: str,
    rng: tuple[int, int],
    inner: tuple[int, ...],
    version: str | None = None,
) -> Buffer:
    """Blocking read of inner chunk ``inner``'s byte range of shard ``key``: a range past the
    shard's end is its index's corruption, a vanished shard an error (not the fill value).
    ``version``: the shard's version its index was read from (``None``: unknown); the shard
    found another one (or gone) now is ``ChangedError``."""
    try:
        if version is None:
            buf = store.get_blocking(key, RangeByteRequest(*rng))
        else:
            buf, _ = store.get_blocking_versioned(key, RangeByteRequest(*rng), if_match=version)
    except StoreError as exc:
        if type(exc) is not StoreError:
            raise
        whole = store.get_blocking(key)  # local: its size, to tell a corrupt index
        size = None if whole is None else len(memoryview(whole).cast("B"))
        if size is None or rng[1] <= size:
            raise
        raise past_end_error(key, inner, rng, size) from exc
    if buf is None:  # the shard vanished between the index and the data
        if version is not None:  # read again: its index then says so (fill value)
            raise ChangedError(
                f"shard {key!r} at {store.url} disappeared while it was read",
                url=store.url,
                key=key,
            )
        raise CodecError(f"shard {key!r} disappeared while it was read", key=key)
    return buf


def _fetch_decode_shard(
    store: AsyncStore,
    codec: ShardCodec,
    key: str,
    parts: Sequence[tuple[ShardPlan, NDArray[Any]]],
) -> None:
    """Blocking read of a whole shard (one GET), decoded into what ``parts`` (plans of regions
    in it, each with its output) need of it: each inner chunk once; the fill value when the
    shard is absent."""
    whole = store.get_blocking(key)
    if whole is None:
        for plan, out in parts:
            out[plan.out_selection] = codec.fill_value
        return
    plain, index = _open_shard(codec, whole, key)
    groups = _by_chunk((inner, out) for plan, out in parts for inner in plan.chunks)
    _decode_shard_into(codec, plain, key, index, list(groups.items()))


def _open_shard(codec: ShardCodec, whole: Buffer, key: str) -> tuple[Buffer, ShardIndex]:
    """The plain bytes of a stored shard held in memory (compressed ones decompressed:
    :meth:`ShardCodec.unwrap`) and its index."""
    plain = memoryview(codec.unwrap(whole, key)).cast("B")
    return plain, _whole_shard_index(codec, plain, key)


def inner_chunk_name(key: str, coords: Sequence[int]) -> str:
    """An inner chunk's name (``shard-key[i, j, ...]``): in errors, and the name under which
    the whole-shard, ranged and one-chunk reads share it in flight (they must agree)."""
    return f"{key}{list(coords)}"


def _whole_shard_index(codec: ShardCodec, whole: Buffer, key: str) -> ShardIndex:
    """The index of a whole plain shard held in memory."""
    mv = memoryview(whole).cast("B")
    n = len(mv)
    if n < codec.index_nbytes:
        raise CodecError(f"shard {key!r} is shorter ({n} bytes) than its index", key=key)
    return codec.decode_index(mv[codec.index_slice(n)], key)


def _decode_shard_into(
    codec: ShardCodec,
    whole: Buffer,
    key: str,
    index: ShardIndex,
    chunks: Sequence[tuple[tuple[int, ...], Targets]],
) -> None:
    """Decode inner chunks of a whole shard held in memory (``index``: its index), each once
    into its targets."""
    mv = memoryview(whole).cast("B")
    for coords, targets in chunks:
        buf = _inner_bytes(codec, mv, key, index, coords)
        if buf is None:
            for _, target in targets:
                target[...] = codec.fill_value
        else:
            _decode_to(codec.inner, buf, inner_chunk_name(key, coords), targets)


def _inner_bytes(
    codec: ShardCodec, whole: memoryview, key: str, index: ShardIndex, coords: tuple[int, ...]
) -> memoryview | None:
    """The bytes of inner chunk ``coords`` in a whole plain shard held in memory (``index``:
    its index); ``None``: not stored (the fill value). An index pointing past the shard's end
    or over the index itself is refused as corruption."""
    rng = index.chunk_range(coords)
    if rng is None:
        return None
    n = len(whole)
    # the bytes the inner chunks may take: all but the index's (a range over the index would
    # decode it as pixels, silently when the chunks are uncompressed)
    lo, hi = (
        (codec.index_nbytes, n) if codec.index_location == "start" else (0, n - codec.index_nbytes)
    )
    if rng[1] > n:
        raise past_end_error(key, coords, rng, n)
    if rng[0] < lo or rng[1] > hi:
        start, stop = rng
        raise CodecError(
            f"shard {key!r} is corrupt: its index puts inner chunk {list(coords)} at bytes "
            f"{start}-{stop}, over the index itself (bytes {hi if lo == 0 else 0}-"
            f"{n if lo == 0 else lo} of {n})",
            key=key,
        )
    return whole[rng[0] : rng[1]]
