"""``validate``: NGFF version and kind detection, decoding, version, strict and unit rules."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import msgspec
import msgspec.inspect

from .._errors import MetadataError, UnsupportedError
from ._base import (
    Base,
    attach_extras,
    decode_json,
    dump,
    to_metadata_error,
    write_document,
)
from ._ngff06 import OmeAttributes06, OmeMetadata06, to_compat
from ._ngff_old import OLD_VERSIONS, is_zarr_v2, mark_unknown_scales, upgraded
from .ngff import (
    Axis,
    OmeAttributes,
    OmeMetadata,
    transform_length_problems,
    well_path_problems,
)

__all__ = [
    "KINDS",
    "MetadataWarning",
    "SUPPORTED_VERSIONS",
    "decode_attrs",
    "decode_zarr_json",
    "encode_attrs",
    "to_attrs",
    "validate",
]

SUPPORTED_VERSIONS = ("0.4", "0.5")
#: what the reader reads, for the messages refusing other versions
_READ = "ngio_async reads NGFF 0.1, 0.2 and 0.3 (read only), 0.4, 0.5 and 0.6"
KINDS = ("image", "label", "labels", "plate", "well", "bf2raw", "ome", "scene", "zarr_json")
# the key whose presence makes a document of a kind
_KIND_KEY = {
    "image": "multiscales",
    "label": "image-label",
    "labels": "labels",
    "plate": "plate",
    "well": "well",
    "bf2raw": "bioformats2raw.layout",
    "ome": "series",
    "scene": "scene",
}
#: the top-level keys one of which every NGFF group document has (0.4 attributes, 0.5 ``ome``)
NGFF_KEYS = tuple(k for k in _KIND_KEY.values() if k != "scene")
#: the keys NGFF defines in a 0.4 group's attributes / a 0.5 ``ome`` object
_OME_KEYS = frozenset((*NGFF_KEYS, "omero", "version"))
_SPACE_UNITS = frozenset(
    [
        "angstrom",
        "attometer",
        "centimeter",
        "decimeter",
        "exameter",
        "femtometer",
        "foot",
        "gigameter",
        "hectometer",
        "inch",
        "kilometer",
        "megameter",
        "meter",
        "micrometer",
        "mile",
        "millimeter",
        "nanometer",
        "parsec",
        "petameter",
        "picometer",
        "terameter",
        "yard",
        "yoctometer",
        "yottameter",
        "zeptometer",
        "zettameter",
    ]
)
_TIME_UNITS = frozenset(
    [
        "attosecond",
        "centisecond",
        "day",
        "decisecond",
        "exasecond",
        "femtosecond",
        "gigasecond",
        "hectosecond",
        "hour",
        "kilosecond",
        "megasecond",
        "microsecond",
        "millisecond",
        "minute",
        "nanosecond",
        "petasecond",
        "picosecond",
        "second",
        "terasecond",
        "yoctosecond",
        "yottasecond",
        "zeptosecond",
        "zettasecond",
    ]
)

_M = TypeVar("_M", OmeMetadata, OmeAttributes)
_json_decode = msgspec.json.Decoder().decode


class MetadataWarning(UserWarning):
    """A SHOULD rule is not met (for example a unit outside the UDUNITS-2 list)."""


def validate(
    doc: Mapping[str, Any] | bytes | str,
    *,
    version: str | None = None,
    kind: str | None = None,
    strict: bool = False,
) -> OmeMetadata:
    """Validate NGFF group attributes and return the typed model.

    :param doc: the attributes of a zarr group: a 0.4 ``.zattrs`` document, a 0.5 / 0.6
        ``zarr.json["attributes"]`` (``{"ome": {...}}``), or a whole 0.5 / 0.6 group
        ``zarr.json``; a mapping or raw JSON bytes.
    :param version: "0.4", "0.5", a 0.6 one ("0.6rc0") or an old one ("0.1", "0.2", "0.3");
        detected from the document when ``None``.
    :param kind: image, label, labels, plate, well, bf2raw, ome, scene (0.6) or zarr_json; when
        given, the document must be of that kind. Every NGFF key present is validated either
        way.
    :param strict: also enforce the SHOULD rules of the official strict schemas (not of the
        versions before 0.4, which have none).
    :returns: the model; of a 0.6 document, its 0.4/0.5-shaped view (a multiscale's ``axes``
        are its intrinsic coordinate system's, a level's transformations its scale and
        translation), holding the typed 0.6 document (``ngff06_of(meta)``); of a 0.1 - 0.3
        document, its 0.4-shaped view with ``version`` the old one (5D ``tczyx`` axes when
        it has none, types by axis name, every level's scale 1: the reader derives the lower
        levels' from their shapes; see :mod:`ngio_async.meta._ngff_old`). The old
        version's rules are checked as far as 0.4 keeps them (it is read, not validated
        against its own schema).
    :raises MetadataError: the document breaks a rule (the message names the JSON path).
    :raises UnsupportedError: the document is of an NGFF version ngio_async does not read.
    """
    if isinstance(doc, bytes | str):
        doc = decode_json(_json_decode, doc, "invalid JSON")
    if not isinstance(doc, Mapping):
        raise MetadataError(f"expected a JSON object, got {type(doc).__name__}", "$")
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    prefix = "$"
    if kind == "zarr_json" or "zarr_format" in doc:
        doc, prefix = _unwrap_zarr_json(doc), "$.attributes"
        kind = None if kind == "zarr_json" else kind
    found = _detect_version(doc, version, prefix)
    if found.startswith("0.6"):
        return _validate06(doc, found, kind, strict, prefix)
    if found in OLD_VERSIONS:
        return _validate_old(doc, found, kind, prefix)
    meta = _decode(doc, found, prefix)
    _check(meta, found, kind, strict, prefix)
    return meta


def decode_attrs(raw: bytes, *, version: str | None = None, strict: bool = False) -> OmeMetadata:
    """Decode and validate group attributes from JSON bytes (0.4 ``.zattrs``)."""
    return validate(raw, version=version, strict=strict)


def decode_zarr_json(raw: bytes, *, strict: bool = False) -> OmeMetadata:
    """Decode and validate a 0.5 group ``zarr.json`` from JSON bytes."""
    return validate(raw, kind="zarr_json", strict=strict)


def to_attrs(meta: OmeMetadata, version: str | None = None) -> dict[str, Any]:
    """The group attributes for ``meta`` in NGFF ``version`` (default: ``meta.version``).

    0.4: NGFF keys at the top level, ``version`` on multiscales, plate, well, image-label and
    omero (``"0.4"`` where missing, but where a decoded document had none). 0.5: the NGFF keys
    under ``ome`` with ``ome.version``. Written in its own version, a decoded document keeps
    every key and value it had (but a per-object ``"0.4"`` in 0.5, which would contradict
    ``ome.version``). Between versions only the
    versions move: 0.4's per-object ``version`` keys (and an ``omero.version`` of ``"0.4"``)
    become ``ome.version``, and back (``omero`` gets ``"0.4"`` when it had none or ``"0.5"``).
    Unknown keys are kept: inside NGFF objects where they were, and a group's own attributes
    (0.4 top-level keys NGFF does not define, 0.5 keys beside ``ome``) stay group attributes in
    either version (JSON-LD ``@`` keys stay with the NGFF metadata)."""
    version = version or meta.version or "0.5"
    if version not in SUPPORTED_VERSIONS:
        raise UnsupportedError(f"cannot write NGFF version {version!r}")
    body: dict[str, Any] = dump(meta)
    body.pop("version", None)
    outer = body.pop("_attributes", None)
    outer = dict(outer) if isinstance(outer, dict) else {}
    omero = body.get("omero") if isinstance(body.get("omero"), dict) else None
    v2 = is_zarr_v2(meta.version)  # 0.4, or a 0.1 - 0.3 view
    stray = meta.extra.get("version") if v2 else None  # a top-level key
    if version == "0.5":
        for obj in [*_versioned(body), omero or {}]:  # a 0.4 one would contradict ome.version
            if obj.get("version") == "0.4" or (meta.version == "0.4" and obj is not omero):
                obj.pop("version", None)
        if v2:  # the versions moved to ome.version
            if stray is not None:
                outer.setdefault("version", stray)
            own = [k for k in body if k not in _OME_KEYS and not k.startswith("@")]
            for key in own:  # a 0.4 group's own keys stay group attributes, beside 'ome'
                outer.setdefault(key, body.pop(key))
        outer["ome"] = {"version": "0.5", **body}
        return outer
    if stray is not None:
        body["version"] = stray
    moved = meta.version not in (None, "0.4")
    for obj, model in zip(_versioned(body), _versioned_models(meta), strict=True):
        if moved or (obj.get("version") is None and _UNVERSIONED not in model.extra):
            obj["version"] = "0.4"
    if omero is not None and meta.omero is not None:  # the spec's and OMERO's exports have one
        was = omero.get("version")
        unversioned = _UNVERSIONED in meta.omero.extra
        if (moved and was in (None, "0.5")) or (was is None and not unversioned):
            omero["version"] = "0.4"
    for key, value in outer.items():  # a 0.5 group's attributes beside 'ome'
        if key != "ome":
            body.setdefault(key, value)
    return body


def encode_attrs(meta: OmeMetadata, version: str | None = None) -> bytes:
    """JSON bytes of :func:`to_attrs` (a non-finite number of an unknown key, read from
    Python's ``json``, written back as it was, not as ``null``)."""
    return write_document(to_attrs(meta, version))


# ---------------------------------------------------------------- internals
class _Marker(tuple[str]):
    """An ``extra`` key that is no JSON key (a tuple): a note of the decoder, never written."""

    __slots__ = ()


#: on a model decoded from a 0.4 document whose ``version`` was missing: written back as 0.4,
#: it stays without one
_UNVERSIONED: Any = _Marker(("unversioned",))


def _versioned_models(meta: OmeMetadata) -> list[Base]:
    """The models :func:`_versioned` finds the dumped objects of, in the same order."""
    objs: list[Base] = list(meta.multiscales or ())
    return objs + [o for o in (meta.plate, meta.well, meta.image_label) if o is not None]


def _versioned(body: dict[str, Any]) -> list[dict[str, Any]]:
    out = [m for m in body.get("multiscales") or () if isinstance(m, dict)]
    out += [body[k] for k in ("plate", "well", "image-label") if isinstance(body.get(k), dict)]
    return out


def _unwrap_zarr_json(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    if doc.get("zarr_format") != 3:
        raise MetadataError(
            "zarr.json of an NGFF 0.5 group must have zarr_format 3", "$.zarr_format"
        )
    if doc.get("node_type") != "group":
        raise MetadataError("NGFF metadata must be on a group (node_type 'group')", "$.node_type")
    attrs = doc.get("attributes")
    if not isinstance(attrs, Mapping):
        raise MetadataError("zarr.json has no 'attributes' object", "$.attributes")
    return attrs


def _detect_version(doc: Mapping[str, Any], version: str | None, prefix: str = "$") -> str:
    """The NGFF version of a document: given, or read from ``ome.version`` / per-object keys."""
    ome = doc.get("ome")
    given = version
    if version is None:
        if isinstance(ome, Mapping):
            found = ome.get("version")
            rfc5 = _version_04_keys(ome) or ""  # an 'ome' without version, of 0.6 shape
            version = found if isinstance(found, str) else rfc5[:3] if rfc5 == "0.6" else "0.5"
        else:
            version = _version_04_keys(doc) or "0.4"
    if version.startswith("0.6"):
        found = ome.get("version") if isinstance(ome, Mapping) else None
        # "0.6" asks for any 0.6 version ("0.6rc0", "0.6.dev4", ...)
        same = found == given or (given == "0.6" and str(found).startswith("0.6"))
        if given is not None and isinstance(found, str) and not same:
            raise MetadataError(
                f"version must be {given!r} (the version asked for), got {found!r}",
                prefix + ".ome.version",
            )
        return version
    if version.startswith("0.7"):
        raise UnsupportedError(f"NGFF version {version!r} is not supported yet ({_READ})")
    if version not in SUPPORTED_VERSIONS:
        if isinstance(ome, Mapping):
            raise MetadataError(
                f"unknown NGFF version {version!r} ({_READ})", prefix + ".ome.version"
            )
        if version in OLD_VERSIONS:
            return version
        if given is None:  # a per-object version: invalid there, as an unknown 'ome.version'
            where = _stated_at(doc, version)
            raise MetadataError(f"unknown NGFF version {version!r} ({_READ})", prefix + where)
        raise UnsupportedError(f"NGFF version {version!r} is not supported ({_READ})")
    found = ome.get("version") if isinstance(ome, Mapping) else None
    if given is not None and isinstance(found, str) and found != given:
        raise MetadataError(
            f"version must be {given!r} (the version asked for), got {found!r}",
            prefix + ".ome.version",
        )
    if found == "0.4" and not any(k in doc for k in NGFF_KEYS):
        raise MetadataError(
            "'ome' with version '0.4': NGFF 0.4 metadata is at the top level of .zattrs "
            "('ome' holds NGFF 0.5 metadata, with version '0.5')",
            prefix + ".ome.version",
        )
    return version


def _version_04_keys(doc: Mapping[str, Any]) -> str | None:
    """The version of a document without ``ome`` when it is not 0.4: 0.6 (RFC-5 keys or a 0.6
    ``version``), or another (one before 0.4, or one not read) a per-object ``version`` of
    the first multiscale, the plate, the well or the image-label says (a misplaced ``"0.5"``
    is left to the 0.4 rules, which say where 0.5 metadata goes)."""
    if any(k in doc for k in ("coordinateSystems", "coordinateTransformations", "scene")):
        return "0.6"  # RFC-5 keys at the top level
    ms = doc.get("multiscales")
    objs = [ms[0]] if isinstance(ms, list) and ms else []
    objs += [doc.get(k) for k in ("plate", "well", "image-label")]
    for obj in objs:
        if not isinstance(obj, Mapping):
            continue
        if "coordinateSystems" in obj:
            return "0.6"
        v = obj.get("version")
        if isinstance(v, str) and v not in SUPPORTED_VERSIONS:
            return v  # 0.6, one before 0.4, or one not read (refused naming it)
    return None


def _stated_at(doc: Mapping[str, Any], version: str) -> str:
    """The JSON path (below the document) of the per-object ``version`` that
    :func:`_version_04_keys` found."""
    ms = doc.get("multiscales")
    objs = [("multiscales[0]", ms[0])] if isinstance(ms, list) and ms else []
    objs += [(k, doc.get(k)) for k in ("plate", "well", "image-label")]
    found = (
        f".{k}.version" for k, o in objs if isinstance(o, Mapping) and o.get("version") == version
    )
    return next(found, "")


def _decode(doc: Mapping[str, Any], version: str, prefix: str) -> OmeMetadata:
    if version == "0.5":
        if "ome" not in doc:
            raise MetadataError("NGFF 0.5 metadata must be under the 'ome' key", prefix)
        try:
            wrapper = _convert(doc, OmeAttributes)
        except msgspec.ValidationError as exc:
            raise to_metadata_error(exc, prefix) from None
        attach_extras(doc, wrapper)
        meta = wrapper.ome
        if wrapper.extra:
            meta.extra["_attributes"] = wrapper.extra
        if meta.version is None:
            raise MetadataError("NGFF 0.5 requires 'version'", prefix + ".ome")
        return meta
    try:
        meta = _convert(doc, OmeMetadata)
    except msgspec.ValidationError as exc:
        raise to_metadata_error(exc, prefix) from None
    attach_extras(doc, meta)
    if meta.version is not None:
        meta.extra["version"] = meta.version  # a stray top-level key of a 0.4 document
    meta.version = "0.4"
    for obj in [*_versioned_models(meta), *([meta.omero] if meta.omero else [])]:
        if getattr(obj, "version", None) is None:
            obj.extra[_UNVERSIONED] = True
    return meta


def _convert(doc: Mapping[str, Any], model: type[_M]) -> _M:
    """``msgspec.convert``, where a JSON integer may be written ``3.0`` (JSON Schema's
    ``integer`` is a number without a fractional part; Python writes float-typed values so).
    Only integer fields take such a float as an integer: a scale or window keeps ``1.0``."""
    try:
        return msgspec.convert(doc, model)
    except msgspec.ValidationError as exc:
        if "got `float`" not in str(exc):
            raise
        return msgspec.convert(_ints_where_typed(doc, msgspec.inspect.type_info(model)), model)


def _ints_where_typed(value: Any, t: msgspec.inspect.Type) -> Any:
    """``value`` with the integral floats that type ``t`` wants as integers made integers."""
    mi = msgspec.inspect
    if isinstance(value, float):
        kinds = t.types if isinstance(t, mi.UnionType) else (t,)
        wants_int = any(isinstance(k, mi.IntType) for k in kinds)
        if wants_int and value.is_integer() and not any(isinstance(k, mi.FloatType) for k in kinds):
            return int(value)
        return value
    if isinstance(t, mi.UnionType):  # of a struct (tagged ones: chosen by tag), a list, None
        found = [u for u in t.types if _fits(value, u)]
        return _ints_where_typed(value, found[0]) if found else value
    if isinstance(t, mi.ListType) and isinstance(value, list):
        return [_ints_where_typed(v, t.item_type) for v in value]
    if isinstance(t, mi.StructType) and isinstance(value, Mapping):
        fields = {f.encode_name: f.type for f in t.fields}
        return {k: _ints_where_typed(v, fields[k]) if k in fields else v for k, v in value.items()}
    return value


def _fits(value: Any, t: msgspec.inspect.Type) -> bool:
    mi = msgspec.inspect
    if isinstance(t, mi.StructType):
        return isinstance(value, Mapping) and (t.tag is None or value.get(t.tag_field) == t.tag)
    return isinstance(t, mi.ListType) and isinstance(value, list)


def _check(meta: OmeMetadata, version: str, kind: str | None, strict: bool, prefix: str) -> None:
    base = prefix + (".ome" if version == "0.5" else "")
    if not meta.kinds:
        keys = ", ".join(repr(k) for k in NGFF_KEYS)
        outside = [k for k in meta.extra.get("_attributes") or () if k in NGFF_KEYS]
        hint = f" ({outside[0]!r} must be inside 'ome' in NGFF 0.5)" if outside else ""
        raise MetadataError(f"no NGFF metadata found (expected one of {keys}){hint}", base)
    if kind is not None and kind != "zarr_json":
        key = _KIND_KEY[kind]
        attr = key.replace("-", "_").replace(".", "_")
        if attr == "bioformats2raw_layout":
            present = meta.bioformats2raw_layout is not None
        else:
            present = getattr(meta, attr, None) is not None
        if not present:
            raise MetadataError(f"a {kind} document must have {key!r}", base)
    if version == "0.4":
        _check_04_versions(meta, base)
    _check_consistency(meta, version, base)
    _check_units(meta, base)
    if strict:
        _check_strict(meta, version, base)


def _validate_old(
    doc: Mapping[str, Any], version: str, kind: str | None, prefix: str
) -> OmeMetadata:
    """The 0.4-shaped view of a 0.1 - 0.3 document (``version``): checked as 0.4 is, but for
    the strict profile; its ``version`` the old one."""
    meta = _decode(upgraded(doc), "0.4", prefix)
    _check(meta, "0.4", kind, False, prefix)
    mark_unknown_scales(doc, meta)
    meta.version = version
    return meta


def _check_04_versions(meta: OmeMetadata, base: str) -> None:
    objs: list[tuple[str, str | None]] = [
        (f"{base}.multiscales[{i}].version", m.version)
        for i, m in enumerate(meta.multiscales or ())
    ]
    for key, obj in (("plate", meta.plate), ("well", meta.well), ("image-label", meta.image_label)):
        if obj is not None:
            objs.append((f"{base}.{key}.version", obj.version))
    for path, v in objs:
        if v is not None and v != "0.4":
            if v.startswith("0.6"):
                raise UnsupportedError(f"NGFF version {v!r} is not supported yet - at `{path}`")
            hint = " (0.5 metadata is under 'ome' in zarr.json)" if v == "0.5" else f" ({_READ})"
            raise MetadataError(
                f"version must be '0.4' in an NGFF 0.4 document, got {v!r}{hint}", path
            )


def _check_consistency(meta: OmeMetadata, version: str, base: str) -> None:
    """M6 and P5. The 0.4 conformance suite accepts documents that break them (its upstream
    data predates the checks), so for 0.4 they warn; from 0.5 on they are errors."""
    problems = [
        (f"{base}.multiscales[{i}]{sub}", rule)
        for i, m in enumerate(meta.multiscales or ())
        for sub, rule in transform_length_problems(m)
    ]
    if meta.plate is not None:
        problems += [(f"{base}.plate{sub}", rule) for sub, rule in well_path_problems(meta.plate)]
    if not problems:
        return
    if version != "0.4":
        path, rule = problems[0]
        raise MetadataError(rule, path)
    for path, rule in problems:
        warnings.warn(
            f"{rule} - at `{path}` (an error from NGFF 0.5 on)", MetadataWarning, stacklevel=4
        )


def _check_units(meta: OmeMetadata, base: str) -> None:
    """A8 (UDUNITS-2 units) and A7 (three space axes ordered z, y, x): SHOULD rules, warnings."""
    for i, m in enumerate(meta.multiscales or ()):
        _check_unit_list(m.axes, f"{base}.multiscales[{i}].axes", stacklevel=5)


def _check_unit_list(axes: Sequence[Axis], at: str, stacklevel: int) -> None:
    """A7 and A8 for the axes at JSON path ``at``."""
    space = [a.name for a in axes if a.type == "space"]
    if sorted(space) == ["x", "y", "z"] and space != ["z", "y", "x"]:
        warnings.warn(
            f"space axes {', '.join(space)}: three space axes should be ordered z, y, x"
            f" - at `{at}`",
            MetadataWarning,
            stacklevel=stacklevel,
        )
    for j, a in enumerate(axes):
        if a.unit is None:
            continue
        units = _SPACE_UNITS if a.type == "space" else _TIME_UNITS if a.type == "time" else None
        if units is not None and a.unit not in units:
            warnings.warn(
                f"unit {a.unit!r} of {a.type} axis {a.name!r} is not a UDUNITS-2 {a.type} unit"
                f" - at `{at}[{j}].unit`",
                MetadataWarning,
                stacklevel=stacklevel,
            )


def _check_strict(meta: OmeMetadata, version: str, base: str) -> None:
    """The SHOULD fields the official strict schemas require."""
    missing: list[str] = []
    for i, m in enumerate(meta.multiscales or ()):
        fields = ["metadata", "type", "name"] + (["version"] if version == "0.4" else [])
        missing += [f"{base}.multiscales[{i}].{f}" for f in fields if getattr(m, f) is None]
    if meta.image_label is not None:
        if meta.image_label.colors is None:
            missing.append(f"{base}.image-label.colors")
        if version == "0.4" and meta.image_label.version is None:
            missing.append(f"{base}.image-label.version")
    if meta.plate is not None:
        if meta.plate.name is None:
            missing.append(f"{base}.plate.name")
        if version == "0.4" and meta.plate.version is None:
            missing.append(f"{base}.plate.version")
        for i, a in enumerate(meta.plate.acquisitions or ()):
            missing += [
                f"{base}.plate.acquisitions[{i}].{f}"
                for f in ("name", "maximumfieldcount")
                if getattr(a, f) is None
            ]
    if meta.well is not None and version == "0.4" and meta.well.version is None:
        missing.append(f"{base}.well.version")
    if missing:
        head, *rest = missing
        more = f" (and {len(rest)} more: {', '.join(rest)})" if rest else ""
        raise MetadataError(f"strict profile: a SHOULD field is missing{more}", head)


# ---------------------------------------------------------------- NGFF 0.6
def _validate06(
    doc: Mapping[str, Any], version: str, kind: str | None, strict: bool, prefix: str
) -> OmeMetadata:
    """Validate a 0.6 document (``version`` as detected or given) and return its view."""
    ome, base = _decode06(doc, version, prefix)
    if not ome.kinds:
        keys = ", ".join(repr(k) for k in (*NGFF_KEYS, "scene"))
        raise MetadataError(f"no NGFF metadata found (expected one of {keys})", base)
    if kind is not None and kind != "zarr_json" and kind not in ome.kinds:
        raise MetadataError(f"a {kind} document must have {_KIND_KEY[kind]!r}", base)
    for i, ms in enumerate(ome.multiscales or ()):
        at = f"{base}.multiscales[{i}]"
        for sub, rule in ms.soft_problems():
            warnings.warn(f"{rule} - at `{at}{sub}`", MetadataWarning, stacklevel=3)
        for j, cs in enumerate(ms.coordinate_systems):
            _check_unit_list(cs.axes, f"{at}.coordinateSystems[{j}].axes", stacklevel=4)
    if ome.plate is not None:
        for sub, rule in well_path_problems(ome.plate):
            warnings.warn(f"{rule} - at `{base}.plate{sub}`", MetadataWarning, stacklevel=3)
    if strict:
        _check_strict06(ome, None if kind == "zarr_json" else kind, base)
    meta = to_compat(ome)
    outer = {k: v for k, v in doc.items() if k != "ome"} if base.endswith(".ome") else {}
    if outer:
        meta.extra["_attributes"] = outer
    return meta


def _decode06(doc: Mapping[str, Any], version: str, prefix: str) -> tuple[OmeMetadata06, str]:
    """The 0.6 model of ``doc`` and the JSON path of its ``ome`` object. Two of the spec's
    examples keep the metadata at the top level (``"ome"`` absent or its version string):
    read so, with a :class:`MetadataWarning`."""
    ome = doc.get("ome")
    try:
        if isinstance(ome, Mapping):
            wrapper = msgspec.convert(doc, OmeAttributes06)
            attach_extras(doc, wrapper)
            meta, base = wrapper.ome, prefix + ".ome"
            if meta.version is None:
                raise MetadataError("NGFF 0.6 requires 'version'", base)
            if not meta.version.startswith("0.6"):
                raise MetadataError(
                    f"expected a 0.6 version, got {meta.version!r}", base + ".version"
                )
            return meta, base
        body = {k: v for k, v in doc.items() if k != "ome"}
        meta = msgspec.convert(body, OmeMetadata06)
        attach_extras(body, meta)
    except msgspec.ValidationError as exc:
        raise to_metadata_error(exc, prefix) from None
    warnings.warn(
        "NGFF 0.6 metadata belongs in an 'ome' object (with its 'version'); "
        f"read from the top level - at `{prefix}`",
        MetadataWarning,
        stacklevel=4,
    )
    meta.version = ome if isinstance(ome, str) else version
    return meta, prefix


def _check_strict06(ome: OmeMetadata06, kind: str | None, base: str) -> None:
    """The SHOULD fields the official 0.6rc0 strict schemas require, of ``kind`` (``None``: of
    any one kind present, as the strict schema's ``anyOf``). A multiscale's ``type`` and
    ``metadata`` only warn: the spec's own 0.6rc0 examples leave them out."""
    found = {k: _strict_missing06(ome, k, base) for k in ome.kinds if kind in (None, k)}
    if not found or any(not missing for missing in found.values()):
        return
    head, *rest = next(m for m in found.values() if m)
    more = f" (and {len(rest)} more: {', '.join(rest)})" if rest else ""
    raise MetadataError(f"strict profile: a SHOULD field is missing{more}", head)


def _strict_missing06(ome: OmeMetadata06, kind: str, base: str) -> list[str]:
    missing: list[str] = []
    if kind == "image":
        for i, m in enumerate(ome.multiscales or ()):
            if m.name is None:
                missing.append(f"{base}.multiscales[{i}].name")
            for f in ("type", "metadata"):
                if getattr(m, f) is None:
                    warnings.warn(
                        f"strict profile: a SHOULD field is missing - at "
                        f"`{base}.multiscales[{i}].{f}`",
                        MetadataWarning,
                        stacklevel=5,
                    )
    if kind == "label" and ome.image_label is not None and ome.image_label.colors is None:
        missing.append(f"{base}.image-label.colors")
    if kind == "plate" and ome.plate is not None:
        if ome.plate.name is None:
            missing.append(f"{base}.plate.name")
        for i, a in enumerate(ome.plate.acquisitions or ()):
            missing += [
                f"{base}.plate.acquisitions[{i}].{f}"
                for f in ("name", "maximumfieldcount")
                if getattr(a, f) is None
            ]
    return missing
