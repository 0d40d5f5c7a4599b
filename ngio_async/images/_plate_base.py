"""``_PlateBase``: a :class:`~ngio_async.images.Plate`'s state and description (rows, columns,
wells, acquisitions), the check before a write, and the names of rows, columns and wells
resolved against the plate as read (read again once when one is not there: another writer
may have added it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from .._errors import NotFoundError, ReadOnlyError, UnsupportedError
from ..meta._ngff_old import refuse_write
from ._node import StoreNode
from ._open import join
from ._opening import read_only_advice
from ._plate_docs import _read_plate
from ._plate_layout import PlateWell, _split_well, _where

if TYPE_CHECKING:
    from collections.abc import Callable

    from .._limits import Limits
    from ..meta import Acquisition, Plate as PlateMeta
    from ._opening import Mode


_T = TypeVar("_T")


class _PlateBase(StoreNode):
    """The state, description and name resolution of a :class:`Plate` (its base)."""

    root: str
    metadata: PlateMeta
    limits: Limits
    mode: Mode
    _version: str
    _wells: dict[str, PlateWell]
    _plate_lock: anyio.Lock | None
    _well_locks: dict[str, anyio.Lock]
    _derived: set[int] | None

    def _check_writable(self, *, ngff: bool = True) -> None:
        """Refuse a write before any I/O: the plate is closed or read-only, or (``ngff``: the
        write adds NGFF metadata, a field or a well) it is NGFF 0.6. Tables may be written
        into a 0.6 plate: they leave its NGFF metadata alone; nothing into a 0.1 - 0.3 one."""
        self._check_open()
        if self.mode != "r+":
            raise ReadOnlyError(
                f"{self.url} is open read-only (mode='r'){read_only_advice(self.store)}"
            )
        refuse_write(self.version, self.url, "plate")  # NGFF 0.1 - 0.3: read only, tables too
        if ngff and self.version not in ("0.4", "0.5"):  # 0.6 is read, not written
            raise UnsupportedError(
                f"{self.url}: cannot write to an NGFF {self.version} plate (ngio_async writes "
                "NGFF 0.4 and 0.5; a field added would be a 0.5 image in a 0.6 hierarchy)"
            )

    @property
    def url(self) -> str:
        return _where(self.store, self.root)

    @property
    def version(self) -> str:
        """The NGFF version, ``"0.4"`` or ``"0.5"`` (the fields added follow it)."""
        return self._version

    @property
    def name(self) -> str | None:
        return self.metadata.name

    @property
    def rows(self) -> list[str]:
        return [r.name for r in self.metadata.rows]

    @property
    def columns(self) -> list[str]:
        return [c.name for c in self.metadata.columns]

    @property
    def wells(self) -> list[str]:
        """The paths (``"A/1"``) of the wells listed, in metadata order (those with fields)."""
        return [w.path for w in self.metadata.wells]

    @property
    def acquisitions(self) -> list[Acquisition]:
        return list(self.metadata.acquisitions or ())

    @property
    def field_count(self) -> int | None:
        """NGFF's ``field_count``: the most fields of any well (``None``: not stated); raised
        by :meth:`add_image` when a well gets more, left by :meth:`remove_image`."""
        return self.metadata.field_count

    def __repr__(self) -> str:
        state = " closed" if self.closed else ""
        return (
            f"<Plate{state} {self.url} ngff={self.version} "
            f"{len(self.metadata.rows)}x{len(self.metadata.columns)} wells={len(self.wells)}>"
        )

    def _numbered(self, column: Any, name: str) -> str:
        """The plate's column ``name``, or for an int ``column`` the plate's one column of that
        number when its names are zero-padded (ngio's ``"01"``), as ngio takes ``column=1``."""
        if name in self.columns or isinstance(column, bool) or not isinstance(column, int):
            return name
        same = [c for c in self.columns if c.isdigit() and int(c) == column]
        return same[0] if len(same) == 1 else name

    async def _listed(self, row: Any, column: Any) -> str:
        """The path of the listed well ``(row, column)``; one not listed in the plate as read
        is looked for again in its document read again (another writer may have listed it).

        :raises NotFoundError: the plate does not list it (the well named).
        """
        r, c = _split_well(row, column)

        def find() -> str:
            path = f"{r}/{self._numbered(column, c)}"
            if path not in self.wells:
                shown = ", ".join(self.wells[:8]) + (", ..." if len(self.wells) > 8 else "")
                raise NotFoundError(
                    f"no well {path!r} in plate {self.url} (wells: {shown or 'none'})",
                    url=self.store.url,
                    key=join(self.root, path),
                )
            return path

        return await self._or_reread(find)

    async def _or_reread(self, resolve: Callable[[], _T]) -> _T:
        """``resolve()`` (checks against the plate as read); when it refuses (``ValueError``,
        :class:`NotFoundError`: no such row, column, well, acquisition), the same after the
        plate's document is read again once: another writer may have added it since."""
        try:
            return resolve()
        except (ValueError, NotFoundError):
            await self._reread()
        return resolve()

    async def _reread(self) -> None:
        """The plate's metadata read again from its document (serialised with its edits: an
        edit's result is never replaced by an older read)."""
        async with self._lock():
            self.metadata, _ = await _read_plate(self.store, self.root)
            self._derived = None  # read again when asked for

    def _lock(self) -> anyio.Lock:
        if self._plate_lock is None:
            self._plate_lock = anyio.Lock()
        return self._plate_lock
