"""``stream(ds.tiles(overlap=...), segment, out=label, unique_labels=n, stitch=...)``: objects
cut by a tile seam joined into one id, as ngio's ``StitchConfig`` / ``IouSeamMatcher``.

Each tile's ids are moved into its own block (``unique_labels``); as the tiles land, the
predictions of two neighbour tiles over the pixels both grown tiles cover (their halos) are
compared, and two ids are one object when their IoU there (background left out, areas over
the shared pixels) reaches the threshold; the pairs are joined by union-find, each group
taking its smallest id. Only the rims of the tiles a neighbour still to land reaches are kept
in memory, and only the ids seen there can be joined: at the end, the boxes of the ids that
changed are read back from the level written and rewritten (with its pyramid), nothing else.
``StitchConfig(compact=True)``: the ids of every stored object are noted as the tiles land, and
that same pass renumbers them 1..N (ngio's ``compact``); ``seam_matcher``: another rule than
the IoU deciding which ids are one object. A ROI stream (``read_rois(..., halo=)``, or
overlapping ROIs): :class:`RoiStitch`, each result compared with the landed ones it meets.
"""

from __future__ import annotations

import inspect
import itertools
import math
import numbers
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import anyio
import numpy as np

from .._prefetch import start_deferred, to_the_end

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from ..engine import Region
    from ..engine.pyramid import Method
    from ._dataset import Dataset
    from ._rois import RoiStream
    from ._tiles import Tile, TileStream

__all__ = ["RoiStitch", "SeamMatcher", "Stitch", "StitchConfig", "check_stitch", "iou_pairs"]

#: ``matcher(patch_a, patch_b) -> [(id_a, id_b), ...]``: two neighbour tiles' labels over the
#: pixels both cover (same shape, ``out``'s level, the tile first in the grid as ``patch_a``),
#: and the pairs of their ids that are one object (ngio's ``SeamMatcherProtocol``)
SeamMatcher = Callable[[Any, Any], Iterable[tuple[int, int]]]


@dataclass(frozen=True, kw_only=True)
class StitchConfig:
    """How ``stream(..., stitch=StitchConfig(...))`` joins labels across tile seams (ngio's
    ``StitchConfig``; the id block size is ``stream``'s ``unique_labels=``).

    - ``iou_threshold``: two ids are one object when their IoU over the pixels both tiles
      cover reaches it, background left out (ngio's ``IouSeamMatcher``; default 0.3).
    - ``seam_matcher``: instead, ``matcher(patch_a, patch_b)`` gives the ``(id_a, id_b)`` pairs
      that are one object (any iterable of pairs; ngio's ``SeamMatcherProtocol``: ngio's own
      matchers fit). ``patch_a``, ``patch_b``: two neighbour tiles' ids over the pixels both
      cover, same shape, ``patch_a`` the tile first in the grid. Called in a worker thread
      (never the event loop's: a slow matcher stalls no I/O), one call at a time, as the
      results land; it must be deterministic; its error, or a pair with 0 or an id absent
      from its patch, stops the stream (``ValueError`` naming both tiles) before that
      result is written.
    - ``compact``: renumber the objects 1..N once joined (ngio's ``compact``, default here
      ``False`` as ``stitch=True``), in the same pass that rewrites the ids joined: each
      stored object holding an id is rewritten once; numbers are given in the order ngio's
      gives them (stored objects in grid order, ids ascending in each). Needs ``out``
      without ``image-label`` colors or properties (keyed by the ids renumbered), and the
      tiles to cover ``out``'s level whole: else ``ValueError`` at the call. A ROI stream
      renumbers the whole level as ngio's does: the stored objects its results did not
      cover whole are read to find their ids (other objects there renumbered too, with a
      ``UserWarning``, as ngio warns).
    """

    iou_threshold: float = 0.3
    seam_matcher: SeamMatcher | None = None
    compact: bool = False

    def __post_init__(self) -> None:
        t = self.iou_threshold
        if isinstance(t, (bool, np.bool_)) or not isinstance(t, numbers.Real):
            raise TypeError(f"StitchConfig: iou_threshold must be a number in (0, 1], got {t!r}")
        if not 0.0 < float(t) <= 1.0:
            raise ValueError(f"StitchConfig: iou_threshold must be in (0, 1], got {t!r}")
        if not isinstance(self.compact, (bool, np.bool_)):
            raise TypeError(f"StitchConfig: compact must be True or False, got {self.compact!r}")
        if self.seam_matcher is not None:
            _check_matcher(self.seam_matcher)


