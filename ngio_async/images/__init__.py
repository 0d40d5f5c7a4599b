"""Images: datasets, pyramid levels and labels; the async core of reading."""

from __future__ import annotations

from ._dataset import Dataset, Labels, open_async
from ._level import Level
from ._metadata import AxisCalibration, ChannelInfo, ImageMetadata, LevelCalibration

__all__ = [
    "AxisCalibration",
    "ChannelInfo",
    "Dataset",
    "ImageMetadata",
    "Labels",
    "Level",
    "LevelCalibration",
    "open_async",
]
