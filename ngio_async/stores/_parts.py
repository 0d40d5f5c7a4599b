"""Big remote objects read whole in parallel parts (``Limits.part_size``).

A cloud store gives each connection ~50-100 MB/s, so a 14 MB shard read in one GET takes
~200 ms on one connection; read as ranged GETs of a few MiB all in flight at once it takes a
fraction of that. Where one connection brings GB/s (a store next door), one GET is as fast
and takes less work, so a store reads in parts only once its last GETs of more than a part
all came slower than :data:`SLOW_LINK` (:class:`PartPlan`). The object's size comes from the
earlier objects of the same array (a level's shards are alike), so all parts start together,
with no request for the size first; the first whole read of an array is one plain GET. The
parts' ETags must agree (one version of the object), else the object is read again in one GET.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import anyio

from .._errors import StoreError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ._base import Buffer

    #: one ranged GET of the object with the answer's ETag: ``[start, end)``, ``end`` ``None``
    #: for "to its end"
    PartGet = Callable[[int, int | None], Awaitable[tuple[Buffer | None, str | None]]]

__all__ = ["SLOW_LINK", "PartPlan", "array_of", "get_in_parts", "part_bounds"]

_MAX_ARRAYS = 256  # arrays whose object sizes a store remembers (forgotten all at once beyond)
#: bytes/s of one GET (its round trip included) below which big reads go in parts: a cloud
#: store's connection brings ~50-100 MB/s; a 14 MB shard over loopback with 20 ms latency
#: came at 400-550 MB/s, but on a busy machine (load 6-8 on 2 cores) at 60-310 MB/s, the
#: CPU late to read it: the fastest of :data:`_JUDGED` such GETs decides. An object read in
#: parts at three times this or faster, each part's connection this fast or faster
#: (loopback: 14 MB in 4 parts in ~25 ms, 560 MB/s, 140 a connection; 20 ms + 70 MB/s a
#: connection: ~180-200 MB/s; 33 MB in 8 parts, ~400, 50 a connection) turns them off again
SLOW_LINK = 100e6
_JUDGED = 3


def array_of(key: str) -> str:
    """The array (or directory) ``key`` lies in, whose objects are alike in size: what comes
    before its last ``/c/`` (zarr v3 chunk keys), else its directory."""
    head, sep, _ = key.rpartition("/c/")
    return head if sep else key.rpartition("/")[0]


class PartPlan:
    """What a store learnt for its reads in parts: whether its connections are slow (its
    last :data:`_JUDGED` GETs of more than a part all slower than :data:`SLOW_LINK`),
    whether its answers carry ETags, and the size of the last object read whole in each
    array."""

    __slots__ = ("_rates", "_sizes", "slow", "versions")

    def __init__(self) -> None:
        self._sizes: dict[str, int] = {}
        self._rates: list[float] = []  # bytes/s of the last GETs of more than a part
        self.slow = False
        self.versions = True  # cleared by answers without strong ETags: parts not joined

    def timed(self, size: int, seconds: float, part: int) -> None:
        """A GET of ``size`` bytes took ``seconds``: if more than a ``part``, judged with the
        last ones."""
        if size > part:
            self._rates = [*self._rates[1 - _JUDGED :], size / max(seconds, 1e-9)]
            self.slow = len(self._rates) == _JUDGED and max(self._rates) < SLOW_LINK

    def timed_parts(self, size: int, seconds: float, parts: int = 1) -> None:
        """An object of ``size`` bytes read in ``parts`` parts at once took ``seconds``: three
        times :data:`SLOW_LINK` or faster, and each part's connection :data:`SLOW_LINK` or
        faster, the connections are not slow after all (judged anew). (A cloud store's 8
        parts of 4 MiB come at ~400 MB/s, each connection at ~50: they stay in parts.)"""
        if size >= SLOW_LINK * seconds * max(3, parts):
            self.slow = False
            self._rates = []

    def hint(self, key: str) -> int | None:
        """The size of the last object read whole in ``key``'s array (``None``: none yet)."""
        return self._sizes.get(array_of(key))

    def note(self, key: str, size: int) -> None:
        """Remember that ``key`` has ``size`` bytes."""
        if len(self._sizes) >= _MAX_ARRAYS:
            self._sizes.clear()
        self._sizes[array_of(key)] = size


def part_bounds(size: int, part: int) -> list[tuple[int, int]]:
    """``[start, end)`` of the fewest equal parts of at most ``part`` bytes covering
    ``[0, size)`` (``size > 0``)."""
    count = math.ceil(size / part)
    each = math.ceil(size / count)
    return [(start, min(start + each, size)) for start in range(0, size, each)]


async def get_in_parts(
    get: PartGet, bounds: list[tuple[int, int]]
) -> tuple[Buffer | None, str | None] | None:
    """An object read as the ranges ``bounds`` (of its expected size), all at once by
    ``get`` (a store's ranged GET with the answer's ETag, under its limiter and retries); the
    last part reads on to the object's end.

    A part shorter than asked (the object is smaller than expected) ends the object: the
    later parts are cancelled, and their failures (ranges past its end) ignored. ``None``:
    read it in one GET instead (the parts' ETags differ or are unknown: weak, none; the
    object vanished between parts, or a part failed as one past the end does: the first, an
    empty object; one right after a full one, an object ending exactly there; or a real
    failure, which the one GET then raises). Failures that no range past the end raises are
    raised, the other parts cancelled.
    """
    count = len(bounds)
    got: list[tuple[Buffer | None, str | None] | None] = [None] * count
    failed: dict[int, Exception] = {}
    scopes = [anyio.CancelScope() for _ in range(count)]

    def drop_after(i: int) -> None:
        for scope in scopes[i + 1 :]:
            scope.cancel()

    async def one(i: int) -> None:
        start, end = bounds[i]
        with scopes[i]:
            try:
                data, tag = await get(start, None if i == count - 1 else end)
            except Exception as exc:  # noqa: BLE001 - judged below, with the other parts
                failed[i] = exc
                drop_after(i)
                return
            got[i] = data, tag
            if data is None or len(data) < end - start:
                drop_after(i)  # (the object ends here: the later parts lie past it)

    async with anyio.create_task_group() as tg:
        for i in range(count):
            tg.start_soon(one, i)
    return _joined(bounds, got, failed)


def _joined(
    bounds: list[tuple[int, int]],
    got: list[tuple[Buffer | None, str | None] | None],
    failed: dict[int, Exception],
) -> tuple[Buffer | None, str | None] | None:
    """The object from its parts' answers (see :func:`get_in_parts`)."""
    bodies: list[Buffer] = []
    tags: set[str | None] = set()
    for i, (start, end) in enumerate(bounds):
        exc = failed.get(i)
        if exc is not None:
            if type(exc) is not StoreError:
                raise exc
            # (all parts before it full: an object ending at its start? the first part: an
            # empty object, whose byte 0 a range asks for in vain)
            return None
        answer = got[i]
        assert answer is not None  # (only parts after a short or failed one are cancelled)
        data, tag = answer
        if data is None:
            return (None, None) if i == 0 else None  # (missing; or deleted meanwhile)
        bodies.append(data)
        tags.add(tag)
        if len(data) < end - start:
            break
    if len(bodies) > 1 and (len(tags) > 1 or None in tags):
        return None  # rewritten between its parts, or no strong ETag to tell
    body = bodies[0] if len(bodies) == 1 else memoryview(b"".join(bodies))
    return body, tags.pop()
