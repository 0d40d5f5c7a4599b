"""NGFF 0.4 / 0.5 / 0.6 metadata models (msgspec) and their validation. No I/O.

``validate(doc)`` returns an :class:`OmeMetadata` model (of a 0.6 document its 0.4/0.5-shaped
view; ``ngff06_of(meta)`` the typed 0.6 document); ``to_attrs`` / ``encode_attrs`` write it back
as 0.4 or 0.5 attributes. Zarr array metadata lives in :mod:`ngio_async.meta.zarr`.
"""

from __future__ import annotations

from ._base import decode_json, read_document, write_document
from ._ngff06 import (
    Dataset06,
    Multiscale06,
    OmeMetadata06,
    Scene,
    ngff06_of,
    validate_transformations,
)
from ._transforms06 import Axis06, CoordinateSystem, Ref, Transform06
from ._validate import (
    KINDS,
    NGFF_KEYS,
    SUPPORTED_VERSIONS,
    MetadataWarning,
    decode_attrs,
    decode_zarr_json,
    encode_attrs,
    to_attrs,
    validate,
)
from .ngff import (
    Acquisition,
    Axis,
    Channel,
    Column,
    Dataset,
    ImageLabel,
    LabelColor,
    LabelProperty,
    LabelSource,
    Multiscale,
    OmeAttributes,
    OmeMetadata,
    Omero,
    Plate,
    Rdefs,
    Row,
    Scale,
    Transform,
    Translation,
    Well,
    WellImage,
    WellRef,
    Window,
)

__all__ = [
    "Axis06",
    "CoordinateSystem",
    "Dataset06",
    "Multiscale06",
    "OmeMetadata06",
    "Ref",
    "Scene",
    "Transform06",
    "ngff06_of",
    "validate_transformations",
    "decode_json",
    "read_document",
    "write_document",
    "KINDS",
    "NGFF_KEYS",
    "SUPPORTED_VERSIONS",
    "Acquisition",
    "Axis",
    "Channel",
    "Column",
    "Dataset",
    "ImageLabel",
    "LabelColor",
    "LabelProperty",
    "LabelSource",
    "MetadataWarning",
    "Multiscale",
    "Omero",
    "OmeAttributes",
    "OmeMetadata",
    "Plate",
    "Rdefs",
    "Row",
    "Scale",
    "Transform",
    "Translation",
    "Well",
    "WellImage",
    "WellRef",
    "Window",
    "decode_attrs",
    "decode_zarr_json",
    "encode_attrs",
    "to_attrs",
    "validate",
]
