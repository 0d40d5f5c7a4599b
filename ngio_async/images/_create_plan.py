"""The plan of a new image (pure): the defaults (level names, chunks, shards, number of levels),
:func:`plan_image` and the :class:`ImagePlan` it gives (every level's array metadata and the
NGFF metadata, with the documents to write)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .._errors import UnsupportedError
from ..engine.pyramid import check_levels_shrink
from ..meta import (
    Axis,
    Channel,
    Dataset as NgffDataset,
    Multiscale,
    OmeMetadata,
    Omero,
    Scale,
    Translation,
    write_document,
)
from ..meta._validate import to_attrs, validate
from ..meta.zarr import (
    GroupV3Meta,
    encode_array_v2,
    encode_array_v3,
    encode_group_v2,
    encode_group_v3,
)
from ._array_meta import Compressor, array_meta_v2, array_meta_v3
from ._create_values import (
    _AXIS_TYPES,
    ChannelSpec,
    _axis_names,
    _channel_list,
    _per_axis,
    _per_axis_sizes,
    _python,
    _sizes,
    _units,
    check_unique_channels,
    data_type,
    integer,
    make_channel,
)

if TYPE_CHECKING:
    from numpy.typing import DTypeLike

    from ..meta.zarr import ArrayMeta


__all__ = ["ImagePlan", "default_chunks", "default_levels", "default_shards", "plan_image"]


_CHUNK_BYTES = 1 << 20


_SHARD_CHUNKS = 8  # chunks per shard along y and x


_SMALLEST = 256  # default levels: until the largest of y/x is at most this


def level_names(existing: Sequence[str], count: int) -> list[str]:
    """``count`` level paths: ``existing`` first (as many as fit), then their pattern continued
    (``s0, s1`` -> ``s2``; ``0, 1`` -> ``2``; ngff-zarr's ``scale0/image`` -> ``scale1/image``);
    paths of another shape are followed by free ``str(i)`` names. Readers of plates
    (ome-zarr-py) take the first field's level paths for every field, and tools count on one
    pattern per pyramid. A single level's number is a ``0`` with no digit beside it (``10x``
    or ``2020`` go on as ``1``, not ``11x``)."""
    first = existing[0] if existing else ""
    for at in (i for i, ch in enumerate(first) if ch == "0"):  # the level's number: a "0"
        head, tail = first[:at], first[at + 1 :]
        alone = not head[-1:].isdigit() and not tail[:1].isdigit()
        if (alone or len(existing) > 1) and all(
            p == f"{head}{i}{tail}" for i, p in enumerate(existing)
        ):
            return [f"{head}{i}{tail}" for i in range(count)]
    names = list(existing[:count])
    # nor a group an existing path lies in (a level 2/image: no new level "2")
    taken = {p.rsplit("/", i)[0] for p in existing for i in range(p.count("/") + 1)}
    for i in range(len(names), count):
        name, n = str(i), i
        while name in taken:
            n += 1
            name = str(n)
        taken.add(name)
        names.append(name)
    return names


def path_groups(root: str, paths: Sequence[str], version: str) -> list[tuple[str, bytes]]:
    """``(key, bytes)`` of empty group documents for the groups inside level ``paths`` below
    ``root`` (ngff-zarr's ``scale0/image`` lies in a group ``scale0``): zarr needs them (v3 has
    no implicit groups), and a consolidated copy leaves out (0.4) or breaks on (0.5) arrays
    whose parent group it cannot find."""
    if version == "0.4":
        name, data = ".zgroup", b'{"zarr_format":2}'
    else:
        name, data = "zarr.json", b'{"zarr_format":3,"node_type":"group","attributes":{}}'
    groups: dict[str, None] = {}
    for path in paths:
        parts = path.split("/")[:-1]
        for i in range(len(parts)):
            groups["/".join(p for p in (root.strip("/"), *parts[: i + 1], name) if p)] = None
    return [(key, data) for key in groups]


def _yx(axes: Sequence[str]) -> tuple[int, ...]:
    """Indices of the axes downscaled and chunked square-ish: y and x (else the last two: an
    image whose x is named otherwise shrinks in both, not in y alone)."""
    found = tuple(i for i, a in enumerate(axes) if a in ("y", "x"))
    return found if len(found) == 2 else tuple(range(max(0, len(axes) - 2), len(axes)))


def default_chunks(shape: Sequence[int], axes: Sequence[str], dtype: DTypeLike) -> tuple[int, ...]:
    """Chunks of at most ~1 MiB: a power-of-two square in y/x (capped by the shape), 1 elsewhere."""
    itemsize = np.dtype(dtype).itemsize
    side = 2 ** math.floor(math.log2(math.sqrt(_CHUNK_BYTES / itemsize)))
    yx = _yx(axes)
    return tuple(max(1, min(side, n)) if i in yx else 1 for i, n in enumerate(shape))


def stacked_chunks(shape: Sequence[int], axes: Sequence[str], dtype: DTypeLike) -> tuple[int, ...]:
    """:func:`default_chunks` with whole planes smaller than a chunk stacked along ``z``, then
    ``t``, up to ~1 MiB (a movie of 2,000 frames of 32 x 32 is 4 chunks, not 2,000); a plane of
    several chunks, or of about one, keeps them. Channels stay one per chunk."""
    chunks = list(default_chunks(shape, axes, dtype))
    if any(chunks[i] < shape[i] for i in _yx(axes)):
        return tuple(chunks)
    nbytes = max(1, math.prod(chunks) * np.dtype(dtype).itemsize)
    for name in ("z", "t"):
        if name in axes:
            i = list(axes).index(name)
            chunks[i] = max(1, min(shape[i], _CHUNK_BYTES // nbytes))
            nbytes *= chunks[i]
            if chunks[i] < shape[i]:
                break
    return tuple(chunks)


def default_shards(
    shape: Sequence[int], axes: Sequence[str], chunks: Sequence[int]
) -> tuple[int, ...] | None:
    """Shards of up to 8x8 chunks in y/x (capped by the shape, whole chunks), one chunk elsewhere.

    ``None`` when a shard would hold a single chunk.
    """
    yx = _yx(axes)
    shards = tuple(
        min(_SHARD_CHUNKS * c, -(-n // c) * c) if i in yx else c
        for i, (n, c) in enumerate(zip(shape, chunks, strict=True))
    )
    shards = tuple(max(s, c) for s, c in zip(shards, chunks, strict=True))
    return None if shards == tuple(chunks) else shards


def default_levels(shape: Sequence[int], axes: Sequence[str], downscale: int) -> int:
    """Levels until the largest y/x extent is at most 256 (at least 1)."""
    largest = max((shape[i] for i in _yx(axes)), default=1)
    n = 1
    while largest > _SMALLEST and downscale > 1:
        largest = -(-largest // downscale)
        n += 1
    return n


def _level_shape(shape: Sequence[int], axes: Sequence[str], factor: int) -> tuple[int, ...]:
    """The shape of a level ``factor`` times smaller in y/x (rounded up; 0 stays 0)."""
    yx = _yx(axes)
    return tuple(-(-n // factor) if i in yx else n for i, n in enumerate(shape))


def _level_scale(scale: Sequence[float], axes: Sequence[str], factor: int) -> list[float]:
    """The scale of a level ``factor`` times smaller in y/x (the other axes keep theirs)."""
    yx = _yx(axes)
    return [s * factor if i in yx else s for i, s in enumerate(scale)]


@dataclass(frozen=True)
class ImagePlan:
    """Everything :func:`create_async` writes: per-level array metadata and the NGFF metadata."""

    version: str
    paths: tuple[str, ...]
    arrays: tuple[ArrayMeta, ...]
    ome: OmeMetadata
    #: the channels given no display window: their windows follow the data (see
    #: ``Dataset.set_channels(windows="auto")``)
    auto_windows: tuple[int, ...] = ()

    def array_documents(self) -> list[tuple[str, bytes]]:
        """``(key relative to the image, bytes)`` of every level's array metadata."""
        if self.version == "0.4":
            return [
                (f"{p}/.zarray", encode_array_v2(a))  # type: ignore[arg-type]
                for p, a in zip(self.paths, self.arrays, strict=True)
            ]
        return [
            (f"{p}/zarr.json", encode_array_v3(a))  # type: ignore[arg-type]
            for p, a in zip(self.paths, self.arrays, strict=True)
        ]

    def group_documents(self) -> list[tuple[str, bytes]]:
        """``(key, bytes)`` of the group metadata, in the order to write them (NGFF last)."""
        attrs = to_attrs(self.ome, self.version)
        if self.version == "0.4":
            return [(".zgroup", encode_group_v2()), (".zattrs", write_document(attrs))]
        doc = GroupV3Meta(zarr_format=3, node_type="group", attributes=attrs)
        return [("zarr.json", encode_group_v3(doc))]


