"""Zarr array and group metadata (v2 ``.zarray``/``.zgroup``, v3 ``zarr.json``) as msgspec Structs.

Pure: no I/O, no zarr-python. The Structs mirror the wire format (so encoding gives JSON that
zarr-python accepts); both array Structs also expose one normalised view used by the codecs and the
planner:

``shape``, ``ndim``, ``dtype`` (numpy), ``chunks`` (the chunk a reader decodes: the *inner* chunk of a
sharded array), ``shards`` (outer shard shape or ``None``), ``stored_chunks`` (the shape of one stored
object: ``shards or chunks``), ``grid_shape`` (stored objects per dimension), ``fill_value`` (numpy
scalar), ``dimension_names`` and ``chunk_key(coords)`` (key of a stored object, relative to the
array).

Decoding never lets a bare ``KeyError``/``TypeError``/msgspec error escape: invalid metadata raises
:class:`~ngio_async._errors.MetadataError` whose ``.path`` is the JSON path (``$.codecs[1].name``);
a valid but unsupported feature (codec, data type, chunk grid, storage transformer) raises
:class:`~ngio_async._errors.UnsupportedError`.
"""

from __future__ import annotations

import functools
import math
import re
from typing import TYPE_CHECKING, Any, Final, Literal, NamedTuple, TypeAlias, Union

import msgspec
import numpy as np

from ngio_async._errors import MetadataError, UnsupportedError
from ngio_async.meta._base import decode_json, write_document

__all__ = [
    "V3_DATA_TYPES",
    "V3_STRING",
    "ArrayMeta",
    "ArrayV2Meta",
    "ArrayV3Meta",
    "BloscCodec",
    "BloscConfig",
    "BytesCodec",
    "BytesConfig",
    "Codec",
    "CodecStages",
    "Crc32cCodec",
    "DefaultKeyEncoding",
    "GroupV2Meta",
    "GroupV3Meta",
    "GzipCodec",
    "GzipConfig",
    "NUMCODECS_KINDS",
    "NumcodecsCodec",
    "KeyEncodingConfig",
    "RegularChunkGrid",
    "RegularGridConfig",
    "ShardingCodec",
    "ShardingConfig",
    "TransposeCodec",
    "TransposeConfig",
    "V2KeyEncoding",
    "VLenUtf8Codec",
    "codec_stages",
    "decode_array",
    "ZstdCodec",
    "ZstdConfig",
    "decode_array_v2",
    "decode_array_v3",
    "decode_group_v2",
    "decode_group_v3",
    "decode_node_v3",
    "encode_array_v2",
    "encode_array_v3",
    "encode_group_v2",
    "encode_group_v3",
]

#: The v3 core data types this library reads (numpy dtype names coincide with them).
V3_DATA_TYPES: Final = frozenset(
    {
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
        "complex64",
        "complex128",
    }
)

#: The v3 data type of variable-length UTF-8 strings (zarr-python's ``str`` arrays; read as
#: numpy ``object`` arrays of ``str``, written with the ``vlen-utf8`` codec): tables hold them,
#: images never do.
V3_STRING: Final = "string"

#: The v2 filters of ``|O`` arrays (zarr-python's ``str``/``bytes`` arrays): the items they hold.
_V2_VLEN: Final[dict[str, type[str | bytes]]] = {"vlen-utf8": str, "vlen-bytes": bytes}

FillValue: TypeAlias = bool | int | float | str | list[int | float | str] | None


# --------------------------------------------------------------------------------------------
# v3 codecs: a tagged union on "name"
# --------------------------------------------------------------------------------------------


class BytesConfig(msgspec.Struct, frozen=True, omit_defaults=True):
    endian: Literal["little", "big"] | None = None


class BytesCodec(msgspec.Struct, tag="bytes", tag_field="name", frozen=True, omit_defaults=True):
    configuration: BytesConfig = BytesConfig()


class TransposeConfig(msgspec.Struct, frozen=True):
    order: tuple[int, ...]


class TransposeCodec(msgspec.Struct, tag="transpose", tag_field="name", frozen=True):
    configuration: TransposeConfig


class BloscConfig(msgspec.Struct, frozen=True):
    """Written with every field the spec requires (tensorstore refuses a configuration without
    ``cname``, ``clevel`` or ``blocksize``); absent ones read as zarr-python's defaults."""

    cname: Literal["lz4", "lz4hc", "blosclz", "zstd", "snappy", "zlib"] = "zstd"
    clevel: int = 5
    #: unset (left to the writer): "bitshuffle" for 1-byte types, else "shuffle" (zarr-python)
    shuffle: Literal["noshuffle", "shuffle", "bitshuffle"] | msgspec.UnsetType = msgspec.UNSET
    typesize: int | msgspec.UnsetType = msgspec.UNSET
    blocksize: int = 0


class BloscCodec(msgspec.Struct, tag="blosc", tag_field="name", frozen=True):
    configuration: BloscConfig = BloscConfig()


class ZstdConfig(msgspec.Struct, frozen=True):
    level: int = 0
    checksum: bool = False


