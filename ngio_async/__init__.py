"""ngio_async: asyncio-native streaming I/O for OME-Zarr (NGFF 0.4 / 0.5).

The library is asyncio-only: obstore, aiohttp and zarr's async API run on asyncio alone.
"""

from __future__ import annotations

from ._errors import (
    ChangedError,
    ClosedError,
    CodecError,
    ExistsError,
    MetadataError,
    NgioError,
    NotFoundError,
    PermissionDeniedError,
    ReadOnlyError,
    StoreError,
    StoreTimeoutError,
    UnsupportedError,
)
from ._limits import Limits
from ._open_any import open, open_async
from ._sync_api import (
    SyncDataset,
    SyncLabels,
    SyncLevel,
    SyncPlate,
    SyncWriter,
    create,
    create_like,
    create_plate,
    open_plate,
)
from .convert import ConvertResult, convert, convert_many, convert_many_sync, convert_sync
from .images import (
    Dataset,
    Labels,
    Level,
    LevelWriter,
    Plate,
    PlateWell,
    Stream,
    Tile,
    TileStream,
    create_async,
    create_like_async,
    create_plate_async,
    open_plate_async,
    stream,
)

__version__ = "0.1.0"

__all__ = [
    "ChangedError",
    "ClosedError",
    "CodecError",
    "ConvertResult",
    "Dataset",
    "ExistsError",
    "Labels",
    "Level",
    "LevelWriter",
    "Limits",
    "MetadataError",
    "NgioError",
    "NotFoundError",
    "PermissionDeniedError",
    "Plate",
    "PlateWell",
    "ReadOnlyError",
    "StoreError",
    "StoreTimeoutError",
    "Stream",
    "SyncDataset",
    "SyncLabels",
    "SyncLevel",
    "SyncPlate",
    "SyncWriter",
    "Tile",
    "TileStream",
    "UnsupportedError",
    "__version__",
    "convert",
    "convert_many",
    "convert_many_sync",
    "convert_sync",
    "create",
    "create_async",
    "create_like",
    "create_like_async",
    "create_plate",
    "create_plate_async",
    "open",
    "open_async",
    "open_plate",
    "open_plate_async",
    "stream",
]
