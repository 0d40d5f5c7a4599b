"""msgspec models of NGFF 0.4 / 0.5 metadata, with the MUST rules the JSON schemas cannot express.

One set of models serves both versions: a 0.4 ``.zattrs`` document and the ``ome`` object of a 0.5
``zarr.json`` hold the same keys (0.4 adds per-object ``version`` strings, 0.5 one ``ome.version``).
Cross-field rules run in ``__post_init__`` so that msgspec reports them with a JSON path.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any
from urllib.parse import unquote

from msgspec import Meta, field

from ._base import Base, fail

__all__ = [
    "Acquisition",
    "Axis",
    "Channel",
    "Column",
    "Dataset",
    "ImageLabel",
    "LabelColor",
    "LabelProperty",
    "LabelSource",
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
    "axes_problem",
    "transform_length_problems",
    "well_path_problems",
]

Alnum = Annotated[str, Meta(pattern=r"^[A-Za-z0-9]+$")]
NonNegInt = Annotated[int, Meta(ge=0)]
PosInt = Annotated[int, Meta(gt=0)]
#: a JSON number as written: ``1`` stays an integer and ``1.0`` a float (a rewrite keeps both)
Number = int | float
Vector = Annotated[list[Number], Meta(min_length=2)]  # one value per axis, >= 2 axes

SPACE, TIME, CHANNEL = "space", "time", "channel"


# ---------------------------------------------------------------- axes and transformations
class Axis(Base):
    """One axis: ``name`` (unique), ``type`` (space / time / channel / custom), ``unit``."""

    name: str
    type: str | None = None
    unit: str | None = None


def _check_finite(value: float, sub: str) -> None:
    """JSON has no NaN or infinity (an encoder would write ``null``): numbers must be finite."""
    if not math.isfinite(value):
        raise ValueError(fail(sub, f"must be a finite number, got {value}"))


class _VectorTransform(Base):
    def _check_one_of(self, key: str, value: list[float] | None, path: str | None) -> None:
        if (value is None) == (path is None):
            raise ValueError(
                fail("", f"a {key} transformation needs exactly one of '{key}', 'path'")
            )
        for i, v in enumerate(value or ()):
            _check_finite(v, f".{key}[{i}]")


class Scale(_VectorTransform, tag="scale", tag_field="type"):
    """``{"type": "scale", "scale": [...]}`` (or the values stored in a binary ``path``)."""

    scale: Vector | None = None
    path: str | None = None

    def __post_init__(self) -> None:
        self._check_one_of("scale", self.scale, self.path)


class Translation(_VectorTransform, tag="translation", tag_field="type"):
    """``{"type": "translation", "translation": [...]}`` (or a binary ``path``)."""

    translation: Vector | None = None
    path: str | None = None

    def __post_init__(self) -> None:
        self._check_one_of("translation", self.translation, self.path)


Transform = Scale | Translation
Transforms = Annotated[list[Transform], Meta(min_length=1)]


def _check_transforms(ts: list[Transform], sub: str) -> None:
    """M5: ``[scale]`` or ``[scale, translation]``."""
    if not isinstance(ts[0], Scale):
        raise ValueError(fail(sub + "[0]", "the first transformation must be a 'scale'"))
    if len(ts) > 2 or (len(ts) == 2 and not isinstance(ts[1], Translation)):
        raise ValueError(
            fail(sub, "expected exactly one 'scale' optionally followed by one 'translation'")
        )


def transform_length_problems(ms: Multiscale) -> list[tuple[str, str]]:
    """M6: (sub path, rule) for every scale / translation whose length is not the axis count."""
    ndim = len(ms.axes)
    groups = [
        (f".datasets[{i}].coordinateTransformations", d.coordinate_transformations)
        for i, d in enumerate(ms.datasets)
    ]
    if ms.coordinate_transformations is not None:
        groups.append((".coordinateTransformations", ms.coordinate_transformations))
    out = []
    for sub, ts in groups:
        for i, t in enumerate(ts):
            key = "scale" if isinstance(t, Scale) else "translation"
            values = t.scale if isinstance(t, Scale) else t.translation
            if values is not None and len(values) != ndim:
                out.append(
                    (
                        f"{sub}[{i}].{key}",
                        f"has {len(values)} values, expected {ndim} (one per axis)",
                    )
                )
    return out


def well_path_problems(plate: Plate) -> list[tuple[str, str]]:
    """P5: (sub path, rule) for every well whose path is not ``rows[rowIndex]/columns[columnIndex]``."""
    out = []
    for i, w in enumerate(plate.wells):
        expected = f"{plate.rows[w.row_index].name}/{plate.columns[w.column_index].name}"
        if w.path != expected:
            out.append(
                (
                    f".wells[{i}].path",
                    (
                        f"well path {w.path!r} does not match rowIndex/columnIndex "
                        f"(expected {expected!r}: '<row name>/<column name>')"
                    ),
                )
            )
    return out


class Dataset(Base):
    """One pyramid level: the array ``path`` and its ``coordinateTransformations``."""

    path: str
    coordinate_transformations: Transforms = field(name="coordinateTransformations")

    @property
    def scale(self) -> list[float] | None:
        """The inline scale vector (``None`` when stored in a binary file)."""
        first = self.coordinate_transformations[0]
        return first.scale if isinstance(first, Scale) else None

    @property
    def translation(self) -> list[float] | None:
        """The inline translation vector, if any."""
        ts = self.coordinate_transformations
        return ts[1].translation if len(ts) > 1 and isinstance(ts[1], Translation) else None


class Multiscale(Base):
    """A multiscale image: axes, the levels (largest first) and their transformations."""

    axes: Annotated[list[Axis], Meta(min_length=2, max_length=5)]
    datasets: Annotated[list[Dataset], Meta(min_length=1)]
    coordinate_transformations: Transforms | None = field(
        default=None, name="coordinateTransformations"
    )
    name: str | None = None
    type: str | None = None
    metadata: dict[str, Any] | None = None
    version: str | None = None

    def __post_init__(self) -> None:
        _check_axes(self.axes)
        for i, ds in enumerate(self.datasets):
            _check_transforms(
                ds.coordinate_transformations, f".datasets[{i}].coordinateTransformations"
            )
        if self.coordinate_transformations is not None:
            _check_transforms(self.coordinate_transformations, ".coordinateTransformations")
        paths = [d.path for d in self.datasets]
        for i, path in enumerate(paths):
            _check_relative(path, f".datasets[{i}].path")
        if len(set(paths)) != len(paths):
            raise ValueError(fail(".datasets", "dataset paths must be unique"))

    @property
    def axis_names(self) -> list[str]:
        return [a.name for a in self.axes]


def _check_relative(path: str, sub: str) -> None:
    """A path to a node inside the group: ``a`` or ``a/b``, no ``.``, ``..`` or empty parts
    (a trailing ``/`` is tolerated); it may never reach outside the group: not through a
    Windows separator, nor percent-encoded for a server that decodes twice (``%2e%2e``)."""
    decoded = unquote(unquote(path.removesuffix("/")))
    parts = re.split(r"[/\\]", decoded)
    if not path or any(p in ("", ".", "..") for p in parts):
        raise ValueError(fail(sub, f"{path!r} is not a path inside the group (like '0' or 'a/b')"))


def axes_problem(axes: list[Axis]) -> tuple[str, str] | None:
    """A1, A4, A5, A6: unique names; 2-3 space axes; <= 1 time, <= 1 channel-or-custom; order.

    The first rule broken, as ``(sub path, rule)`` (sub path like ``.axes[1].name``), or ``None``.
    """
    seen: set[str] = set()
    for i, a in enumerate(axes):
        if a.name in seen:
            return f".axes[{i}].name", f"duplicate axis name {a.name!r}"
        seen.add(a.name)
    kinds = [_axis_kind(a) for a in axes]
    n_space = kinds.count(SPACE)
    if not 2 <= n_space <= 3:
        return ".axes", f"expected 2 or 3 axes of type 'space', got {n_space}"
    if kinds.count(TIME) > 1:
        return ".axes", "at most one axis of type 'time' is allowed"
    if kinds.count(CHANNEL) > 1:
        return ".axes", "at most one axis of type 'channel' (or of a custom type) is allowed"
    rank = {TIME: 0, CHANNEL: 1, SPACE: 2}
    for i in range(1, len(kinds)):
        if rank[kinds[i]] < rank[kinds[i - 1]]:
            return (
                f".axes[{i}]",
                (
                    f"axis {axes[i].name!r} of type {kinds[i]!r} is out of order: "
                    "time first, then channel (or custom), then space"
                ),
            )
    return None


def _check_axes(axes: list[Axis]) -> None:
    problem = axes_problem(axes)
    if problem is not None:
        raise ValueError(fail(*problem))


def _axis_kind(a: Axis) -> str:
    """space / time, and 'channel' for channel, custom and untyped axes (they share the slot)."""
    return a.type if a.type is not None and a.type in (SPACE, TIME) else CHANNEL


# ---------------------------------------------------------------- omero (transitional)
class Window(Base):
    """Display window of a channel: data range (``min``/``max``) and shown range."""

    min: Number
    max: Number
    start: Number
    end: Number

    def __post_init__(self) -> None:
        for key in ("min", "max", "start", "end"):
            _check_finite(getattr(self, key), f".{key}")


class Channel(Base):
    """An omero channel: ``color`` is ``RRGGBB`` hex; ``label`` names the channel."""

    color: Annotated[str, Meta(pattern=r"^[0-9A-Fa-f]{6}$")]
    window: Window
    label: str | None = None
    active: bool | None = None
    family: str | None = None
    coefficient: Number | None = None
    inverted: bool | None = None

    def __post_init__(self) -> None:
        if self.coefficient is not None:
            _check_finite(self.coefficient, ".coefficient")


class Rdefs(Base):
    """omero rendering defaults."""

    default_t: int | None = field(default=None, name="defaultT")
    default_z: int | None = field(default=None, name="defaultZ")
    model: str | None = None


class Omero(Base):
    """The transitional ``omero`` block: channel names, colors and windows."""

    channels: list[Channel]
    rdefs: Rdefs | None = None
    id: int | None = None
    name: str | None = None
    version: str | None = None


# ---------------------------------------------------------------- labels
class LabelColor(Base):
    """Display color of one label value; ``rgba`` is four integers 0..255."""

    label_value: int = field(name="label-value")
    rgba: (
        Annotated[list[Annotated[int, Meta(ge=0, le=255)]], Meta(min_length=4, max_length=4)] | None
    ) = None


class LabelProperty(Base):
    """Free properties of one label value (kept as unknown keys)."""

    label_value: int = field(name="label-value")


class LabelSource(Base):
    """The image a label image was derived from (default ``../../``)."""

    image: str | None = None


def _unique_label_values(values: list[int], key: str) -> None:
    """L7: one entry per label value."""
    seen: set[int] = set()
    for i, value in enumerate(values):
        if value in seen:
            raise ValueError(fail(f".{key}[{i}].label-value", f"duplicate label-value {value}"))
        seen.add(value)


class ImageLabel(Base):
    """``image-label``: colors, properties and source of a label image."""

    colors: Annotated[list[LabelColor], Meta(min_length=1)] | None = None
    properties: Annotated[list[LabelProperty], Meta(min_length=1)] | None = None
    source: LabelSource | None = None
    version: str | None = None

    def __post_init__(self) -> None:
        if self.colors is not None:
            _unique_label_values([c.label_value for c in self.colors], "colors")
        if self.properties is not None:
            _unique_label_values([p.label_value for p in self.properties], "properties")


# ---------------------------------------------------------------- plate and well
class Acquisition(Base):
    """One plate acquisition (times are epoch integers)."""

    id: NonNegInt
    name: str | None = None
    maximumfieldcount: PosInt | None = None
    description: str | None = None
    starttime: NonNegInt | None = None
    endtime: NonNegInt | None = None


class Row(Base):
    name: Alnum


class Column(Base):
    name: Alnum


class WellRef(Base):
    """A well of a plate: ``path`` is ``"<row>/<column>"`` and matches the two indices."""

    path: Annotated[str, Meta(pattern=r"^[A-Za-z0-9]+/[A-Za-z0-9]+$")]
    row_index: NonNegInt = field(name="rowIndex")
    column_index: NonNegInt = field(name="columnIndex")


def _unique(values: list[Any], sub: str, what: str) -> None:
    seen: set[Any] = set()
    for i, v in enumerate(values):
        if v in seen:
            raise ValueError(fail(f"{sub}[{i}]", f"duplicate {what} {v!r}"))
        seen.add(v)


class Plate(Base):
    """An HCS plate: rows, columns, wells and acquisitions."""

    rows: Annotated[list[Row], Meta(min_length=1)]
    columns: Annotated[list[Column], Meta(min_length=1)]
    wells: Annotated[list[WellRef], Meta(min_length=1)]
    acquisitions: list[Acquisition] | None = None
    field_count: PosInt | None = None
    name: str | None = None
    version: str | None = None

    def __post_init__(self) -> None:
        _unique([r.name for r in self.rows], ".rows", "row name")
        _unique([c.name for c in self.columns], ".columns", "column name")
        _unique([w.path for w in self.wells], ".wells", "well path")
        if self.acquisitions is not None:
            _unique([a.id for a in self.acquisitions], ".acquisitions", "acquisition id")
        for i, w in enumerate(self.wells):
            if w.row_index >= len(self.rows):
                raise ValueError(
                    fail(f".wells[{i}].rowIndex", f"{w.row_index} is out of range of 'rows'")
                )
            if w.column_index >= len(self.columns):
                raise ValueError(
                    fail(
                        f".wells[{i}].columnIndex", f"{w.column_index} is out of range of 'columns'"
                    )
                )


class WellImage(Base):
    """A field of view of a well."""

    path: Alnum
    acquisition: int | None = None


class Well(Base):
    """An HCS well: its fields of view."""

    images: Annotated[list[WellImage], Meta(min_length=1)]
    version: str | None = None

    def __post_init__(self) -> None:
        _unique([im.path for im in self.images], ".images", "image path")


# ---------------------------------------------------------------- documents
class OmeMetadata(Base):
    """Everything NGFF puts in a group's attributes: the ``.zattrs`` of 0.4, ``ome`` of 0.5.

    Which keys are present says what the group is (image, label image, labels group, plate, well,
    bioformats2raw container, ``OME`` series group). ``version`` is the NGFF version ("0.4" is
    filled in on decoding a 0.4 document; it is written per object, not here, for 0.4).
    """

    version: str | None = None
    multiscales: Annotated[list[Multiscale], Meta(min_length=1)] | None = None
    omero: Omero | None = None
    image_label: ImageLabel | None = field(default=None, name="image-label")
    labels: list[str] | None = None
    plate: Plate | None = None
    well: Well | None = None
    bioformats2raw_layout: int | None = field(default=None, name="bioformats2raw.layout")
    series: list[str] | None = None

    def __post_init__(self) -> None:
        layout = self.bioformats2raw_layout
        if layout is not None and layout != 3:  # B1
            raise ValueError(
                fail(
                    ".bioformats2raw.layout",
                    f"must be 3 (the one layout NGFF defines), got {layout}",
                )
            )
        for key in ("labels", "series"):
            for i, path in enumerate(getattr(self, key) or ()):
                _check_relative(path, f".{key}[{i}]")
        if self.series is not None:  # bf2raw: one image group per OME-XML Image
            _unique(self.series, ".series", "series path")

    @property
    def kinds(self) -> list[str]:
        """The document kinds present: image, label, labels, plate, well, bf2raw, ome (and
        scene, of the view of a 0.6 document; image too for a 0.6 image it has no view of)."""
        ngff06 = self.__dict__.get("_extra", {}).get(("ngff06",))  # _ngff06.NGFF06_KEY
        out = []
        if self.multiscales is not None or getattr(ngff06, "multiscales", None) is not None:
            out.append("image")
        if self.image_label is not None:
            out.append("label")
        for key, kind in (("labels", "labels"), ("plate", "plate"), ("well", "well")):
            if getattr(self, key) is not None:
                out.append(kind)
        if self.bioformats2raw_layout is not None:
            out.append("bf2raw")
        if self.series is not None:
            out.append("ome")
        if getattr(ngff06, "scene", None) is not None:
            out.append("scene")
        return out


class OmeAttributes(Base):
    """The attributes of a 0.5 group: ``{"ome": {...}}`` plus whatever other tools keep there."""

    ome: OmeMetadata
