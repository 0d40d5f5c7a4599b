"""The public ``open`` / ``open_async``: OME-Zarr anywhere, and TIFF / OME-TIFF files read-only.

This top-layer module routes a local ``.tif`` / ``.tiff`` file to the TIFF-backed dataset of
:mod:`ngio_async.convert` (regions, tiles, numpy, dask, one level); everything else is OME-Zarr.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from ._errors import ReadOnlyError
from ._sync_api import SyncDataset, open as _open_zarr
from .images import open_async as _open_zarr_async
from .images._dataset import _Opening

if TYPE_CHECKING:
    from ._limits import Limits
    from .images import Dataset

__all__ = ["open", "open_async"]


def _is_tiff(url: Any) -> bool:
    """A TIFF by its name (see :func:`~ngio_async.convert._tiff.is_tiff_name`); a local
    directory so named is OME-Zarr."""
    from .convert._tiff import is_tiff_name

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


def open_async(url: Any, *, limits: Limits | None = None, **options: Any) -> _Opening[Dataset]:
    """Open an image: ``ds = await open_async(url)`` or ``async with open_async(url) as ds``.

    OME-Zarr (any store, see :func:`ngio_async.images.open_async` for the options; a URL of
    the group's ``zarr.json`` / ``.zattrs`` opens the group) or a
    TIFF / OME-TIFF, local or on a store by URL (read-only; option ``series``, and the store's
    options for a URL).
    """
    if _is_tiff(url):
        from .convert._tiffds import open_tiff_async

        _tiff_mode(url, options)
        path = os.fspath(url).removeprefix("file://")
        return _Opening(lambda: open_tiff_async(path, limits=limits, **options))
    return _open_zarr_async(_group_url(url), limits=limits, **options)


def open(url: Any, *, limits: Limits | None = None, **options: Any) -> SyncDataset:
    """The blocking :func:`open_async`, for scripts: a :class:`~ngio_async.SyncDataset`."""
    if _is_tiff(url):
        from . import formats

        _tiff_mode(url, options)
        result: SyncDataset = formats.open(url, limits=limits, **options)
        result._reopen = ("any", url, {"limits": limits, **options})
        return result
    return _open_zarr(_group_url(url), limits=limits, **options)
