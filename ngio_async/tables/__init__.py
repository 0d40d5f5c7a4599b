"""Fractal / ngio tables of an image (``ds.tables``) or a plate (``plate.tables``): ROI tables,
masking ROI tables, feature tables and generic ones, read as columns and written in the layout
ngio 1.1.3 writes (AnnData, json, csv, parquet)."""

from __future__ import annotations

from ._model import ROI_TYPES, Roi, Table
from ._plate import PlateTables
from ._tables import Tables

__all__ = ["ROI_TYPES", "PlateTables", "Roi", "Table", "Tables"]