class ZstdCodec(msgspec.Struct, tag="zstd", tag_field="name", frozen=True):
    configuration: ZstdConfig = ZstdConfig()


class GzipConfig(msgspec.Struct, frozen=True):
    level: int = 5


class GzipCodec(msgspec.Struct, tag="gzip", tag_field="name", frozen=True):
    configuration: GzipConfig = GzipConfig()


class Crc32cCodec(msgspec.Struct, tag="crc32c", tag_field="name", frozen=True):
    pass


class VLenUtf8Codec(msgspec.Struct, tag="vlen-utf8", tag_field="name", frozen=True):
    """The array->bytes codec of the ``string`` data type (zarr-python writes an empty
    configuration)."""

    configuration: dict[str, Any] = {}


class ShardingConfig(msgspec.Struct, frozen=True):
    chunk_shape: tuple[int, ...]
    codecs: tuple[Codec, ...] = (BytesCodec(),)
    index_codecs: tuple[Codec, ...] = (BytesCodec(BytesConfig("little")), Crc32cCodec())
    index_location: Literal["start", "end"] = "end"


class ShardingCodec(msgspec.Struct, tag="sharding_indexed", tag_field="name", frozen=True):
    configuration: ShardingConfig


class NumcodecsCodec(msgspec.Struct, frozen=True, tag_field="name"):
    """A ``numcodecs.<id>`` codec of zarr-python (``zarr.codecs.numcodecs``): the configuration is
    numcodecs' keyword arguments, kept as is. One tagged subclass per name (:data:`NUMCODECS_KINDS`)."""

    configuration: dict[str, Any] = {}

    @property
    def kind(self) -> Literal["array", "serializer", "bytes"]:
        return NUMCODECS_KINDS[str(type(self).__struct_config__.tag)[len("numcodecs.") :]]


#: The numcodecs codecs zarr-python registers as ``numcodecs.<id>``, by kind.
NUMCODECS_KINDS: Final[dict[str, Literal["array", "serializer", "bytes"]]] = {
    **dict.fromkeys(("blosc", "lz4", "zstd", "zlib", "gzip", "bz2", "lzma", "shuffle"), "bytes"),
    **dict.fromkeys(("crc32", "crc32c", "adler32", "fletcher32", "jenkins_lookup3"), "bytes"),
    **dict.fromkeys(
        ("delta", "bitround", "fixedscaleoffset", "quantize", "packbits", "astype"), "array"
    ),
    **dict.fromkeys(("pcodec", "zfpy"), "serializer"),
}

_NUMCODECS_TYPES: Final = tuple(
    msgspec.defstruct(
        f"Numcodecs_{n}", [], bases=(NumcodecsCodec,), tag=f"numcodecs.{n}", frozen=True
    )
    for n in NUMCODECS_KINDS
)

if TYPE_CHECKING:
    Codec: TypeAlias = (
        BytesCodec
        | TransposeCodec
        | BloscCodec
        | ZstdCodec
        | GzipCodec
        | Crc32cCodec
        | ShardingCodec
        | VLenUtf8Codec
        | NumcodecsCodec
    )
else:
    Codec = Union[  # msgspec needs every tagged subclass in the union
        BytesCodec,
        TransposeCodec,
        BloscCodec,
        ZstdCodec,
        GzipCodec,
        Crc32cCodec,
        ShardingCodec,
        VLenUtf8Codec,
        *_NUMCODECS_TYPES,
    ]

_CODEC_NAMES: Final = frozenset(
    {"bytes", "transpose", "blosc", "zstd", "gzip", "crc32c", "sharding_indexed", "vlen-utf8"}
    | {f"numcodecs.{n}" for n in NUMCODECS_KINDS}
)


def _is_array_array(c: Codec) -> bool:
    return isinstance(c, TransposeCodec) or (isinstance(c, NumcodecsCodec) and c.kind == "array")


def _check_numcodec(c: NumcodecsCodec, path: str) -> None:
    """Refuse a ``numcodecs.<id>`` whose numcodecs codec is not installed (e.g. ``pcodec``)."""
    import numcodecs  # local: only arrays with such codecs need the registry

    name = str(type(c).__struct_config__.tag)
    try:
        numcodecs.get_codec({"id": name[len("numcodecs.") :], **c.configuration})
    except numcodecs.errors.UnknownCodecError as exc:
        raise UnsupportedError(
            f"codec {name!r} needs numcodecs' {name[len('numcodecs.') :]!r} codec, which is not "
            f"installed (at {path})"
        ) from exc
    except (TypeError, ValueError, KeyError):
        pass  # configurations are checked with the array's dtype when the codecs are built


