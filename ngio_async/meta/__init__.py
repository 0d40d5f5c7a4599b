"""NGFF 0.4 / 0.5 metadata models (msgspec) and their validation. No I/O.

``validate(doc)`` returns an :class:`OmeMetadata` model; ``to_attrs`` / ``encode_attrs`` write it
back as 0.4 or 0.5 attributes. Zarr array metadata lives in :mod:`ngio_async.meta.zarr`.
"""

from __future__ import annotations

from ._base import decode_json, read_document, write_document
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
