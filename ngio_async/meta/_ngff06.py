"""msgspec models of NGFF 0.6 (0.6rc0, RFC-5) group metadata and their MUST rules; the
0.4/0.5-shaped view of a 0.6 image that the reader uses. No I/O.

A 0.6 multiscale has ``coordinateSystems`` instead of ``axes``; each dataset has one
transformation (``scale``, ``identity`` or ``sequence[scale, translation]``) from its array to
the *intrinsic* coordinate system (the same ``output`` for every level); multiscale-level
``coordinateTransformations`` link the intrinsic system to others. ``scene`` relates images.

Where the 0.6rc0 conformance suite holds valid cases that break a spec MUST, the rule warns
(:class:`~ngio_async.meta.MetadataWarning`) instead: scale / translation lengths of dataset
transformations, a dataset's ``input.path`` other than its ``path``, multiscale-level
transformations not linking the intrinsic system or naming systems the multiscale does not
define, a disconnected transformation graph, and (as in 0.4) a plate's well path other than
its row and column names. Of the strict profile, a multiscale's ``type`` and ``metadata`` warn
(the spec's own examples leave them out).
"""

from __future__ import annotations

from typing import Annotated, Any

from msgspec import Meta, field

from ._base import Base, fail
from ._transforms06 import (
    CoordinateSystem,
    Identity,
    Ref,
    Scale06,
    Sequence,
    Transform06,
    Translation06,
    check_transform,
    check_unique_names,
    ref_name,
)
from .ngff import (
    Axis,
    Dataset,
    ImageLabel,
    Multiscale,
    OmeMetadata,
    Omero,
    Plate,
    Scale,
    Translation,
    Well,
    WellImage,
    _check_relative,
    _unique,
    axes_problem,
)

__all__ = [
    "Dataset06",
    "Multiscale06",
    "OmeMetadata06",
    "Scene",
    "Well06",
    "WellImage06",
    "image_problem",
    "to_compat",
    "validate_transformations",
]

_Transforms = Annotated[list[Transform06], Meta(min_length=1)]


# ---------------------------------------------------------------- multiscales
class Dataset06(Base):
    """One pyramid level: the array ``path`` and the one transformation from its array to
    the intrinsic coordinate system."""

    path: str
    coordinate_transformations: Annotated[list[Transform06], Meta(min_length=1, max_length=1)] = (
        field(name="coordinateTransformations")
    )

    def __post_init__(self) -> None:
        t = self.transform
        sub = ".coordinateTransformations[0]"
        ok = isinstance(t, Scale06 | Identity) or (
            isinstance(t, Sequence)
            and len(t.transformations) == 2
            and isinstance(t.transformations[0], Scale06)
            and isinstance(t.transformations[1], Translation06)
        )
        if not ok:
            raise ValueError(
                fail(
                    sub,
                    "a dataset's transformation must be a 'scale', an 'identity' or a "
                    "'sequence' of one 'scale' followed by one 'translation'",
                )
            )
        if not isinstance(t.input, Ref) or not t.input.path:
            raise ValueError(
                fail(f"{sub}.input", "must be an object with the array's 'path' ({\"path\": ...})")
            )
        if not isinstance(t.output, Ref) or not t.output.name:
            raise ValueError(
                fail(
                    f"{sub}.output",
                    'must be an object naming the intrinsic coordinate system ({"name": ...})',
                )
            )

    @property
    def transform(self) -> Transform06:
        return self.coordinate_transformations[0]

    @property
    def scale(self) -> list[float] | None:
        """The scale of this level (``None``: an identity)."""
        t = self.transform
        if isinstance(t, Sequence):
            t = t.transformations[0]
        return list(t.scale) if isinstance(t, Scale06) else None

    @property
    def translation(self) -> list[float] | None:
        """The translation of this level, if any."""
        t = self.transform
        if isinstance(t, Sequence) and isinstance(t.transformations[1], Translation06):
            return list(t.transformations[1].translation)
        return None


