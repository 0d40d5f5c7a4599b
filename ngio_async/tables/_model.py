"""Table values: ``Table`` (row names, columns as numpy arrays, type and attributes) and
``Roi`` (a box in world units: what a row of an ROI table says). Pure: no I/O."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np

from .._errors import MetadataError

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped]
    import polars as pl
    from anndata import AnnData  # type: ignore[import-untyped]
    from numpy.typing import NDArray

    from ..images._metadata import LevelCalibration

__all__ = ["ROI_TYPES", "Roi", "Table", "rois_to_columns"]

#: the table types whose rows are boxes
ROI_TYPES = ("roi_table", "masking_roi_table", "generic_roi_table")
#: the columns every ROI table has: start and length per space axis, in the image's units
#: (micrometres for an image in micrometres, whatever the column names say: ngio's rule)
ROI_COLUMNS = tuple(f"{p}{a}_micrometer" for p in ("", "len_") for a in "xyz")
_SPACE = "xyz"
_ANCHOR_AXES = ("x", "y", "z", "t")


@dataclass(frozen=True)
class Roi:
    """A box in world coordinates: ``ranges`` maps ``x``, ``y``, ``z`` to ``(start, stop)`` in
    the image's own units, as ngio reads them (micrometres for an image in micrometres, whatever
    the ``x_micrometer`` columns are called; ``stop = start + length``), as
    ``ds.read_world(level, origin="image", **roi.ranges)`` takes them; ``time``, ``(start, stop)`` when the table has it (its
    ``t_second`` columns: the time axis's stored numbers, as ngio writes and reads them).

    ``label``: the object's label value (masking ROI tables; others when they store one).
    ``extra``: the row's other columns (``FieldIndex``, ``x_micrometer_original``, ...).
    """

    name: str
    ranges: dict[str, tuple[float, float]]
    label: int | None = None
    time: tuple[float, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def box(
        cls,
        name: str,
        *,
        x: tuple[float, float],
        y: tuple[float, float],
        z: tuple[float, float] = (0.0, 1.0),
        label: int | None = None,
        **extra: Any,
    ) -> Roi:
        """The box ``x``, ``y``, ``z`` given as ``(start, stop)`` in the image's units."""
        return cls(name, {"x": x, "y": y, "z": z}, label=label, extra=dict(extra))

    @property
    def lengths(self) -> dict[str, float]:
        """Length per axis, in the image's units."""
        return {a: hi - lo for a, (lo, hi) in self.ranges.items()}

    def zoom(self, factor: float, axes: Sequence[str] = ("x", "y")) -> Roi:
        """The box grown (or shrunk) by ``factor`` about its centre along ``axes`` (ngio's
        ``Roi.zoom``: each length times ``factor``, a start below 0 moved to 0 with the length
        kept; ``axes`` default ``("x", "y")``, those the ROI lacks skipped). A ``factor`` that
        is not a number > 0 is a ``ValueError`` naming the ROI."""
        if isinstance(factor, bool) or not (isinstance(factor, numbers.Real) and factor > 0):
            raise ValueError(f"ROI {self.name!r}: zoom must be a positive number, got {factor!r}")
        factor = float(factor)
        ranges = dict(self.ranges)
        for a in axes:
            if a in ranges:
                lo, hi = ranges[a]
                grow = (hi - lo) * (factor - 1.0)
                start = max(lo - grow / 2, 0.0)
                ranges[a] = (start, start + (hi - lo) + grow)
        return Roi(self.name, ranges, label=self.label, time=self.time, extra=dict(self.extra))

    def intersection(self, other: Roi) -> Roi | None:
        """The overlap of two boxes (ngio's ``Roi.intersection``), ``None`` when an axis both
        have does not overlap; an axis only one has is kept as it is. The name is the shared
        one, else ``"<mine>:<other's>"``; the label the one either has (two different labels
        are a ``ValueError``)."""
        return self._joined(other, _overlap, "intersection")

    def union(self, other: Roi) -> Roi:
        """The bounding box of two boxes (ngio's ``Roi.union``); names and labels as
        :meth:`intersection` joins them."""
        joined = self._joined(other, _span, "union")
        assert joined is not None  # a span is never empty
        return joined

    def anchor(
        self,
        local: Roi | Mapping[str, tuple[float, float] | slice],
        *,
        pixel_size: Mapping[str, float] | LevelCalibration,
        name: str | None = None,
        label: int | None = None,
    ) -> Roi:
        """``local``, a box in pixels of the patch this ROI's read gave, as a ROI in the image's
        units (ngio's ``roi.anchor``): what a function found at pixel offsets of a ROI's
        ``data`` placed in the image, ready for ``write_rois``.

        ``local``: ``(start, stop)`` or a slice per axis (``x``, ``y``, ``z``, ``t``), pixels
        counted from the patch's first one (a read with a halo: ``r.core_data``'s), or a ``Roi`` whose ranges are such pixels (its
        name, label and extra columns kept). ``pixel_size``: the pixel size per axis of the
        level read, ``ds.metadata.spatial_calibration[level]`` or ``{"y": 0.65, "x": 0.65}``.
        The patch's first pixel is the one a read of this ROI starts at: its start over the
        pixel size, floored (within 1/100 of a pixel edge: that edge), not below 0; each axis
        becomes ``(first + start, first + stop)`` times the pixel size. Axes ``local`` does not
        name keep this ROI's range (a 2-D box found in one z-slab keeps the slab's z). ``name``
        and ``label`` (default: ``local``'s when it is a ``Roi``, else this ROI's name and no
        label). A bound that is not a number, an empty range, an axis other than x, y, z, t
        or without a positive pixel size is a ``ValueError`` naming the ROI and the axis.
        """
        sizes = _pixel_sizes(pixel_size)
        if isinstance(local, Roi):
            boxes: Mapping[str, Any] = {
                **local.ranges,
                **({"t": local.time} if local.time is not None else {}),
            }
            name = local.name if name is None else name
            label = local.label if label is None else label
            extra = dict(local.extra)
        elif isinstance(local, Mapping):
            boxes, name, extra = local, self.name if name is None else name, {}
        else:
            raise TypeError(
                f"ROI {self.name!r}: anchor takes a Roi or (start, stop) pixels per axis, "
                f"got {type(local).__name__}"
            )
        mine = {**self.ranges, **({"t": self.time} if self.time is not None else {})}
        out = dict(mine)
        for axis, box in boxes.items():
            if axis not in _ANCHOR_AXES:
                raise ValueError(
                    f"ROI {self.name!r}: anchor places boxes along x, y, z and t, got {axis!r}"
                )
            lo, hi = _pixel_box(self.name, axis, box)
            size = sizes.get(axis)
            if size is None or not (math.isfinite(size) and size > 0):
                raise ValueError(
                    f"ROI {self.name!r}: axis {axis!r} needs a pixel size > 0 in pixel_size, "
                    f"got {size!r}"
                )
            first = _first_pixel(mine[axis][0], size) if axis in mine else 0
            out[axis] = ((first + lo) * size, (first + hi) * size)
        time = out.pop("t", None)
        return Roi(name, out, label=label, time=time, extra=extra)

    def _joined(
        self,
        other: Roi,
        op: Callable[[tuple[float, float], tuple[float, float]], tuple[float, float] | None],
        what: str,
    ) -> Roi | None:
        if not isinstance(other, Roi):
            raise TypeError(f"ROI {what} takes another Roi, got {type(other).__name__}")
        if self.label is not None and other.label is not None and self.label != other.label:
            raise ValueError(
                f"ROI {what}: {self.name!r} has label {self.label}, {other.name!r} {other.label}"
            )
        mine = {**self.ranges, **({"t": self.time} if self.time is not None else {})}
        theirs = {**other.ranges, **({"t": other.time} if other.time is not None else {})}
        out: dict[str, tuple[float, float]] = {}
        for a in [*mine, *(a for a in theirs if a not in mine)]:
            got = (
                op(mine[a], theirs[a]) if a in mine and a in theirs else mine.get(a, theirs.get(a))
            )
            if got is None:
                return None
            out[a] = got
        time = out.pop("t", None)
        name = self.name if self.name == other.name else f"{self.name}:{other.name}"
        label = self.label if self.label is not None else other.label
        return Roi(name, out, label=label, time=time, extra=dict(self.extra))


@dataclass(frozen=True, eq=False)
class Table:
    """A table read from (or to be written to) an image's ``tables/`` group.

    ``index``: the row names (``index_key`` names them: ``FieldIndex``, ``label``); integers
    when the table says ``index_type: int``, else strings. ``columns``: name -> 1-D numpy array
    (numbers, booleans; strings and categories as ``object`` arrays; a missing value of a
    nullable column is ``None``, or ``NaN`` in a float one). ``type``: ``roi_table``,
    ``masking_roi_table``, ``feature_table``, ``condition_table``, ``generic_table`` (a table
    that names none), ...; ``attrs``: the table group's attributes as stored. ``dtypes``: the
    pandas dtype of the columns stored as what numpy has no dtype for: ``"category"``
    (categorical), ``"Int64"`` (``"Int32"``, ...: integers with missing values), ``"boolean"``
    (booleans with missing values), ``"string"``; :meth:`to_pandas` gives them, and a write
    stores them so again (AnnData categorical and nullable columns, parquet dictionaries).
    """

    name: str
    type: str
    index: NDArray[Any]
    columns: dict[str, NDArray[Any]]
    attrs: dict[str, Any] = field(default_factory=dict)
    index_key: str | None = None
    dtypes: dict[str, str] = field(default_factory=dict)
    #: read from AnnData: the columns its ``X`` holds (its var names), in order; else None
    x_columns: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return len(self.index)

    def __repr__(self) -> str:
        cols = ", ".join(self.columns)
        return f"Table({self.name!r}, type={self.type!r}, rows={len(self)}, columns=[{cols}])"

    def __getitem__(self, column: str) -> NDArray[Any]:
        try:
            return self.columns[column]
        except KeyError:
            raise KeyError(
                f"table {self.name!r} has no column {column!r} (columns: {list(self.columns)})"
            ) from None

    @property
    def backend(self) -> str | None:
        """How the table is stored (``anndata``, ``json``, ``csv``, ...), as its attributes say."""
        value = self.attrs.get("backend")
        return value if isinstance(value, str) else None

    @property
    def region(self) -> str | None:
        """The label image path the rows refer to (``../labels/nuclei``), if the table has one."""
        region = self.attrs.get("region")
        path = region.get("path") if isinstance(region, Mapping) else None
        return path if isinstance(path, str) else None

    @property
    def instance_key(self) -> str | None:
        """The column (or index) holding each row's label value, if the table names one."""
        key = self.attrs.get("instance_key")
        return key if isinstance(key, str) else None

    def to_pandas(self) -> pd.DataFrame:
        """The table as a pandas DataFrame, indexed by ``index_key`` (needs pandas); columns of
        :attr:`dtypes` have theirs (``category``, ``Int64``, ``boolean``, ...), as anndata and
        ngio give them."""
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - pandas is in the dev extra
            raise ImportError("Table.to_pandas needs pandas: pip install pandas") from exc
        index = pd.Index(self.index, name=self.index_key)
        columns: dict[str, Any] = dict(self.columns)
        for k, dtype in self.dtypes.items():
            if k in columns:
                values = [None if _missing(v) else v for v in columns[k].tolist()]
                columns[k] = pd.array(values, dtype=dtype)
        return pd.DataFrame(columns, index=index)

    @overload
    def to_polars(self, *, lazy: Literal[False] = False) -> pl.DataFrame: ...
    @overload
    def to_polars(self, *, lazy: Literal[True]) -> pl.LazyFrame: ...

    def to_polars(self, *, lazy: bool = False) -> pl.DataFrame | pl.LazyFrame:
        """The table as a polars DataFrame (``lazy=True``: the LazyFrame ngio's ``lazy_frame``
        is, equal to it): the index first, a column named ``index_key``, then the columns
        with :meth:`to_pandas`'s dtypes (needs polars, pandas and pyarrow:
        ``pip install 'ngio_async[polars]'``)."""
        from ._frames import as_polars

        out: pl.DataFrame | pl.LazyFrame = as_polars(self, lazy=lazy)
        return out

    def to_anndata(self) -> AnnData:
        """The table as an AnnData object, equal to ngio's ``table.anndata``: a table stored
        as AnnData with its ``X`` and ``obs`` as stored; another with its number columns in
        ``X`` (float64 when their types differ) and its string, then integer columns in
        ``obs``; row names as strings (needs anndata and pandas:
        ``pip install 'ngio_async[anndata]'``).

        :raises ValueError: a column of neither strings nor numbers (named).
        """
        from ._frames import as_anndata

        out: AnnData = as_anndata(self)
        return out

    def rois(self) -> list[Roi]:
        """The rows as boxes (ROI tables: ``type`` is one of :data:`ROI_TYPES`).

        :raises ValueError: not an ROI table.
        :raises MetadataError: a required column is missing (the table and column named).
        """
        if self.type not in ROI_TYPES:
            raise ValueError(f"table {self.name!r} is a {self.type}, not an ROI table")
        missing = [c for c in ROI_COLUMNS if c not in self.columns]
        if missing:
            raise MetadataError(
                f"ROI table {self.name!r} lacks the columns {missing}", f"tables/{self.name}"
            )
        cols = {k: np.asarray(v) for k, v in self.columns.items()}
        labels = self._labels()
        used = {*ROI_COLUMNS, "t_second", "len_t_second", "label"}
        out = []
        for i, name in enumerate(self.index):
            ranges = {}
            for a in _SPACE:
                start = float(cols[f"{a}_micrometer"][i])
                ranges[a] = (start, start + float(cols[f"len_{a}_micrometer"][i]))
            time = None
            if "t_second" in cols and "len_t_second" in cols:
                t0 = float(cols["t_second"][i])
                time = (t0, t0 + float(cols["len_t_second"][i]))
            extra = {k: _scalar(v[i]) for k, v in cols.items() if k not in used}
            label = None if labels is None else labels[i]
            out.append(Roi(str(name), ranges, label=label, time=time, extra=extra))
        return out

    def _labels(self) -> list[int | None] | None:
        if self.index_key == "label" or (
            self.instance_key is not None and self.instance_key == self.index_key
        ):
            return [int(v) for v in self.index]
        if "label" in self.columns:
            return [None if _missing(v) else int(v) for v in self.columns["label"]]
        return None


def _pixel_sizes(pixel_size: Mapping[str, float] | LevelCalibration) -> dict[str, float]:
    """Pixel size per axis name, of a mapping or a level's calibration (its ``scale``)."""
    if isinstance(pixel_size, Mapping):
        items = list(pixel_size.items())
    else:
        items = [(a.name, a.scale) for a in pixel_size.axes]
    out: dict[str, float] = {}
    for axis, size in items:
        if isinstance(size, bool) or not isinstance(size, numbers.Real):
            raise TypeError(f"pixel_size: axis {axis!r} takes a number, got {size!r}")
        out[str(axis)] = float(size)
    return out


def _pixel_box(roi: str, axis: str, box: Any) -> tuple[float, float]:
    """``(start, stop)`` pixels of one axis of an :meth:`Roi.anchor` box (a pair or a slice)."""
    if isinstance(box, slice):
        if box.step not in (None, 1) or box.start is None or box.stop is None:
            raise ValueError(
                f"ROI {roi!r}: axis {axis!r} takes a slice with a start and a stop and step 1, "
                f"got {box!r}"
            )
        box = (box.start, box.stop)
    if not isinstance(box, tuple | list) or len(box) != 2:
        raise ValueError(f"ROI {roi!r}: axis {axis!r} takes (start, stop) pixels, got {box!r}")
    lo, hi = box
    for v in (lo, hi):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
            raise ValueError(f"ROI {roi!r}: axis {axis!r}: {v!r} is no finite number of pixels")
    if not hi > lo:
        raise ValueError(f"ROI {roi!r}: axis {axis!r}: the pixel range ({lo}, {hi}) is empty")
    return float(lo), float(hi)


def _first_pixel(start: float, size: float) -> int:
    """The pixel a read of a range starting at ``start`` starts at (pixels of ``size``): as
    ``world_region`` finds it (a bound within 1/100 of a pixel edge on it), not below 0."""
    from ..images._world import SNAP

    u = start / size
    r = round(u)
    return max(math.floor(float(r) if abs(u - r) < SNAP else u), 0)


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float] | None:
    lo, hi = max(a[0], b[0]), min(a[1], b[1])
    return (lo, hi) if hi > lo else None