def _check_matcher(m: object) -> None:
    """Refuse a seam matcher that cannot be called as ``m(patch_a, patch_b)``."""
    what = "StitchConfig: seam_matcher must be a function matcher(patch_a, patch_b) -> pairs"
    if not callable(m):
        raise TypeError(f"{what}, got {m!r}")
    call = vars(type(m)).get("__call__")  # (an object whose __call__ is a coroutine function)
    if inspect.iscoroutinefunction(m) or inspect.iscoroutinefunction(call):
        raise TypeError(f"{what} (a plain function: it runs as the tiles land), got {m!r}")
    try:
        sig = inspect.signature(m)
    except (TypeError, ValueError):  # (a builtin without one: taken as it is)
        return
    try:
        sig.bind(None, None)
    except TypeError as exc:
        raise TypeError(f"{what}: {m!r} cannot take two patches ({exc})") from None


def check_stitch(
    stitch: object, tiles: object, out: object, unique_labels: int | None
) -> StitchConfig | None:
    """``stitch=`` as a :class:`StitchConfig` (``True``: ngio's default IoU threshold 0.3, a
    number: that threshold), or ``None`` (no stitch); refused at the call when the stream
    cannot stitch."""
    if stitch is None or stitch is False:
        return None
    if isinstance(stitch, StitchConfig):
        config = stitch
    elif stitch is True:
        config = StitchConfig()
    elif isinstance(stitch, (bool, np.bool_)) or not isinstance(stitch, numbers.Real):
        raise TypeError(
            f"stitch takes True, an IoU threshold in (0, 1] or a StitchConfig(...), got {stitch!r}"
        )
    elif not 0.0 < float(stitch) <= 1.0:
        raise ValueError(f"stitch: the IoU threshold must be in (0, 1], got {stitch!r}")
    else:
        config = StitchConfig(iou_threshold=float(stitch))
    from ._dataset import Dataset
    from ._rois import RoiStream
    from ._tiles import TileStream

    if isinstance(tiles, RoiStream):
        return _check_roi_stitch(config, tiles, out, unique_labels)
    if not isinstance(tiles, TileStream) or not isinstance(out, Dataset):
        raise TypeError(
            "stream(..., stitch=...) joins the labels of tiles across their seams: stream "
            "ds.tiles(..., overlap=...) into out=<a label dataset>"
        )
    if out.dtype.kind not in "iu":
        raise TypeError(
            f"stream(..., stitch=...) joins label ids: out ({out.url}) holds {out.dtype}, "
            "not integers; stream into a label image (ds.labels.create(...))"
        )
    if unique_labels is None:
        raise ValueError(
            "stream(..., stitch=...) needs unique_labels=n: each tile's ids in its own block "
            "of n (ngio's StitchConfig.block_size)"
        )
    top, limit = tiles.total * unique_labels - 1, int(np.iinfo(out.dtype).max)
    if top > limit:  # (as ngio's stitch plan: refused before any tile, not part way)
        raise ValueError(
            f"stream(..., stitch=...): {tiles.total} tiles at unique_labels={unique_labels} "
            f"reach id {top}, past what {out.dtype} holds ({limit}, {out.url}): a smaller "
            "unique_labels or a wider label dtype"
        )
    halos, shape, axes = tiles.overlap or (), tiles.tile_shape or (), tiles.axes or ()
    if not any(halos):
        raise ValueError(
            "stream(..., stitch=...) compares neighbour tiles' labels over their halos: "
            "stream ds.tiles(..., overlap=...) (no two tiles share a pixel without one)"
        )
    for i, (h, t) in enumerate(zip(halos, shape, strict=False)):
        if h and t is not None and 2 * h > t:
            name = axes[i] if i < len(axes) else str(i)
            raise ValueError(
                f"stream(..., stitch=...): overlap {h} along {name!r} reaches past the next "
                f"tile (tiles {t} long): at most half the tile's length"
            )
    if config.compact:
        _check_compact(tiles, out)
    return config


def _check_roi_stitch(
    config: StitchConfig, rois: RoiStream, out: object, unique_labels: int | None
) -> StitchConfig:
    """Refuse, at the call, a ROI stream that cannot stitch into ``out``."""
    from ._dataset import Dataset

    if not isinstance(out, Dataset):
        raise TypeError(
            "stream(ds.read_rois(...), ..., stitch=...) joins the labels of ROIs across their "
            "overlaps: out=<a label dataset>"
        )
    if out.dtype.kind not in "iu":
        raise TypeError(
            f"stream(..., stitch=...) joins label ids: out ({out.url}) holds {out.dtype}, "
            "not integers; stream into a label image (ds.labels.create(...))"
        )
    if unique_labels is None:
        raise ValueError(
            "stream(..., stitch=...) needs unique_labels=n: each ROI's ids in its own block "
            "of n (ngio's StitchConfig.block_size)"
        )
    if config.compact:
        _check_keyed(out)
    return config


