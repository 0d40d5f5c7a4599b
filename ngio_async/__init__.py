"""ngio_async: asyncio-native streaming I/O for OME-Zarr (NGFF 0.4 / 0.5).

The library is asyncio-only: obstore, aiohttp and zarr's async API run on asyncio alone.
"""

from __future__ import annotations

import copyreg
import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

from ._errors import (
    ChangedError,
    ClosedError,
    CodecError,
    CredentialsRefusedError,
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

if TYPE_CHECKING:
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
        create_plate_like,
        open_plate,
        open_well,
    )
    from .convert import ConvertResult, convert, convert_many, convert_many_sync, convert_sync
    from .images import (
        Dataset,
        Labels,
        Level,
        LevelWriter,
        Plate,
        PlateWell,
        StitchConfig,
        Stream,
        Tile,
        TileStream,
        create_async,
        create_like_async,
        create_plate_async,
        open_plate_async,
        stream,
        stream_sync,
    )
    from .images._plate_ops import create_plate_like_async, open_well_async

__version__ = "0.1.0"

__all__ = [
    "ChangedError",
    "ClosedError",
    "CodecError",
    "ConvertResult",
    "CredentialsRefusedError",
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
    "StitchConfig",
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
    "create_plate_like",
    "create_plate_like_async",
    "open",
    "open_async",
    "open_plate",
    "open_plate_async",
    "open_well",
    "open_well_async",
    "stream",
    "stream_sync",
]

# The names above that live in heavy modules (numpy, zarr codecs, obstore, aiohttp) are imported
# on first use, so ``import ngio_async`` and the command line's ``--help`` start at once.
_LAZY: dict[str, tuple[str, ...]] = {
    "._open_any": ("open", "open_async"),
    "._sync_api": (
        "SyncDataset",
        "SyncLabels",
        "SyncLevel",
        "SyncPlate",
        "SyncWriter",
        "create",
        "create_like",
        "create_plate",
        "create_plate_like",
        "open_plate",
        "open_well",
    ),
    ".convert": ("ConvertResult", "convert", "convert_many", "convert_many_sync", "convert_sync"),
    ".images": (
        "Dataset",
        "Labels",
        "Level",
        "LevelWriter",
        "Plate",
        "PlateWell",
        "StitchConfig",
        "Stream",
        "Tile",
        "TileStream",
        "create_async",
        "create_like_async",
        "create_plate_async",
        "open_plate_async",
        "stream",
        "stream_sync",
    ),
    ".images._plate_ops": ("create_plate_like_async", "open_well_async"),
}
_HOME = {name: module for module, names in _LAZY.items() for name in names}
_SUBPACKAGES = frozenset(
    {"cli", "codecs", "convert", "demo", "engine", "formats", "images", "meta", "progress"}
    | {"stores", "sync", "web"}
)


if not TYPE_CHECKING:  # type checkers see the imports above, and no catch-all

    def __getattr__(name: str) -> Any:
        """Import a public name (or a subpackage: ``ngio_async.meta``) on first use."""
        if name in _HOME:
            value = getattr(importlib.import_module(_HOME[name], __name__), name)
            globals()[name] = value
            return value
        if name in _SUBPACKAGES:
            return importlib.import_module(f".{name}", __name__)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__, *_SUBPACKAGES})

    class _Package(types.ModuleType):
        """This package, keeping its function ``convert`` when the subpackage of that name
        loads (the import system then binds the subpackage to the package's attribute)."""

        def __setattr__(self, name: str, value: Any) -> None:
            if not (name in _HOME and isinstance(value, types.ModuleType)):
                super().__setattr__(name, value)

    def _by_name(module: _Package) -> tuple[Any, tuple[str]]:
        return importlib.import_module, (module.__name__,)

    sys.modules[__name__].__class__ = _Package
    copyreg.pickle(_Package, _by_name)  # pickled by reference, as modules are (cloudpickle)
