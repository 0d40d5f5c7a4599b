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

__version__ = "0.1.0"

__all__ = [
    "ClosedError",
    "CodecError",
    "Limits",
    "MetadataError",
    "NgioError",
    "NotFoundError",
    "PermissionDeniedError",
    "StoreError",
    "StoreTimeoutError",
    "UnsupportedError",
    "__version__",
]