def _check_compact(tiles: TileStream, out: Dataset) -> None:
    """Refuse ``compact`` where renumbering the stream's objects 1..N could meet ids it does
    not write (``out``'s level not tiled whole) or stale ``image-label`` entries."""
    _check_keyed(out)
    full, names = tiles.level_shape or (), tiles.axes or ()
    grid, shape = tiles.grid, tiles.tile_shape or ()
    # (an axis out lacks, the channel the tiles select, is not out's to cover)
    mine = [i < len(names) and names[i] in out.axes for i in range(len(grid))]
    covered = tiles.total == math.prod(grid) and all(
        t is None or g * t >= n or not m
        for g, t, n, m in zip(grid, shape, full, mine, strict=False)
    )
    if not covered:
        raise ValueError(
            "stream(..., stitch=StitchConfig(compact=True)) renumbers every object of out's "
            f"level ({out.url}): the tiles must cover the whole image (no region= or list "
            "selection), or compact=False"
        )


def _check_keyed(out: Dataset) -> None:
    """Refuse ``compact`` into a label whose ``image-label`` entries name label values."""
    label = out.metadata.ome.image_label
    entries = [] if label is None else [*(label.colors or ()), *(label.properties or ())]
    keyed = [e.label_value for e in entries if e.label_value != 0]
    if keyed:
        raise ValueError(
            f"stream(..., stitch=StitchConfig(compact=True)): {out.url} has image-label colors "
            f"or properties keyed by label values ({sorted(set(keyed))[:5]}): renumbering the "
            "objects would leave them naming other objects; write them after the stream, or "
            "compact=False"
        )


def iou_pairs(left: NDArray[Any], right: NDArray[Any], threshold: float) -> list[tuple[int, int]]:
    """The ``(left id, right id)`` pairs of two labellings of the same pixels whose IoU
    (background left out of both) reaches ``threshold`` (ngio's ``IouSeamMatcher``)."""
    both = (left > 0) & (right > 0)
    if not both.any():
        return []
    pairs, shared = np.unique(np.stack([left[both], right[both]]), axis=1, return_counts=True)
    la = dict(zip(*np.unique(left[left > 0], return_counts=True), strict=True))
    ra = dict(zip(*np.unique(right[right > 0], return_counts=True), strict=True))
    out = []
    for (a, b), n in zip(pairs.T.tolist(), shared.tolist(), strict=True):
        if n / (int(la[a]) + int(ra[b]) - n) >= threshold:
            out.append((int(a), int(b)))
    return out


@dataclass
class _Rim:
    """A landed tile's prediction where its neighbours' halos reach: per axis, the slabs at
    its two ends (``(start, array)``), and the level region of the whole grown tile."""

    region: tuple[slice, ...]
    slabs: list[tuple[int, int, NDArray[Any]]]  # (axis, start along it, slab)
    waiting: int  # neighbours still to land

    def over(self, box: tuple[slice, ...]) -> NDArray[Any] | None:
        """The prediction over ``box`` (level coordinates), from a slab holding it all."""
        for axis, start, slab in self.slabs:
            lo = box[axis].start - start
            if lo >= 0 and box[axis].stop - start <= slab.shape[axis]:
                sel = tuple(
                    slice(lo, box[axis].stop - start)
                    if i == axis
                    else slice(b.start - r.start, b.stop - r.start)
                    for i, (b, r) in enumerate(zip(box, self.region, strict=True))
                )
                return slab[sel]
        return None


