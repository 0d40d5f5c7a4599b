"""Images: datasets, pyramid levels and labels; the async core of reading and writing."""

from __future__ import annotations

from ._create import create_async, create_like_async
from ._dataset import Dataset, open_async
from ._labels import Labels
from ._level import Level
from ._metadata import AxisCalibration, ChannelInfo, ImageMetadata, LevelCalibration
from ._stream import Stream, TileWriter, stream
from ._tiles import Tile, TileStream
from ._write import LevelWriter

__all__ = [
    "AxisCalibration",
    "ChannelInfo",
    "Dataset",
    "ImageMetadata",
    "Labels",
    "Level",
    "LevelCalibration",
    "LevelWriter",
    "Stream",
    "Tile",
    "TileStream",
    "TileWriter",
    "create_async",
    "create_like_async",
    "open_async",
    "stream",
]
