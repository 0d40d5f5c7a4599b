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
import time
import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeAlias, TypeVar

import anyio

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

    from numpy.typing import NDArray

__all__ = [
    "ChunkPool",
    "ChunkReuse",
    "Fetch",
    "InFlight",
    "Keeper",
    "PartKeep",
    "Pending",
    "SingleFlight",
]


class Keeper(Protocol):
    """What the read paths ask of a cache of decoded chunks (:class:`ChunkReuse`, a
    :class:`ChunkPool`'s level view)."""

    def claim(
        self, key: str, coords: tuple[int, ...], n: int
    ) -> NDArray[Any] | Pending | Fetch | None: ...

    def keep(self, key: str, chunk: NDArray[Any] | Fetch | None) -> None: ...


class Pending:
    """A chunk being fetched and decoded by a run in flight, for the runs that need it too:
    they wait for it (after their own chunks: a run never waits before it has read its own,
    so two runs waiting on each other's chunks both go on)."""

    __slots__ = ("_done", "_event", "chunk", "waiters")

    def __init__(self, threaded: bool, lazy: bool = False) -> None:
        """``threaded``: waited for in worker threads; ``lazy`` (not threaded): its event is
        made by its first waiter (most chunks of :class:`InFlight` have none, and an
        ``anyio.Event`` costs more than the rest of a claim), so :meth:`done` and
        :meth:`wait` must run on the one event loop."""
        self._event: threading.Event | anyio.Event | None = (
            threading.Event() if threaded else None if lazy else anyio.Event()
        )
        self._done = False
        #: the decoded chunk once read (``None``: missing), ``FAILED`` if its read failed
        self.chunk: NDArray[Any] | Fetch | None = Fetch.FAILED
        #: the claims waiting for it (counted as hits until its read fails)
        self.waiters = 0

    def done(self, chunk: NDArray[Any] | Fetch | None) -> None:
        self.chunk = chunk
        self._done = True
        if self._event is not None:
            self._event.set()

    async def wait(self) -> NDArray[Any] | Fetch | None:
        """The chunk, once read (on the event loop: a remote stream)."""
        event = self._event
        if isinstance(event, threading.Event):
            raise TypeError("a local stream's chunk is waited for with wait_blocking()")
        if not self._done:
            if event is None:
                event = self._event = anyio.Event()
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


class _Held:
    """What a stream's and a dataset's chunk caches share: the chunks held (or being read,
    ``Pending``), their bytes, and the uses served from them."""

    def __init__(self) -> None:
        self._held: OrderedDict[str, NDArray[Any] | Pending | None] = OrderedDict()
        self._lock = threading.Lock()
        self.held_bytes = 0
        self.peak_bytes = 0
        #: uses served from held chunks (or a read in flight) instead of a fetch
        self.hits = 0

    def clear(self) -> None:
        """Drop every chunk held; wake the reads waiting for one (they fetch it themselves)."""
        with self._lock:
            waiting = [p for p in self._held.values() if isinstance(p, Pending)]
            self.hits -= sum(p.waiters for p in waiting)  # they read their chunks themselves
            self._held.clear()
            self._forget()
            self.held_bytes = 0
        for pending in waiting:
            pending.done(Fetch.FAILED)

    def _forget(self) -> None:
        """Drop what a subclass keeps beside the chunks (under the lock)."""


class ChunkReuse(_Held):
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
        super().__init__()
        self._budget, self._uses, self._chunk_bytes = budget, uses, chunk_bytes
        self._threaded = threaded
        self._left: dict[str, int] = {}  # uses still to come, of the chunks met so far

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
                if isinstance(held, Pending):
                    held.waiters += 1
                elif left <= 0:
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
            if isinstance(chunk, Fetch):  # failed: its waiters read it themselves
                self.hits -= pending.waiters
            if isinstance(chunk, Fetch) or key not in self._left:  # failed, or no use left
                del self._held[key]
            else:
                self._held[key] = chunk
                self.held_bytes += 0 if chunk is None else chunk.nbytes
                self.peak_bytes = max(self.peak_bytes, self.held_bytes)
        pending.done(chunk)

    def _forget(self) -> None:
        self._left.clear()


