"""Zarr array and group documents as msgspec Structs, both versions: the wire format, and the
normalised view both array Structs give (``_ArrayView``: shape, chunks, shards, grid, keys)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import msgspec

from ._zarr_codecs import Codec, ShardingCodec
from ._zarr_dtypes import _v2_dtype, _v2_items, _v3_dtype
from ._zarr_fill import FillValue, _parse_fill

if TYPE_CHECKING:
    import numpy as np


class RegularGridConfig(msgspec.Struct, frozen=True):
    chunk_shape: tuple[int, ...]


class RegularChunkGrid(msgspec.Struct, tag="regular", tag_field="name", frozen=True):
    configuration: RegularGridConfig


class KeyEncodingConfig(msgspec.Struct, frozen=True):
    separator: Literal["/", "."] = "/"


class V2KeyEncodingConfig(msgspec.Struct, frozen=True):
    separator: Literal["/", "."] = "."


class DefaultKeyEncoding(msgspec.Struct, tag="default", tag_field="name", frozen=True):
    configuration: KeyEncodingConfig = KeyEncodingConfig()


class V2KeyEncoding(msgspec.Struct, tag="v2", tag_field="name", frozen=True):
    configuration: V2KeyEncodingConfig = V2KeyEncodingConfig()


def _key_v2(coords: tuple[int, ...], sep: str) -> str:
    return sep.join(map(str, coords)) if coords else "0"


class _ArrayView:
    """Mixin: the normalised view shared by both array Structs."""

    __slots__ = ()

    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    shards: tuple[int, ...] | None

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def stored_chunks(self) -> tuple[int, ...]:
        """Shape of one stored object (the shard of a sharded array, else the chunk)."""
        return self.shards if self.shards is not None else self.chunks

    @property
    def grid_shape(self) -> tuple[int, ...]:
        """Number of stored objects (chunks or shards) along each dimension."""
        return tuple(-(-s // c) for s, c in zip(self.shape, self.stored_chunks, strict=True))


class ArrayV2Meta(msgspec.Struct, _ArrayView, kw_only=True, frozen=True, dict=True):
    """A zarr v2 ``.zarray`` document.

    The wire keys ``dtype`` and ``fill_value`` are held as ``dtype_json``/``fill_value_json``; the
    names ``dtype`` and ``fill_value`` give the normalised numpy dtype and scalar.
    """

    zarr_format: Literal[2]
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype_json: str = msgspec.field(name="dtype")
    compressor: dict[str, Any] | None
    fill_value_json: FillValue = msgspec.field(name="fill_value")
    order: Literal["C", "F"] = "C"
    filters: tuple[dict[str, Any], ...] | None = None
    dimension_separator: Literal[".", "/"] = "."

    @functools.cached_property
    def dtype(self) -> np.dtype[Any]:
        """The numpy dtype, with the byte order stored on disk (``"<u2"``, ``">f8"``)."""
        return _v2_dtype(self.dtype_json)

    @property
    def shards(self) -> None:  # type: ignore[override]
        return None

    @property
    def dimension_names(self) -> None:
        return None

    @functools.cached_property
    def fill_value(self) -> np.generic:
        """The fill value as a numpy scalar of the array's dtype (``null`` reads as zero; as
        ``""`` (``b""``) in a ``|O`` array of strings (bytes))."""
        return _parse_fill(
            self.fill_value_json, self.dtype, "$.fill_value", v3=False, items=self.items
        )

    @property
    def items(self) -> type[str | bytes] | None:
        """What a ``|O`` array holds: ``str`` (``vlen-utf8`` filter) or ``bytes``
        (``vlen-bytes``); ``None`` for numbers and booleans."""
        return _v2_items(self.filters)

    def chunk_key(self, coords: tuple[int, ...]) -> str:
        return _key_v2(coords, self.dimension_separator)


class ArrayV3Meta(msgspec.Struct, _ArrayView, kw_only=True, frozen=True, dict=True):
    """A zarr v3 array ``zarr.json`` document.

    The wire key ``fill_value`` is held as ``fill_value_json``; ``fill_value`` is the numpy scalar
    and ``dtype`` the numpy dtype of ``data_type``.
    """

    zarr_format: Literal[3]
    node_type: Literal["array"]
    shape: tuple[int, ...]
    data_type: str
    chunk_grid: RegularChunkGrid
    chunk_key_encoding: DefaultKeyEncoding | V2KeyEncoding
    fill_value_json: FillValue = msgspec.field(name="fill_value")
    codecs: tuple[Codec, ...]
    attributes: dict[str, Any] = {}
    dimension_names: tuple[str | None, ...] | None = None
    storage_transformers: tuple[dict[str, Any], ...] = ()

    @functools.cached_property
    def dtype(self) -> np.dtype[Any]:
        """The numpy dtype (native byte order; the ``bytes`` codec sets the stored order;
        ``object`` for ``string``)."""
        return _v3_dtype(self.data_type)

    @functools.cached_property
    def fill_value(self) -> np.generic:
        """The fill value as a numpy scalar of the array's dtype."""
        return _parse_fill(self.fill_value_json, self.dtype, "$.fill_value", v3=True)

    @property
    def sharding(self) -> ShardingCodec | None:
        """The sharding codec, if the array is sharded."""
        for c in self.codecs:
            if isinstance(c, ShardingCodec):
                return c
        return None

    @functools.cached_property
    def chunks(self) -> tuple[int, ...]:  # type: ignore[override]
        """The chunk a reader decodes: the inner chunk for sharded arrays."""
        sh = self.sharding
        if sh is not None:
            return sh.configuration.chunk_shape
        return self.chunk_grid.configuration.chunk_shape

    @property
    def shards(self) -> tuple[int, ...] | None:  # type: ignore[override]
        return self.chunk_grid.configuration.chunk_shape if self.sharding is not None else None

    def chunk_key(self, coords: tuple[int, ...]) -> str:
        enc = self.chunk_key_encoding
        sep = enc.configuration.separator
        if isinstance(enc, V2KeyEncoding):
            return _key_v2(coords, sep)
        return sep.join(("c", *map(str, coords)))


class GroupV3Meta(msgspec.Struct, kw_only=True, frozen=True):
    """A zarr v3 group ``zarr.json`` document.

    ``consolidated_metadata`` is zarr-python's (``must_understand: false``) extension, kept as is.
    """

    zarr_format: Literal[3]
    node_type: Literal["group"]
    attributes: dict[str, Any] = {}
    consolidated_metadata: dict[str, Any] | None = None


class GroupV2Meta(msgspec.Struct, kw_only=True, frozen=True):
    """A zarr v2 ``.zgroup`` document."""

    zarr_format: Literal[2]


ArrayMeta: TypeAlias = ArrayV2Meta | ArrayV3Meta
