"""Copying an image's (or plate's) ngio / Fractal tables into the output.

Each table the source's ``tables`` group lists is read with the tables API and written with
it into the output's version (zarr v2 for NGFF 0.4, v3 for 0.5, in the layout ngio 1.1.3
writes): the same type, backend and attributes (``region``, ``instance_key``, ...), row names
and columns. One code path for every conversion, same version or not, on any store (a byte
copy would need a listing, which HTTP has not, and could not change zarr version). Tables are
written before the group metadata of their image (or plate), which is written last: an
interrupted conversion leaves no complete-looking output, and its re-run replaces them.

A table the API cannot read (an unknown backend, parquet without pyarrow, malformed data) or
write (a name the output refuses: zarr v3's reserved ``__`` prefix, ...) is left out with a :class:`~ngio_async.meta.MetadataWarning` naming it and why; the rest of the
conversion goes on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from .._errors import MetadataError, NotFoundError, UnsupportedError
from ..tables import Tables

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .._workers import Workers
    from ..images import Dataset
    from ..stores import AsyncStore


class _Target:
    """The owner of the output's ``tables`` group at ``root`` (an image or a plate not
    written yet), as :class:`~ngio_async.tables.Tables` needs one: where, and its workers."""

    def __init__(self, store: AsyncStore, root: str, workers: Workers) -> None:
        self.store = store
        self.root = root
        self._workers = workers

    @property
    def url(self) -> str:
        return f"{self.store.url.rstrip('/')}/{self.root}" if self.root else self.store.url

    def _check_open(self) -> None:
        """The output is being written: open."""

    def _check_writable(self, *, ngff: bool = True) -> None:
        """The output is written by the conversion: writable."""


async def copy_tables(
    src: Tables, store: AsyncStore, root: str, version: str, workers: Workers
) -> list[str]:
    """Copy every table ``src`` lists into the ``tables`` group at ``root`` of ``store`` (NGFF
    ``version``), one at a time; returns those left out, each ``"<url>: <why>"``."""
    dst = Tables(cast("Dataset", _Target(store, root, workers)), version=version)
    left: list[str] = []
    try:
        names = await src.names()
    except MetadataError as exc:  # the listing itself is malformed
        return [f"{src._url()}: {exc}"]
    for name in names:
        try:
            table = await src.read(name)
            # refused before anything is written: a name zarr v3 reserves, a column type
            await dst.write(name, table, backend=table.backend or "anndata", overwrite=True)
        except (UnsupportedError, ValueError, TypeError, NotFoundError) as exc:
            left.append(f"{src._url(name)}: {exc}")
    return left


def tables_left_out(left: Sequence[str]) -> None:
    """Warn that the tables ``left`` (see :func:`copy_tables`) are not in the output."""
    import warnings

    from ..meta import MetadataWarning

    shown = "; ".join(left[:_SHOWN])
    more = f"; and {len(left) - _SHOWN} more" if len(left) > _SHOWN else ""
    warnings.warn(
        f"{len(left)} table(s) cannot be converted and are left out of the output (the other "
        f"tables are converted): {shown}{more}",
        MetadataWarning,
        stacklevel=3,
    )


#: the tables left out a warning names (with why), at most
_SHOWN = 10