def plan_image(
    *,
    shape: Sequence[int],
    dtype: DTypeLike,
    axes: str | Sequence[str] | None = None,
    scale: float | Sequence[float] | Mapping[str, float] | None = None,
    units: str | Sequence[str | None] | Mapping[str, str] | None = "micrometer",
    translation: Sequence[float] | Mapping[str, float] | None = None,
    chunks: Sequence[int] | None = None,
    shards: Sequence[int] | Literal[False] | None = None,
    compressor: Compressor = "zstd",
    levels: int | None = None,
    downscale: int = 2,
    channels: Sequence[ChannelSpec | Channel] | None = None,
    ngff_version: Literal["0.5", "0.4"] = "0.5",
    name: str | None = None,
    fill_value: Any = None,
    level_translations: Sequence[Sequence[float]] | None = None,
    level_shapes: Sequence[Sequence[int]] | None = None,
    level_scales: Sequence[Sequence[float]] | None = None,
    unique_channels: bool = True,
) -> ImagePlan:
    """Plan an image (pure: no I/O); see :func:`create_async` for the parameters.
    ``unique_channels``: refuse two channels given of one label or ``wavelength_id``
    (``convert`` keeps what a source file names twice).

    ``create_like`` copies what a source has and ``create`` does not make:
    ``level_translations``, one translation per level (levels translated apart, as
    ome-zarr-py centres them; it replaces ``translation``), ``level_shapes``, the shape of
    every level (ome-zarr-py's are ``floor(n / 2)``, not ``ceil``), and ``level_scales``, the
    scale of every level, one per axis (ome-zarr-py's are exact: ``61 / 30`` times level 0's
    for 61 -> 30 pixels, not 2); the first must be ``scale``'s.
    """
    shape_l = _sizes(shape, "shape")
    if axes is None:
        by_rank = {2: "yx", 3: "cyx" if channels is not None else "zyx", 4: "czyx", 5: "tczyx"}
        axes = by_rank.get(len(shape_l), "")
        if not axes:
            raise ValueError(f"give axes= for a {len(shape_l)}-dimensional image")
    names = _axis_names(axes)
    if len(names) != len(shape_l):
        raise ValueError(f"{len(names)} axes {names} for a {len(shape_l)}-dimensional shape")
    shape_t = tuple(
        integer(n, f"shape[{i}] (axis {a!r})")
        for i, (n, a) in enumerate(zip(shape_l, names, strict=True))
    )
    if ngff_version not in ("0.4", "0.5"):
        raise UnsupportedError(f"cannot write NGFF version {ngff_version!r} (0.4 or 0.5)")
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be a string, got {name!r}")
    dt = data_type(dtype)
    if dt.byteorder == ">":
        dt = dt.newbyteorder("=")
    if dt.kind not in "biufc":
        raise UnsupportedError(f"data type {dt} is not supported (numbers and bool only)")
    downscale = integer(downscale, "downscale", minimum=1)
    fill = fill_value if fill_value is not None else (False if dt.kind == "b" else 0)
    n_levels = (
        default_levels(shape_t, names, downscale)
        if levels is None
        else integer(levels, "levels", minimum=1)
    )
    if chunks is not None:
        base_chunks = _per_axis_sizes(chunks, names, "chunks")
    elif shards is None or shards is False:  # small planes stacked: no 32 KiB chunk per plane
        base_chunks = stacked_chunks(shape_t, names, dt)
    else:  # (shards given: their z and t stay whole multiples of the chunks)
        base_chunks = default_chunks(shape_t, names, dt)
    if shards is not None and shards is not False:
        if ngff_version == "0.4":
            raise UnsupportedError("sharding needs zarr v3 (NGFF 0.5), not 0.4")
        shard_req: tuple[int, ...] | None = _per_axis_sizes(shards, names, "shards")
        assert shard_req is not None
        # a shard reaching past the image is cut to the chunks covering it (as on every level)
        chunks0 = tuple(max(1, min(c, n)) for c, n in zip(base_chunks, shape_t, strict=True))
        if any(
            s % c and s < -(-n // c) * c
            for s, c, n in zip(shard_req, chunks0, shape_t, strict=True)
        ):
            raise ValueError(f"shards {shard_req} must be whole multiples of the chunks {chunks0}")
    else:
        shard_req = None

    scale0 = _per_axis(scale, names, 1.0, "scale", positive=True)
    unit_list = _units(units, names)
    trans = _per_axis(translation, names, 0.0, "translation") if translation is not None else None
    per_level: list[list[float]] | None = None
    if level_translations is not None:
        per_level = [_per_axis(list(t), names, 0.0, "translation") for t in level_translations]
        if len(per_level) != n_levels:
            raise ValueError(f"{len(per_level)} level translations for {n_levels} levels")
    scales = _level_scales(level_scales, scale0, names, n_levels, downscale)
    arrays: list[ArrayMeta] = []
    datasets: list[NgffDataset] = []
    if level_shapes is not None and (
        len(level_shapes) != n_levels or tuple(level_shapes[0]) != shape_t
    ):
        raise ValueError(f"level shapes {level_shapes} for {n_levels} levels of shape {shape_t}")
    if level_shapes is None:  # (given level shapes are a source's own: taken as they are)
        check_levels_shrink(
            [_level_shape(shape_t, names, downscale**i) for i in range(n_levels)], n_levels
        )
    for i in range(n_levels):
        factor = downscale**i
        lshape = (
            _level_shape(shape_t, names, factor)
            if level_shapes is None
            else tuple(int(n) for n in level_shapes[i])
        )
        lchunks = tuple(max(1, min(c, n)) for c, n in zip(base_chunks, lshape, strict=True))
        lshards: tuple[int, ...] | None = None
        if ngff_version == "0.5" and shards is not False:
            if shard_req is not None:
                lshards = tuple(
                    max(c, min(s, -(-n // c) * c))
                    for s, c, n in zip(shard_req, lchunks, lshape, strict=True)
                )
            else:
                lshards = default_shards(lshape, names, lchunks)
        if ngff_version == "0.5":
            arrays.append(array_meta_v3(lshape, dt, names, lchunks, lshards, compressor, fill))
        else:
            arrays.append(array_meta_v2(lshape, dt, lchunks, compressor, fill))
        transforms: list[Any] = [Scale(scale=scales[i])]
        if per_level is not None:
            transforms.append(Translation(translation=per_level[i]))
        elif trans is not None:
            transforms.append(Translation(translation=list(trans)))
        datasets.append(NgffDataset(path=str(i), coordinate_transformations=transforms))
    axis_models = [
        Axis(name=a, type=_AXIS_TYPES.get(a), unit=u) for a, u in zip(names, unit_list, strict=True)
    ]
    omero = None
    auto_windows: tuple[int, ...] = ()
    if channels is not None:
        if "c" not in names:
            raise ValueError("channels= needs a 'c' axis")
        channels = _channel_list(channels)
        n_c = shape_t[names.index("c")]
        if len(channels) != n_c:
            raise ValueError(f"{len(channels)} channels for a channel axis of size {n_c}")
        only = len(channels) == 1
        made = [make_channel(c, i, dt, only=only) for i, c in enumerate(channels)]
        if unique_channels:  # (by label or mapping: those copied from an image as they are)
            check_unique_channels(
                [m for m, c in zip(made, channels, strict=True) if not isinstance(c, Channel)],
                "channels",
            )
        omero = Omero(channels=made)
        auto_windows = tuple(
            i
            for i, c in enumerate(channels)
            if isinstance(c, str) or (isinstance(c, Mapping) and c.get("window") is None)
        )
    ome = OmeMetadata(
        version=ngff_version,
        multiscales=[
            Multiscale(
                axes=axis_models,
                datasets=datasets,
                name="image" if name is None else _python(name),
                **downsampling("mean"),
            )
        ],
        omero=omero,
    )
    ome = validate(to_attrs(ome, ngff_version))  # every rule checked before anything is written
    paths = tuple(str(i) for i in range(n_levels))
    return ImagePlan(
        version=ngff_version, paths=paths, arrays=tuple(arrays), ome=ome, auto_windows=auto_windows
    )


def _level_scales(
    given: Sequence[Sequence[float]] | None,
    scale0: list[float],
    names: list[str],
    n_levels: int,
    downscale: int,
) -> list[list[float]]:
    """Every level's scale: ``given`` (``level_scales``, checked: one per level, positive, one
    value per axis, the first ``scale0``), else ``scale0`` times ``downscale**i`` in y/x."""
    if given is None:
        return [_level_scale(scale0, names, downscale**i) for i in range(n_levels)]
    if isinstance(given, str | bytes) or not isinstance(given, Sequence):
        raise TypeError(f"level_scales must be one scale per level, got {given!r}")
    if len(given) != n_levels:
        raise ValueError(f"level_scales: {len(given)} scales for {n_levels} levels")
    scales = [
        _per_axis(s, names, 1.0, f"level_scales[{i}]", positive=True) for i, s in enumerate(given)
    ]
    if scales[0] != scale0:
        raise ValueError(f"level_scales[0] {scales[0]} is not the scale {scale0} of level 0")
    return scales


def downsampling(method: str) -> dict[str, Any]:
    """The multiscale ``type`` and ``metadata`` (SHOULD fields) for levels this library
    downsamples with ``method`` (``"mean"``, ``"nearest"``, ``"mode"``): the NGFF example's
    keys, naming the function and the library version."""
    from .. import __version__

    return {
        "type": method,
        "metadata": {
            "description": f"{method} of each downscale window (ngio_async)",
            "method": "ngio_async.Dataset.build_pyramid",
            "version": __version__,
            "kwargs": {"method": method},
        },
    }


def default_name(url: Any, path: str) -> str:
    """The multiscale ``name`` for an image at ``path`` under ``url``: its directory's name
    without ``.ome.zarr`` / ``.zarr``, or ``"image"``."""
    where = path.strip("/") or str(getattr(url, "url", url)).split("?", 1)[0]
    last = where.rpartition("://")[2].rstrip("/").rsplit("/", 1)[-1]
    for suffix in (".ome.zarr", ".zarr"):
        if last.lower().endswith(suffix):
            last = last[: -len(suffix)]
            break
    return last or "image"
