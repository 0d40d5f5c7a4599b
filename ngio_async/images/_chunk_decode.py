"""Decoding chunks into the outputs of reads (worker threads), and claiming them from a read
cache (:class:`~ngio_async.images._reuse.Keeper`) before fetching: each chunk decoded once into
every target that needs it, into a per-thread scratch buffer when a target takes only a part."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np

from ._reuse import Fetch, Keeper, Pending

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable, Iterator, Sequence

    from numpy.typing import NDArray

    from ..codecs import ChunkCodec, ShardCodec
    from ..engine import InnerChunkPlan, Region, ShardPlan
    from ..stores import Buffer


_scratch = threading.local()


def _scratch_for(codec: ChunkCodec) -> NDArray[Any]:
    """A per-thread chunk buffer, reused: fresh memory costs page faults on every chunk."""
    buffers: dict[Any, NDArray[Any]] = _scratch.__dict__
    key = (codec.shape, codec.dtype.str)
    buf = buffers.get(key)
    if buf is None:
        if len(buffers) >= 8:
            buffers.clear()
        buf = buffers[key] = np.empty(codec.shape, dtype=codec.dtype)
    return buf


def _decode_into(
    codec: ChunkCodec, buf: Buffer, key: str, chunk_sel: Region, target: NDArray[Any]
) -> NDArray[Any]:
    """Decode one chunk and copy its piece into ``target`` (runs in a worker thread); the
    whole decoded chunk (``target`` itself, or this thread's scratch buffer)."""
    full = all(s.start == 0 and s.stop == n for s, n in zip(chunk_sel, codec.shape, strict=True))
    if full and target.flags.c_contiguous:
        return codec.decode(buf, key, out=target)  # straight into the output, no extra copy
    chunk = codec.decode(buf, key, out=_scratch_for(codec))
    target[...] = chunk[chunk_sel]
    return chunk


def _decode_for_all(
    codec: ChunkCodec,
    buf: Buffer,
    key: str,
    chunk_sel: Region,
    target: NDArray[Any],
    close: Callable[[], int],
) -> NDArray[Any] | None:
    """:func:`_decode_into`, then ``close()`` (no read joins any more; how many did): for
    them, a copy of the whole chunk, else ``None`` (worker thread)."""
    chunk = _decode_into(codec, buf, key, chunk_sel, target)
    return chunk.copy() if close() else None


_CHUNKS_PER_CALL = 8  # chunks decoded per worker-thread call when a read has many


Targets: TypeAlias = "list[tuple[Region, NDArray[Any]]]"


#: a chunk to decode into its targets: its bytes, ``None`` (missing: the fill value) or the
#: chunk decoded before (copied)
Decode: TypeAlias = "tuple[Buffer | NDArray[Any] | None, str, Targets]"
"""Where the pieces of one decoded chunk go: (its part, the array it is copied into)."""


def _by_chunk(
    chunks: Iterable[tuple[InnerChunkPlan, NDArray[Any]]],
) -> dict[tuple[int, ...], Targets]:
    """The inner chunks that regions need (each with the region's output), grouped by chunk:
    a chunk several regions (tiles) need is then fetched and decoded once."""
    groups: dict[tuple[int, ...], Targets] = {}
    for inner, out in chunks:
        target = (inner.chunk_selection, out[inner.out_selection])
        groups.setdefault(inner.coords, []).append(target)
    return groups


def _decode_to(codec: ChunkCodec, buf: Buffer, key: str, targets: Targets) -> NDArray[Any]:
    """Decode one chunk into each of ``targets`` (once, however many there are); the whole
    decoded chunk (a target, or this thread's scratch buffer)."""
    if len(targets) == 1:
        return _decode_into(codec, buf, key, *targets[0])
    full = codec.decode(buf, key, out=_scratch_for(codec))
    for chunk_sel, target in targets:
        target[...] = full[chunk_sel]
    return full


def _decode_all(
    codec: ChunkCodec,
    decodes: list[Decode],
    fill_value: Any = None,
    keep: Collection[str] = (),
    kept: dict[str, NDArray[Any] | None] | None = None,
    close: Callable[[str], int] | None = None,
) -> None:
    """Decode several chunks, each ``(buffer, name, targets)`` (worker thread); a ``None``
    buffer (a missing chunk) fills its targets with ``fill_value``, an array (a chunk decoded
    before) is copied. The chunks named in ``keep`` are decoded whole into ``kept``. With
    ``close`` (chunks led for the reads in flight, :class:`InFlight`): each chunk, once
    decoded, is closed to more reads with ``close(name)``, and a copy of it goes into
    ``kept`` if any joined (a missing one: ``None``)."""
    for buf, key, targets in decodes:
        if buf is None:
            for _, target in targets:
                target[...] = fill_value
            if kept is not None and (close is not None or key in keep):
                kept[key] = None
        elif isinstance(buf, np.ndarray):
            for chunk_sel, target in targets:
                target[...] = buf[chunk_sel]
        elif key in keep and kept is not None:
            full = codec.decode(buf, key)
            for chunk_sel, target in targets:
                target[...] = full[chunk_sel]
            kept[key] = full
        else:
            full = _decode_to(codec, buf, key, targets)
            if close is not None and kept is not None and close(key):
                kept[key] = full.copy()


#: a chunk claimed from a ``Keeper``: ``Fetch`` (to fetch), the chunk (``None``:
#: missing) or a ``Pending`` chunk another run reads
_Claimed: TypeAlias = "tuple[Buffer | NDArray[Any] | Pending | Fetch | None, str, Targets]"


_Ready: TypeAlias = "tuple[Buffer | NDArray[Any] | Fetch | None, str, Targets]"


def _claim_chunks(
    groups: dict[str, Targets],
    reuse: Keeper | None,
    coords: dict[str, tuple[int, ...]] | None,
) -> tuple[list[_Claimed], set[str]]:
    """Each chunk of ``groups`` as ``(Fetch.ONCE or what reuse has of it, key, targets)``,
    and the keys ``reuse`` asks to keep once decoded. A claim that raises (a local level's
    ``stat`` of a chunk) hands the chunks claimed to keep back as failed: the reads waiting
    for them read them themselves."""
    if reuse is None or coords is None:
        return [(Fetch.ONCE, key, targets) for key, targets in groups.items()], set()
    claimed: list[_Claimed] = []
    keep: set[str] = set()
    try:
        for key, targets in groups.items():
            got = reuse.claim(key, coords[key], len(targets))
            if got is Fetch.KEEP:
                keep.add(key)
                got = Fetch.ONCE
            claimed.append((got, key, targets))
    except BaseException:
        _keep_chunks(reuse, keep, {})
        raise
    return claimed, keep


def _grid_coords(
    codec: ShardCodec,
    parts: Sequence[tuple[ShardPlan, NDArray[Any]]],
    ranges: dict[str, tuple[tuple[int, ...], tuple[int, int]]],
) -> dict[str, tuple[int, ...]]:
    """The coordinates in the array's inner chunk grid of the inner chunks named in
    ``ranges`` (by their coordinates in the shard of ``parts``)."""
    first = [s * n for s, n in zip(parts[0][0].coords, codec.chunks_per_shard, strict=True)]
    return {
        name: tuple(f + i for f, i in zip(first, inner, strict=True))
        for name, (inner, _) in ranges.items()
    }


def _waits(claimed: list[_Claimed]) -> Iterator[tuple[Pending, str, Targets]]:
    """The claimed chunks other runs are reading."""
    for buf, key, targets in claimed:
        if isinstance(buf, Pending):
            yield buf, key, targets


def _own(claimed: list[_Claimed]) -> list[_Ready]:
    """The claimed chunks this run reads or has (not those other runs are reading)."""
    return [(buf, key, targets) for buf, key, targets in claimed if not isinstance(buf, Pending)]


def _keep_chunks(
    reuse: Keeper | None, keep: set[str], kept: dict[str, NDArray[Any] | None]
) -> None:
    """Hand ``reuse`` the chunks it asked to keep (those not decoded: failed)."""
    if reuse is None:
        return
    for key in keep:
        reuse.keep(key, kept.get(key, Fetch.FAILED))
