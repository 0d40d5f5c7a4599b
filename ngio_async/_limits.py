"""``Limits``: the one value object that bounds concurrency, prefetch memory and retries."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

__all__ = ["Limits", "check_limits"]

_LEAST_PART = 64 * 1024  # the least Limits.part_size but 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Bounds shared by everything that reads or writes one store.

    :param max_requests: requests in flight per store (one ``CapacityLimiter`` per store).
        Local files and memory are read inside the decode threads instead (one thread call
        reads and decodes a chunk), so there ``decode_threads`` bounds the reads as well.
    :param prefetch_tiles: tiles fetched ahead of the consumer by a tile iterator.
    :param prefetch_bytes: decoded bytes of the tiles held ahead of the consumer (the memory
        bound). The encoded bodies and decode buffers of the reads in flight come on top:
        measured up to 2.3x the bound with a 1 MiB bound, a small share of a large one.
        128 MiB: four 32 MiB whole-shard tiles, as fast as 256 MiB from disk and 20 ms HTTP
        (537 MB image: 1,000-1,550 MB/s either way) with 60-100 MB less peak RSS.
    :param cache_bytes: decoded chunks a tile stream keeps for its later tiles, on top of
        ``prefetch_bytes``: a chunk several planes deep streamed plane by plane in grid order
        is needed again a whole layer of chunks later, a halo's neighbour chunk by the next
        row. Each is dropped at its last use; when a layer does not fit, its first chunks are
        kept and the others fetched again. ``0``: keep none (each tile's chunks fetched anew).
    :param read_cache_bytes: decoded chunks a read-only dataset keeps across its region
        reads (``read``, ``ds[...]``, dask), least recently used dropped first: a plane read
        from chunks several planes deep decodes whole chunks, and the next planes (a viewer's
        z slider) or neighbouring regions then take them from memory instead of fetching and
        decoding them again. Reads of more than a quarter of it pass it by. ``0`` (default):
        keep none. Chunks are held as first read: another program's later writes to them
        are not seen until the dataset is opened again. Without it, the blocking reads of
        local files still share a chunk they each take only part of (dask blocks smaller
        than the chunks): kept until its rest is read, at most 1 s, 4 chunks per decode
        thread and 16 MiB per level, and only while its file is unchanged.
    :param decode_threads: worker threads that decode and encode chunks.
    :param timeout: seconds allowed for one request (one attempt), ``None`` for no limit.
    :param max_retries: retries after the first attempt for retryable failures
        (5xx, 429, connection resets, timeouts); never for other 4xx.
    :param backoff_base: first retry delay in seconds; doubles each retry, with full jitter.
    :param backoff_max: cap on one retry delay in seconds.
    :param coalesce_gap: byte ranges of one object closer than this are fetched as one request.
    :param part_size: the most bytes one GET of a remote store (S3, GCS, Azure, HTTP) asks
        for in a big read, once its connections came slow (its last 3 GETs of more than this
        many bytes each slower than 100 MB/s, round trip included; a store next door, at
        GB/s a connection, keeps one GET): an object read whole whose array's last object
        read whole was bigger (a level's shards are alike) is read as ranged GETs of at most
        this many bytes, all in flight at once, and the merged ranges of a ranged read are
        cut at this size. A cloud store sends each connection ~50-100 MB/s: a 14 MB shard in
        one GET takes ~200 ms, in 4 MiB parts about a quarter of that (20 ms + 70 MB/s a
        connection, 537 MB in 16 shards streamed: 430-500 MB/s whole, 650-870 in 4 MiB
        parts). The parts must have one strong ETag (else the object is read again in one
        GET; a store whose answers carry none reads in one GET). ``0``: no parts; else at
        least 64 KiB. Local files and memory are read as before.
    :param reuse_tile_arrays: a tile stream decodes its tiles of 16 MiB and more into the arrays
        of its earlier tiles that nothing holds any more (no ``Tile``, view, ``memoryview``,
        dask or torch array of it left, no weak reference), at most the prefetch window's
        worth of free ones kept; when the stream ends its dataset keeps them (at most
        ``prefetch_bytes``, dropped on close) for its next streams: fresh memory of that size
        is zeroed and faulted in by the kernel (4096x4096 uint16 tiles from disk: ~10% less
        CPU, a third less system time, half the page faults). ``False``: a fresh array per tile; needed only when a raw
        address of a tile's pixels (``tile.data.ctypes.data``, ``__array_interface__``, an
        asynchronous copy from it) is used after every Python reference to the array was
        dropped.
    """

    max_requests: int = 64
    prefetch_tiles: int = 16
    prefetch_bytes: int = 128 * 1024 * 1024
    cache_bytes: int = 256 * 1024 * 1024
    read_cache_bytes: int = 0
    decode_threads: int = 4
    timeout: float | None = 30.0
    max_retries: int = 4
    backoff_base: float = 0.05
    backoff_max: float = 2.0
    coalesce_gap: int = 64 * 1024
    part_size: int = 4 * 1024 * 1024
    reuse_tile_arrays: bool = True

    def __post_init__(self) -> None:
        for name in ("max_requests", "prefetch_tiles", "prefetch_bytes", "decode_threads"):
            self._integer(name, 1, "a positive integer")
        for name in (
            "cache_bytes",
            "read_cache_bytes",
            "max_retries",
            "coalesce_gap",
            "part_size",
        ):
            self._integer(name, 0, "a non-negative integer")
        if 0 < self.part_size < _LEAST_PART:  # (1: a 14 MB object in 14 million GETs)
            raise ValueError(
                f"Limits.part_size must be 0 (no parts) or at least {_LEAST_PART} bytes "
                f"(64 KiB), got {self.part_size!r}"
            )
        if not isinstance(self.reuse_tile_arrays, bool):
            raise ValueError(
                f"Limits.reuse_tile_arrays must be True or False, got {self.reuse_tile_arrays!r}"
            )
        timeout = self.timeout
        if timeout is not None and (not _real(timeout) or not 0 < timeout < math.inf):
            raise ValueError(
                f"Limits.timeout must be a positive number of seconds, or None for no limit, "
                f"got {timeout!r}"
            )
        for name in ("backoff_base", "backoff_max"):
            value = getattr(self, name)
            if not _real(value) or not 0 <= value < math.inf:
                raise ValueError(
                    f"Limits.{name} must be a non-negative number of seconds, got {value!r}"
                )

    def _integer(self, name: str, least: int, what: str) -> None:
        """Check an integer field (numpy integers are taken as ints; booleans are not)."""
        value = getattr(self, name)
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < least:
            raise ValueError(f"Limits.{name} must be {what}, got {value!r}")
        object.__setattr__(self, name, int(value))


def _real(value: object) -> bool:
    """A real number, not a boolean (``nan`` is one: the range checks refuse it)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_limits(limits: object) -> None:
    """Raise ``TypeError`` unless ``limits`` is ``None`` or a :class:`Limits`."""
    if limits is not None and not isinstance(limits, Limits):
        hint = " (write Limits(**it))" if isinstance(limits, dict) else ""
        raise TypeError(f"limits must be an ngio_async.Limits, got {limits!r}{hint}")
