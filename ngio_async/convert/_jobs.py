"""What a conversion writes and reports: :class:`ConvertResult`, the progress counter,
one image's job (plan, root, how its levels fill)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..meta._ngff_old import OLD_VERSIONS

if TYPE_CHECKING:
    from ..images import Dataset
    from ..images._create_plan import ImagePlan
    from ..tables import Tables

__all__ = ["ConvertResult"]

Progress = Callable[[int, int], object]


CompressorArg = Literal["zstd", "blosc-zstd", "gzip", False] | None


@dataclass(frozen=True)
class ConvertResult:
    """What one conversion wrote (``skipped``: the output was complete already).

    An HCS plate (``kind="plate"``) has no image of its own: ``shape``, ``dtype`` and ``axes``
    are empty and ``levels`` is its first field's (0 without fields); ``wells`` lists its wells
    and ``fields`` counts the field images converted (``labels``: every label name of its
    fields, once).

    A source of several images (a multi-image TIFF, a bioformats2raw container) converts into a
    bioformats2raw container: ``series`` lists its images' paths; ``shape``, ``dtype``,
    ``axes`` and ``levels`` are the first one's (``labels``: those of every image, once).

    ``members`` (:func:`convert_many`): the batch's other inputs that are files of the same
    multi-file OME-TIFF as ``src``, converted with it (they have no result of their own).
    """

    src: str
    dst: str
    ngff_version: str
    shape: tuple[int, ...]
    dtype: str
    axes: tuple[str, ...]
    levels: int
    labels: tuple[str, ...] = ()
    tiles: int = 0
    bytes_written: int = 0
    skipped: bool = False
    kind: Literal["image", "plate"] = "image"
    wells: tuple[str, ...] = ()
    fields: int = 0
    series: tuple[str, ...] = ()
    members: tuple[str, ...] = ()


@dataclass
class _Counter:
    callback: Progress | None
    total: int = 0
    done: int = 0
    nbytes: int = 0

    def step(self, nbytes: int) -> None:
        self.done += 1
        self.nbytes += nbytes
        if self.callback is not None:
            self.callback(self.done, self.total)


@dataclass
class _Job:
    """One image (the image or one of its label images) to write: plan, where, how.
    ``group=False``: the arrays of another multiscale of the image at ``root`` (no group of
    its own)."""

    root: str
    plan: ImagePlan
    fill: Callable[[Dataset, _Counter], Any]
    tiles: int
    group: bool = True
    #: per level of ``plan``, its own attributes to write as the v2 array's ``.zattrs`` (a v3
    #: array has them in its ``zarr.json``, in ``plan``)
    array_attrs: tuple[dict[str, Any], ...] = ()
    #: the source's tables, copied into ``root``'s ``tables`` group before its group metadata
    tables: Tables | None = None


def _label_names(jobs: Sequence[_Job]) -> list[str]:
    """The label images among an image's jobs (``jobs[0]`` is the image)."""
    return [j.root.rsplit("/", 1)[-1] for j in jobs[1:] if j.group]


_Item = tuple[str, list[_Job], dict[str, Any] | None, int | None]
"""One image of a container or plate to write: its path, jobs, ``labels`` group attributes and
the levels to build after its group metadata (``None``: none)."""


def _name(url: Any) -> str:
    return os.fspath(url) if isinstance(url, str | os.PathLike) else repr(url)


def _written_version(version: str | None) -> str | None:
    """The version a conversion writes by default for a source of ``version``: its own, but
    0.5 for 0.6 and 0.4 for 0.1 - 0.3 (read, not written: the nearest version written;
    0.4 keeps their zarr v2 arrays)."""
    if version is not None and version.startswith("0.6"):
        return "0.5"
    return "0.4" if version in OLD_VERSIONS else version
