"""The blocking twins of an image's and a plate's tables."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .sync import Runner
    from .tables import PlateTables, Roi, Table, Tables

__all__ = ["SyncPlateTables", "SyncTables"]


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


class SyncPlateTables(SyncTables):
    """A plate's tables, blocking: as :class:`SyncTables`, and ``image_names``,
    ``concatenate`` (see :class:`ngio_async.tables.PlateTables`)."""

    _tables: PlateTables

    def image_names(self, acquisition: int | None = None, **options: Any) -> list[str]:
        return self._runner.call(lambda: self._tables.image_names(acquisition, **options))

    def concatenate(self, name: str, **options: Any) -> Table:
        return self._runner.call(lambda: self._tables.concatenate(name, **options))