@dataclass
class Stitch:
    """One stream's stitch: :meth:`add` each tile's prediction (ids in its block, the whole
    grown tile) as it lands, then :meth:`finish` rewrites the ids joined (``compact``: all of
    them, numbered 1..N)."""

    config: StitchConfig
    grid: tuple[int, ...]
    halos: tuple[int, ...]
    #: ``out``'s stored objects (shards, else chunks) at the level written
    chunks: tuple[int, ...] = ()
    rims: dict[tuple[int, ...], _Rim] = field(default_factory=dict)
    parent: dict[int, int] = field(default_factory=dict)
    #: per tile index: its core in ``out``'s level (its axes), and the box there (level
    #: coordinates, inclusive bounds) of each id seen in its rim
    written: dict[tuple[int, ...], tuple[Region, dict[int, list[list[int]]]]] = field(
        default_factory=dict
    )
    #: ``compact``: per stored object (its grid index), the box there of each id written in it
    objects: dict[tuple[int, ...], dict[int, list[list[int]]]] = field(default_factory=dict)
    #: ``compact`` of ROIs: per stored object, its pixels whose last write was the stream's
    covered: dict[tuple[int, ...], int] = field(default_factory=dict)
    #: what the final pass read and wrote: boxes of the ids that changed, one per stored object
    rewrites: int = 0
    #: ``compact``: each object's id once joined -> its number (1..N)
    numbers: dict[int, int] = field(default_factory=dict)
    items: ClassVar[str] = "tiles"  # (what the errors name)

    @classmethod
    def of(
        cls, config: StitchConfig | float, tiles: TileStream, chunks: tuple[int, ...] = ()
    ) -> Stitch:
        """The stitch of ``tiles`` (``config``: a bare number, the IoU threshold)."""
        if not isinstance(config, StitchConfig):
            config = StitchConfig(iou_threshold=config)
        return cls(config, tiles.grid, tuple(tiles.overlap or ()), tuple(chunks))

    @property
    def threshold(self) -> float:
        return float(self.config.iou_threshold)

    def _find(self, a: int) -> int:
        root = a
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        while a != root:  # (path compression)
            self.parent[a], a = root, self.parent[a]
        return root

    def _union(self, a: int, b: int) -> None:
        ra, rb = self._find(a), self._find(b)
        if ra != rb:
            lo, hi = min(ra, rb), max(ra, rb)
            self.parent[hi] = lo
            self.parent.setdefault(lo, lo)

    def add(self, tile: Tile, pred: NDArray[Any], core_out: Region, keep: Any) -> None:
        """Compare ``pred`` (the tile's ids, moved into its block, over its whole grown
        region) with the landed neighbours' over the pixels both cover; keep its rim.
        ``core_out``: its core in ``out``'s level; ``keep``: ``out``'s axes of the tile's."""
        if pred.shape != tile.shape:
            raise ValueError(
                f"stream(..., stitch=...): func returned shape {pred.shape} for the tile at "
                f"{_where(tile.region)} of shape {tile.shape}: stitching compares the labels "
                "of the whole tile, its halo included (return the tile's shape)"
            )
        neighbours = self._neighbours(tile.index)
        for n in neighbours:
            rim = self.rims.get(n)
            if rim is None:
                continue
            box = _intersection(tile.region, rim.region)
            if box is not None:
                theirs = rim.over(box)
                assert theirs is not None  # (the halos are at most half a tile)
                mine = pred[
                    tuple(
                        slice(b.start - r.start, b.stop - r.start)
                        for b, r in zip(box, tile.region, strict=True)
                    )
                ]
                first = n < tile.index  # (the matcher sees the tile first in the grid first)
                a, b = (theirs, mine) if first else (mine, theirs)
                for x, y in self._match(a, b, (rim.region, tile.region)[:: 1 if first else -1]):
                    self._union(x, y)
            rim.waiting -= 1
            if rim.waiting == 0:
                del self.rims[n]
        waiting = sum(1 for n in neighbours if n not in self.written)
        slabs = self._slabs(tile, pred)
        if waiting:
            self.rims[tile.index] = _Rim(tile.region, slabs, waiting)
        self._note(tile, pred, slabs, core_out, keep)

    def _match(
        self, a: NDArray[Any], b: NDArray[Any], regions: tuple[tuple[slice, ...], ...]
    ) -> list[tuple[int, int]]:
        """The pairs of ids of ``a`` and ``b`` that are one object: by IoU, or the config's
        ``seam_matcher`` (its pairs checked: ids of their patches, not the background)."""
        m = self.config.seam_matcher
        if m is None:
            return iou_pairs(a, b, self.threshold)
        where = f"the {self.items} at {_where(regions[0])} and {_where(regions[1])}"
        try:  # (copies: a matcher using its patches as scratch leaves the results alone)
            got = list(m(np.array(a), np.array(b)))
        except Exception as exc:
            exc.add_note(f"stream(..., stitch=...): the seam_matcher on {where}")
            raise
        out: list[tuple[int, int]] = []
        have: tuple[set[int], set[int]] | None = None
        for pair in got:
            try:
                x, y = (int(v) for v in pair)
            except (TypeError, ValueError):
                raise TypeError(
                    f"stream(..., stitch=...): the seam_matcher gave {pair!r} for {where}: "
                    "it returns (id_a, id_b) pairs of ints"
                ) from None
            if have is None:
                have = set(np.unique(a).tolist()), set(np.unique(b).tolist())
            if x == 0 or y == 0 or x not in have[0] or y not in have[1]:
                raise ValueError(
                    f"stream(..., stitch=...): the seam_matcher paired ({x}, {y}) for {where}: "
                    "each pair takes a non-zero id of patch_a and one of patch_b"
                )
            out.append((x, y))
        return out

    def _neighbours(self, index: tuple[int, ...]) -> list[tuple[int, ...]]:
        """The tiles whose grown regions can meet this one's: one step along axes with a
        halo (along the others, the regions only abut: a plane's tiles wait for no tile of
        the next plane)."""
        h = self.halos
        steps = [(-1, 0, 1) if i >= len(h) or h[i] else (0,) for i in range(len(index))]
        out = []
        for step in itertools.product(*steps):
            n = tuple(i + s for i, s in zip(index, step, strict=True))
            if any(step) and all(0 <= i < g for i, g in zip(n, self.grid, strict=True)):
                out.append(n)
        return out

    def _slabs(self, tile: Tile, pred: NDArray[Any]) -> list[tuple[int, int, NDArray[Any]]]:
        """The tile's two ends along each axis with a halo, as deep as a neighbour's grown
        region reaches into it (its own halo and the neighbour's)."""
        out = []
        for axis, h in enumerate(self.halos):
            r, c = tile.region[axis], tile.core[axis]
            if not h:
                continue
            n = r.stop - r.start
            if c.start > r.start:  # a neighbour before
                depth = min(n, c.start - r.start + h)
                out.append((axis, r.start, _take(pred, axis, 0, depth)))
            if c.stop < r.stop:  # a neighbour after
                depth = min(n, r.stop - c.stop + h)
                out.append((axis, r.stop - depth, _take(pred, axis, n - depth, n)))
        return out

    def _note(
        self,
        tile: Tile,
        pred: NDArray[Any],
        slabs: list[tuple[int, int, NDArray[Any]]],
        core_out: Region,
        keep: Any,
    ) -> None:
        """Record the boxes (in the core written) of the ids of the tile's rim: the only ids
        a neighbour can join (``compact``: of every id, per stored object)."""
        from ._rois import _bounds

        compact = self.config.compact
        ids: NDArray[Any] = np.unique(
            np.concatenate([s.ravel() for _, _, s in slabs] or [pred[:0].ravel()])
        )
        ids = ids[ids > 0]
        boxes: dict[int, list[list[int]]] = {}
        if ids.size or compact:
            inner = tuple(
                slice(c.start - r.start, c.stop - r.start)
                for c, r in zip(tile.core, tile.region, strict=True)
            )
            core = pred[inner]
            if keep is not None:  # on out's axes (the others have length 1)
                drop = tuple(i for i in range(core.ndim) if i not in keep)
                core = np.squeeze(core, axis=drop)
                rest = [i for i in range(pred.ndim) if i not in drop]
                core = np.transpose(core, [rest.index(i) for i in keep])
            if compact:
                self._note_objects(core, [s.start for s in core_out])
            else:
                _bounds(np.where(np.isin(core, ids), core, 0), [s.start for s in core_out], boxes)
        self.written[tile.index] = (core_out, boxes)

    def _note_objects(
        self, core: NDArray[Any], origin: list[int], final: NDArray[np.bool_] | None = None
    ) -> None:
        """Record the box of each id of ``core`` (at ``origin``) per stored object;
        ``final``: the pixels of ``core`` no later write replaced, counted per object."""
        from ._rois import _bounds

        chunks = self.chunks
        spans = [
            range(o // c, (o + n - 1) // c + 1)
            for o, n, c in zip(origin, core.shape, chunks, strict=True)
        ]
        for key in itertools.product(*spans):
            lo = [max(o, k * c) for o, k, c in zip(origin, key, chunks, strict=True)]
            hi = [
                min(o + n, (k + 1) * c)
                for o, n, k, c in zip(origin, core.shape, key, chunks, strict=True)
            ]
            sel = tuple(slice(a - o, b - o) for a, b, o in zip(lo, hi, origin, strict=True))
            piece = core[sel]
            if final is not None:
                self.covered[key] = self.covered.get(key, 0) + int(np.count_nonzero(final[sel]))
            if piece.any():
                _bounds(piece, lo, self.objects.setdefault(key, {}))

    def mapping(self) -> dict[int, int]:
        """Each id joined to another: its group's smallest id."""
        return {a: r for a in list(self.parent) if (r := self._find(a)) != a}

    def _compact(self) -> dict[int, int]:
        """Each id written -> its object's number 1..N, in ngio's order (``relabel_sequential``:
        stored objects in grid order, ids ascending in each, a number per object first met)."""
        numbers: dict[int, int] = {}
        lut: dict[int, int] = {}
        for key in sorted(self.objects):
            for v in sorted(self.objects[key]):
                root = self._find(v)
                lut[v] = numbers.setdefault(root, len(numbers) + 1)
        self.numbers = numbers
        return lut

    async def finish(self, out: Dataset, level: int, pyramid: bool | Method | None) -> None:
        """Rewrite, in ``out``'s level ``level``, the ids joined (``compact``: every id, to its
        number): per stored object (shard or chunk), the box there of the ids that changed
        read, its ids mapped, written back (``pyramid``: the other levels following, as the
        stream's writes did). Each object is rewritten once, whatever the number of tiles
        sharing it."""
        chunks = out.levels[level].meta.stored_chunks
        buckets: dict[tuple[int, ...], tuple[list[int], list[int]]] = {}
        if self.config.compact:
            await self._known(out, level)
            lut = self._compact()
            lut = {v: n for v, n in lut.items() if v != n}
            for ids in self.objects.values():
                for v, (lo, hi) in ids.items():
                    if v in lut:
                        _bucket(buckets, lo, hi, chunks)
            assert all(k in self.objects for k in buckets)  # (the same grid)
        else:
            lut = self.mapping()
            for _, boxes in self.written.values():
                for v, (lo, hi) in boxes.items():
                    if v in lut:
                        _bucket(buckets, lo, hi, chunks)
        if not lut:
            return
        todo = [box for _, box in sorted(buckets.items())]
        what = f"stream(..., stitch=...): the rewrite of the ids joined in {out.url}"
        try:  # (compact cut half way: numbers 1..N in some objects, block ids in others)
            await to_the_end(self._rewrite, out, level, pyramid, todo, lut, what=what)
        except Exception as exc:
            exc.add_note(self._left(len(todo), out.url))
            raise

    async def _rewrite(
        self,
        out: Dataset,
        level: int,
        pyramid: bool | Method | None,
        boxes: list[tuple[list[int], list[int]]],
        lut: dict[int, int],
    ) -> None:
        """Each box (inclusive bounds, in one stored object) read, its ids mapped, written."""
        for lo, hi in boxes:
            region: dict[str, Any] = {
                a: slice(s, e + 1) for a, s, e in zip(out.axes, lo, hi, strict=True)
            }
            block = await out.read(level, **region)
            await out.write(_relabel(block, lut), level, pyramid or False, **region)
            self.rewrites += 1

    def _left(self, total: int, url: str) -> str:
        """What a final pass stopped part way left in ``url``."""
        done = f"{self.rewrites} of the {total} stored objects to rewrite were rewritten"
        if self.config.compact:
            return (
                f"stream(..., stitch=StitchConfig(compact=True)) stopped in its final pass: "
                f"{done}; they hold the numbers 1..N, the others the tiles' ids, which may "
                f"equal them (two objects under one id in {url}): stream the image again"
            )
        return (
            f"stream(..., stitch=...) stopped in its final pass: {done}; in the others the "
            f"parts of joined objects keep their tiles' ids ({url})"
        )

    async def _known(self, out: Dataset, level: int) -> None:
        """``compact``: the ids of every stored object of the level known (tiles: refused
        unless they covered it)."""
        self._check_covered(out, level)

    def _check_covered(self, out: Dataset, level: int) -> None:
        """``compact`` renumbers ids it has seen alone: refused (nothing rewritten) when the
        tiles' cores did not cover ``out``'s level, whose other ids it would meet."""
        shape = out.levels[level].shape
        done = sum(math.prod(s.stop - s.start for s in core) for core, _ in self.written.values())
        if done != math.prod(shape):
            raise ValueError(
                f"stream(..., stitch=StitchConfig(compact=True)): the tiles wrote {done} of "
                f"the {math.prod(shape)} pixels of level {level} of {out.url} (shape {shape}): "
                "renumbering 1..N would meet ids the stream did not write; the tiles' ids are "
                "left in their blocks, not joined (tile the whole image, or compact=False)"
            )


@dataclass
class RoiStitch(Stitch):
    """A ROI stream's stitch: each ROI's result (its grown box, on ``out``'s axes) compared
    with every landed ROI's whose grown box meets it, over the pixels both cover (ngio's
    stitch of a ROI list: FOVs with a halo, overlapping FOVs). With the ROIs' boxes known
    ahead (:meth:`plan`), a result is held until the last ROI meeting it has landed; else
    until the stream ends. ``compact``: once let go, the ids its write left (its box but
    where ROIs landed after it wrote) are noted per stored object; at :meth:`finish`, the
    objects of the level not covered so are read for their ids (ngio renumbers the whole
    label)."""

    items: ClassVar[str] = "ROIs"
    #: per ROI landed and still wanted: its name, grown box in ``out``'s level, result there
    landed: dict[int, tuple[str, Region, NDArray[Any]]] = field(default_factory=dict)
    #: per ROI (its position): the ROIs whose grown boxes may meet its own (``None``: unknown)
    partners: list[set[int]] | None = None
    waiting: dict[int, int] = field(default_factory=dict)
    seen: set[int] = field(default_factory=set)
    #: the most results held at once
    held_peak: int = 0
    #: per ROI landed: the box it writes in ``out``'s level, and when it landed
    cores: dict[int, Region] = field(default_factory=dict)
    order: dict[int, int] = field(default_factory=dict)
    #: ``compact``: the stored objects read at the end (not covered by the results)
    scanned: int = 0

    @classmethod
    def of_rois(cls, config: StitchConfig, chunks: tuple[int, ...] = ()) -> RoiStitch:
        """The stitch of a ROI stream (``chunks``: ``out``'s stored objects at its level)."""
        return cls(config, (), (), tuple(chunks))

    def plan(self, boxes: list[Region]) -> None:
        """The ROIs' grown boxes in ``out``'s level (a pixel wider is safe: a pair too many
        is compared over nothing), in stream order: which results to hold, and how long."""
        if not boxes:
            return
        lo = np.array([[b.start for b in box] for box in boxes])
        hi = np.array([[b.stop for b in box] for box in boxes])
        partners = []
        for i in range(len(boxes)):
            meet = np.all((lo < hi[i]) & (lo[i] < hi), axis=1)
            meet[i] = False
            partners.append(set(np.flatnonzero(meet).tolist()))
        self.partners = partners

    def add_roi(
        self, index: int, name: str, grown: Region, pred: NDArray[Any], core: Region
    ) -> None:
        """Join ``pred`` (ROI ``index``'s ids over ``grown``) with the landed ROIs' ids over
        the pixels both cover; note the boxes of its ids in ``core``, the box it writes."""
        known = self.partners is not None and 0 <= index < len(self.partners)
        partners = self.partners[index] if self.partners is not None and known else None
        self.cores[index], self.order[index] = core, len(self.order)
        for other, (_, box_o, pred_o) in list(self.landed.items()):
            if partners is not None and other not in partners:
                continue
            box = _intersection(grown, box_o)
            if box is not None:
                mine, theirs = _part(pred, grown, box), _part(pred_o, box_o, box)
                first = other < index
                a, b = (theirs, mine) if first else (mine, theirs)
                regions = (box_o, grown) if first else (grown, box_o)
                for x, y in self._match(a, b, regions):
                    self._union(x, y)
        if partners is None:
            self.landed[index] = (name, grown, pred)
        else:
            for other in sorted(partners & self.seen):  # (held until its last partner lands)
                self.waiting[other] -= 1
                if not self.waiting[other]:
                    gone = self.landed.pop(other, None)
                    if gone is not None:
                        self._let_go(other, gone[1], gone[2])
            pending = len(partners - self.seen)
            if pending:
                self.landed[index] = (name, grown, pred)
                self.waiting[index] = pending
            else:
                self._let_go(index, grown, pred)
        self.seen.add(index)
        self.held_peak = max(self.held_peak, len(self.landed))
        from ._rois import _bounds

        boxes: dict[int, list[list[int]]] = {}
        if not self.config.compact:
            _bounds(_part(pred, grown, core), [s.start for s in core], boxes)
        self.written[(len(self.written),)] = (core, boxes)

    def _let_go(self, index: int, grown: Region, pred: NDArray[Any]) -> None:
        """``compact``: ROI ``index``'s result let go (every ROI meeting it landed): the
        ids its write left noted per stored object (its box, but where later ROIs wrote)."""
        if not self.config.compact:
            return
        core, when = self.cores[index], self.order[index]
        part = np.array(_part(pred, grown, core))
        final = np.ones(part.shape, dtype=bool)
        known = self.partners is not None and 0 <= index < len(self.partners)
        others = self.partners[index] if self.partners is not None and known else self.order
        for other in others:
            box = None if self.order.get(other, -1) <= when else _box(self.cores[other], core)
            if box is not None:  # (its write replaced those pixels)
                part[box] = 0
                final[box] = False
        self._note_objects(part, [s.start for s in core], final)

    async def finish(self, out: Dataset, level: int, pyramid: bool | Method | None) -> None:
        """As :meth:`Stitch.finish`; ``compact``: the results still held let go first."""
        for index in sorted(self.landed, key=self.order.__getitem__):
            _, grown, pred = self.landed.pop(index)
            self._let_go(index, grown, pred)
        await super().finish(out, level, pyramid)

    async def _known(self, out: Dataset, level: int) -> None:
        """The ids of the stored objects the results did not cover whole read (ngio walks the
        whole label); ids no result wrote, renumbered too, are warned of, as ngio does."""
        from ._rois import _bounds

        shape, chunks = out.levels[level].shape, self.chunks
        grid = [range(-(-n // c)) for n, c in zip(shape, chunks, strict=True)]
        todo = []
        for key in itertools.product(*grid):
            lo = [k * c for k, c in zip(key, chunks, strict=True)]
            hi = [min(n, (k + 1) * c) for n, k, c in zip(shape, key, chunks, strict=True)]
            if self.covered.get(key, 0) < math.prod(b - a for a, b in zip(lo, hi, strict=True)):
                todo.append((key, lo, hi))
        mine = {v for ids in self.objects.values() for v in ids}
        found: set[int] = set()
        limit = anyio.CapacityLimiter(4)

        async def scan(key: tuple[int, ...], lo: list[int], hi: list[int]) -> None:
            async with limit:
                region: dict[str, Any] = {
                    a: slice(x, y) for a, x, y in zip(out.axes, lo, hi, strict=True)
                }
                block = await out.read(level, **region)
            ids: dict[int, list[list[int]]] = {}
            _bounds(block, lo, ids)
            if ids:
                self.objects[key] = ids
                found.update(self._unwritten(block, lo))
            else:
                self.objects.pop(key, None)
            self.scanned += 1

        async with anyio.create_task_group() as tg:
            for job in todo:
                start_deferred(tg, scan, *job)
        if found:
            shared = sorted(found & mine)
            same = (
                f"; {len(shared)} of them ({shared[:5]}) also an id the ROIs wrote: each now "
                "one object with it, one number (clear the label first, or compact=False)"
                if shared
                else ""
            )
            warnings.warn(
                f"stream(..., stitch=StitchConfig(compact=True)): renumbered {len(found)} "
                f"object id(s) of {out.url} no ROI of the stream wrote (ngio's compact walks "
                "the whole label too): anything keyed by them is stale; compact=False keeps "
                f"them{same}",
                UserWarning,
                stacklevel=2,
            )

    def _unwritten(self, block: NDArray[Any], origin: list[int]) -> set[int]:
        """The ids of ``block`` (at ``origin`` in ``out``'s level) outside every ROI's box
        written: the label's own objects, not the stream's."""
        rest = np.array(block)
        where = tuple(slice(o, o + n) for o, n in zip(origin, block.shape, strict=True))
        for core in self.cores.values():
            box = _box(core, where)
            if box is not None:
                rest[box] = 0
        return set(np.unique(rest[rest > 0]).tolist())


def _part(pred: NDArray[Any], region: Region, box: Region) -> NDArray[Any]:
    """``pred`` (over ``region``) over ``box`` (inside it)."""
    return pred[
        tuple(slice(b.start - r.start, b.stop - r.start) for b, r in zip(box, region, strict=True))
    ]


def _bucket(
    buckets: dict[tuple[int, ...], tuple[list[int], list[int]]],
    lo: list[int],
    hi: list[int],
    chunks: tuple[int, ...],
) -> None:
    """Add the box ``lo..hi`` (inclusive) to the boxes of the chunks it crosses (each chunk's
    bounding box of the parts within it)."""
    spans = [range(a // c, b // c + 1) for a, b, c in zip(lo, hi, chunks, strict=True)]
    for key in itertools.product(*spans):
        clo = [max(a, k * c) for a, k, c in zip(lo, key, chunks, strict=True)]
        chi = [min(b, (k + 1) * c - 1) for b, k, c in zip(hi, key, chunks, strict=True)]
        have = buckets.get(key)
        if have is None:
            buckets[key] = (clo, chi)
        else:
            have[0][:] = [min(x, y) for x, y in zip(have[0], clo, strict=True)]
            have[1][:] = [max(x, y) for x, y in zip(have[1], chi, strict=True)]


def _relabel(block: NDArray[Any], lut: dict[int, int]) -> NDArray[Any]:
    values, inverse = np.unique(block, return_inverse=True)
    mapped = np.asarray([lut.get(int(v), int(v)) for v in values.tolist()], dtype=block.dtype)
    return mapped[inverse].reshape(block.shape)


def _take(a: NDArray[Any], axis: int, start: int, stop: int) -> NDArray[Any]:
    sel = [slice(None)] * a.ndim
    sel[axis] = slice(start, stop)
    return np.array(a[tuple(sel)])  # (a copy: the tile's array is let go)


def _box(inner: Region, outer: Region) -> tuple[slice, ...] | None:
    """Where ``inner`` meets ``outer``, relative to ``outer``'s corner (``None``: nowhere)."""
    both = _intersection(inner, outer)
    if both is None:
        return None
    return tuple(
        slice(b.start - o.start, b.stop - o.start) for b, o in zip(both, outer, strict=True)
    )


def _intersection(a: tuple[slice, ...], b: tuple[slice, ...]) -> tuple[slice, ...] | None:
    out = tuple(
        slice(max(x.start, y.start), min(x.stop, y.stop)) for x, y in zip(a, b, strict=True)
    )
    return None if any(s.stop <= s.start for s in out) else out


def _where(region: tuple[slice, ...]) -> str:
    return "[" + ", ".join(f"{r.start}:{r.stop}" for r in region) + "]"