def _check_blosc(cfg: BloscConfig, path: str) -> None:
    """The ranges blosc accepts (numcodecs raised a bare ValueError for a typesize of 0)."""
    if not 0 <= cfg.clevel <= 9:
        raise MetadataError(f"blosc clevel must be 0 to 9, got {cfg.clevel}", f"{path}.clevel")
    if isinstance(cfg.typesize, int) and cfg.typesize < 1:
        raise MetadataError(
            f"blosc typesize must be positive, got {cfg.typesize}", f"{path}.typesize"
        )
    if not 0 <= cfg.blocksize < 2**31:
        raise MetadataError(
            f"blosc blocksize must be 0 (automatic) or a positive size, got {cfg.blocksize}",
            f"{path}.blocksize",
        )


def _is_array_bytes(c: Codec) -> bool:
    return isinstance(c, BytesCodec | ShardingCodec | VLenUtf8Codec) or (
        isinstance(c, NumcodecsCodec) and c.kind == "serializer"
    )


# --------------------------------------------------------------------------------------------
# v3 chunk grid and chunk key encoding
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Nodes
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Codec stages: each chunk's codecs, and those of whole shards
# --------------------------------------------------------------------------------------------


class CodecStages(NamedTuple):
    """An array's codecs by what each encodes (see :func:`codec_stages`)."""

    #: each chunk's codecs, as a reader decodes one (the inner chunks of a sharded array): its
    #: array->array codecs, its array->bytes codec (``bytes``, or a nested ``sharding_indexed``)
    #: and its bytes->bytes codecs, in order
    chunk: tuple[Codec, ...]
    #: the bytes->bytes codecs after ``sharding_indexed``: each shard compressed whole (``()``:
    #: none, or the array is not sharded)
    whole_shard: tuple[Codec, ...] = ()
    #: the array->array codecs before ``sharding_indexed``, on each shard's array (validation
    #: refuses them, as unsupported; a model built directly may hold them)
    shard_array: tuple[Codec, ...] = ()


#: numcodecs' blosc shuffle numbers (``-1``, AUTOSHUFFLE: by the data type's size)
_V2_SHUFFLES: Final[dict[int, Literal["noshuffle", "shuffle", "bitshuffle"]]] = {
    0: "noshuffle",
    1: "shuffle",
    2: "bitshuffle",
}


def _v2_codec(conf: dict[str, Any]) -> Codec | None:
    """A v2 (numcodecs) codec configuration as the zarr v3 codec that writes the same bytes:
    ``zstd``, ``gzip`` and ``blosc`` as the core codecs, settings included (blosc's
    ``typesize`` unset, and its automatic shuffle ``-1`` unset: both follow the data type, as
    in v2), any other id registered as ``numcodecs.<id>`` as that (its configuration as is);
    ``None``: no v3 codec writes it."""
    cid = conf.get("id")
    rest = {k: v for k, v in conf.items() if k != "id"}
    try:
        if cid == "zstd":
            return ZstdCodec(
                ZstdConfig(level=int(rest.get("level", 0)), checksum=bool(rest.get("checksum")))
            )
        if cid == "gzip":
            return GzipCodec(GzipConfig(level=int(rest.get("level", 1))))
        if cid == "blosc":
            blosc: dict[str, Any] = {
                "cname": rest.get("cname", "lz4"),
                "clevel": int(rest.get("clevel", 5)),
                "blocksize": int(rest.get("blocksize", 0)),
            }
            shuffle = _V2_SHUFFLES.get(int(rest.get("shuffle", 1)))
            if shuffle is not None:  # else AUTOSHUFFLE (-1): left to the data type
                blosc["shuffle"] = shuffle
            return BloscCodec(msgspec.convert(blosc, BloscConfig))
    except (TypeError, ValueError, msgspec.ValidationError):
        pass  # settings no core codec holds: numcodecs' own codec below
    kind = _NUMCODECS_BY_TAG.get(f"numcodecs.{cid}")
    return None if kind is None else kind(configuration=rest)


_NUMCODECS_BY_TAG: Final[dict[str, type[NumcodecsCodec]]] = {
    str(t.__struct_config__.tag): t  # type: ignore[misc]  # defstruct's type: a subclass
    for t in _NUMCODECS_TYPES
}


def codec_stages(meta: ArrayMeta) -> CodecStages | None:
    """``meta``'s codecs split around ``sharding_indexed``: each chunk's codecs (a sharded
    array's inner chunks) and the codecs its shards are compressed with whole (after
    ``sharding_indexed``; zarr-python writes a compressor there for ``serializer=`` plus
    ``compressors=``).

    A v2 array is one chunk stage: its ``filters``, a ``bytes`` codec (the dtype's byte
    order) and its ``compressor``, each as the zarr v3 codec that writes it (see
    :func:`_v2_codec`; its ``order`` stays in ``meta.order``, not a ``transpose``); ``None``
    when one of them has no v3 form (an id not registered as ``numcodecs.<id>``). Pure: no
    I/O, nothing built."""
    if isinstance(meta, ArrayV2Meta):
        confs = list(meta.filters or ())
        serializer: Codec
        if meta.items is str:  # vlen-utf8 first: the array->bytes codec
            confs, serializer = confs[1:], VLenUtf8Codec()
        elif meta.items is bytes:
            return None
        else:
            order = meta.dtype.byteorder
            endian: Literal["little", "big"] | None = (
                None if order == "|" else "big" if order == ">" else "little"
            )
            serializer = BytesCodec(BytesConfig(endian))
        filters = tuple(_v2_codec(f) for f in confs)
        compressor = () if meta.compressor is None else (_v2_codec(meta.compressor),)
        if None in filters or None in compressor:
            return None
        if meta.items is str:  # the filters after vlen-utf8 encode bytes
            return CodecStages(chunk=(serializer, *filters, *compressor))  # type: ignore[arg-type]
        return CodecStages(chunk=(*filters, serializer, *compressor))  # type: ignore[arg-type]
    codecs = meta.codecs
    at = next((i for i, c in enumerate(codecs) if isinstance(c, ShardingCodec)), None)
    if at is None:
        return CodecStages(chunk=codecs)
    sharding = codecs[at]
    assert isinstance(sharding, ShardingCodec)
    return CodecStages(
        chunk=sharding.configuration.codecs,
        whole_shard=codecs[at + 1 :],
        shard_array=codecs[:at],
    )


