"""``seeing_versions``: the versions of the objects that reads got, told by their GETs.

A caller that needs the versions of the objects a read used (the tile server's ETags) reads
inside ``with seeing_versions() as seen:``; every ``get``, ``get_ranges``, ``get_many`` and
``get_with_version`` of a store with versions made in that context (and in the tasks started
from it) then reads the answer's version and notes it in ``seen``, at no extra request. Reads
outside such a context pay one context-variable look-up per request.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["VersionsSeen", "seeing", "seeing_versions"]


class VersionsSeen:
    """The version of each object read (``None``: absent), as the GETs told it. An object
    a GET could not tell the version of (a weak ETag, a decoded body), or whose GETs told two
    versions (rewritten between them), is unknown: :meth:`knows` is false."""

    __slots__ = ("_unsure", "_versions", "closed")

    def __init__(self) -> None:
        self._versions: dict[str, str | None] = {}
        self._unsure: set[str] = set()
        #: set when the block ends: a task it started that outlives it notes nothing more
        self.closed = False

    def note(self, key: str, version: str | None, present: bool) -> None:
        """A GET of ``key`` answered: ``present`` (with ``version``, ``None``: unknown) or not."""
        if self.closed:
            return
        if present and version is None:
            self._unsure.add(key)
            return
        told = version if present else None
        if key in self._versions and self._versions[key] != told:
            self._unsure.add(key)
        self._versions[key] = told

    def knows(self, key: str) -> bool:
        """Whether a GET told the version of ``key`` (or that it is absent), and no other."""
        return key in self._versions and key not in self._unsure

    def version(self, key: str) -> str | None:
        """The version of ``key`` a GET told (``None``: absent); only where :meth:`knows`."""
        return self._versions[key]


_SEEN: ContextVar[VersionsSeen | None] = ContextVar("ngio_async_versions_seen", default=None)

seeing = _SEEN.get
"""The :class:`VersionsSeen` the reads of this context note into (``None``: none)."""


@contextmanager
def seeing_versions() -> Iterator[VersionsSeen]:
    """Note the versions the GETs made inside the block (and in the tasks it starts) get."""
    seen = VersionsSeen()
    token = _SEEN.set(seen)
    try:
        yield seen
    finally:
        seen.closed = True
        _SEEN.reset(token)
