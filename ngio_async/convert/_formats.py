"""The format registry: readers that open a URL as a dataset (``ngio_async.formats``).

A reader satisfies :class:`Reader`: ``can_read(url) -> bool`` (cheap: a suffix or a probe of the
local path, no network I/O) and ``async open(url, **options)``, which returns an OME-Zarr
:class:`~ngio_async.Dataset` or an :class:`ImageSource` (a read-only image: axes, shape, dtype,
calibration, channels and ``async read(region)``). OME-Zarr is built in, TIFF / OME-TIFF is the
second reader; third parties add readers through the ``ngio_async.formats`` entry point group
(an entry point loads a reader instance or a class constructed without arguments), or at run time
with :func:`register`. Readers are asked in order: registered, entry points, TIFF, OME-Zarr
(the fallback for any other URL).
"""

from __future__ import annotations

import os
import sys
import warnings
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .._errors import UnsupportedError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = [
    "ENTRY_POINT_GROUP",
    "ImageSource",
    "OmeZarrReader",
    "Reader",
    "find_reader",
    "open",
    "open_dataset",
    "readers",
    "register",
    "unregister",
]

ENTRY_POINT_GROUP = "ngio_async.formats"


@runtime_checkable
class ImageSource(Protocol):
    """A read-only image a converter can stream from (what non-Zarr readers return).

    ``axes`` are NGFF axis names in NGFF order (``t``, ``c``, then ``z``, ``y``, ``x``);
    ``scale``, ``units`` and ``translation`` have one value per axis; ``channels`` is ``None``
    or one dict per channel (``label``, ``color``). ``read(region)`` returns exactly
    ``shape[region]`` (one step-1 slice per axis) and must only read what the region needs.
    """

    url: str
    axes: tuple[str, ...]
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    scale: tuple[float, ...]
    units: tuple[str | None, ...]
    translation: tuple[float, ...]
    channels: list[dict[str, Any]] | None
    name: str | None

    async def read(self, region: tuple[slice, ...]) -> NDArray[Any]: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class Reader(Protocol):
    """A format reader: ``can_read(url)`` and ``await open(url, **options)``."""

    name: str

    def can_read(self, url: Any) -> bool: ...

    async def open(self, url: Any, **options: Any) -> Any: ...


class OmeZarrReader:
    """OME-Zarr 0.4 / 0.5 on any store: :func:`ngio_async.open_async` (the fallback reader)."""

    name = "ome-zarr"

    def can_read(self, url: Any) -> bool:
        from ..stores._zip import zip_target

        if not isinstance(url, str | os.PathLike):
            return True  # a store object
        text = os.fspath(url).rstrip("/")
        if text.endswith((".zarr", ".zarr/")):
            return True
        if "://" not in text or text.startswith("file://"):
            path = text.removeprefix("file://")
            if zip_target(path) is not None:  # a zip file (zipped OME-Zarr, .ozx)
                return True
            return any(os.path.exists(os.path.join(path, k)) for k in ("zarr.json", ".zattrs"))
        return True  # remote URLs: only OME-Zarr is read remotely

    async def open(self, url: Any, **options: Any) -> Any:
        from ..images import open_async

        return await open_async(url, **options)


_registered: list[Reader] = []


def register(reader: Reader) -> None:
    """Add a reader (asked before the entry points and the built-in readers)."""
    if not isinstance(reader, Reader):
        raise TypeError(f"{reader!r} is not a Reader (needs name, can_read, open)")
    _registered.insert(0, reader)


def unregister(reader: Reader) -> None:
    """Remove a reader added with :func:`register` (no error when it is not registered)."""
    if reader in _registered:
        _registered.remove(reader)


def _entry_point_readers() -> list[Reader]:
    """The readers of the installed entry points; one that fails to load (a plugin broken by
    an upgrade) is skipped with a warning naming it: it must not break every conversion."""
    found: list[Reader] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
            reader = obj() if isinstance(obj, type) else obj
        except Exception as exc:  # noqa: BLE001 - any import or constructor error of a plugin
            warnings.warn(
                f"ngio_async.formats: skipping the reader {ep.name!r} ({ep.value}): "
                f"{type(exc).__name__}: {exc}",
                RuntimeWarning,
                stacklevel=2,
            )
            continue
        if isinstance(reader, Reader):
            found.append(reader)
    return found


#: the entry points' readers and the fingerprint of ``sys.path`` they were listed at: listing
#: reads every installed distribution's metadata (~12 ms with 160 of them, several times the
#: opening of a local image), so it is done again only when ``sys.path`` or one of its
#: directories changed (a package installed or removed)
_entry_points_seen: tuple[tuple[Any, ...], list[Reader]] | None = None


def _path_fingerprint() -> tuple[Any, ...]:
    def mtime(entry: str) -> int | None:
        try:
            return os.stat(entry or ".").st_mtime_ns
        except OSError:
            return None

    return tuple((entry, mtime(entry)) for entry in sys.path)


def plugin_readers() -> list[Reader]:
    """The readers asked before the built-in ones: those added with :func:`register` (the
    last first), then those of the ``ngio_async.formats`` entry points."""
    global _entry_points_seen
    fingerprint = _path_fingerprint()
    if _entry_points_seen is None or _entry_points_seen[0] != fingerprint:
        _entry_points_seen = (fingerprint, _entry_point_readers())
    return [*_registered, *_entry_points_seen[1]]


def readers() -> list[Reader]:
    """Every reader, in the order they are asked."""
    from ._tiff import TiffReader

    return [*plugin_readers(), TiffReader(), OmeZarrReader()]


async def open_dataset(url: Any, **options: Any) -> Any:
    """Open ``url`` as a :class:`~ngio_async.Dataset` whatever its format.

    OME-Zarr: :func:`ngio_async.open_async` (``options`` as there). TIFF / OME-TIFF: a
    read-only one-level dataset reading the file in worker threads (options ``series``,
    ``limits``). Another reader's :class:`ImageSource` becomes a read-only one-level dataset
    reading through it (closed with it).
    """
    reader = find_reader(url)
    if reader.name == "tiff":
        from ._tiffds import open_tiff_async

        return await open_tiff_async(url, **options)
    opened = await reader.open(url, **options)
    from ..images import Dataset

    if isinstance(opened, Dataset):
        return opened
    if isinstance(opened, ImageSource):
        from ._tiffds import source_dataset

        return await source_dataset(opened, options.get("limits"))
    await opened.aclose()
    raise UnsupportedError(
        f"reader {reader.name!r} gives neither a Dataset nor an ImageSource for {url!r}"
    )


def open(url: Any, **options: Any) -> Any:
    """The blocking :func:`open_dataset`: a :class:`~ngio_async.SyncDataset` for any format."""
    from .._sync_api import _run_creating

    return _run_creating(lambda: open_dataset(url, **options))


def find_reader(url: Any) -> Reader:
    """The first reader that can read ``url``.

    :raises UnsupportedError: no reader accepts it.
    """
    for reader in readers():
        if reader.can_read(url):
            return reader
    raise UnsupportedError(f"no reader for {url!r}")