def _is_array_system(cs: CoordinateSystem) -> bool:
    """An array coordinate system (axes of type ``array``): no image axis rules apply."""
    return sum(a.type == "array" for a in cs.axes) >= 2


class Multiscale06(Base):
    """A 0.6 multiscale image: its coordinate systems, levels and extra transformations."""

    coordinate_systems: Annotated[list[CoordinateSystem], Meta(min_length=1)] = field(
        name="coordinateSystems"
    )
    datasets: Annotated[list[Dataset06], Meta(min_length=1)]
    coordinate_transformations: _Transforms | None = field(
        default=None, name="coordinateTransformations"
    )
    name: str | None = None
    type: str | None = None
    metadata: dict[str, Any] | None = None
    version: str | None = None

    def __post_init__(self) -> None:
        check_unique_names(self.coordinate_systems, ".coordinateSystems")
        for i, cs in enumerate(self.coordinate_systems):
            _check_image_axes(cs, f".coordinateSystems[{i}]")
        paths = [d.path for d in self.datasets]
        for i, path in enumerate(paths):
            _check_relative(path, f".datasets[{i}].path")
        if len(set(paths)) != len(paths):
            raise ValueError(fail(".datasets", "dataset paths must be unique"))
        self._check_datasets()
        for i, t in enumerate(self.coordinate_transformations or ()):
            self._check_outer(t, f".coordinateTransformations[{i}]")

    @property
    def systems(self) -> dict[str, CoordinateSystem]:
        """The coordinate systems by name."""
        return {cs.name: cs for cs in self.coordinate_systems}

    @property
    def intrinsic_name(self) -> str:
        """The name of the intrinsic coordinate system (the datasets' output)."""
        out = self.datasets[0].transform.output
        assert isinstance(out, Ref) and out.name is not None  # checked on decoding
        return out.name

    @property
    def intrinsic(self) -> CoordinateSystem:
        """The intrinsic coordinate system: the image's own axes."""
        return self.systems[self.intrinsic_name]

    def _check_datasets(self) -> None:
        name = self.datasets[0].transform.output
        assert isinstance(name, Ref)
        systems = self.systems
        if name.name not in systems:
            raise ValueError(
                fail(
                    ".datasets[0].coordinateTransformations[0].output.name",
                    f"{name.name!r} is not a coordinate system of this multiscale "
                    f"({', '.join(map(repr, systems))})",
                )
            )
        for i, ds in enumerate(self.datasets):
            out = ds.transform.output
            assert isinstance(out, Ref)
            if out.name != name.name:
                raise ValueError(
                    fail(
                        f".datasets[{i}].coordinateTransformations[0].output.name",
                        f"{out.name!r}: every level's output must be the same "
                        f"(intrinsic) coordinate system, {name.name!r}",
                    )
                )

    def _check_outer(self, t: Transform06, sub: str) -> None:
        systems = self.systems
        for key, ref in (("input", t.input), ("output", t.output)):
            if not isinstance(ref, Ref) or not ref.name:
                raise ValueError(
                    fail(f"{sub}.{key}", "must be an object naming a coordinate system")
                )
            if ref.path is not None:
                _check_relative(ref.path, f"{sub}.{key}.path")
                if not _simple(t):
                    raise ValueError(
                        fail(
                            sub,
                            "a transformation to a labels group's coordinate system must be "
                            "an 'identity', a 'scale', a 'translation' or a 'sequence' of a "
                            "scale and a translation",
                        )
                    )
        names = (ref_name(t.input), ref_name(t.output))
        dims = [len(systems[n].axes) if n in systems else None for n in names]
        check_transform(t, dims[0], dims[1], sub)

    def soft_problems(self) -> list[tuple[str, str]]:
        """(sub path, rule) of the MUST rules the 0.6rc0 conformance suite has valid cases
        breaking (so they warn): a dataset's input path other than its path, scale /
        translation lengths of the datasets, multiscale-level transformations not linking the
        intrinsic system or naming unknown systems, coordinate systems linked to nothing."""
        out: list[tuple[str, str]] = []
        intrinsic, systems = self.intrinsic_name, self.systems
        ndim = len(systems[intrinsic].axes)
        for i, ds in enumerate(self.datasets):
            sub = f".datasets[{i}].coordinateTransformations[0]"
            t = ds.transform
            if isinstance(t.input, Ref) and t.input.path != ds.path:
                out.append(
                    (
                        f"{sub}.input.path",
                        (
                            f"{t.input.path!r} is not the dataset's path {ds.path!r} "
                            f"(read as {ds.path!r})"
                        ),
                    )
                )
            for key, values in (("scale", ds.scale), ("translation", ds.translation)):
                if values is not None and len(values) != ndim:
                    out.append(
                        (
                            sub,
                            f"the {key} has {len(values)} values for the {ndim} axes of {intrinsic!r}",
                        )
                    )
        for i, t in enumerate(self.coordinate_transformations or ()):
            sub = f".coordinateTransformations[{i}]"
            names = (ref_name(t.input), ref_name(t.output))
            for key, name in zip(("input", "output"), names, strict=True):
                if name is not None and name not in systems:
                    out.append(
                        (
                            f"{sub}.{key}.name",
                            f"{name!r} is no coordinate system of this multiscale",
                        )
                    )
            if intrinsic not in names:
                out.append((sub, f"links no system to the intrinsic one, {intrinsic!r}"))
        links = [
            (ref_name(t.input), ref_name(t.output)) for t in self.coordinate_transformations or ()
        ]
        left = _unconnected(intrinsic, list(systems), links)
        if left:
            out.append(
                (
                    ".coordinateSystems",
                    (
                        f"coordinate systems {left} are linked to the intrinsic system "
                        f"{intrinsic!r} by no transformation"
                    ),
                )
            )
        return out