class ChunkPool(_Held):
    """Decoded chunks a read-only dataset keeps across its region reads, least recently used
    dropped first, within ``budget`` bytes (``Limits.read_cache_bytes``); thread-safe.

    A plane read from chunks several planes deep decodes whole chunks: the next planes (a
    viewer's z slider, a web tile server's neighbouring tiles) find them here instead of
    fetching and decoding them again. Readers of a chunk another read is fetching wait for
    it. Chunks are held as they were read: data rewritten by another program while the
    dataset is open is not seen for the chunks held (open it again, or :meth:`clear`).
    """

    def __init__(self, budget: int) -> None:
        super().__init__()
        self.budget = budget
        self._sizes: dict[str, int] = {}  # bytes each entry takes (reserved while pending)

    def level(self, chunk_bytes: int, threaded: bool) -> _LevelView:
        """The pool as one level's reads use it (``chunk_bytes``: a decoded chunk's size;
        ``threaded``: claimed in worker threads, a local level)."""
        return _LevelView(self, chunk_bytes, threaded)

    def _claim(
        self, key: str, chunk_bytes: int, threaded: bool
    ) -> NDArray[Any] | Pending | Fetch | None:
        with self._lock:
            if key in self._held:
                self.hits += 1
                held = self._held[key]
                if isinstance(held, Pending):
                    held.waiters += 1
                self._held.move_to_end(key)
                return held
            if chunk_bytes > self.budget:
                return Fetch.ONCE
            self._evict(self.budget - chunk_bytes)
            if self.held_bytes + chunk_bytes > self.budget:  # the rest is being read
                return Fetch.ONCE
            self._held[key] = Pending(threaded)
            self._sizes[key] = chunk_bytes
            self.held_bytes += chunk_bytes
            self.peak_bytes = max(self.peak_bytes, self.held_bytes)
            return Fetch.KEEP

    def _evict(self, room: int) -> None:
        """Drop the least recently used chunks held (not those being read) until at most
        ``room`` bytes are held (under the lock)."""
        if self.held_bytes <= room:
            return
        for key in [k for k, v in self._held.items() if not isinstance(v, Pending)]:
            del self._held[key]
            self.held_bytes -= self._sizes.pop(key)
            if self.held_bytes <= room:
                return

    def _keep(self, key: str, chunk: NDArray[Any] | Fetch | None) -> None:
        with self._lock:
            pending = self._held.get(key)
            if not isinstance(pending, Pending):
                return
            self.held_bytes -= self._sizes.pop(key)
            if isinstance(chunk, Fetch):  # its read failed: its waiters read it themselves
                self.hits -= pending.waiters
                del self._held[key]
            else:
                size = 0 if chunk is None else chunk.nbytes
                self._held[key] = chunk
                self._sizes[key] = size
                self.held_bytes += size
                self.peak_bytes = max(self.peak_bytes, self.held_bytes)
        pending.done(chunk)

    def _forget(self) -> None:
        self._sizes.clear()


class _LevelView:
    """A :class:`ChunkPool` as one level's reads claim from it (a :class:`Keeper`)."""

    __slots__ = ("_bytes", "_pool", "_threaded")

    def __init__(self, pool: ChunkPool, chunk_bytes: int, threaded: bool) -> None:
        self._pool, self._bytes, self._threaded = pool, chunk_bytes, threaded

    def claim(
        self, key: str, coords: tuple[int, ...], n: int
    ) -> NDArray[Any] | Pending | Fetch | None:
        return self._pool._claim(key, self._bytes, self._threaded)

    def keep(self, key: str, chunk: NDArray[Any] | Fetch | None) -> None:
        self._pool._keep(key, chunk)


