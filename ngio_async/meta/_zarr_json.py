"""Zarr documents as JSON: msgspec's validation errors as ``MetadataError`` naming the JSON path,
a document that must be a JSON object, and the encoder."""

from __future__ import annotations

import re
from typing import Any, Final

import msgspec

from ngio_async._errors import MetadataError
from ngio_async.meta._base import decode_json

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


_ENCODER: Final = msgspec.json.Encoder()