# --------------------------------------------------------------------------------------------
# Fill values
# --------------------------------------------------------------------------------------------

_FLOAT_NAMES: Final = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _parse_float(value: object, dtype: np.dtype[Any], path: str) -> float | np.generic:
    if isinstance(value, bool):
        raise MetadataError(f"expected a number for {dtype.name} fill value, got {value!r}", path)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        if value in _FLOAT_NAMES:
            return _FLOAT_NAMES[value]
        if value.startswith("0x"):
            try:
                bits = int(value, 16)
            except ValueError:
                raise MetadataError(f"invalid hex fill value {value!r}", path) from None
            uint = np.dtype(f"u{dtype.itemsize}")
            if len(value) - 2 != 2 * dtype.itemsize:
                raise MetadataError(
                    f"hex fill value {value!r} needs {2 * dtype.itemsize} hex digits", path
                )
            return float(np.array([bits], dtype=uint).view(dtype.newbyteorder("="))[0])
    raise MetadataError(f"invalid {dtype.name} fill value {value!r}", path)


def _parse_fill(
    value: object,
    dtype: np.dtype[Any],
    path: str,
    *,
    v3: bool,
    items: type[str | bytes] | None = str,
) -> np.generic:
    kind = dtype.kind
    if kind == "O":
        return _parse_vlen_fill(value, path, v3=v3, items=items)  # type: ignore[no-any-return]
    if value is None:
        if v3:
            raise MetadataError("fill_value must not be null in zarr v3", path)
        return dtype.type(0)  # type: ignore[no-any-return]
    if kind == "b":
        if not isinstance(value, bool):
            if not v3 and value in (0, 1) and not isinstance(value, float):
                return dtype.type(bool(value))  # type: ignore[no-any-return]
            raise MetadataError(f"expected true/false for a bool fill value, got {value!r}", path)
        return dtype.type(value)  # type: ignore[no-any-return]
    if kind in "iu":
        given = value
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise MetadataError(f"expected an integer fill value, got {value!r}", path)
        info = np.iinfo(dtype)
        if not info.min <= value <= info.max:
            raise MetadataError(f"fill value {given!r} out of range for {dtype.name}", path)
        return dtype.type(value)  # type: ignore[no-any-return]
    if kind == "f":
        return dtype.type(_parse_float(value, dtype, path))  # type: ignore[no-any-return]
    if kind == "c":
        if not isinstance(value, list) or len(value) != 2:
            raise MetadataError(
                f"expected [real, imag] for a complex fill value, got {value!r}", path
            )
        part = np.dtype(f"f{dtype.itemsize // 2}")
        re_ = _parse_float(value[0], part, f"{path}[0]")
        im_ = _parse_float(value[1], part, f"{path}[1]")
        return dtype.type(complex(float(re_), float(im_)))  # type: ignore[no-any-return]
    raise UnsupportedError(f"data type {dtype} is not supported")


def _parse_vlen_fill(value: object, path: str, *, v3: bool, items: type[str | bytes] | None) -> Any:
    """The fill value of a ``string`` (v3) or ``|O`` (v2) array: a ``str`` (zarr-python writes
    ``""``); v2 ``null`` reads as the empty item."""
    if value is None and not v3:
        return b"" if items is bytes else ""
    if items is bytes:
        if value == "":
            return b""
        raise UnsupportedError(f"fill value {value!r} of a vlen-bytes array is not supported")
    if not isinstance(value, str):
        raise MetadataError(f"expected a string fill value, got {value!r}", path)
    return value


def _v2_items(filters: tuple[dict[str, Any], ...] | None) -> type[str | bytes] | None:
    for f in filters or ():
        found = _V2_VLEN.get(str(f.get("id")))
        if found is not None:
            return found
    return None


# --------------------------------------------------------------------------------------------
# Error translation and validation
# --------------------------------------------------------------------------------------------

_AT = re.compile(r"^(?P<msg>.*) - at `(?P<path>\$[^`]*)`$", re.DOTALL)


