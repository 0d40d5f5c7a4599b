"""Where a stream's results go: the checks of ``out=`` (made at the call, before any read),
the level of ``out`` of the items' pixel size, and the map of the tiles' axes onto
``out``'s."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from ._rois import MaskedImage, RoiRead, RoiStream, roi_span
from ._tiles import Tile, TileStream
from ._world import axis_kind, is_world_axis, unit_factor
from ._write import LevelWriter

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..engine import Region
    from ..engine.pyramid import Method
    from ._cascade import Cascade
    from ._dataset import Dataset
    from ._metadata import LevelCalibration


def _is_dataset(out: object) -> bool:
    from ._dataset import Dataset  # (imports this module)

    return isinstance(out, Dataset)


def _check_out(out: object, pyramid: object) -> None:
    """Refuse an ``out`` that is no tile writer (nor a dataset) at the call, before any tile
    is read."""
    if _is_dataset(out):
        out._check_writable()  # type: ignore[attr-defined]  # (at the call: nothing read)
        return  # written through its own writer (of the tiles' level)
    if callable(getattr(out, "writer", None)) and callable(getattr(out, "tiles", None)):
        raise TypeError(  # a blocking dataset: its write(data) would take each tile as data
            f"stream(..., out=...) writes to a dataset opened with open_async, got {out!r}"
        )
    if pyramid is not None and pyramid is not False:
        raise TypeError(
            "stream(tiles, ..., out=<writer>) writes through the writer: give pyramid= to it "
            "(`async with dst.writer(pyramid=True) as w`), or out=<the dataset>, pyramid=..."
        )
    if not callable(getattr(out, "write", None)):
        raise TypeError(
            "stream(..., out=...) takes a tile writer, an object with `async write(tile)` "
            f"(a dataset's `async with dst.writer() as w`, entered), got {out!r}"
        )
    from .._sync_tiles import SyncWriter  # (the blocking API imports this module)

    if isinstance(out, SyncWriter):  # its write() blocks and returns None: it wrote the
        # first tile, then "NoneType can't be used in 'await' expression"
        raise TypeError(
            "stream(..., out=...) awaits its writer's writes, got a blocking writer "
            f"({out!r}, of a dataset opened with ngio_async.open): write through a dataset "
            "opened with open_async (`async with dst.writer() as w`), or run "
            "stream_sync(ds.tiles(...), func, out=...) with the blocking API"
        )


def _check_fits(tiles: TileStream, out: Any, axis_map: _AxisMap | None, index: int) -> None:
    """Refuse, at the call, a level writer (or ``out``'s level ``index``) whose level the
    tiles' regions do not fit in (the tiles of another level: its first tiles were written,
    wrongly placed, before one failed)."""
    have = tiles.level_shape
    if have is not None and axis_map is not None:
        have = axis_map.shape(have)
    if _is_dataset(out):
        level = out.levels[index]
    elif isinstance(out, LevelWriter):
        level = out.level
    else:
        return
    if have is None or len(have) != level.ndim:
        return  # (other axes: the writer refuses the first tile, naming them)
    if any(t > o for t, o in zip(have, level.shape, strict=True)):
        raise ValueError(
            f"stream(tiles, ..., out=...): the tiles are of a level of shape {have} and each "
            f"is written at its region, but out writes level {level.path!r} of shape "
            f"{level.shape}: they would land outside it (the tiles of another level? stream "
            "the tiles of the level written)"
        )


@dataclass(frozen=True)
class _AxisMap:
    """Tiles of axes ``src`` onto a level of axes ``dst``, by name: each ``dst`` axis taken
    from the tiles (in ``dst``'s order), the tiles' other axes (``drop``: length 1 in every
    tile) left out; ``func``'s result the same way."""

    src: tuple[str, ...]
    dst: tuple[str, ...]
    keep: tuple[int, ...]  # the tiles' axis of each ``dst`` axis
    drop: tuple[int, ...]

    @classmethod
    def of(cls, tiles: TileStream, out: Any) -> _AxisMap | None:
        """The map for ``out`` (``None``: same axes, or a writer of unknown axes), or a
        ``ValueError`` naming the axes the tiles lack, or dropped axes the tiles span."""
        if not isinstance(out, LevelWriter) and not _is_dataset(out):
            return None  # a writer of its own: the tiles as they are
        dst, src = out.axes, tiles.axes
        if src is None or dst is None:
            return None
        src, dst = tuple(src), tuple(dst)
        if len(src) == len(dst):
            return None  # by position, as before (one image's tiles into another's level)
        missing = [a for a in dst if a not in src]
        if missing:
            raise ValueError(
                f"stream(tiles, ..., out=...): the tiles have axes {src}, the image written "
                f"{dst}: axis {_names(missing)} of the image written is not an axis of the tiles"
            )
        drop = tuple(i for i, a in enumerate(src) if a not in dst)
        several = [src[i] for i in drop if tiles.grid[i] > 1]
        if several:
            raise ValueError(
                f"stream(tiles, ..., out=...): the tiles have axes {src}, the image written "
                f"{dst}: axis {_names(several)} is dropped, but the tiles cover several "
                f"positions along it (their results would overwrite each other); select one "
                f"(ds.tiles({several[0]}=...))"
            )
        return cls(src, dst, tuple(src.index(a) for a in dst), drop)

    def shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(shape[i] for i in self.keep)

    def tile(self, t: Tile) -> Tile:
        """``t`` (a result tile: region and core equal) on the ``dst`` axes."""
        long = [self.src[i] for i in self.drop if t.core[i].stop - t.core[i].start != 1]
        wide = [self.src[i] for i in self.drop if t.data.shape[i] != 1]
        if long or wide:
            raise ValueError(
                f"stream(tiles, ..., out=...): axis {_names(long or wide)} of the tiles is not "
                f"an axis of the image written {self.dst}: it can be left out only where it "
                f"has length 1 (the {'tile' if long else 'result'} has shape {t.data.shape} "
                f"on axes {self.src})"
            )
        data = np.squeeze(t.data, axis=self.drop)
        rest = [i for i in range(len(self.src)) if i not in self.drop]
        data = np.transpose(data, [rest.index(i) for i in self.keep])

        def pick(seq: tuple[Any, ...]) -> tuple[Any, ...]:
            return tuple(seq[i] for i in self.keep)

        return Tile(data, pick(t.region), pick(t.index), pick(t.core), t.level)


def _names(axes: list[str]) -> str:
    return ", ".join(repr(a) for a in axes)


def _check_pyramid(tiles: TileStream | RoiStream, out: Any, pyramid: object) -> None:
    """Refuse, at the call, a ``pyramid=`` the stream cannot honour."""
    if pyramid is None or pyramid is False:
        return
    if pyramid is not True and pyramid not in ("mean", "nearest", "mode", "ngio"):
        raise ValueError(
            f"pyramid must be True or one of mean, nearest, mode, ngio; got {pyramid!r}"
        )
    if out is None:
        raise TypeError("stream(..., pyramid=...) builds the lower levels of out=: give out=")
    target = out.image if isinstance(out, MaskedImage) else out
    from ._pyramid import _is_label

    if pyramid == "ngio" and not _is_label(target) and _is_dataset(target):
        from ._pyramid import _NGIO_IMAGE

        raise ValueError("stream(): " + _NGIO_IMAGE.format(what="pyramid", url=target.url))
    if pyramid == "mean" and _is_label(target):
        raise ValueError(
            f"stream(..., pyramid='mean') would average label ids of {target.url} (1 and 9 "
            "give 5); label images downsample with 'mode' (pyramid=True) or 'nearest'"
        )


def _check_finer(out: Any, pyramid: object, index: int) -> None:
    """Refuse, at the call, ``pyramid=`` writing level ``index`` > 0 of an image that is no
    label image: its finer levels would be replaced by pixels upsampled from the coarser
    one (label images are, as ngio's ``consolidate`` does; an image's finer levels hold
    pixels no upsampling gives back)."""
    if pyramid is None or pyramid is False or index == 0 or out is None:
        return
    target = out.image if isinstance(out, MaskedImage) else out
    if not _is_dataset(target):  # a writer: its own level and pyramid rules
        return
    from ._upsample import refuse_upsampling

    refuse_upsampling(
        target,
        index,
        f"stream(..., pyramid={pyramid!r}) writing the items' pixel size",
        "give pyramid=False to write that level alone, or write into an image whose level 0 "
        "has the items' pixel size",
    )


def _check_masked(tiles: TileStream | RoiStream, masked: object) -> None:
    if masked and (not isinstance(tiles, RoiStream) or tiles._label is None):
        raise ValueError(
            "stream(..., masked=True) hands func each ROI's pixels inside its object alone "
            "(r.masked(), 0 elsewhere): stream ROIs read with their labels, "
            "ds.read_rois(..., label=lab) or m.stream()"
        )


def _level_cascade(target: Dataset, index: int, pyramid: bool | Method) -> Cascade:
    """The one cascade of a stream writing level ``index`` of ``target`` with ``pyramid``:
    the levels below it built from it (a view of ``target`` whose levels start there)."""
    if index == 0:
        cascade = target._cascade(0, pyramid)
        assert cascade is not None
        return cascade
    from ._cascade import Cascade

    target._check_first_multiscale("pyramid=")
    target.structure_lock()  # (made now: the view shares it)
    view = copy.copy(target)
    view.levels = target.levels[index:]
    return Cascade(view, None if pyramid is True else cast("Method", pyramid))


def _follow_metadata(target: Dataset, cascade: Cascade) -> None:
    """``target``'s metadata as its view's (a cascade's end may record its method)."""
    view = cascade._ds
    if view is not target:
        target.metadata = view.metadata


def _roi_region(out: Any, r: RoiRead, rois: RoiStream, index: int) -> Region:
    """The region of ``out``'s level ``index`` a ROI's write covers (its box, step-1
    slices)."""
    if isinstance(out, MaskedImage):
        if out.image is not rois._image:
            return roi_span(out.image, out.level, r.roi, {})
        return tuple(
            slice(s, s + 1)
            if isinstance(s, int)
            else slice(min(s), max(s) + 1)
            if isinstance(s, list)
            else s
            for s in r.region
        )
    if out is rois._image:
        return roi_span(out, rois._level, r.roi, rois._axes)
    return roi_span(out, index, r.roi, _shared_axes(out, rois, index))


def _check_roi_out(rois: RoiStream, out: object) -> int:
    """Refuse, at the call, an ``out`` a ROI stream cannot write to; else the index of the
    level of ``out`` (its image's) written: of the ROIs' pixel size."""
    if out is None:
        return 0
    if rois._planes:
        raise TypeError(
            "stream(rois, ..., out=...) writes each ROI's box: a stream of planes "
            "(planes=...) takes no out=; consume the results and write them yourself"
        )
    from .._sync_api import SyncDataset  # (the blocking API imports this module)
    from .._sync_tiles import SyncMaskedImage

    if isinstance(out, SyncDataset | SyncMaskedImage):  # (a blocking dataset failed at the
        # first ROI: "'SyncLevel' object has no attribute 'begun'")
        raise TypeError(
            f"stream(rois, ..., out=...) writes to a dataset or masked image opened with "
            f"open_async, got a blocking one ({out!r}): open it with open_async, or run "
            "stream_sync(ds.read_rois(...), func, out=...) with the blocking API"
        )
    if not isinstance(out, MaskedImage) and not callable(getattr(out, "write_roi", None)):
        raise TypeError(
            "stream(rois, ..., out=...) takes a dataset (each result written at its ROI, "
            "ds.write_roi) or a masked image (written only where each ROI's object is, "
            f"m.write), got {out!r}"
        )
    image = rois._image
    index = image._level_index(rois._level)
    target = out.image if isinstance(out, MaskedImage) else out
    if rois._halo and (target is image or getattr(target, "url", None) == image.url):
        raise ValueError(
            f"stream(rois, ..., out=<the image read>) with halo={rois._halo}: each ROI's grown "
            "read covers pixels the neighbour ROIs write, so the result would depend on the "
            "order they run in (ngio refuses it too); write into another image or label"
        )
    if out is image:
        return index
    if isinstance(out, MaskedImage):
        at = out.image._level_index(out.level)
        if out.image is image and at != index:  # (each ROI's box as read: of level ``index``)
            raise _no_level(_calibration(image, index), image, _ROIS, [at])
        _check_pixels(_calibration(image, index), out.image, at, _ROIS)
        return at
    cal = _calibration(image, index)
    sizes = _space_sizes(cal, image.axes, image.levels[index].shape)
    at = _matching_level(cal, cast("Dataset", out), _ROIS, index, sizes)
    _check_shared_axes(cast("Dataset", out), rois, at)
    return at


def _shared_axes(out: Dataset, rois: RoiStream, index: int) -> dict[str, Any]:
    """The ROIs' selection of other axes (``c="DAPI"``) on the axes of ``out`` (another image)
    longer than 1 at level ``index``: each result is written there alone, as read (it was
    broadcast over every channel of ``out``); axes of length 1, or that ``out`` lacks, take
    the result as it is."""
    sizes = dict(zip(out.axes, out.levels[index].shape, strict=True))
    return {a: sel for a, sel in rois._axes.items() if sizes.get(a, 1) > 1}


def _check_shared_axes(out: Dataset, rois: RoiStream, index: int) -> None:
    """Refuse, at the call, a selection of the ROIs (``c="DAPI"``) that ``out`` cannot take
    (no such channel): each result is written at it."""
    shared = _shared_axes(out, rois, index)
    if not shared:
        return
    try:
        out.region_of(index, **shared)
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        raise ValueError(
            f"stream(rois, ..., out=...): the ROIs are read at {shared} and each result is "
            f"written there in {out.url} (of axes {tuple(out.axes)}), which has none: {exc}; "
            "nothing was written: read the ROIs at a selection out has, or write to an image "
            "without that axis"
        ) from None


_ROIS = "stream(rois, ..., out=...)", "ROIs"
_TILES = "stream(tiles, ..., out=...)", "tiles"
_RTOL = 1e-5  # pixel sizes equal within this relative difference


def _calibration(image: Dataset, index: int) -> LevelCalibration:
    cal: LevelCalibration = image.metadata.spatial_calibration[index]
    return cal


def _pixels(cal: LevelCalibration) -> dict[str, tuple[float, str | None]]:
    """The pixel size of a level per space axis (by name) and its unit."""
    return {
        a.name: (abs(a.scale), a.unit)
        for a in cal.axes
        if is_world_axis(a) and axis_kind(a) == "length"
    }


def _same_pixels(
    mine: dict[str, tuple[float, str | None]], theirs: dict[str, tuple[float, str | None]]
) -> bool | None:
    """Whether two levels' pixels are the same size on every space axis both have (each in
    its own unit, converted when they differ); ``None``: they share no space axis."""
    shared = [n for n in mine if n in theirs]
    if not shared:
        return None
    for name in shared:
        (size, unit), (other, their_unit) = mine[name], theirs[name]
        if unit != their_unit:
            a, b = unit_factor(unit), unit_factor(their_unit)
            if a is not None and b is not None and a[0] == b[0]:
                other = other * b[1] / a[1]
        if not math.isclose(size, other, rel_tol=_RTOL):
            return False
    return True


def _matching_level(
    src: LevelCalibration,
    out: Dataset,
    what: tuple[str, str],
    index: int,
    sizes: dict[str, int],
) -> int:
    """The index of ``out``'s level of ``src``'s pixel size (``index`` first: of two of
    that size, the items' own level); none of that size: ``out``'s level ``index`` when it has
    the items' level's size (``sizes``, per space axis by name: an output made with another
    calibration, or none, as before pixel sizes were compared), else a ``ValueError`` naming
    both pixel sizes."""
    mine = _pixels(src)
    cals = out.metadata.spatial_calibration
    order = [index, *(i for i in range(len(cals)) if i != index)] if index < len(cals) else []
    order = order or list(range(len(cals)))
    found = [i for i in order if _same_pixels(mine, _pixels(cals[i]))]
    if found:
        return found[0]
    if index < len(cals) and (
        all(_same_pixels(mine, _pixels(c)) is None for c in cals)  # no space axis in common
        or _same_sizes(sizes, out, index)
    ):
        return index
    raise _no_level(src, out, what)


def _same_sizes(sizes: dict[str, int], out: Dataset, index: int) -> bool:
    """Whether ``out``'s level ``index`` has ``sizes`` on every space axis (by name) both
    have, and shares one at least."""
    level = dict(zip(out.axes, out.levels[index].shape, strict=True))
    shared = [name for name in sizes if name in level]
    return bool(shared) and all(level[name] == sizes[name] for name in shared)


def _space_sizes(
    cal: LevelCalibration, axes: Sequence[str] | None, shape: Sequence[int] | None
) -> dict[str, int]:
    """The sizes of a level's space axes (those :func:`_pixels` compares), by name."""
    if axes is None or shape is None:
        return {}
    space = _pixels(cal)
    return {a: n for a, n in zip(axes, shape, strict=True) if a in space}


def _check_pixels(src: LevelCalibration, out: Dataset, index: int, what: tuple[str, str]) -> None:
    """Refuse ``out``'s level ``index`` (a masked image's) unless of ``src``'s pixel size."""
    if _same_pixels(_pixels(src), _pixels(_calibration(out, index))) is False:
        raise _no_level(src, out, what, [index])


def _no_level(
    src: LevelCalibration, out: Dataset, what: tuple[str, str], only: list[int] | None = None
) -> ValueError:
    call, items = what
    mine = _pixels(src)
    names = list(mine)
    cals = out.metadata.spatial_calibration
    levels = "; ".join(
        f"{out.url}/{cals[i].path} of pixels {_sizes(_pixels(cals[i]), names)}"
        for i in (range(len(cals)) if only is None else only)
    )
    return ValueError(
        f"{call}: each result is written to the level of out of the pixel size the {items} "
        f"are read at, and out has none: its levels {levels} ({', '.join(names)}), the "
        f"{items} are of level {src.path!r} of pixels {_sizes(mine, names)}; nothing was "
        f"written: read the {items} at a level of one of those sizes, or give out a level "
        f"of theirs"
    )


def _sizes(pixels: dict[str, tuple[float, str | None]], names: list[str]) -> str:
    sizes = tuple(pixels[n][0] if n in pixels else None for n in names)
    units = {pixels[n][1] for n in names if n in pixels} - {None}
    return f"{sizes}" + (f" {units.pop()}" if len(units) == 1 else "")


def _check_in_place(tiles: TileStream, out: Dataset, index: int) -> None:
    """Refuse tiles with ``overlap=`` written into the level they are read from (ngio refuses
    in-place iteration with a halo): each tile's halo covers pixels its neighbours write, so
    the result would depend on the order they run in."""
    source = tiles.source
    if not any(tiles.overlap or ()) or source is None or index != tiles.level:
        return
    if source is out or getattr(source, "url", None) == out.url:
        raise ValueError(
            f"stream(ds.tiles(..., overlap={tiles.overlap}), ..., out=<the image read>): each "
            f"tile's halo covers pixels its neighbours write (level {index} of {out.url}), so "
            "the result would depend on the order they run in (ngio refuses it too); write "
            "into another image or label"
        )


def _tiles_level(tiles: TileStream, out: Dataset) -> int:
    """The index of the level of ``out`` the tiles are written to: of their pixel size."""
    if tiles.calibration is None:  # (not a dataset's tiles: the same level index)
        if tiles.level >= len(out.levels):
            raise ValueError(
                f"stream(tiles, ..., out=<dataset>) writes each tile to the level it was read "
                f"from ({tiles.level}); {out.url} has {len(out.levels)} levels"
            )
        return tiles.level
    sizes = _space_sizes(tiles.calibration, tiles.axes, tiles.level_shape)
    return _matching_level(tiles.calibration, out, _TILES, tiles.level, sizes)