class PartKeep(_Held):
    """Decoded (inner) chunks that blocking reads of a read-only local level used only in part
    (dask blocks smaller than the chunks, a viewer's tiles), kept briefly for the reads of
    the rest of them: a chunk that four 256x256 blocks share is fetched and decoded once, not
    four times, with no read cache configured. Thread-safe (dask's threads claim from it).

    A chunk is dropped once the reads have taken all of it (counted in elements), ``seconds``
    after it was decoded (by the next read, or by a timer thread while chunks are held), or
    for room (oldest first): at most ``budget`` bytes are held.
    Beside each chunk: the version of its stored object, taken before it was read; every read
    that takes the chunk passes the object's version now, and a changed object (another
    writer) is read anew: no read gets older pixels than reading the file would give it.

    :param budget: bytes of decoded chunks held (or being decoded) at most.
    :param chunk_bytes: a decoded chunk's size.
    :param seconds: how long a decoded chunk is held at most.
    """

    def __init__(self, budget: int, chunk_bytes: int, seconds: float) -> None:
        super().__init__()
        self.budget, self._chunk_bytes, self._seconds = budget, chunk_bytes, seconds
        self._left: dict[str, int] = {}  # elements of each chunk no read has taken yet
        self._versions: dict[str, str] = {}  # the version of each chunk's object
        self._born: dict[str, float] = {}  # when each held chunk was decoded, oldest first
        #: chunks decoded and held for the reads of their rest
        self.kept = 0
        self._sweeping = False  # a timer will drop the chunks that age out

    def holds(self, key: str) -> bool:
        """Whether chunk ``key`` is held or being read (a hint: no lock taken)."""
        return key in self._held

    def claim(
        self, key: str, part: int, full: int, version: str | None
    ) -> NDArray[Any] | Pending | Fetch | None:
        """A read takes ``part`` of the ``full`` elements of chunk ``key``, whose object is
        ``version`` now (``None``: missing or unknown, never kept).

        :returns: the held chunk (``None``: missing), dropped once all of it was taken; a
            :class:`Pending` chunk another read is decoding (wait for it); ``Fetch.KEEP``
            (fetch and decode it whole, then :meth:`keep` it) or ``Fetch.ONCE``.
        """
        with self._lock:
            self._expire(time.monotonic())
            if key in self._held:
                held = self._held[key]
                if self._versions[key] != version:  # rewritten since: read it anew
                    self._drop(key)
                    return Fetch.ONCE
                self.hits += 1
                self._left[key] -= part
                if isinstance(held, Pending):
                    held.waiters += 1
                elif self._left[key] <= 0:
                    self._drop(key)
                return held
            if part >= full or version is None or self._chunk_bytes > self.budget:
                return Fetch.ONCE
            self._evict(self.budget - self._chunk_bytes)
            if self.held_bytes + self._chunk_bytes > self.budget:  # the rest is being read
                return Fetch.ONCE
            self._held[key] = Pending(True)
            self._left[key] = full - part
            self._versions[key] = version
            self.held_bytes += self._chunk_bytes
            self.peak_bytes = max(self.peak_bytes, self.held_bytes)
            return Fetch.KEEP

    def keep(self, key: str, chunk: NDArray[Any] | Fetch | None) -> None:
        """The chunk ``key`` claimed with ``KEEP``, decoded whole (``None``: missing;
        ``FAILED``: its read failed): handed to the reads waiting for it, and held for the
        reads of its rest unless they have all come."""
        with self._lock:
            pending = self._held.get(key)
            if not isinstance(pending, Pending):
                return
            self.held_bytes -= self._chunk_bytes
            if isinstance(chunk, Fetch):  # its waiters read it themselves
                self.hits -= pending.waiters
            if isinstance(chunk, Fetch) or self._left[key] <= 0:
                del self._held[key]
                self._left.pop(key, None)
                self._versions.pop(key, None)
            else:
                self._held[key] = chunk
                self._born[key] = time.monotonic()
                self.held_bytes += _nbytes(chunk)
                self.peak_bytes = max(self.peak_bytes, self.held_bytes)
                self.kept += 1
            sweep = not self._sweeping and bool(self._born)
            self._sweeping = self._sweeping or sweep
        pending.done(chunk)
        if sweep:
            self._sweep_in(self._seconds)

    def _sweep_in(self, delay: float) -> None:
        """Drop the chunks aged out ``delay`` seconds from now, in a timer thread (then
        again while any is held): chunks are not held past their time when no read comes."""
        timer = threading.Timer(delay, _sweep, (weakref.ref(self),))
        timer.daemon = True
        timer.start()

    def sweep(self) -> None:
        """Drop the chunks aged out; the timer's next run when some are still held."""
        with self._lock:
            now = time.monotonic()
            self._expire(now)
            born = self._born
            delay = self._seconds - (now - born[next(iter(born))]) if born else None
            self._sweeping = delay is not None
        if delay is not None:
            self._sweep_in(max(delay, 0.01))

    def _drop(self, key: str) -> None:
        """Forget chunk ``key`` (under the lock); one being read is only marked taken (its
        reader's :meth:`keep` then drops it and hands it to the reads waiting for it)."""
        held = self._held[key]
        if isinstance(held, Pending):
            self._left[key] = 0
            self._versions[key] = ""  # (no version: no read joins it any more)
            return
        del self._held[key]
        self.held_bytes -= _nbytes(held)
        del self._left[key], self._versions[key], self._born[key]

    def _expire(self, now: float) -> None:
        """Drop the chunks held longer than ``seconds`` (under the lock)."""
        born = self._born
        while born:
            key = next(iter(born))
            if now - born[key] < self._seconds:
                return
            self._drop(key)

    def _evict(self, room: int) -> None:
        """Drop the oldest chunks held (not those being read) until at most ``room`` bytes
        are held (under the lock)."""
        born = self._born
        while born and self.held_bytes > room:
            self._drop(next(iter(born)))

    def _forget(self) -> None:
        self._left.clear()
        self._versions.clear()
        self._born.clear()


def _sweep(ref: weakref.ref[PartKeep]) -> None:
    keep = ref()
    if keep is not None:
        keep.sweep()