def _join(prefix: str, sub: str) -> str:
    return prefix + sub[1:] if sub.startswith("$") else prefix


def _from_validation(exc: msgspec.ValidationError, prefix: str = "$") -> MetadataError:
    text = str(exc)
    m = _AT.match(text)
    if m is None:
        return MetadataError(text, prefix)
    return MetadataError(m["msg"], _join(prefix, m["path"]))


_DICT_DECODER: Final = msgspec.json.Decoder(dict[str, Any])


def _load_object(raw: bytes | str, what: str) -> dict[str, Any]:
    try:
        return decode_json(_DICT_DECODER.decode, raw, f"{what} is not valid JSON")
    except msgspec.ValidationError as exc:
        raise MetadataError(f"{what} must be a JSON object", "$") from exc


#: numpy's largest size (``intp``): no dimension, and no chunk's byte count, may exceed it
_MAX_SIZE: Final = 2**63 - 1
#: inner chunks per shard: the index of one (16 bytes each) is read whole; 2**24 is 256 MiB
_MAX_INNER_CHUNKS: Final = 2**24


def _check_dims(shape: tuple[int, ...], chunks: tuple[int, ...], chunks_path: str) -> None:
    for i, s in enumerate(shape):
        if s < 0:
            raise MetadataError(f"shape must be non-negative, got {s}", f"$.shape[{i}]")
        if s > _MAX_SIZE:
            raise MetadataError(
                f"shape {s} exceeds 2**63 - 1, the most numpy indexes", f"$.shape[{i}]"
            )
    if len(chunks) != len(shape):
        raise MetadataError(
            f"chunk shape has {len(chunks)} dimensions, the array has {len(shape)}", chunks_path
        )
    for i, c in enumerate(chunks):
        if c <= 0:
            raise MetadataError(f"chunk sizes must be positive, got {c}", f"{chunks_path}[{i}]")


def _check_chunk_bytes(chunks: tuple[int, ...], itemsize: int, path: str) -> None:
    """A chunk (the unit decoded at once) must fit numpy's addressable size."""
    nbytes = math.prod(chunks) * itemsize
    if nbytes > _MAX_SIZE:
        raise MetadataError(
            f"a chunk of shape {list(chunks)} holds {nbytes} bytes, more than 2**63 - 1", path
        )


