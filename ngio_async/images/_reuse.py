"""``ChunkReuse``: decoded chunks one tile stream keeps for its later tiles, within a budget.

A chunk several planes deep, streamed plane by plane in grid order, is needed again one
whole layer of chunks later; a halo reaches into the next row's chunks. Without a cache each
such use fetches and decodes the chunk again (16 times over for chunks 16 planes deep). The
stream knows how many of its tiles read each chunk (``engine.chunk_uses``), so a kept chunk
is dropped at its last use, and a chunk is kept only while the budget has room: when a layer
does not fit, its first chunks are kept and the rest fetched again (what the best eviction
policy would keep for a cyclic scan).
"""

from __future__ import annotations

import enum
import threading
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    from collections.abc import Callable

    from numpy.typing import NDArray

__all__ = ["ChunkReuse", "Fetch", "Pending"]


class Pending:
    """A chunk being fetched and decoded by a run in flight, for the runs that need it too:
    they wait for it (after their own chunks: a run never waits before it has read its own,
    so two runs waiting on each other's chunks both go on)."""

    __slots__ = ("_event", "chunk")

    def __init__(self, threaded: bool) -> None:
        self._event: threading.Event | anyio.Event = (
            threading.Event() if threaded else anyio.Event()
        )
        #: the decoded chunk once read (``None``: missing), ``FAILED`` if its read failed
        self.chunk: NDArray[Any] | Fetch | None = Fetch.FAILED

    def done(self, chunk: NDArray[Any] | Fetch | None) -> None:
        self.chunk = chunk
        self._event.set()

    async def wait(self) -> NDArray[Any] | Fetch | None:
        """The chunk, once read (on the event loop: a remote stream)."""
        event = self._event
        if isinstance(event, threading.Event):
            raise TypeError("a local stream's chunk is waited for with wait_blocking()")
        await event.wait()
        return self.chunk

    def wait_blocking(self) -> NDArray[Any] | Fetch | None:
        """The chunk, once read (in a worker thread: a local stream)."""
        event = self._event
        if not isinstance(event, threading.Event):
            raise TypeError("a remote stream's chunk is waited for with await wait()")
        event.wait()
        return self.chunk


class Fetch(enum.Enum):
    """What :meth:`ChunkReuse.claim` asks of a chunk it does not hold."""

    ONCE = "once"  # fetch and decode it for this run
    KEEP = "keep"  # fetch and decode it, then keep it for the later runs
    FAILED = "failed"  # (a Pending chunk whose read failed: fetch it yourself)


class ChunkReuse:
    """Decoded chunks kept for the later runs of one tile stream (thread-safe: local streams
    claim chunks in their decode threads).

    :param budget: bytes of decoded chunks held at most.
    :param uses: how many tiles of the stream read the chunk at these coordinates.
    :param chunk_bytes: a decoded chunk's size (reserved before it is fetched).
    :param threaded: claimed in worker threads (a local stream), not on the event loop.
    """

    def __init__(
        self,
        budget: int,
        uses: Callable[[tuple[int, ...]], int],
        chunk_bytes: int,
        threaded: bool = False,
    ) -> None:
        self._budget, self._uses, self._chunk_bytes = budget, uses, chunk_bytes
        self._threaded = threaded
        self._left: dict[str, int] = {}  # uses still to come, of the chunks met so far
        self._held: dict[str, NDArray[Any] | Pending | None] = {}
        self._lock = threading.Lock()
        self.held_bytes = 0
        self.peak_bytes = 0
        #: uses served from kept chunks (or a run in flight) instead of a fetch
        self.hits = 0

    def claim(
        self, key: str, coords: tuple[int, ...], n: int
    ) -> NDArray[Any] | Pending | Fetch | None:
        """Count ``n`` uses of chunk ``key`` (at ``coords``) by one run.

        :returns: the kept chunk (``None``: a missing chunk, the fill value), dropped if this
            was its last use; a :class:`Pending` chunk another run is reading (wait for it
            once this run's own chunks are read); else ``Fetch.KEEP`` (fetch and decode it,
            then :meth:`keep` it: room is reserved) or ``Fetch.ONCE`` (fetch and decode it).
        """
        with self._lock:
            left = self._left.get(key)
            left = (self._uses(coords) if left is None else left) - n
            if left > 0:
                self._left[key] = left
            else:
                self._left.pop(key, None)
            if key in self._held:
                held = self._held[key]
                self.hits += 1
                if left <= 0 and not isinstance(held, Pending):
                    del self._held[key]
                    self.held_bytes -= 0 if held is None else held.nbytes
                return held
            if left > 0 and self.held_bytes + self._chunk_bytes <= self._budget:
                self._held[key] = Pending(self._threaded)
                self.held_bytes += self._chunk_bytes
                self.peak_bytes = max(self.peak_bytes, self.held_bytes)
                return Fetch.KEEP
            return Fetch.ONCE

    def keep(self, key: str, chunk: NDArray[Any] | Fetch | None) -> None:
        """The chunk ``key`` claimed with ``KEEP``, decoded (``None``: missing; ``FAILED``:
        its read failed): held for the later runs, handed to the runs waiting for it."""
        with self._lock:
            pending = self._held.get(key)
            if not isinstance(pending, Pending):
                return
            self.held_bytes -= self._chunk_bytes  # the reservation, then what it takes
            if isinstance(chunk, Fetch) or key not in self._left:  # failed, or no use left
                del self._held[key]
            else:
                self._held[key] = chunk
                self.held_bytes += 0 if chunk is None else chunk.nbytes
                self.peak_bytes = max(self.peak_bytes, self.held_bytes)
        pending.done(chunk)

    def clear(self) -> None:
        """Drop every kept chunk (the stream ended); wake the runs waiting for one."""
        with self._lock:
            waiting = [p for p in self._held.values() if isinstance(p, Pending)]
            self._held.clear()
            self._left.clear()
            self.held_bytes = 0
        for pending in waiting:
            pending.done(Fetch.FAILED)
