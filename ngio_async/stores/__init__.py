"""Async byte stores: local, memory, S3, GCS, Azure (obstore) and plain HTTP (aiohttp).

Third-party I/O libraries (obstore, aiohttp) are imported only inside this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._base import (
    AsyncStore,
    Buffer,
    ByteRequest,
    ChangedError,
    CredentialsRefusedError,
    Edit,
    OffsetByteRequest,
    RangeByteRequest,
    SuffixByteRequest,
)
from ._coalesce import CoalescedRequest, coalesce_ranges
from ._instrumented import FaultInjector, InstrumentedStore
from ._local import LocalFileStore
from ._obstore import ObstoreStore
from ._url import load_backend, open_store

if TYPE_CHECKING:
    from ._http import HTTPStore

__all__ = [
    "AsyncStore",
    "Buffer",
    "ByteRequest",
    "ChangedError",
    "CoalescedRequest",
    "CredentialsRefusedError",
    "Edit",
    "FaultInjector",
    "HTTPStore",
    "InstrumentedStore",
    "LocalFileStore",
    "ObstoreStore",
    "OffsetByteRequest",
    "RangeByteRequest",
    "SuffixByteRequest",
    "coalesce_ranges",
    "load_backend",
    "open_store",
]


def __getattr__(name: str) -> object:
    """``HTTPStore`` is loaded on first use: importing aiohttp costs ~140 ms."""
    if name == "HTTPStore":
        from ._http import HTTPStore

        return HTTPStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
