"""The blocking twins of an image's and a plate's tables."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from .sync import Runner
    from .tables import PlateTables, Roi, Table, Tables

__all__ = ["SyncPlateTables", "SyncTables"]

_T = TypeVar("_T", bound="SyncTables")


class SyncTables:
    """Tables, blocking: ``ds.tables.names()``, ``ds.tables.read(name)``, ``rois``, ``write_rois``,
    ``write_features``, ``write``, ``delete`` (see :class:`ngio_async.tables.Tables`)."""

    def __init__(self, runner: Runner, tables: Tables, owner: object = None) -> None:
        self._runner = runner
        self._tables = tables
        # the blocking dataset (or plate) they are of: kept while they are used, else it
        # could be collected (and closed) meanwhile: ``ngio_async.open(url).tables.read(n)``
        self._owner = owner

    def names(self, type: str | None = None) -> list[str]:
        return self._runner.call(self._tables.names, type)

    def read(self, name: str) -> Table:
        return self._runner.call(self._tables.read, name)

    def rois(self, name: str) -> list[Roi]:
        return self._runner.call(self._tables.rois, name)

    def write_rois(self, name: str, rois: Any, **options: Any) -> None:
        self._runner.call(lambda: self._tables.write_rois(name, rois, **options))

    def write_features(self, name: str, columns: Any, **options: Any) -> None:
        self._runner.call(lambda: self._tables.write_features(name, columns, **options))

    def write(self, name: str, table: Any, **options: Any) -> None:
        self._runner.call(lambda: self._tables.write(name, table, **options))

    def delete(self, name: str, *, missing_ok: bool = False) -> None:
        self._runner.call(lambda: self._tables.delete(name, missing_ok=missing_ok))

    def __iter__(self) -> Any:
        return iter(self.names())

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickles as its dataset's (or plate's) ``tables``: the dataset pickles by reference
        (opened again where it lands, on first use; see ``SyncDataset``)."""
        if self._owner is None:
            raise TypeError(f"{self!r} cannot be pickled: it holds no dataset or plate")
        return (_tables_of, (type(self), self._owner))

    if not TYPE_CHECKING:  # (mypy: no blanket attribute access on SyncTables)

        def __getattr__(self, name: str) -> Any:
            # reached only for what unpickled tables lack: their dataset opens now
            if name in ("_runner", "_tables") and "_owner" in self.__dict__:
                opened = self._owner.tables
                self._runner, self._tables = opened._runner, opened._tables
                return object.__getattribute__(self, name)
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


class SyncPlateTables(SyncTables):
    """A plate's tables, blocking: as :class:`SyncTables`, and ``image_names``,
    ``concatenate`` (see :class:`ngio_async.tables.PlateTables`)."""

    _tables: PlateTables

    def image_names(self, acquisition: int | None = None, **options: Any) -> list[str]:
        return self._runner.call(lambda: self._tables.image_names(acquisition, **options))

    def concatenate(self, name: str, **options: Any) -> Table:
        return self._runner.call(lambda: self._tables.concatenate(name, **options))


def _tables_of(cls: type[_T], owner: object) -> _T:
    """Unpickle tables of ``owner`` (an unpickled dataset or plate): no I/O until first use."""
    tables = cls.__new__(cls)
    tables._owner = owner
    return tables