def _span(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    return (min(a[0], b[0]), max(a[1], b[1]))


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def rois_to_columns(
    rois: Iterable[Roi], *, masking: bool
) -> tuple[list[str], dict[str, NDArray[Any]]]:
    """Row names and columns of an ROI table of ``rois`` (``masking``: rows named by label)."""
    rois = list(rois)
    names: list[str] = []
    cols: dict[str, list[Any]] = {c: [] for c in ROI_COLUMNS}
    timed = any(r.time is not None for r in rois)
    if timed:
        cols["t_second"], cols["len_t_second"] = [], []
    extras: list[str] = []
    for r in rois:
        for k in r.extra:
            if k not in extras and k not in cols:
                extras.append(k)
    labelled = not masking and any(r.label is not None for r in rois)
    for i, r in enumerate(rois):
        if masking:
            if r.label is None:
                raise ValueError(f"ROI {i} ({r.name!r}) of a masking ROI table has no label")
            names.append(str(int(r.label)))
        else:
            names.append(str(r.name))
        for a in _SPACE:
            lo, hi = r.ranges.get(a, (0.0, 1.0))
            cols[f"{a}_micrometer"].append(float(lo))
            cols[f"len_{a}_micrometer"].append(float(hi) - float(lo))
        if timed:
            t0, t1 = r.time if r.time is not None else (0.0, 1.0)
            cols["t_second"].append(float(t0))
            cols["len_t_second"].append(float(t1) - float(t0))
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in cols.items()}
    if labelled:
        if any(r.label is None for r in rois):
            raise ValueError("either every ROI has a label or none has")
        arrays["label"] = np.asarray([int(r.label) for r in rois if r.label is not None])
    for k in extras:
        arrays[k] = _column([r.extra.get(k) for r in rois], k)
    return names, arrays


def _column(values: Sequence[Any], name: str) -> NDArray[Any]:
    if all(isinstance(v, str) for v in values):
        return np.asarray(values, dtype=object)
    arr = np.asarray(values)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"ROI column {name!r} mixes types or is not numbers or strings")
    return arr
