"""Images: datasets, pyramid levels and labels; the async core of reading."""

from __future__ import annotations

from ._dataset import Dataset, Labels, open_async
from ._level import Level
from ._metadata import AxisCalibration, ChannelInfo, ImageMetadata, LevelCalibration
from ._stream import Stream, TileWriter, stream
from ._tiles import Tile, TileStream

__all__ = [
    "AxisCalibration",
    "ChannelInfo",
    "Dataset",
    "ImageMetadata",
    "Labels",
    "Level",
    "LevelCalibration",
    "Stream",
    "Tile",
    "TileStream",
    "TileWriter",
    "open_async",
    "stream",
]
