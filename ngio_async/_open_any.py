"""The public ``open`` / ``open_async``: OME-Zarr anywhere, TIFF / OME-TIFF files and the formats
of reader plugins, read-only.

This top-layer module asks the format readers (:mod:`ngio_async.formats`) in the order
``convert`` asks them: the registered readers and those of the ``ngio_async.formats`` entry
points first, then TIFF, then OME-Zarr. A plugin's reader opens what it reads (an
:class:`~ngio_async.formats.ImageSource` becomes a read-only one-level dataset reading through
it); a TIFF goes to the TIFF-backed dataset of :mod:`ngio_async.convert` (regions, tiles, numpy,
dask, its levels); everything else is OME-Zarr.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import anyio

from ._errors import NotFoundError, ReadOnlyError, UnsupportedError
from ._sync_api import SyncDataset, _run_creating, open as _open_zarr
from .images import Dataset, open_async as _open_zarr_async
from .images._opening import _Opening

if TYPE_CHECKING:
    from ._limits import Limits
    from .convert._formats import Reader

__all__ = ["open", "open_async"]


def _is_tiff(url: Any) -> bool:
    """A TIFF by its name (see :func:`~ngio_async.convert._tiffsets.is_tiff_name`); a local
    directory so named is OME-Zarr."""
    from .convert._tiffsets import is_tiff_name

    if not is_tiff_name(url):
        return False
    text = os.fspath(url)
    return ("://" in text and not text.startswith("file://")) or not os.path.isdir(
        text.removeprefix("file://")
    )


#: a group's metadata documents: a URL naming one (pasted from a browser) means its group
_GROUP_DOCUMENTS = ("/zarr.json", "/.zattrs", "/.zgroup")


def _group_url(url: Any) -> Any:
    """``url`` without a trailing group metadata document name (``.../img.zarr/zarr.json``;
    an http(s) URL keeps its query string: ``.../zarr.json?token=...``, sent with every
    request)."""
    if isinstance(url, str | os.PathLike):
        text = os.fspath(url)
        if not isinstance(text, str):
            return url
        if text.lower().startswith(("http://", "https://")) and "?" in text:
            parts = urlsplit(text)
            if parts.path.endswith(_GROUP_DOCUMENTS):
                return urlunsplit(parts._replace(path=parts.path.rsplit("/", 1)[0]))
        elif text.endswith(_GROUP_DOCUMENTS):
            return text.rsplit("/", 1)[0]
    return url


def _tiff_mode(url: Any, options: dict[str, Any]) -> None:
    """TIFFs open read-only: ``mode="r"`` is taken (and dropped), anything else refused."""
    mode = options.pop("mode", "r")
    if mode != "r":
        raise ReadOnlyError(
            f"{os.fspath(url)} is a TIFF: it opens read-only (mode='r'), not {mode!r}"
        )


# ------------------------------------------------------------------------------ plugin readers


def _plugin_reader(url: Any) -> Reader | None:
    """The reader ``convert`` would use for ``url`` when it is a plugin's (one added with
    :func:`ngio_async.formats.register`, else one of the ``ngio_async.formats`` entry points):
    they are asked first, in the same order. ``None``: the built-in TIFF or OME-Zarr readers
    decide (as does a store object, always OME-Zarr)."""
    from .convert._formats import plugin_readers

    if not isinstance(url, str | os.PathLike):
        return None
    for reader in plugin_readers():
        if reader.can_read(url):
            return reader
    return None


async def _open_with(
    reader: Reader, url: Any, limits: Limits | None, options: dict[str, Any]
) -> Dataset:
    """``url`` opened by a plugin's ``reader`` (with ``options``, as ``convert`` passes its
    source options): its :class:`Dataset` as is, its ``ImageSource`` as a one-level dataset."""
    from .convert._formats import ImageSource
    from .convert._tiffds import source_dataset

    opened = await reader.open(url, **options)
    if isinstance(opened, Dataset):
        return opened
    if isinstance(opened, ImageSource):
        return await source_dataset(opened, limits)
    close = getattr(opened, "aclose", None)
    if close is not None:
        with anyio.CancelScope(shield=True):
            await close()
    raise UnsupportedError(
        f"the format reader {reader.name!r} opened {os.fspath(url)} as a "
        f"{type(opened).__name__}, neither a Dataset nor an ImageSource"
    )


def _plugin_mode(reader: Reader, url: Any, options: dict[str, Any]) -> None:
    """What a plugin reads opens read-only: ``mode="r"`` is taken (and dropped), anything
    else refused."""
    mode = options.pop("mode", "r")
    if mode != "r":
        raise ReadOnlyError(
            f"{os.fspath(url)} is read by the format reader {reader.name!r}: it opens "
            f"read-only (mode='r'), not {mode!r}"
        )


def _refuse_unreadable_file(url: Any) -> None:
    """A local file (not a directory) that neither a plugin nor the TIFF reader takes: the
    error the zarr store gives (``NotFoundError``: no such directory), saying what is
    readable."""
    if not isinstance(url, str | os.PathLike):
        return
    text = os.fspath(url)
    if not isinstance(text, str) or ("://" in text and not text.startswith("file://")):
        return
    from .stores._zip import zip_target

    path = os.path.abspath(os.path.expanduser(text.removeprefix("file://")))
    if not os.path.isfile(path) or zip_target(path) is not None:  # (a zip file: .ozx)
        return
    from .convert._formats import plugin_readers
    from .stores._url_utils import file_url

    names = [r.name for r in plugin_readers()]
    plugins = f"; the format readers {names}" if names else ""
    raise NotFoundError(
        f"no such directory: {path} is a file that no reader opens (readable: OME-Zarr "
        f"directories and store URLs, TIFF / OME-TIFF files{plugins}; other formats need a "
        "reader: ngio_async.formats.register or the ngio_async.formats entry point group)",
        url=file_url(path),
    )


# ------------------------------------------------------------------------------ open
def open_async(url: Any, *, limits: Limits | None = None, **options: Any) -> _Opening[Dataset]:
    """Open an image: ``ds = await open_async(url)`` or ``async with open_async(url) as ds``.

    The format readers are asked as ``convert`` asks them: a plugin's reader
    (:func:`ngio_async.formats.register`, the ``ngio_async.formats`` entry points) that reads
    ``url`` opens it (with ``options``; read-only; an ``ImageSource`` it gives is a one-level
    dataset reading through it); else a TIFF / OME-TIFF, local or on a store by URL
    (read-only; option ``series``, and the store's options for a URL); else OME-Zarr (any
    store, see :func:`ngio_async.images.open_async` for the options; a URL of the group's
    ``zarr.json`` / ``.zattrs`` opens the group).
    """
    reader = _plugin_reader(url)
    if reader is not None:
        _plugin_mode(reader, url, options)
        return _Opening(lambda: _open_with(reader, url, limits, options))
    if _is_tiff(url):
        from .convert._tiffds import open_tiff_async

        _tiff_mode(url, options)
        path = os.fspath(url).removeprefix("file://")
        return _Opening(lambda: open_tiff_async(path, limits=limits, **options))
    url = _group_url(url)
    _refuse_unreadable_file(url)
    return _open_zarr_async(url, limits=limits, **options)


def open(url: Any, *, limits: Limits | None = None, **options: Any) -> SyncDataset:
    """The blocking :func:`open_async`, for scripts: a :class:`~ngio_async.SyncDataset`."""
    reader = _plugin_reader(url)
    if reader is not None:
        _plugin_mode(reader, url, options)
        result = _run_creating(lambda: _open_with(reader, url, limits, options))
        result._reopen = ("any", url, {"limits": limits, **options})
        return result
    if _is_tiff(url):
        from . import formats

        _tiff_mode(url, options)
        tiff: SyncDataset = formats.open(url, limits=limits, **options)
        tiff._reopen = ("any", url, {"limits": limits, **options})
        return tiff
    url = _group_url(url)
    _refuse_unreadable_file(url)
    return _open_zarr(url, limits=limits, **options)
