"""Keeping a source array's compressor in the output: the codecs a v3 or v2 destination
can write, and the array metadata carrying them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import msgspec

from ..images._labels import _compressor_of

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np

    from ..meta.zarr import ArrayMeta, Codec

#: numcodecs' blosc shuffle numbers
_SHUFFLES: dict[int, Literal["noshuffle", "shuffle", "bitshuffle"]] = {
    0: "noshuffle",
    1: "shuffle",
    2: "bitshuffle",
}


def _typed(codec: Codec, dtype: np.dtype[Any]) -> Codec:
    """A v2 source's blosc codec (see :func:`~ngio_async.meta.zarr.codec_stages`) with the
    settings v2 left to the data type written out: its ``typesize`` and an automatic shuffle
    (bitshuffle for 1-byte types, else shuffle, as numcodecs' AUTOSHUFFLE)."""
    from msgspec.structs import replace

    from ..meta.zarr import BloscCodec

    if not isinstance(codec, BloscCodec):
        return codec
    conf = codec.configuration
    shuffle = conf.shuffle
    if isinstance(shuffle, msgspec.UnsetType):
        shuffle = "bitshuffle" if dtype.itemsize == 1 else "shuffle"
    return BloscCodec(replace(conf, shuffle=shuffle, typesize=dtype.itemsize))


def _writable(codecs: Sequence[Codec]) -> tuple[Codec, ...] | None:
    """``codecs`` when every one is a bytes-to-bytes codec this library writes, else ``None``."""
    from ..meta.zarr import BloscCodec, Crc32cCodec, GzipCodec, NumcodecsCodec, ZstdCodec

    ok = (ZstdCodec, GzipCodec, BloscCodec, Crc32cCodec)
    if all(
        isinstance(c, ok) or (isinstance(c, NumcodecsCodec) and c.kind == "bytes") for c in codecs
    ):
        return tuple(codecs)
    return None


#: the numcodecs bytes-to-bytes codecs that compress, and those that are checksums
_NUMCODECS_COMPRESSORS = frozenset(("blosc", "lz4", "zstd", "zlib", "gzip", "bz2", "lzma"))


_NUMCODECS_CHECKSUMS = frozenset(("crc32", "crc32c", "adler32", "fletcher32", "jenkins_lookup3"))


def _numcodecs_id(codec: Codec) -> str | None:
    """The numcodecs id of a ``numcodecs.<id>`` codec (``None``: another codec)."""
    from ..meta.zarr import NumcodecsCodec

    if not isinstance(codec, NumcodecsCodec):
        return None
    return str(type(codec).__struct_config__.tag)[len("numcodecs.") :]


def _compresses(codecs: Sequence[Codec]) -> bool:
    """Whether one of ``codecs`` compresses (not a checksum alone)."""
    from ..meta.zarr import BloscCodec, GzipCodec, ZstdCodec

    return any(
        isinstance(c, ZstdCodec | GzipCodec | BloscCodec)
        or _numcodecs_id(c) in _NUMCODECS_COMPRESSORS
        for c in codecs
    )


def _whole_shard_codecs(src: ArrayMeta) -> tuple[Codec, ...]:
    """The codecs after ``src``'s ``sharding_indexed`` (shards compressed whole), as stored."""
    from ..meta.zarr import codec_stages

    stages = codec_stages(src)
    return () if stages is None else stages.whole_shard


def _kept_v3(
    src: ArrayMeta, dtype: np.dtype[Any], *, whole_shards: bool
) -> tuple[Codec, ...] | None:
    """The source's compressors as zarr v3 bytes-to-bytes codecs of each chunk (a sharded
    destination's inner chunks), settings included (``None``: none this library maps exactly;
    the closest :func:`create_async` name is used then). A v2 source's compressor is the v3
    codec that writes it (``numcodecs.<id>`` for those without a core codec, as a v3 source's
    are kept: ``lz4`` stays ``lz4``).

    ``whole_shards``: the destination has a whole-shard stage of its own (it is sharded), which
    keeps the codecs after the source's ``sharding_indexed`` (:func:`_kept_outer`); without one,
    a source whose chunks are not compressed but whose shards are compressed whole gives its
    chunks those codecs (a user who compressed the shards wanted compressed data)."""
    from ..meta.zarr import ArrayV2Meta, BytesCodec, codec_stages

    stages = codec_stages(src)
    if stages is None:
        return None  # a v2 codec with no v3 form
    codecs, outer = stages.chunk, stages.whole_shard
    serializer = next((i for i, c in enumerate(codecs) if isinstance(c, BytesCodec)), None)
    if serializer is None:
        return None  # nested sharding, a numcodecs serializer
    # array-to-array codecs before it (v2: filters) are dropped: values copy
    kept = codecs[serializer + 1 :]
    if isinstance(src, ArrayV2Meta):
        kept = tuple(_typed(c, dtype) for c in kept)
    if not whole_shards and outer and not _compresses(kept) and _compresses(outer):
        kept = (*kept, *outer)  # the whole-shard stage becomes a chunk stage
    return _writable(kept)


def _kept_outer(src: ArrayMeta) -> tuple[Codec, ...]:
    """The codecs after the source's ``sharding_indexed`` (shards compressed whole), settings
    included, for a sharded destination (``()``: none, or none this library writes)."""
    return _writable(_whole_shard_codecs(src)) or ()


def _kept_v2(src: ArrayMeta, dtype: np.dtype[Any]) -> dict[str, Any] | bool | None:
    """The source's compressor as a zarr v2 ``compressor``, settings included (``False``: none
    this library maps exactly). Checksums are left out: a v2 array has one compressor."""
    from ..meta.zarr import (
        ArrayV2Meta,
        BloscCodec,
        Crc32cCodec,
        GzipCodec,
        NumcodecsCodec,
        ZstdCodec,
    )

    if isinstance(src, ArrayV2Meta):
        return src.compressor  # decodable, so encodable (numcodecs); filters are dropped
    kept = _kept_v3(src, dtype, whole_shards=False)
    if kept is None:
        return False
    kept = tuple(
        c
        for c in kept
        if not isinstance(c, Crc32cCodec) and _numcodecs_id(c) not in _NUMCODECS_CHECKSUMS
    )
    if len(kept) > 1:
        return False
    if not kept:
        return None
    codec = kept[0]
    if isinstance(codec, ZstdCodec):
        zstd: dict[str, Any] = {"id": "zstd", "level": codec.configuration.level}
        return zstd | ({"checksum": True} if codec.configuration.checksum else {})
    if isinstance(codec, GzipCodec):
        return {"id": "gzip", "level": codec.configuration.level}
    if isinstance(codec, BloscCodec):
        conf = codec.configuration
        shuffle = conf.shuffle if isinstance(conf.shuffle, str) else None
        numbers = {name: n for n, name in _SHUFFLES.items()}
        return {
            "id": "blosc",
            "cname": conf.cname,
            "clevel": conf.clevel,
            "shuffle": numbers[shuffle] if shuffle else (2 if dtype.itemsize == 1 else 1),
            "blocksize": conf.blocksize,
        }
    cid = _numcodecs_id(codec)
    if cid is not None:  # its configuration is numcodecs' own keyword arguments
        assert isinstance(codec, NumcodecsCodec)
        return {"id": cid, **codec.configuration}
    return False


def _closest_name(src: ArrayMeta, *, whole_shards: bool) -> Any:
    """The :func:`create_async` compressor name closest to ``src``'s chunk compressor; without a
    whole-shard stage in the destination (``whole_shards`` false), that of the codecs after the
    source's ``sharding_indexed`` when its chunks are not compressed."""
    from msgspec.structs import replace

    name = _compressor_of(src)
    outer = _whole_shard_codecs(src)
    if name is None and not whole_shards and outer:
        return _compressor_of(replace(src, codecs=outer))
    return name


def _keep_compressor(meta: ArrayMeta, src: ArrayMeta, dtype: np.dtype[Any]) -> ArrayMeta:
    """``meta`` with ``src``'s compressor and its settings (blosc's ``cname``, levels, shuffle)
    where they map exactly, across zarr formats too. A sharded ``meta`` also keeps the codecs
    ``src`` compresses its shards with whole (after ``sharding_indexed``)."""
    from msgspec.structs import replace

    from ..meta.zarr import (
        ArrayV2Meta,
        BytesCodec,
        ShardingCodec,
        decode_array_v2,
        decode_array_v3,
        encode_array_v2,
        encode_array_v3,
    )

    if isinstance(meta, ArrayV2Meta):
        conf = _kept_v2(src, dtype)
        if conf is False:
            return meta
        return decode_array_v2(encode_array_v2(replace(meta, compressor=conf)))
    codecs = meta.codecs
    sharding = codecs[0] if len(codecs) == 1 and isinstance(codecs[0], ShardingCodec) else None
    kept = _kept_v3(src, dtype, whole_shards=sharding is not None)
    outer = _kept_outer(src) if sharding is not None else ()
    if kept is None and not outer:
        return meta
    inner = sharding.configuration.codecs if sharding is not None else codecs
    assert isinstance(inner[0], BytesCodec)
    if kept is not None:
        inner = (inner[0], *kept)
    if sharding is not None:
        config = replace(sharding.configuration, codecs=inner)
        new: tuple[Codec, ...] = (ShardingCodec(config), *outer)
    else:
        new = inner
    return decode_array_v3(encode_array_v3(replace(meta, codecs=new)))
