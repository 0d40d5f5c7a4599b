"""Images: datasets, pyramid levels and labels; the async core of reading and writing."""

from __future__ import annotations

from ._create import create_async
from ._create_like import create_like_async
from ._dataset import Dataset, open_async
from ._labels import Labels
from ._level import Level
from ._metadata import AxisCalibration, ChannelInfo, ImageMetadata, LevelCalibration
from ._plate import Plate, create_plate_async, open_plate_async
from ._plate_layout import PlateWell
from ._rois import MaskedImage, RoiRead, RoiStream
from ._stitch import StitchConfig
from ._stream import Stream, TileWriter, stream, stream_sync
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
    "MaskedImage",
    "Plate",
    "PlateWell",
    "RoiRead",
    "RoiStream",
    "StitchConfig",
    "Stream",
    "Tile",
    "TileStream",
    "TileWriter",
    "create_async",
    "create_like_async",
    "create_plate_async",
    "open_async",
    "open_plate_async",
    "stream",
    "stream_sync",
]
