"""Struct base class that keeps unknown keys, and msgspec error translation (no I/O)."""

from __future__ import annotations

import json
import math
import re
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar, cast

import msgspec
import msgspec.inspect

from .._errors import MetadataError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "Base",
    "attach_extras",
    "decode_json",
    "dump",
    "fail",
    "read_document",
    "to_metadata_error",
    "write_document",
]

_T = TypeVar("_T")
_BOM = b"\xef\xbb\xbf"


def decode_json(decode: Callable[[Any], _T], raw: bytes | str, invalid: str) -> _T:
    """``decode(raw)``, bytes that are not JSON a ``MetadataError`` at ``$`` whose message starts
    with ``invalid`` (too deeply nested, not UTF-8, a byte order mark: said so); a
    ``msgspec.ValidationError`` (valid JSON of the wrong shape) is left to the caller.

    The bare ``NaN``, ``Infinity`` and ``-Infinity`` that Python's ``json`` writes (zarr-python
    and ome-zarr-py write attributes with it, and read them back) are read as floats (``decode``
    a ``msgspec.json.Decoder``'s: the document is converted to its type); the models refuse
    them where a finite number is required, naming the field."""
    try:
        return decode(raw)
    except msgspec.ValidationError:
        raise
    except msgspec.DecodeError as exc:
        found = _python_json(decode, raw)
        if found is not _NOT_PYTHON_JSON:
            return cast("_T", found)
        if isinstance(raw, bytes):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as bad:  # msgspec >= 0.23 reports it as a DecodeError
                raise MetadataError(f"{invalid}: it is not UTF-8 text ({bad})", "$") from None
        bom = raw[:3] == _BOM if isinstance(raw, bytes) else raw[:1] == "\ufeff"
        hint = " (it starts with a byte order mark, which JSON documents must not)" if bom else ""
        raise MetadataError(f"{invalid}: {exc}{hint}", "$") from exc
    except UnicodeDecodeError as exc:
        raise MetadataError(f"{invalid}: it is not UTF-8 text ({exc})", "$") from None
    except RecursionError:
        raise MetadataError(f"{invalid}: it is nested too deeply", "$") from None


_NOT_PYTHON_JSON: Any = object()


def read_document(raw: bytes | bytearray | memoryview) -> Any:
    """A stored JSON document as plain Python values, with the bare ``NaN`` and ``Infinity``
    of Python's ``json`` (zarr-python and ome-zarr-py write attributes with it) read as
    floats: what an edit reads before it writes the document back.

    :raises msgspec.DecodeError: the bytes are not JSON, not even Python's.
    """
    data = bytes(raw)
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError:
        found = _python_json(msgspec.json.decode, data)
        if found is _NOT_PYTHON_JSON:
            raise
        return found


def write_document(doc: Any) -> bytes:
    """``doc`` as compact JSON; a non-finite float (one :func:`read_document` read) is written
    back as Python's ``json`` writes it, bare, as it was stored (JSON has no NaN: ``null``
    would change the user's attribute)."""
    if _non_finite(doc):
        return json.dumps(doc, allow_nan=True, separators=(",", ":"), ensure_ascii=False).encode()
    return msgspec.json.encode(doc)


def _non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_non_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_non_finite(v) for v in value)
    return False


def _python_json(decode: Callable[[Any], Any], raw: bytes | str) -> Any:
    """``raw`` read as Python's ``json`` reads it (non-finite constants as floats), converted
    to the type of ``decode``'s decoder; ``_NOT_PYTHON_JSON`` when it holds no such constant
    or is not JSON that way either."""
    text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
    if "NaN" not in text and "Infinity" not in text:
        return _NOT_PYTHON_JSON
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        return _NOT_PYTHON_JSON
    decoder = getattr(decode, "__self__", None)
    return msgspec.convert(doc, getattr(decoder, "type", Any))


# A ``__post_init__`` check raises ``ValueError(fail(".sub.path", "rule"))`` ("rule - at
# `.sub.path`", readable as is when a model is built in Python); msgspec appends " - at `$.owner`"
# and ``to_metadata_error`` joins owner and sub path into one JSON path.
_AT = re.compile(r"^(?P<msg>.*?)(?: - at `(?P<path>\$[^`]*)`)?$", re.DOTALL)
_SUB_AT = re.compile(r"^(?P<msg>.*) - at `(?P<sub>[.\[][^`]*)`$", re.DOTALL)