def _simple(t: Transform06) -> bool:
    """identity, scale, translation or sequence[scale, translation] (a link to a label image)."""
    if isinstance(t, Sequence):
        ts = t.transformations
        return len(ts) == 2 and isinstance(ts[0], Scale06) and isinstance(ts[1], Translation06)
    return isinstance(t, Identity | Scale06 | Translation06)


def _unconnected(
    start: str, names: list[str], links: list[tuple[str | None, str | None]]
) -> list[str]:
    reached, todo = {start}, [start]
    while todo:
        here = todo.pop()
        for a, b in links:
            for x, y in ((a, b), (b, a)):
                if x == here and y is not None and y not in reached:
                    reached.add(y)
                    todo.append(y)
    return [n for n in names if n not in reached]


def _check_image_axes(cs: CoordinateSystem, sub: str) -> None:
    """The image rules for every coordinate system of a multiscale: 2 to 5 axes, 2 or 3 of
    them space, at most one time and one channel (or custom), in that order."""
    if _is_array_system(cs):
        return
    if not 2 <= len(cs.axes) <= 5:
        raise ValueError(fail(f"{sub}.axes", f"an image has 2 to 5 axes, got {len(cs.axes)}"))
    problem = axes_problem(list[Axis](cs.axes))
    if problem is not None:
        raise ValueError(fail(sub + problem[0], problem[1]))


# ---------------------------------------------------------------- scene
class Scene(Base):
    """Coordinate systems and transformations relating images (``path``) of the hierarchy."""

    coordinate_transformations: _Transforms = field(name="coordinateTransformations")
    coordinate_systems: list[CoordinateSystem] | None = field(
        default=None, name="coordinateSystems"
    )

    def __post_init__(self) -> None:
        systems = self.coordinate_systems or []
        check_unique_names(systems, ".coordinateSystems")
        dims = {cs.name: len(cs.axes) for cs in systems}
        for i, t in enumerate(self.coordinate_transformations):
            sub = f".coordinateTransformations[{i}]"
            for key, ref in (("input", t.input), ("output", t.output)):
                if not isinstance(ref, Ref) or not ref.name:
                    raise ValueError(
                        fail(
                            f"{sub}.{key}",
                            "must be an object with the coordinate system's 'name' "
                            "(and the 'path' of its group)",
                        )
                    )
                if ref.path is not None:
                    _check_relative(ref.path, f"{sub}.{key}.path")
                elif ref.name not in dims:
                    raise ValueError(
                        fail(
                            f"{sub}.{key}.name",
                            f"{ref.name!r} is no coordinate system of the scene (one of an "
                            "image needs the image's 'path')",
                        )
                    )
            n_in, n_out = (dims.get(ref_name(r) or "") for r in (t.input, t.output))
            check_transform(t, n_in, n_out, sub)