def _check_inner_chunks(shard: tuple[int, ...], chunks: tuple[int, ...], path: str) -> None:
    """Refuse a shard whose index (one entry per inner chunk, read whole) is absurdly large."""
    n = math.prod(s // c for s, c in zip(shard, chunks, strict=True))
    if n > _MAX_INNER_CHUNKS:
        raise MetadataError(
            f"a shard of shape {list(shard)} holds {n} inner chunks of shape {list(chunks)} "
            f"(an index of {16 * n} bytes); at most {_MAX_INNER_CHUNKS} are supported",
            path,
        )


def _check_v2_codec(cfg: dict[str, Any], path: str) -> None:
    codec_id = cfg.get("id")
    if not isinstance(codec_id, str):
        raise MetadataError("a codec needs a string `id`", f"{path}.id")
    import numcodecs  # local: only v2 metadata needs the registry

    try:
        numcodecs.get_codec(dict(cfg))
    except ValueError as exc:
        if "not available" in str(exc) or "codec not available" in str(exc):
            raise UnsupportedError(f"v2 codec {codec_id!r} is not supported (at {path})") from exc
        raise MetadataError(f"invalid {codec_id} configuration: {exc}", path) from exc
    except (TypeError, KeyError) as exc:
        raise MetadataError(f"invalid {codec_id} configuration: {exc}", path) from exc


def _v2_dtype(dt: str) -> np.dtype[Any]:
    try:
        dtype = np.dtype(dt)
    except TypeError as exc:
        raise MetadataError(f"invalid dtype {dt!r}", "$.dtype") from exc
    if dtype.kind not in "biufcO" or dtype.fields is not None or dtype.subdtype is not None:
        raise UnsupportedError(
            f"v2 dtype {dt!r} is not supported (numeric, bool and |O strings only; at $.dtype)"
        )
    return dtype


def _check_v2_vlen(meta: ArrayV2Meta, dtype: np.dtype[Any]) -> None:
    """A ``|O`` array needs one ``vlen-utf8`` (or ``vlen-bytes``) filter, the first: it turns
    the items into bytes, which the filters after it and the compressor then encode."""
    ids = [f.get("id") for f in meta.filters or ()]
    at = [i for i, cid in enumerate(ids) if cid in _V2_VLEN]
    if dtype.kind != "O":
        if at:
            raise MetadataError(
                f"filter {ids[at[0]]!r} needs the |O dtype, not {meta.dtype_json!r}",
                f"$.filters[{at[0]}]",
            )
        return
    if not at:
        raise UnsupportedError(
            f"v2 dtype {meta.dtype_json!r} needs a vlen-utf8 or vlen-bytes filter (at $.filters; "
            "other object arrays are not supported)"
        )
    if at != [0]:
        raise UnsupportedError(
            f"the {ids[at[-1]]!r} filter must be the only vlen filter and come first "
            f"(at $.filters[{at[-1]}])"
        )


def _validate_v2(meta: ArrayV2Meta) -> ArrayV2Meta:
    _check_dims(meta.shape, meta.chunks, "$.chunks")
    dtype = _v2_dtype(meta.dtype_json)
    _check_v2_vlen(meta, dtype)
    _check_chunk_bytes(meta.chunks, dtype.itemsize, "$.chunks")
    if meta.compressor is not None:
        _check_v2_codec(meta.compressor, "$.compressor")
    for i, f in enumerate(meta.filters or ()):
        _check_v2_codec(f, f"$.filters[{i}]")
    meta.__dict__["dtype"] = dtype
    meta.__dict__["fill_value"] = _parse_fill(
        meta.fill_value_json, dtype, "$.fill_value", v3=False, items=meta.items
    )
    return meta


def _check_raw_codecs(codecs: object, path: str) -> None:
    """Name unknown codecs before msgspec sees them (so they raise UnsupportedError)."""
    if not isinstance(codecs, list):
        return
    for i, c in enumerate(codecs):
        if not isinstance(c, dict):
            continue
        name = c.get("name")
        if isinstance(name, str) and name not in _CODEC_NAMES:
            raise UnsupportedError(f"codec {name!r} is not supported (at {path}[{i}].name)")
        cfg = c.get("configuration")
        if name == "sharding_indexed" and isinstance(cfg, dict):
            _check_raw_codecs(cfg.get("codecs"), f"{path}[{i}].configuration.codecs")
            _check_raw_codecs(cfg.get("index_codecs"), f"{path}[{i}].configuration.index_codecs")


_V3_ARRAY_KEYS: Final = frozenset(ArrayV3Meta.__struct_encode_fields__)
_V3_GROUP_KEYS: Final = frozenset(GroupV3Meta.__struct_encode_fields__)


def _check_extra_keys(doc: dict[str, Any], known: frozenset[str]) -> None:
    for k, v in doc.items():
        if k in known:
            continue
        if isinstance(v, dict) and v.get("must_understand") is False:
            continue
        raise MetadataError(
            f"unknown key {k!r}: zarr v3 extensions need an object with `must_understand: false`",
            f"$.{k}",
        )


def _v3_name(dt: str) -> str | None:
    """The v3 name of a data type written another way (``Float32``, v2's ``<u2``), if any."""
    if dt.lower() in V3_DATA_TYPES:
        return dt.lower()
    try:
        name = np.dtype(dt).name
    except (TypeError, ValueError):
        return None
    return name if name in V3_DATA_TYPES else None


def _v3_dtype(name: str) -> np.dtype[Any]:
    return np.dtype(object) if name == V3_STRING else np.dtype(name)


def _serializer(codecs: tuple[Codec, ...]) -> tuple[Codec, str]:
    """The array->bytes codec a chunk's items reach (inside sharding, nested too), and the
    JSON path of the list holding it (relative)."""
    path = ""
    while True:
        i, c = next((i, c) for i, c in enumerate(codecs) if _is_array_bytes(c))
        if not isinstance(c, ShardingCodec):
            return c, f"{path}[{i}]"
        codecs = c.configuration.codecs
        path = f"{path}[{i}].configuration.codecs"


def _check_serializer(codecs: tuple[Codec, ...], strings: bool, path: str) -> None:
    """``string`` arrays encode their items with ``vlen-utf8``; no other data type does."""
    codec, where = _serializer(codecs)
    if strings and not isinstance(codec, VLenUtf8Codec):
        name = msgspec.to_builtins(codec).get("name")
        raise UnsupportedError(
            f"data type 'string' needs the vlen-utf8 codec, not {name!r} (at {path}{where})"
        )
    if not strings and isinstance(codec, VLenUtf8Codec):
        raise MetadataError("the vlen-utf8 codec needs the 'string' data type", f"{path}{where}")


def _check_raw_v3(doc: dict[str, Any]) -> None:
    dt = doc.get("data_type")
    if isinstance(dt, dict):
        raise UnsupportedError(
            f"v3 extension data type {dt.get('name')!r} is not supported (at $.data_type)"
        )
    if isinstance(dt, str) and dt not in V3_DATA_TYPES and dt != V3_STRING:
        hint = f"; did you mean {_v3_name(dt)!r}?" if _v3_name(dt) else ""
        raise UnsupportedError(
            f"v3 data type {dt!r} is not supported (at $.data_type; one of "
            f"{', '.join(sorted(V3_DATA_TYPES | {V3_STRING}))}{hint})"
        )
    grid = doc.get("chunk_grid")
    if isinstance(grid, dict) and isinstance(grid.get("name"), str) and grid["name"] != "regular":
        raise UnsupportedError(
            f"chunk grid {grid['name']!r} is not supported (at $.chunk_grid.name)"
        )
    enc = doc.get("chunk_key_encoding")
    if isinstance(enc, dict):
        name = enc.get("name")
        if isinstance(name, str) and name not in ("default", "v2"):
            raise UnsupportedError(
                f"chunk key encoding {name!r} is not supported (at $.chunk_key_encoding.name)"
            )
    _check_raw_codecs(doc.get("codecs"), "$.codecs")
    st = doc.get("storage_transformers")
    if isinstance(st, list) and st:
        raise UnsupportedError("storage transformers are not supported")


def _check_codec_chain(
    codecs: tuple[Codec, ...], ndim: int, path: str, chunk_shape: tuple[int, ...] | None
) -> None:
    """Check one codec list; ``chunk_shape``: the shape its chunks have if they are inner chunks
    of a shard (a nested ``sharding_indexed`` must divide it)."""
    n_ab = [i for i, c in enumerate(codecs) if _is_array_bytes(c)]
    if len(n_ab) != 1:
        raise MetadataError(
            f"expected exactly one array->bytes codec (bytes or sharding_indexed), got {len(n_ab)}",
            path,
        )
    ab = n_ab[0]
    for i, c in enumerate(codecs):
        cpath = f"{path}[{i}]"
        if i < ab and not _is_array_array(c):
            raise MetadataError("a bytes->bytes codec cannot precede the array->bytes codec", cpath)
        if i > ab and _is_array_array(c):
            raise MetadataError("an array->array codec must precede the array->bytes codec", cpath)
        if isinstance(c, NumcodecsCodec):
            _check_numcodec(c, cpath)
        if isinstance(c, BloscCodec):
            _check_blosc(c.configuration, f"{cpath}.configuration")
        if isinstance(c, TransposeCodec):
            order = c.configuration.order
            if sorted(order) != list(range(ndim)):
                raise MetadataError(
                    f"transpose order {list(order)} is not a permutation of 0..{ndim - 1}",
                    f"{cpath}.configuration.order",
                )
        if isinstance(c, ShardingCodec):
            if ab != 0:
                raise UnsupportedError(
                    f"array->array codecs before sharding_indexed are not supported (at {cpath})"
                )
            # bytes->bytes codecs after it (zarr-python adds a compressor after a serializer)
            # encode the whole shard object: read whole, never in parts
            cfg = c.configuration
            if len(cfg.chunk_shape) != ndim:
                raise MetadataError(
                    f"inner chunk shape has {len(cfg.chunk_shape)} dimensions, expected {ndim}",
                    f"{cpath}.configuration.chunk_shape",
                )
            if chunk_shape is not None:  # nested: its inner chunks tile the enclosing ones
                for d, (o, c_) in enumerate(zip(chunk_shape, cfg.chunk_shape, strict=True)):
                    if c_ <= 0 or o % c_:
                        raise MetadataError(
                            f"inner chunk size {c_} does not divide the chunk size {o}",
                            f"{cpath}.configuration.chunk_shape[{d}]",
                        )
                _check_inner_chunks(chunk_shape, cfg.chunk_shape, f"{cpath}.configuration")
            _check_codec_chain(cfg.codecs, ndim, f"{cpath}.configuration.codecs", cfg.chunk_shape)
            ipath = f"{cpath}.configuration.index_codecs"
            ic = cfg.index_codecs
            if not ic or not isinstance(ic[0], BytesCodec):
                raise MetadataError("index_codecs must start with a bytes codec", ipath)
            if any(not isinstance(x, Crc32cCodec) for x in ic[1:]):
                raise UnsupportedError(
                    f"only bytes (+ crc32c) index codecs are supported (at {ipath})"
                )


def _validate_v3(meta: ArrayV3Meta) -> ArrayV3Meta:
    outer = meta.chunk_grid.configuration.chunk_shape
    _check_dims(meta.shape, outer, "$.chunk_grid.configuration.chunk_shape")
    if meta.dimension_names is not None and len(meta.dimension_names) != len(meta.shape):
        raise MetadataError(
            f"{len(meta.dimension_names)} dimension names for {len(meta.shape)} dimensions",
            "$.dimension_names",
        )
    _check_codec_chain(meta.codecs, len(meta.shape), "$.codecs", None)
    sh = meta.sharding
    if sh is not None:
        inner = sh.configuration.chunk_shape
        for i, (o, c) in enumerate(zip(outer, inner, strict=True)):
            if c <= 0 or o % c:
                raise MetadataError(
                    f"inner chunk size {c} does not divide the shard size {o}",
                    f"$.codecs[0].configuration.chunk_shape[{i}]",
                )
        _check_inner_chunks(outer, inner, "$.chunk_grid.configuration.chunk_shape")
    dtype = _v3_dtype(meta.data_type)
    _check_serializer(meta.codecs, dtype == object, "$.codecs")
    _check_chunk_bytes(meta.chunks, dtype.itemsize, "$.chunk_grid.configuration.chunk_shape")
    meta.__dict__["dtype"] = dtype
    meta.__dict__["fill_value"] = _parse_fill(meta.fill_value_json, dtype, "$.fill_value", v3=True)
    return meta


# --------------------------------------------------------------------------------------------
# Public decoders / encoders
# --------------------------------------------------------------------------------------------

_V2_ARRAY_DECODER: Final = msgspec.json.Decoder(ArrayV2Meta)
_V2_GROUP_DECODER: Final = msgspec.json.Decoder(GroupV2Meta)
_ENCODER: Final = msgspec.json.Encoder()


def decode_array_v2(raw: bytes | str) -> ArrayV2Meta:
    """Decode a v2 ``.zarray`` document.

    :raises MetadataError: invalid document (``.path`` names the field).
    :raises UnsupportedError: a dtype or numcodecs codec this library cannot read.
    """
    try:
        meta = decode_json(_V2_ARRAY_DECODER.decode, raw, ".zarray is not valid JSON")
    except msgspec.ValidationError as exc:
        raise _from_validation(exc) from exc
    return _validate_v2(meta)


def decode_array(doc: dict[str, Any]) -> ArrayMeta:
    """An array document already parsed from JSON (a v3 ``zarr.json`` when its
    ``zarr_format`` is 3, else a v2 ``.zarray``), validated as :func:`decode_array_v2` and
    :func:`decode_array_v3` do (same errors)."""
    if doc.get("zarr_format") == 3:
        return _array_v3_from_doc(doc)
    try:
        meta = msgspec.convert(doc, ArrayV2Meta)
    except msgspec.ValidationError as exc:
        raise _from_validation(exc) from exc
    return _validate_v2(meta)


def decode_group_v2(raw: bytes | str) -> GroupV2Meta:
    """Decode a v2 ``.zgroup`` document."""
    try:
        return decode_json(_V2_GROUP_DECODER.decode, raw, ".zgroup is not valid JSON")
    except msgspec.ValidationError as exc:
        raise _from_validation(exc) from exc


def _array_v3_from_doc(doc: dict[str, Any]) -> ArrayV3Meta:
    _check_extra_keys(doc, _V3_ARRAY_KEYS)
    _check_raw_v3(doc)
    try:
        meta = msgspec.convert(doc, ArrayV3Meta)
    except msgspec.ValidationError as exc:
        raise _from_validation(exc) from exc
    return _validate_v3(meta)


def _group_v3_from_doc(doc: dict[str, Any]) -> GroupV3Meta:
    _check_extra_keys(doc, _V3_GROUP_KEYS)
    try:
        return msgspec.convert(doc, GroupV3Meta)
    except msgspec.ValidationError as exc:
        raise _from_validation(exc) from exc


def decode_array_v3(raw: bytes | str) -> ArrayV3Meta:
    """Decode a v3 array ``zarr.json``.

    :raises MetadataError: invalid document (``.path`` names the field).
    :raises UnsupportedError: unknown codec, data type, chunk grid or storage transformer.
    """
    return _array_v3_from_doc(_load_object(raw, "zarr.json"))


def decode_group_v3(raw: bytes | str) -> GroupV3Meta:
    """Decode a v3 group ``zarr.json``."""
    return _group_v3_from_doc(_load_object(raw, "zarr.json"))


def decode_node_v3(raw: bytes | str) -> ArrayV3Meta | GroupV3Meta:
    """Decode a v3 ``zarr.json`` of either node type (dispatch on ``node_type``)."""
    doc = _load_object(raw, "zarr.json")
    node_type = doc.get("node_type")
    if node_type == "array":
        return _array_v3_from_doc(doc)
    if node_type == "group":
        return _group_v3_from_doc(doc)
    if "node_type" not in doc:
        raise MetadataError("Object missing required field `node_type`", "$")
    raise MetadataError(f"node_type must be 'array' or 'group', got {node_type!r}", "$.node_type")


def encode_array_v2(meta: ArrayV2Meta) -> bytes:
    """Encode a ``.zarray`` document (zarr-python reads it back)."""
    return _ENCODER.encode(meta)


def encode_group_v2(meta: GroupV2Meta | None = None) -> bytes:
    """Encode a ``.zgroup`` document."""
    return _ENCODER.encode(meta or GroupV2Meta(zarr_format=2))


def encode_array_v3(meta: ArrayV3Meta) -> bytes:
    """Encode an array ``zarr.json`` (``dimension_names`` omitted when ``None``).

    Extension keys that were skipped on decode (``must_understand: false``) are not written back.
    """
    doc = msgspec.to_builtins(meta)
    if doc.get("dimension_names") is None:
        doc.pop("dimension_names", None)
    return _ENCODER.encode(doc)


def encode_group_v3(meta: GroupV3Meta | None = None) -> bytes:
    """Encode a group ``zarr.json`` (``consolidated_metadata`` omitted when ``None``)."""
    doc = msgspec.to_builtins(meta or GroupV3Meta(zarr_format=3, node_type="group"))
    if doc.get("consolidated_metadata") is None:
        doc.pop("consolidated_metadata", None)
    return write_document(doc)  # a NaN attribute carried stays NaN
