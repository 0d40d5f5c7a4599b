"""msgspec models of NGFF 0.6 (RFC-5) coordinate systems and coordinate transformations.

Every transformation type of the spec (identity, mapAxis, projectAxis, translation, scale,
affine, rotation, sequence, coordinates, displacements, byDimension, bijection) is a tagged
struct; ``input`` / ``output`` name a coordinate system (``{"name"}``) or an array
(``{"path"}``). Rules that need the coordinate systems around a transformation (dimensions,
axis indices) run in :func:`check_transform`, called by the documents that hold both.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, field

from ._base import Base, fail, to_metadata_error
from .ngff import Axis, Number

__all__ = [
    "Affine",
    "Axis06",
    "Bijection",
    "ByDimension",
    "ByDimensionItem",
    "CoordinateSystem",
    "Coordinates",
    "Displacements",
    "Identity",
    "MapAxis",
    "ProjectAxis",
    "Ref",
    "Rotation",
    "Scale06",
    "Sequence",
    "Transform06",
    "Translation06",
    "check_transform",
    "check_unique_names",
    "ref_name",
]

NonEmpty = Annotated[str, Meta(min_length=1)]
AxisIndex = Annotated[int, Meta(ge=0, le=4)]
Matrix = list[list[Number]]
Interpolation = Literal["nearest", "linear", "cubic"]


# ---------------------------------------------------------------- coordinate systems
class Axis06(Axis, kw_only=True):
    """An axis of a coordinate system: 0.4/0.5's ``name``, ``type``, ``unit``, plus
    ``discrete`` (indexable by integers only) and ``longName``."""

    discrete: bool | None = None
    long_name: str | None = field(default=None, name="longName")


class CoordinateSystem(Base):
    """A named coordinate system: ``name`` (non-empty, unique) and its ``axes`` (1 to 5)."""

    name: NonEmpty
    axes: Annotated[list[Axis06], Meta(min_length=1, max_length=5)]

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for i, a in enumerate(self.axes):
            if not a.name:
                raise ValueError(fail(f".axes[{i}].name", "an axis name must not be empty"))
            if a.name in seen:
                raise ValueError(fail(f".axes[{i}].name", f"duplicate axis name {a.name!r}"))
            seen.add(a.name)

    @property
    def axis_names(self) -> list[str]:
        return [a.name for a in self.axes]


def check_unique_names(systems: list[CoordinateSystem], sub: str) -> None:
    """Coordinate system names are unique within a ``coordinateSystems`` array."""
    seen: set[str] = set()
    for i, cs in enumerate(systems):
        if cs.name in seen:
            raise ValueError(fail(f"{sub}[{i}].name", f"duplicate coordinate system {cs.name!r}"))
        seen.add(cs.name)


class Ref(Base):
    """``input`` / ``output`` of a transformation: a coordinate system ``name`` (``path``: of
    the group defining it, when not this one) or, for a dataset's transformation, the array
    ``path``."""

    name: str | None = None
    path: str | None = None


def ref_name(ref: Ref | str | None) -> str | None:
    """The coordinate system name of ``ref`` when it is one of this document (no ``path``)."""
    if isinstance(ref, str):  # the spec's early examples wrote the bare name
        return ref
    if isinstance(ref, Ref) and ref.path is None:
        return ref.name
    return None


# ---------------------------------------------------------------- transformations
class _Transform(Base, tag_field="type"):
    name: str | None = None
    input: Ref | str | None = None
    output: Ref | str | None = None
    #: axes of the enclosing transformation's systems this one acts on (inside byDimension,
    #: or in a sequence's sub-space form: indices or axis names)
    input_axes: list[int | str] | None = field(default=None, name="inputAxes")
    output_axes: list[int | str] | None = field(default=None, name="outputAxes")


def _finite(values: list[float], sub: str) -> None:
    for i, v in enumerate(values):
        if not math.isfinite(v):
            raise ValueError(fail(f"{sub}[{i}]", f"must be a finite number, got {v}"))


def _one_of(inline: object, path: str | None, key: str) -> None:
    if (inline is None) == (path is None):
        raise ValueError(fail("", f"a {key} transformation needs exactly one of '{key}', 'path'"))


class Identity(_Transform, tag="identity", kw_only=True):
    """Maps every point onto itself."""


class MapAxis(_Transform, tag="mapAxis", kw_only=True):
    """An axis permutation: output axis ``i`` is input axis ``mapAxis[i]``."""

    map_axis: Annotated[list[int], Meta(min_length=1, max_length=5)] = field(name="mapAxis")

    def __post_init__(self) -> None:
        if sorted(self.map_axis) != list(range(len(self.map_axis))):
            raise ValueError(
                fail(
                    ".mapAxis",
                    f"{self.map_axis} is not a permutation of 0..{len(self.map_axis) - 1} "
                    "(each input axis index exactly once)",
                )
            )


_AxisList = Annotated[list[AxisIndex], Meta(min_length=1, max_length=3)]


class ProjectAxis(_Transform, tag="projectAxis", kw_only=True):
    """Drops input axes (``droppedInputs``) and / or adds output axes (``createdOutputs``)."""

    dropped_inputs: _AxisList | None = field(default=None, name="droppedInputs")
    created_outputs: _AxisList | None = field(default=None, name="createdOutputs")

    def __post_init__(self) -> None:
        if self.dropped_inputs is None and self.created_outputs is None:
            raise ValueError(fail("", "projectAxis needs 'droppedInputs' or 'createdOutputs'"))
        for key, values in (
            ("droppedInputs", self.dropped_inputs),
            ("createdOutputs", self.created_outputs),
        ):
            if values is not None and len(set(values)) != len(values):
                raise ValueError(fail(f".{key}", f"values must be unique, got {values}"))


def _inline_only(values: list[float], path: str | None, key: str) -> None:
    """Refuse a ``scale`` / ``translation`` without its inline numbers, or given by ``path``:
    0.6rc0's own section of each (and its schema, which requires the key) stores them as a
    JSON array of numbers only; the summary table's "or as a Zarr array (``path``)" has no
    rule behind it."""
    if path is not None:
        raise ValueError(
            fail(
                ".path",
                f"missing required field `{key}`: a {key} given by 'path' (its numbers in "
                f"a Zarr array, {path!r}) is not NGFF "
                f"0.6rc0: the spec's '{key}' section stores them as a JSON array of numbers "
                f"('{key}', required by the coordinate_transformations schema); write them "
                "inline",
            )
        )
    if not values:
        raise ValueError(fail("", f"Object missing required field `{key}`"))


class Scale06(_Transform, tag="scale", kw_only=True):
    """Per-axis factors, inline (0.6rc0 stores no scale in an array)."""

    scale: Annotated[list[Number], Meta(min_length=1)] = field(default_factory=list)
    path: str | None = None  # refused: read only to name the rule

    def __post_init__(self) -> None:
        _inline_only(self.scale, self.path, "scale")
        _finite(self.scale, ".scale")


class Translation06(_Transform, tag="translation", kw_only=True):
    """Per-axis offsets, inline (0.6rc0 stores no translation in an array)."""

    translation: Annotated[list[Number], Meta(min_length=1)] = field(default_factory=list)
    path: str | None = None  # refused: read only to name the rule

    def __post_init__(self) -> None:
        _inline_only(self.translation, self.path, "translation")
        _finite(self.translation, ".translation")


def _check_matrix(m: Matrix, key: str) -> None:
    if not m or any(len(row) != len(m[0]) for row in m) or not m[0]:
        raise ValueError(fail(f".{key}", "must be a 2D array of rows of equal, non-zero length"))
    for i, row in enumerate(m):
        _finite(row, f".{key}[{i}]")


class Affine(_Transform, tag="affine", kw_only=True):
    """An ``M x (N+1)`` matrix (homogeneous coordinates), inline or in an array at ``path``."""

    affine: Matrix | None = None
    path: str | None = None

    def __post_init__(self) -> None:
        _one_of(self.affine, self.path, "affine")
        if self.affine is not None:
            _check_matrix(self.affine, "affine")
            if len(self.affine[0]) < 2:
                raise ValueError(fail(".affine", "rows must have N+1 >= 2 values"))


class Rotation(_Transform, tag="rotation", kw_only=True):
    """An ``N x N`` rotation matrix (orthonormal, determinant 1), inline or at ``path``."""

    rotation: Matrix | None = None
    path: str | None = None

    def __post_init__(self) -> None:
        _one_of(self.rotation, self.path, "rotation")
        m = self.rotation
        if m is None:
            return
        _check_matrix(m, "rotation")
        if not 2 <= len(m) <= 5 or len(m[0]) != len(m):
            raise ValueError(fail(".rotation", "must be a square N x N matrix, N from 2 to 5"))
        n = len(m)
        for i in range(n):
            for j in range(n):
                dot = sum(m[i][k] * m[j][k] for k in range(n))
                if abs(dot - (i == j)) > 1e-5:
                    raise ValueError(fail(".rotation", "rows must be orthonormal"))
        if _det(m) < 0:
            raise ValueError(fail(".rotation", "determinant must be 1 (a reflection is not one)"))


def _det(m: Matrix) -> float:
    if len(m) == 1:
        return float(m[0][0])
    return sum(
        float((-1) ** j) * m[0][j] * _det([row[:j] + row[j + 1 :] for row in m[1:]])
        for j in range(len(m))
    )


class Sequence(_Transform, tag="sequence", kw_only=True):
    """Transformations applied in order (the first one first)."""

    transformations: Annotated[list[Transform06], Meta(min_length=1)]


class Coordinates(_Transform, tag="coordinates", kw_only=True):
    """A coordinate field: the output coordinates of each input point, in the array ``path``."""

    path: str
    interpolation: Interpolation | None = None


class Displacements(_Transform, tag="displacements", kw_only=True):
    """A displacement field: offsets added to each input point, in the array ``path``."""

    path: str
    interpolation: Interpolation | None = None


class ByDimensionItem(Base):
    """One part of a byDimension: ``transformation`` acting on ``inputAxes`` to give
    ``outputAxes`` (axis indices of the byDimension's input / output systems)."""

    transformation: Transform06
    input_axes: list[AxisIndex] = field(name="inputAxes")
    output_axes: list[AxisIndex] = field(name="outputAxes")


class ByDimension(_Transform, tag="byDimension", kw_only=True):
    """A transformation built from lower dimensional ones on subsets of the axes.

    ``transformations`` are kept as written: ``{"transformation", "inputAxes",
    "outputAxes"}`` objects, or (as a spec example writes them) transformations carrying
    ``inputAxes`` / ``outputAxes``; :attr:`items` has them typed."""

    transformations: Annotated[list[dict[str, Any]], Meta(min_length=1)]

    def __post_init__(self) -> None:
        items = [_by_dimension_item(raw, i) for i, raw in enumerate(self.transformations)]
        self.__dict__["_items"] = items
        seen: set[int] = set()
        for i, item in enumerate(items):
            n = _param_length(item.transformation)
            sub = f".transformations[{i}]"
            for key, axes in (("inputAxes", item.input_axes), ("outputAxes", item.output_axes)):
                if n is not None and len(axes) != n:
                    raise ValueError(
                        fail(f"{sub}.{key}", f"has {len(axes)} axes, the transformation {n}")
                    )
            for axis in item.output_axes:
                if axis in seen:
                    raise ValueError(
                        fail(f"{sub}.outputAxes", f"output axis {axis} is set by two parts")
                    )
                seen.add(axis)

    @property
    def items(self) -> list[ByDimensionItem]:
        """The parts, typed."""
        return self.__dict__["_items"]  # type: ignore[no-any-return]


def _by_dimension_item(raw: dict[str, Any], i: int) -> ByDimensionItem:
    sub = f".transformations[{i}]"
    try:
        if "transformation" in raw:
            return msgspec.convert(raw, ByDimensionItem)
        t: Transform06 = msgspec.convert(raw, Transform06)
    except msgspec.ValidationError as exc:
        err = to_metadata_error(exc)
        raise ValueError(fail(sub + err.path[1:], err.rule)) from None
    for key in ("inputAxes", "outputAxes"):
        values = raw.get(key)
        if not isinstance(values, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 4 for v in values
        ):
            raise ValueError(fail(f"{sub}.{key}", "a byDimension part needs axis indices 0-4"))
    return ByDimensionItem(
        transformation=t, input_axes=raw["inputAxes"], output_axes=raw["outputAxes"]
    )


def _param_length(t: Transform06) -> int | None:
    if isinstance(t, Scale06):
        return len(t.scale)
    if isinstance(t, Translation06):
        return len(t.translation)
    if isinstance(t, MapAxis):
        return len(t.map_axis)
    return None


class Bijection(_Transform, tag="bijection", kw_only=True):
    """An invertible transformation given by both directions."""

    forward: Transform06
    inverse: Transform06


Transform06 = (
    Identity
    | MapAxis
    | ProjectAxis
    | Scale06
    | Translation06
    | Affine
    | Rotation
    | Sequence
    | Coordinates
    | Displacements
    | ByDimension
    | Bijection
)


# ---------------------------------------------------------------- rules in context
def check_transform(t: Transform06, n_in: int | None, n_out: int | None, sub: str) -> None:
    """The rules between a transformation's parameters and the dimensions of its input and
    output systems (``None``: not known here, e.g. an array or another group's system)."""
    both = n_in is not None and n_out is not None
    if isinstance(t, MapAxis):
        _dims(len(t.map_axis), n_in, n_out, f"{sub}.mapAxis", "values")
    elif isinstance(t, Scale06 | Translation06):
        key = "scale" if isinstance(t, Scale06) else "translation"
        values = t.scale if isinstance(t, Scale06) else t.translation
        _dims(len(values), n_in, n_out, f"{sub}.{key}", "values")
    elif isinstance(t, Rotation) and t.rotation is not None:
        _dims(len(t.rotation), n_in, n_out, f"{sub}.rotation", "rows")
    elif isinstance(t, Affine) and t.affine is not None:
        if n_out is not None and len(t.affine) != n_out:
            raise ValueError(
                fail(f"{sub}.affine", f"has {len(t.affine)} rows, the output {n_out} axes")
            )
        if n_in is not None and len(t.affine[0]) != n_in + 1:
            raise ValueError(
                fail(
                    f"{sub}.affine",
                    f"rows have {len(t.affine[0])} values, expected {n_in + 1} "
                    f"(the input's {n_in} axes + 1)",
                )
            )
    elif isinstance(t, ProjectAxis):
        _check_project(t, n_in, n_out, sub)
    elif isinstance(t, ByDimension) and n_out is not None:
        covered = sorted(a for item in t.items for a in item.output_axes)
        if covered != list(range(n_out)):
            raise ValueError(
                fail(
                    f"{sub}.transformations",
                    f"the parts' outputAxes {covered} must cover each of the output's "
                    f"{n_out} axes exactly once",
                )
            )
        for i, item in enumerate(t.items):
            if n_in is not None and any(a >= n_in for a in item.input_axes):
                raise ValueError(
                    fail(
                        f"{sub}.transformations[{i}].inputAxes",
                        f"{item.input_axes} has an index past the input's {n_in} axes",
                    )
                )
    elif isinstance(t, Bijection) and both and n_in != n_out:
        raise ValueError(fail(sub, f"a bijection maps {n_in} axes to {n_out}: they must be equal"))


def _dims(n: int, n_in: int | None, n_out: int | None, sub: str, what: str) -> None:
    for side, want in (("input", n_in), ("output", n_out)):
        if want is not None and n != want:
            raise ValueError(fail(sub, f"has {n} {what}, the {side} {want} axes"))


def _check_project(t: ProjectAxis, n_in: int | None, n_out: int | None, sub: str) -> None:
    dropped, created = t.dropped_inputs or [], t.created_outputs or []
    if n_in is not None and any(i >= n_in for i in dropped):
        raise ValueError(fail(f"{sub}.droppedInputs", f"{dropped}: past the input's {n_in} axes"))
    if n_out is not None and any(i >= n_out for i in created):
        raise ValueError(
            fail(f"{sub}.createdOutputs", f"{created}: past the output's {n_out} axes")
        )
    if n_in is not None and n_out is not None and n_in - len(dropped) + len(created) != n_out:
        raise ValueError(
            fail(
                sub,
                f"{n_in} input axes - {len(dropped)} dropped + {len(created)} created "
                f"!= the output's {n_out} axes",
            )
        )
