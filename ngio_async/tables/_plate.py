"""The tables of an HCS plate (``plate.tables``): those in the plate group's own ``tables/``
group, as ngio 1.1.3 keeps them (list, read, write, delete as for an image), and the wells'
image tables of one name, concatenated as ngio's ``concatenate_image_tables`` does."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .._errors import NotFoundError, UnsupportedError
from ._model import Table
from ._tables import Tables

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import NDArray

    from ..images._plate import Plate

__all__ = ["PlateTables"]

#: the columns each concatenated row gets: where its image is (as ngio names them)
WHERE = ("row", "column", "path_in_well")


class PlateTables(Tables):
    """The plate's own tables (``names``, ``read``, ``write``, ... as :class:`Tables`), and
    :meth:`image_names` / :meth:`concatenate` over its wells' images."""

    def __init__(self, plate: Plate, *, version: str) -> None:
        super().__init__(plate, version=version)
        self._plate = plate

    def _check_writable(self, name: str, what: str) -> None:
        """As for an image's tables; a 0.6 plate takes tables too (its NGFF metadata is left
        alone: only the ``tables`` group and its listing are written)."""
        self._plate._check_writable(ngff=False)
        store = self._plate.store
        if not store.supports_writes:
            raise UnsupportedError(
                f"table {name!r} cannot be {what}: {self._plate.url} is on a read-only store "
                f"({type(store).__name__} takes no writes); nothing was changed"
            )

    async def _image_tables(
        self, name: str | None, acquisition: int | None, strict: bool, type: str | None = None
    ) -> list[tuple[tuple[str, str, str], Any]]:
        """``((row, column, field), what)`` per field in metadata order: the table ``name``
        read (``None`` where missing and not ``strict``), or with ``name=None`` the names of
        its tables (of ``type``)."""
        from ..images._run_all import _run_all

        plate = self._plate
        paths = await plate.image_paths(acquisition)
        found: dict[int, Any] = {}

        async def one(i: int) -> None:
            well, field = paths[i]
            async with await plate.image(well, field=field, mode="r") as ds:
                if name is None:
                    found[i] = await ds.tables.names(type)
                elif strict or name in await ds.tables.names():
                    found[i] = await ds.tables.read(name)
                else:
                    found[i] = None

        await _run_all(range(len(paths)), one, plate.limits.max_requests)
        return [((*w.split("/"), f), found[i]) for i, (w, f) in enumerate(paths)]  # type: ignore[misc]

    async def image_names(
        self,
        acquisition: int | None = None,
        *,
        type: str | None = None,
        mode: Literal["common", "all"] = "common",
    ) -> list[str]:
        """Names of the tables of the plate's images (one ``acquisition``, or all): those
        every image has (``mode="common"``) or any has (``"all"``), in first-seen order;
        ``type``: only tables of that type (``"feature_table"``)."""
        if mode not in ("common", "all"):
            raise ValueError(f"mode must be 'common' or 'all', not {mode!r}")
        listed = [names for _, names in await self._image_tables(None, acquisition, True, type)]
        seen = list(dict.fromkeys(n for names in listed for n in names))
        if mode == "common":
            seen = [n for n in seen if all(n in names for names in listed)]
        return seen

    async def concatenate(
        self,
        name: str,
        *,
        acquisition: int | None = None,
        strict: bool = True,
        index_key: str | None = None,
    ) -> Table:
        """Table ``name`` of every image of the plate (one ``acquisition``, or all), one after
        another in metadata order, each row tagged with its image's ``row``, ``column`` and
        ``path_in_well`` (string columns, last), as ngio's ``concatenate_image_tables`` gives
        it. ``index_key``: the rows are named ``<row>_<column>_<path_in_well>_<old row name>``
        under that key (the old row names become a column, first); else they keep their names
        (as strings: several images may repeat one).
        The type and attributes are the first table's.

        :raises NotFoundError: an image lacks the table (``strict``), or none has it.
        """
        tables = [
            (where, t)
            for where, t in await self._image_tables(name, acquisition, strict)
            if t is not None
        ]
        if not tables:
            raise NotFoundError(
                f"no image of plate {self._plate.url} has a table {name!r}",
                url=self._plate.store.url,
                key=name,
            )
        return _concatenated(name, tables, index_key)


def _concatenated(
    name: str, tables: Sequence[tuple[tuple[str, str, str], Table]], index_key: str | None
) -> Table:
    first = tables[0][1]
    keys: list[str] = []
    parts: list[dict[str, NDArray[Any]]] = []
    rows: list[Any] = []
    for where, t in tables:
        cols: dict[str, NDArray[Any]] = {}
        if index_key is not None and t.index_key is not None:
            cols[t.index_key] = t.index
        cols |= t.columns
        for k, v in zip(WHERE, where, strict=True):
            cols[k] = np.full(len(t), v, dtype=object)
        tag = "_".join(where)
        if index_key is None:
            rows.extend(str(v) for v in t.index.tolist())
        elif t.index_key is None:  # no row names to keep: the image's tag only, as ngio does
            rows.extend([tag] * len(t))
        else:
            rows.extend(f"{tag}_{v}" for v in t.index.tolist())
        keys.extend(k for k in cols if k not in keys)
        parts.append(cols)
    columns = {k: _stacked([p.get(k) for p in parts], [len(t) for _, t in tables]) for k in keys}
    attrs = dict(first.attrs) | {"index_type": "str"}  # row names are strings, as ngio's
    if index_key is not None:
        attrs["index_key"] = index_key
    index = np.empty(len(rows), dtype=object)
    index[:] = rows
    key = index_key if index_key is not None else first.index_key
    return Table(name, first.type, index, columns, attrs, key, _dtypes(tables))


def _dtypes(tables: Sequence[tuple[tuple[str, str, str], Table]]) -> dict[str, str]:
    """The pandas dtypes the concatenation keeps, as pandas' ``concat`` does: a column's when
    every table gives it that one (categories: with the same values)."""
    first = tables[0][1]
    out = {}
    for k, dtype in first.dtypes.items():
        if any(t.dtypes.get(k) != dtype for _, t in tables):
            continue
        if dtype == "category":
            values = [{v for v in t.columns[k].tolist() if v is not None} for _, t in tables]
            if any(v != values[0] for v in values):
                continue
        out[k] = dtype
    return out


def _stacked(pieces: list[NDArray[Any] | None], lengths: list[int]) -> NDArray[Any]:
    """One column of the pieces (a table lacking it: NaN in a float column, else ``None``)."""
    present = [p for p in pieces if p is not None]
    floats = all(p.dtype.kind == "f" for p in present)
    filled = []
    for p, n in zip(pieces, lengths, strict=True):
        if p is not None:
            filled.append(p)
        elif floats:
            filled.append(np.full(n, np.nan))
        else:
            filled.append(np.full(n, None, dtype=object))
    kinds = {p.dtype.kind for p in filled}
    if len(kinds) > 1 and "O" in kinds:
        out = np.empty(sum(lengths), dtype=object)
        out[:] = [v for p in filled for v in p.tolist()]
        return out
    return np.concatenate(filled)
