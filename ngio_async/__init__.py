"""ngio_async: asyncio-native streaming I/O for OME-Zarr (NGFF 0.4 / 0.5).

The library is asyncio-only: obstore, aiohttp and zarr's async API run on asyncio alone.
"""

from __future__ import annotations

from ._errors import (
    ClosedError,
    CodecError,
    MetadataError,
    NgioError,
    NotFoundError,
    PermissionDeniedError,
    StoreError,
    StoreTimeoutError,
    UnsupportedError,
)
from ._limits import Limits
from ._sync_api import SyncDataset, SyncLevel, open
from .images import Dataset, Level, Stream, Tile, TileStream, open_async, stream

__version__ = "0.1.0"

__all__ = [
    "ClosedError",
    "CodecError",
    "Dataset",
    "Level",
    "Limits",
    "MetadataError",
    "NgioError",
    "NotFoundError",
    "PermissionDeniedError",
    "StoreError",
    "StoreTimeoutError",
    "Stream",
    "SyncDataset",
    "SyncLevel",
    "Tile",
    "TileStream",
    "UnsupportedError",
    "__version__",
    "open",
    "open_async",
    "stream",
]
