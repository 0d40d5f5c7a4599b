"""Format conversion: OME-Zarr <-> OME-Zarr (0.4 / 0.5, layout, codec, store), TIFF / OME-TIFF
-> OME-Zarr, batches; and the reader registry (:mod:`ngio_async.formats`)."""

from __future__ import annotations

from ._batch import convert_many, convert_many_sync, output_name
from ._convert import convert, convert_sync
from ._formats import ImageSource, OmeZarrReader, Reader, find_reader, readers, register, unregister
from ._jobs import ConvertResult
from ._resume import is_complete
from ._tiff import TiffReader, TiffSource

__all__ = [
    "ConvertResult",
    "ImageSource",
    "OmeZarrReader",
    "Reader",
    "TiffReader",
    "TiffSource",
    "convert",
    "convert_many",
    "convert_many_sync",
    "convert_sync",
    "find_reader",
    "is_complete",
    "output_name",
    "readers",
    "register",
    "unregister",
]
