"""An array's codecs by stage (``codec_stages``): each chunk's codecs, those of whole shards, and
v2's filters and compressor as the v3 codecs that write the same bytes."""

from __future__ import annotations

from typing import Any, Final, Literal, NamedTuple

import msgspec

from ._zarr_codecs import (
    _NUMCODECS_TYPES,
    BloscCodec,
    BloscConfig,
    BytesCodec,
    BytesConfig,
    Codec,
    GzipCodec,
    GzipConfig,
    NumcodecsCodec,
    ShardingCodec,
    VLenUtf8Codec,
    ZstdCodec,
    ZstdConfig,
)
from ._zarr_nodes import ArrayMeta, ArrayV2Meta


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
