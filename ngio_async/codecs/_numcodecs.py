"""zarr-python's ``numcodecs.*`` v3 codecs (``zarr.codecs.numcodecs``, formerly ``numcodecs.zarr3``).

A codec named ``numcodecs.<id>`` runs numcodecs' codec ``<id>`` with the configuration as its
keyword arguments, exactly as zarr-python runs it: bytes->bytes codecs get the serialized chunk as a
flat ``uint8`` array, array->array codecs ("filters") the chunk array, whose shape and dtype some of
them change (``resolve_metadata`` in zarr-python), array->bytes codecs the chunk array.
"""

from __future__ import annotations

import math
from typing import Any, Final, Literal

import msgspec
import numcodecs
import numpy as np

from ngio_async._errors import MetadataError, UnsupportedError

__all__ = ["PREFIX", "ArrayStep", "codec_json", "kind_of", "make_numcodec", "resolve_spec"]

PREFIX: Final = "numcodecs."

#: The codecs zarr-python registers under ``numcodecs.<id>``, by kind.
_KINDS: Final[dict[str, Literal["array", "serializer", "bytes"]]] = {
    **dict.fromkeys(("blosc", "lz4", "zstd", "zlib", "gzip", "bz2", "lzma", "shuffle"), "bytes"),
    **dict.fromkeys(("crc32", "crc32c", "adler32", "fletcher32", "jenkins_lookup3"), "bytes"),
    **dict.fromkeys(
        ("delta", "bitround", "fixedscaleoffset", "quantize", "packbits", "astype"), "array"
    ),
    **dict.fromkeys(("pcodec", "zfpy"), "serializer"),
}

#: Configuration keys zarr-python fills from the array's dtype when they are absent.
_DTYPE_DEFAULTS: Final = {
    "quantize": "dtype",
    "fixedscaleoffset": "dtype",
    "astype": "decode_dtype",
}


def codec_json(codec: Any) -> tuple[str, dict[str, Any]]:
    """``(name, configuration)`` of a v3 codec given as a metadata Struct or as its JSON object."""
    doc = codec if isinstance(codec, dict) else msgspec.to_builtins(codec)
    if not isinstance(doc, dict) or not isinstance(doc.get("name"), str):
        raise MetadataError(f"a codec needs a string `name`, got {doc!r}", "$")
    cfg = doc.get("configuration") or {}
    if not isinstance(cfg, dict):
        raise MetadataError(f"codec {doc['name']!r}: configuration must be an object", "$")
    return doc["name"], cfg


def kind_of(name: str) -> Literal["array", "serializer", "bytes"] | None:
    """The kind of a ``numcodecs.*`` codec name, ``None`` for any other name."""
    if not name.startswith(PREFIX):
        return None
    return _KINDS.get(name[len(PREFIX) :])


def make_numcodec(name: str, config: dict[str, Any], dtype: np.dtype[Any], path: str) -> Any:
    """The numcodecs codec for ``numcodecs.<id>``, with zarr-python's defaults for ``dtype``.

    :raises UnsupportedError: numcodecs cannot load it (e.g. ``pcodec`` is not installed).
    :raises MetadataError: numcodecs refuses the configuration.
    """
    codec_id = name[len(PREFIX) :]
    cfg = {k: v for k, v in config.items() if k != "id"}
    if codec_id == "shuffle" and cfg.get("elementsize") is None:
        cfg["elementsize"] = dtype.itemsize
    key = _DTYPE_DEFAULTS.get(codec_id)
    if key is not None and cfg.get(key) is None:
        cfg[key] = dtype.str
    try:
        return numcodecs.get_codec({"id": codec_id, **cfg})
    except numcodecs.errors.UnknownCodecError as exc:
        raise UnsupportedError(
            f"codec {name!r} needs numcodecs' {codec_id!r} codec, which is not installed "
            f"(at {path})"
        ) from exc
    except (TypeError, ValueError, KeyError) as exc:
        raise MetadataError(f"invalid {name} configuration {config!r}: {exc}", path) from exc


def resolve_spec(
    codec_id: str, codec: Any, shape: tuple[int, ...], dtype: np.dtype[Any]
) -> tuple[tuple[int, ...], np.dtype[Any]]:
    """Shape and dtype an array->array codec encodes to (zarr-python's ``resolve_metadata``)."""
    if codec_id in ("delta", "fixedscaleoffset") and codec.astype is not None:
        return shape, np.dtype(codec.astype)
    if codec_id == "astype":
        return shape, np.dtype(codec.encode_dtype)
    if codec_id == "packbits":
        return (1 + math.ceil(math.prod(shape) / 8),), np.dtype(np.uint8)
    return shape, dtype


class ArrayStep:
    """One array->array step of a v3 pipeline: a numcodecs filter, or a transpose (``perm``).

    ``shape`` is the shape of the array the step encodes (its decoded output is reshaped to it).
    """

    __slots__ = ("codec", "perm", "shape")

    def __init__(
        self, shape: tuple[int, ...], *, codec: Any = None, perm: tuple[int, ...] | None = None
    ) -> None:
        self.shape = shape
        self.codec = codec
        self.perm = perm

    def encode(self, array: Any) -> Any:
        if self.perm is not None:
            return np.asarray(array).transpose(self.perm)
        return self.codec.encode(array)

    def decode(self, array: Any) -> Any:
        if self.perm is not None:
            return np.asarray(array).transpose(np.argsort(self.perm))
        return np.asarray(self.codec.decode(array)).reshape(self.shape)

    def __repr__(self) -> str:
        what = f"perm={self.perm}" if self.perm is not None else repr(self.codec)
        return f"ArrayStep({what})"
