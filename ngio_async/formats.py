"""The format registry (readers; entry point group ``ngio_async.formats``).

See :mod:`ngio_async.convert._formats`; this module is its public name.
"""

from __future__ import annotations

from .convert._formats import (
    ENTRY_POINT_GROUP,
    ImageSource,
    OmeZarrReader,
    Reader,
    find_reader,
    open,
    open_dataset,
    readers,
    register,
    unregister,
)
from .convert._tiff import TiffReader, TiffSource

__all__ = [
    "ENTRY_POINT_GROUP",
    "ImageSource",
    "OmeZarrReader",
    "Reader",
    "TiffReader",
    "TiffSource",
    "find_reader",
    "open",
    "open_dataset",
    "readers",
    "register",
    "unregister",
]
