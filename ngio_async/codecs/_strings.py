"""The ``vlen-utf8`` codec: zarr string arrays (v2 ``|O`` with the ``vlen-utf8`` filter, v3
``string`` data type with the ``vlen-utf8`` codec), as zarr-python and numcodecs write them.

A chunk is a little-endian ``uint32`` item count, then per item a ``uint32`` byte length and that
many UTF-8 bytes, in C order. Pure: bytes in, a numpy ``object`` array of ``str`` out.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

import numpy as np

from ngio_async._errors import CodecError

if TYPE_CHECKING:
    from numpy.typing import NDArray
    from typing_extensions import Buffer

__all__ = ["VLenSerializer", "vlen_utf8_decode", "vlen_utf8_encode"]

_U32 = struct.Struct("<I")


def vlen_utf8_decode(buf: Buffer, count: int | None = None, *, key: str = "") -> NDArray[Any]:
    """The strings of one ``vlen-utf8`` chunk, as a 1-D ``object`` array.

    :param count: the number of items the chunk must hold (its shape's product), if known.
    :raises CodecError: a truncated chunk, a count other than ``count``, bytes past the last
        item or invalid UTF-8 (``key`` names the chunk).
    """
    data = memoryview(buf).cast("B")
    if len(data) < 4:
        raise CodecError(f"vlen-utf8 chunk {key!r}: {len(data)} bytes, no item count", key=key)
    (n,) = _U32.unpack_from(data, 0)
    if count is not None and n != count:
        raise CodecError(f"vlen-utf8 chunk {key!r} holds {n} items, expected {count}", key=key)
    if n > (len(data) - 4) // 4:
        raise CodecError(f"vlen-utf8 chunk {key!r}: {n} items cannot fit its bytes", key=key)
    fast = _decode_fast(data, n)
    if fast is not None:
        return fast
    out = np.empty(n, dtype=object)
    pos = 4
    for i in range(n):
        if pos + 4 > len(data):
            raise CodecError(f"vlen-utf8 chunk {key!r} is truncated at item {i}", key=key)
        (size,) = _U32.unpack_from(data, pos)
        pos += 4
        if pos + size > len(data):
            raise CodecError(f"vlen-utf8 chunk {key!r} is truncated at item {i}", key=key)
        try:
            out[i] = str(data[pos : pos + size], "utf-8")
        except UnicodeDecodeError as exc:
            raise CodecError(f"vlen-utf8 chunk {key!r}, item {i}: {exc}", key=key) from exc
        pos += size
    if pos != len(data):
        raise CodecError(
            f"vlen-utf8 chunk {key!r}: {len(data) - pos} bytes after the last item", key=key
        )
    return out


def _decode_fast(data: memoryview, n: int) -> NDArray[Any] | None:
    """numcodecs' C decoder (5x the loop below), when the chunk is whole and well-formed
    (holds exactly its items); ``None``: decode it item by item, which names the fault."""
    from numcodecs.vlen import VLenUTF8

    try:
        out = VLenUTF8().decode(data)
    except (ValueError, UnicodeDecodeError, RuntimeError):
        return None
    if len(out) != n:
        return None
    text = "".join(out)
    size = len(text) if text.isascii() else len(text.encode("utf-8"))
    if 4 + 4 * n + size != len(data):  # bytes after the last item
        return None
    return np.asarray(out, dtype=object)


def vlen_utf8_encode(values: Any) -> bytes:
    """One ``vlen-utf8`` chunk of ``values`` (strings; flattened in C order).

    :raises TypeError: an item is not a ``str``.
    """
    items = np.asarray(values, dtype=object).reshape(-1)
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise TypeError(f"vlen-utf8 item {i} is {type(item).__name__}, not str: {item!r}")
    # no bytes object per item (a million short strings took 250 MiB at the peak): one
    # joined text, its byte lengths, and the length prefixes scattered between them
    n = len(items)
    text = "".join(items)
    joined = text.encode("utf-8")
    if len(joined) == len(text):  # ASCII: as many bytes as characters
        sizes = np.fromiter(map(len, items), dtype=np.int64, count=n)
    else:
        sizes = np.fromiter((len(s.encode("utf-8")) for s in items), dtype=np.int64, count=n)
    heads = 4 + 4 * np.arange(n, dtype=np.int64)
    heads[1:] += np.cumsum(sizes[:-1])
    out = np.empty(4 + 4 * n + len(joined), dtype=np.uint8)
    out[:4] = np.frombuffer(_U32.pack(n), dtype=np.uint8)
    prefix = sizes.astype("<u4").view(np.uint8).reshape(n, 4)
    data = np.ones(len(out), dtype=bool)
    data[:4] = False
    for k in range(4):
        out[heads + k] = prefix[:, k]
        data[heads + k] = False
    out[data] = np.frombuffer(joined, dtype=np.uint8)
    return out.tobytes()


class VLenSerializer:
    """The array->bytes step of variable-length items: ``vlen-utf8`` (``str``; v3 ``string``,
    v2 ``|O`` with the ``vlen-utf8`` filter) or v2 ``vlen-bytes`` (``bytes``), as zarr-python
    writes them. ``order``: the order the items are laid out in (v2 ``order``)."""

    __slots__ = ("items", "order")

    def __init__(self, items: type[str | bytes] = str, order: str = "C") -> None:
        self.items = items
        self.order = order

    def __repr__(self) -> str:
        return f"VLenSerializer({self.items.__name__}, order={self.order!r})"

    @staticmethod
    def max_nbytes(n: int) -> int:
        """The most bytes a chunk of ``n`` items may decompress to (decompression bombs): 1 KiB
        per item on average, or 64 MiB."""
        return max(64 << 20, 4 + 1028 * n)

    def decode(self, buf: Buffer, n: int, key: str) -> NDArray[Any]:
        """The ``n`` items of chunk ``key`` (1-D, ``object``)."""
        if self.items is str:
            return vlen_utf8_decode(buf, n, key=key)
        from numcodecs.vlen import VLenBytes

        out = np.asarray(VLenBytes().decode(memoryview(buf).cast("B")), dtype=object)
        if out.size != n:
            raise CodecError(
                f"vlen-bytes chunk {key!r} holds {out.size} items, expected {n}", key=key
            )
        return out

    def encode(self, values: NDArray[Any]) -> bytes:
        """One chunk of ``values`` (laid out in :attr:`order`)."""
        flat = np.asarray(values, dtype=object).ravel(order="F" if self.order == "F" else "C")
        if self.items is str:
            return vlen_utf8_encode(flat)
        from numcodecs.vlen import VLenBytes

        return bytes(VLenBytes().encode(flat))