def fail(sub: str, rule: str) -> str:
    """Message for a cross-field rule broken at ``owner + sub`` (``sub`` like ``.axes[1].name``)."""
    return f"{rule} - at `{sub}`" if sub else rule


def to_metadata_error(
    exc: msgspec.ValidationError | ValueError, prefix: str = "$"
) -> MetadataError:
    """Turn a msgspec validation error into a ``MetadataError`` with a full JSON path."""
    m = _AT.match(str(exc))
    assert m is not None  # the pattern matches every string
    msg, path = m.group("msg"), m.group("path") or "$"
    inner = _SUB_AT.match(msg)
    if inner is not None:
        msg = inner.group("msg")
        path += inner.group("sub")
    return MetadataError(msg, prefix + path[1:])


class Base(msgspec.Struct, kw_only=True, dict=True, omit_defaults=True):
    """Base of every NGFF model: keyword-only, ``None`` fields omitted on encode.

    ``dict=True`` gives instances a ``__dict__`` where decoding stores the keys the model does
    not know (``_extra``), so that decode -> encode loses nothing the spec allows.
    """

    @property
    def extra(self) -> dict[str, Any]:
        """Keys of the source document this model does not know (kept on encode)."""
        return self.__dict__.setdefault("_extra", {})  # type: ignore[no-any-return]


def _holds_struct(t: msgspec.inspect.Type) -> bool:
    if isinstance(t, msgspec.inspect.StructType):
        return True
    if isinstance(t, msgspec.inspect.UnionType):
        return any(_holds_struct(u) for u in t.types)
    if isinstance(t, msgspec.inspect.ListType):
        return _holds_struct(t.item_type)
    return False


class _Plan(NamedTuple):
    known: frozenset[str]  # encoded names of the fields (and the tag field)
    nested: tuple[tuple[str, str], ...]  # (attribute, key) of fields that may hold models


_PLANS: dict[type[Base], _Plan] = {}


def _plan(cls: type[Base]) -> _Plan:
    plan = _PLANS.get(cls)
    if plan is None:
        info = msgspec.inspect.type_info(cls)
        assert isinstance(info, msgspec.inspect.StructType)
        known = {f.encode_name for f in info.fields}
        if info.tag_field is not None:
            known.add(info.tag_field)
        nested = tuple((f.name, f.encode_name) for f in info.fields if _holds_struct(f.type))
        plan = _PLANS[cls] = _Plan(frozenset(known), nested)
    return plan


def attach_extras(raw: Any, obj: Any) -> None:
    """Store the keys of ``raw`` unknown to the model ``obj`` on it, recursively."""
    if isinstance(obj, Base):
        if not isinstance(raw, dict):
            return
        known, nested = _plan(type(obj))
        if len(raw) > len(known) or not known.issuperset(raw):
            extra = {k: v for k, v in raw.items() if k not in known}
            if extra:
                obj.__dict__["_extra"] = extra
        for attr, key in nested:
            sub = raw.get(key)
            if sub is not None:
                attach_extras(sub, getattr(obj, attr))
    elif isinstance(obj, list) and isinstance(raw, list):
        for r, o in zip(raw, obj, strict=False):
            attach_extras(r, o)


def dump(obj: Any) -> Any:
    """Plain JSON-ready builtins of a model, with its unknown keys put back."""
    if isinstance(obj, Base):
        cls = type(obj)
        out: dict[str, Any] = {}
        cfg = cls.__struct_config__
        if cfg.tag_field is not None:
            out[cfg.tag_field] = cfg.tag
        for attr, key in zip(cls.__struct_fields__, cls.__struct_encode_fields__, strict=True):
            value = getattr(obj, attr)
            if value is not None:
                out[key] = dump(value)
        extra = obj.__dict__.get("_extra")
        if extra:
            for k, v in extra.items():
                if isinstance(k, str):  # others are markers of the decoder, not JSON keys
                    out.setdefault(k, v)
        return out
    if isinstance(obj, list | tuple):
        return [dump(v) for v in obj]
    if isinstance(obj, dict):
        return {k: dump(v) for k, v in obj.items()}
    return obj