# ---------------------------------------------------------------- well
WellPath = Annotated[str, Meta(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]


class WellImage06(Base):
    """A field of view of a well: a zarr node name (``A-Za-z0-9_.-``, not only dots, not
    starting with ``__``)."""

    path: WellPath
    acquisition: int | None = None

    def __post_init__(self) -> None:
        if set(self.path) == {"."} or self.path.startswith("__"):
            raise ValueError(
                fail(".path", f"{self.path!r}: a node name is not only dots nor starts with '__'")
            )


class Well06(Base):
    """An HCS well: its fields of view."""

    images: Annotated[list[WellImage06], Meta(min_length=1)]
    version: str | None = None

    def __post_init__(self) -> None:
        _unique([im.path for im in self.images], ".images", "image path")


# ---------------------------------------------------------------- documents
class OmeMetadata06(Base):
    """The ``ome`` object of a 0.6 group (image, label image, labels, plate, well,
    bioformats2raw container, ``OME`` series, scene)."""

    version: str | None = None
    multiscales: Annotated[list[Multiscale06], Meta(min_length=1)] | None = None
    omero: Omero | None = None
    image_label: ImageLabel | None = field(default=None, name="image-label")
    labels: list[str] | None = None
    plate: Plate | None = None
    well: Well06 | None = None
    bioformats2raw_layout: int | None = field(default=None, name="bioformats2raw.layout")
    series: list[str] | None = None
    scene: Scene | None = None

    def __post_init__(self) -> None:
        layout = self.bioformats2raw_layout
        if layout is not None and layout != 3:
            raise ValueError(fail(".bioformats2raw.layout", f"must be 3, got {layout}"))
        for key in ("labels", "series"):
            for i, path in enumerate(getattr(self, key) or ()):
                _check_relative(path, f".{key}[{i}]")
        if self.series is not None:
            _unique(self.series, ".series", "series path")

    @property
    def kinds(self) -> list[str]:
        """The document kinds present: image, label, labels, plate, well, bf2raw, ome, scene."""
        keys = (
            ("multiscales", "image"),
            ("image_label", "label"),
            ("labels", "labels"),
            ("plate", "plate"),
            ("well", "well"),
            ("bioformats2raw_layout", "bf2raw"),
            ("series", "ome"),
            ("scene", "scene"),
        )
        return [kind for attr, kind in keys if getattr(self, attr) is not None]


class OmeAttributes06(Base):
    """The attributes of a 0.6 group: ``{"ome": {...}}`` and whatever else tools keep there."""

    ome: OmeMetadata06


class Fragment(Base):
    """Coordinate systems and the transformations between them (as the spec's examples)."""

    coordinate_systems: list[CoordinateSystem] | None = field(
        default=None, name="coordinateSystems"
    )
    coordinate_transformations: list[Transform06] | None = field(
        default=None, name="coordinateTransformations"
    )

    def __post_init__(self) -> None:
        systems = self.coordinate_systems or []
        check_unique_names(systems, ".coordinateSystems")
        dims = {cs.name: len(cs.axes) for cs in systems}
        for i, t in enumerate(self.coordinate_transformations or ()):
            n_in, n_out = (dims.get(ref_name(r) or "") for r in (t.input, t.output))
            check_transform(t, n_in, n_out, f".coordinateTransformations[{i}]")


def validate_transformations(doc: Any) -> Fragment:
    """Validate coordinate systems and transformations outside a group document: a
    ``{"coordinateSystems", "coordinateTransformations"}`` object or one transformation.

    :raises MetadataError: a rule is broken (the message names the JSON path).
    """
    import msgspec

    from ._base import to_metadata_error

    if isinstance(doc, dict) and "type" in doc:
        doc = {"coordinateTransformations": [doc]}
    try:
        return msgspec.convert(doc, Fragment)
    except msgspec.ValidationError as exc:
        raise to_metadata_error(exc) from None


# ---------------------------------------------------------------- the reader's view
def image_problem(ms: Multiscale06) -> str | None:
    """Why the 0.4/0.5-shaped view of ``ms`` cannot be made (``None``: it can): the intrinsic
    coordinate system must be an image one and every level's scale / translation have one
    value per axis."""
    cs = ms.intrinsic
    if _is_array_system(cs):
        return f"its intrinsic coordinate system {cs.name!r} is an array coordinate system"
    ndim = len(cs.axes)
    for ds in ms.datasets:
        for key, values in (("scale", ds.scale), ("translation", ds.translation)):
            if values is not None and len(values) != ndim:
                return f"the {key} of dataset {ds.path!r} has {len(values)} values for {ndim} axes"
    return None


def _compat_multiscale(ms: Multiscale06) -> Multiscale:
    cs = ms.intrinsic
    ndim = len(cs.axes)
    datasets = []
    for ds in ms.datasets:
        ts: list[Scale | Translation] = [Scale(scale=ds.scale or [1.0] * ndim)]
        if ds.translation is not None:
            ts.append(Translation(translation=ds.translation))
        datasets.append(Dataset(path=ds.path, coordinate_transformations=ts))
    axes = [Axis(name=a.name, type=a.type, unit=a.unit) for a in cs.axes]
    return Multiscale(
        axes=axes,
        datasets=datasets,
        name=ms.name,
        type=ms.type,
        metadata=ms.metadata,
    )


#: the key of a view's ``extra`` holding its 0.6 document (a tuple: never written as JSON)
NGFF06_KEY: Any = ("ngff06",)


def to_compat(ome: OmeMetadata06) -> OmeMetadata:
    """The 0.4/0.5-shaped view of a 0.6 document, for the reader: each multiscale's axes are
    its intrinsic coordinate system, each level's transformations its scale / translation
    (``multiscales`` is ``None`` when an image is not of that shape: :func:`image_problem`).
    The 0.6 document is kept on it (:func:`ngff06_of`); ``version`` stays the 0.6 one, so that
    writing the view back as 0.6 is refused."""
    multiscales = None
    if ome.multiscales is not None and all(image_problem(m) is None for m in ome.multiscales):
        try:
            multiscales = [_compat_multiscale(m) for m in ome.multiscales]
        except ValueError:  # an axis rule of 0.4/0.5 the view cannot meet
            multiscales = None
    well = None
    if ome.well is not None:
        images = [WellImage(path=im.path, acquisition=im.acquisition) for im in ome.well.images]
        well = Well(images=images)
    meta = OmeMetadata(
        version=ome.version,
        multiscales=multiscales,
        omero=ome.omero,
        image_label=ome.image_label,
        labels=ome.labels,
        plate=ome.plate,
        well=well,
        bioformats2raw_layout=ome.bioformats2raw_layout,
        series=ome.series,
    )
    for key, value in ome.extra.items():
        if isinstance(key, str):
            meta.extra[key] = value
    meta.extra[NGFF06_KEY] = ome
    return meta


def ngff06_of(meta: OmeMetadata) -> OmeMetadata06 | None:
    """The 0.6 document a view was made of (``None``: ``meta`` is 0.4 / 0.5)."""
    found = meta.extra.get(NGFF06_KEY)
    return found if isinstance(found, OmeMetadata06) else None
