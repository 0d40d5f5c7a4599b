"""Pieces of obstore GETs: the options of a byte range, bodies served ``Content-Encoding``d, and
local files read with ``os.pread``."""

from __future__ import annotations

import gzip
import os
import zlib
from typing import TYPE_CHECKING, Any

from .._errors import StoreError
from ._base import (
    Buffer,
    ByteRequest,
    OffsetByteRequest,
    RangeByteRequest,
    SuffixByteRequest,
    pread_span,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from obstore import GetOptions


__all__ = ["decode_content"]


def decode_content(body: Buffer, encoding: str, *, url: str, key: str) -> bytes:
    """The object's bytes from a body served with ``Content-Encoding: encoding`` (an object
    stored compressed: uploaded with that header, or nginx's ``gzip_static always``)."""
    try:
        if encoding in ("gzip", "x-gzip"):
            return gzip.decompress(body)
        if encoding == "deflate":  # zlib-wrapped as the RFC says, or raw as some send it
            try:
                return zlib.decompress(body)
            except zlib.error:
                return zlib.decompress(body, -zlib.MAX_WBITS)
    except (OSError, EOFError, zlib.error) as exc:
        raise StoreError(
            f"cannot decode the {encoding} body of {key!r} at {url}: {exc}", url=url, key=key
        ) from exc
    raise StoreError(
        f"{key!r} at {url} is served with Content-Encoding {encoding!r}, which is not "
        "supported (gzip and deflate are)",
        url=url,
        key=key,
    )


def _content_encoding(attributes: Mapping[str, Any]) -> str:
    """The ``Content-Encoding`` of a GET's answer (``""`` for none or ``identity``)."""
    value = str(attributes.get("Content-Encoding") or "").strip().lower()
    return "" if value == "identity" else value


def _get_options(byte_range: ByteRequest | None) -> GetOptions:
    options: GetOptions = {}
    if isinstance(byte_range, RangeByteRequest):
        options["range"] = (byte_range.start, byte_range.end)
    elif isinstance(byte_range, OffsetByteRequest):
        options["range"] = {"offset": byte_range.offset}
    elif isinstance(byte_range, SuffixByteRequest):
        options["range"] = {"suffix": byte_range.suffix}
    return options


_HAS_PREAD = hasattr(os, "pread")
_GZIP_MAGIC = b"\x1f\x8b"
_WHOLE = 1 << 40  # the end of the range that asks for a whole object (1 TiB)


def _from_byte_0(byte_range: ByteRequest | None) -> bool:
    """Whether ``byte_range`` starts at an object's first byte (suffixes: unknown, no)."""
    if isinstance(byte_range, RangeByteRequest):
        return byte_range.start == 0
    if isinstance(byte_range, OffsetByteRequest):
        return byte_range.offset == 0
    return byte_range is None


_FALLBACK: Any = object()  # _pread's "let obstore answer this one"


def _pread(path: str, byte_range: ByteRequest | None) -> tuple[bytes, int] | Any | None:
    """``(bytes, file size)`` of a local file (or of its byte range); ``None`` when it does
    not exist; ``_FALLBACK`` for what obstore should answer (errors, ranges past the end)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError:
        return _FALLBACK
    try:
        size = os.fstat(fd).st_size
        if byte_range is None:
            start, stop = 0, size
        elif isinstance(byte_range, RangeByteRequest):
            start, stop = byte_range.start, min(byte_range.end, size)
            if start >= size and byte_range.end > start:
                return _FALLBACK  # a range starting at or past the end: obstore's error
        elif isinstance(byte_range, OffsetByteRequest):
            start, stop = byte_range.offset, size
            if start >= size:
                return _FALLBACK
        else:
            start, stop = max(0, size - byte_range.suffix), size
        data = pread_span(fd, start, stop)
    except OSError:
        return _FALLBACK
    finally:
        os.close(fd)
    return data, size
