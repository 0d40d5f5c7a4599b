"""Zarr v3 codecs as msgspec Structs (a tagged union on ``name``; v2's numcodecs ids as
``numcodecs.<id>``), what each kind is, and the checks of a codec list: one array->bytes
codec, array->array before it and bytes->bytes after, nested sharding, ``vlen-utf8`` for
strings only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias, Union

import msgspec

from ngio_async._errors import MetadataError, UnsupportedError

from ._zarr_sizes import _check_inner_chunks


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