def _nbytes(chunk: NDArray[Any] | None) -> int:
    return 0 if chunk is None else chunk.nbytes


class InFlight:
    """The (inner) chunks that region reads of a read-only remote level are fetching right
    now, for the reads of the same chunks that start meanwhile: they wait for that fetch and
    decode instead of making their own (a viewer's or a tile server's burst of tiles smaller
    than a chunk, dask blocks smaller than the chunks, identical requests of several chunks
    each, overlapping regions). Nothing is kept afterwards: a read that starts once the chunk
    is decoded fetches it again. A read over several chunks leads those no read is fetching
    (fetched together, as it would alone) and waits for the others once its own are decoded.

    The read that leads a chunk's fetch closes it with :meth:`close` once decoded (in its
    worker thread: no read joins after that) and hands the reads that joined a private copy
    with :meth:`finish`. A failed or cancelled leader finishes with ``Fetch.FAILED``: the
    reads that joined then claim the chunk again (one of them leads).
    """

    __slots__ = ("_lock", "_pending", "shared")

    def __init__(self) -> None:
        self._pending: dict[str, Pending] = {}
        self._lock = threading.Lock()
        #: reads served by another read's fetch (counted until that fetch fails)
        self.shared = 0

    def claim(self, name: str) -> tuple[Pending, bool]:
        """Chunk ``name``'s fetch in flight, and whether this read leads it (else it joined:
        ``await pending.wait()``)."""
        with self._lock:
            pending = self._pending.get(name)
            if pending is not None:
                pending.waiters += 1
                self.shared += 1
                return pending, False
            pending = self._pending[name] = Pending(False, lazy=True)
            return pending, True

    def claim_all(self, names: Iterable[str]) -> tuple[dict[str, Pending], list[Joined]]:
        """:meth:`claim` of several chunks at once: those this read leads (by name), and those
        it joined (``(name, pending)``)."""
        led: dict[str, Pending] = {}
        joined: list[Joined] = []
        with self._lock:
            in_flight = self._pending
            for name in names:
                pending = in_flight.get(name)
                if pending is None:
                    led[name] = in_flight[name] = Pending(False, lazy=True)
                else:
                    pending.waiters += 1
                    joined.append((name, pending))
            self.shared += len(joined)
        return led, joined

    def finish_all(self, led: dict[str, Pending], chunks: dict[str, NDArray[Any] | None]) -> None:
        """:meth:`finish` of the chunks a read led: each with its entry in ``chunks`` (a copy
        for the reads that joined; ``None``: missing), else ``Fetch.FAILED``."""
        with self._lock:
            in_flight = self._pending
            for name, pending in led.items():
                if in_flight.get(name) is pending:
                    del in_flight[name]
                if name not in chunks:  # they fetch it themselves
                    self.shared -= pending.waiters
        for name, pending in led.items():
            pending.done(chunks.get(name, Fetch.FAILED))

    def close(self, name: str, pending: Pending) -> int:
        """No more reads join ``pending`` (thread-safe); how many have."""
        with self._lock:
            if self._pending.get(name) is pending:
                del self._pending[name]
            return pending.waiters

    def finish(self, name: str, pending: Pending, chunk: NDArray[Any] | Fetch | None) -> None:
        """The leader's outcome for the reads that joined (on the event loop): the decoded
        chunk (``None``: missing, the fill value) or ``Fetch.FAILED``."""
        with self._lock:
            if self._pending.get(name) is pending:
                del self._pending[name]
            if isinstance(chunk, Fetch):  # they fetch it themselves
                self.shared -= pending.waiters
        pending.done(chunk)


#: a chunk another read leads: its name and its fetch in flight
Joined: TypeAlias = "tuple[str, Pending]"

V = TypeVar("V")


class SingleFlight(Generic[V]):
    """Calls for one key that run at the same time share one run of the work (on one event
    loop): a burst of reads in one shard compressed whole fetches and decompresses it once.
    Nothing is kept once it ends. If the run fails or is cancelled, the calls that waited for
    it start again (one of them runs the work)."""

    __slots__ = ("_running",)

    def __init__(self) -> None:
        self._running: dict[str, tuple[anyio.Event, list[V]]] = {}

    async def run(self, key: str, work: Callable[[], Awaitable[V]]) -> V:
        """``await work()``, or the value of the run for ``key`` in flight."""
        while (entry := self._running.get(key)) is not None:
            event, box = entry
            await event.wait()
            if box:
                return box[0]
        event, box = anyio.Event(), []
        self._running[key] = (event, box)
        try:
            value = await work()
            box.append(value)
            return value
        finally:
            del self._running[key]
            event.set()
