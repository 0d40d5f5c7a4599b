"""Creating images: ``create_async`` (``create_like_async``: :mod:`._create_like`) -> a writable,
empty :class:`Dataset`.

The layout is planned first (pure: :func:`plan_image` gives every level's zarr array metadata and
the NGFF group metadata), then written in an order that never leaves group metadata pointing at
missing arrays:

1. refuse a root below a zarr array (whatever ``overwrite`` says), and an existing node
   (``zarr.json``, ``.zattrs`` or ``.zgroup`` at the root) unless ``overwrite=True``, which
   first deletes every key under the root (the store must list);
2. every level's array metadata (``zarr.json`` or ``.zarray``), concurrently;
3. (0.4) the ``.zgroup``; then the group's NGFF metadata (0.5 ``zarr.json``, 0.4 ``.zattrs``) last.

Array metadata is exactly what zarr-python writes (0.5: zarr v3 with ``dimension_names``,
``sharding_indexed`` with a crc32c index; 0.4: zarr v2, ``dimension_separator`` ``"/"``).

The plan: :mod:`._create_plan` (the values checked by :mod:`._create_values`, the array metadata
by :mod:`._array_meta`); the writing: :mod:`._metadata_writes` (the refusals of a root:
:mod:`._root_checks`; the consolidated metadata: :mod:`._consolidated`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..stores import AsyncStore, open_store
from ._create_plan import ImagePlan, default_name, plan_image
from ._dataset import Dataset
from ._metadata_writes import write_plan_metadata
from ._node import store_path
from ._opening import _Opening, closing_store_on_error, refuse_read_only
from ._root_checks import _local_directory, refuse_array_above

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from numpy.typing import DTypeLike

    from .._limits import Limits
    from ..meta import Channel
    from ._array_meta import Compressor
    from ._create_values import ChannelSpec

__all__ = ["create_async"]


async def create_in(
    store: AsyncStore,
    root: str,
    plan: ImagePlan,
    *,
    overwrite: bool = False,
    limits: Limits | None = None,
    owns_store: bool = False,
    consolidate: bool = True,
) -> Dataset:
    """Write ``plan``'s metadata at ``root`` of an open store; return the writable dataset
    (``consolidate``: see :func:`complete_root`)."""
    await write_plan_metadata(store, root, plan, overwrite=overwrite, consolidate=consolidate)
    return Dataset.from_plan(
        store,
        root,
        plan.ome,
        list(plan.arrays),
        limits=limits,
        owns_store=owns_store,
        mode="r+",
        auto_windows=plan.auto_windows,
    )


def _open_target(
    url: str | os.PathLike[str] | AsyncStore | Any,
    limits: Limits | None,
    options: dict[str, Any],
    *,
    label: bool = False,
) -> tuple[AsyncStore, bool]:
    refuse_read_only(url, "write to")  # http(s): before a store is made, or any I/O
    if isinstance(url, AsyncStore):
        if options:
            raise ValueError("store options need a URL, not an AsyncStore")
        return url, False
    local = isinstance(url, os.PathLike) or (
        isinstance(url, str) and ("://" not in url or url.startswith("file://"))
    )
    if local:
        directory = _local_directory(url)
        if directory is not None:  # before mkdir makes a directory inside the array
            refuse_array_above(directory, directory, label=label)
        options.setdefault("mkdir", True)
    return open_store(url, limits=limits, **options), True


def create_async(
    url: str | os.PathLike[str] | AsyncStore | Any,
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
    overwrite: bool = False,
    limits: Limits | None = None,
    path: str | os.PathLike[str] | None = "",
    **store_options: Any,
) -> _Opening[Dataset]:
    """Create an empty OME-Zarr image; ``ds = await create_async(...)`` or ``async with``.

    The dataset returned is writable (``mode="r+"``); every pixel reads as ``fill_value`` until
    written (:meth:`Dataset.write`, :meth:`Dataset.write_at`, :meth:`Dataset.writer`).

    :param url: where the image goes (path, ``file://``, ``memory://``, ``s3://``, ...; a local
        directory is created), or an :class:`~ngio_async.stores.AsyncStore`.
    :param shape: level-0 shape (integers >= 0; a 0 extent stays 0 on every level); ``axes``
        names its axes (default by rank: ``yx``, ``zyx`` (``cyx`` when ``channels`` is given),
        ``czyx``, ``tczyx``).
    :param scale: level-0 pixel size: a number (every space axis), one value per axis, or a
        mapping axis -> value (other axes 1); default 1. Finite and > 0 (Python or numpy
        numbers). Lower levels multiply y/x by ``downscale**i``.
    :param units: one unit for the space axes (the time axis ``t`` gets ``second``), one per
        axis, or a mapping axis -> unit (the axes it does not name keep the defaults:
        ``micrometer`` for z/y/x, ``second`` for t; c has none); ``None``: no units.
    :param translation: per axis (or mapping) translation of every level, finite; default none.
    :param chunks: chunk shape (integers >= 1); default ~1 MiB, square in y/x and 1 along the
        other axes; a plane smaller than that is stacked along z, then t, up to ~1 MiB (unless
        ``shards`` are given).
    :param shards: shard shape (0.5 only); default up to 8x8 chunks in y/x for 0.5 (capped by
        the shape), ``False`` for no sharding. 0.4 is never sharded.
    :param compressor: ``"zstd"``, ``"blosc-zstd"``, ``"gzip"``, or ``None`` / ``"none"`` /
        ``False`` for none.
    :param levels: pyramid levels; default: until the largest of y/x is at most 256.
    :param downscale: factor between levels along y and x (t, c, z are not downscaled).
    :param channels: one per channel: a label, or a dict with ``label``, ``color`` (``RRGGBB``),
        ``window`` (``(start, end)`` or ``{min, max, start, end}``), ``active``. Channels
        given no ``color`` are blue, green, red, magenta, cyan, yellow, white in turn; a single
        channel is white (grey in viewers). A channel given no ``window`` gets ``min``/``max`` of the data type's range and ``start``/``end``
        from the data: derived from the lowest level whenever the pyramid is built
        (``build_pyramid``, level 0 written with ``pyramid=True``) through this dataset
        object, until ``set_channels`` sets its window (until then, the whole range).
    :param ngff_version: ``"0.5"`` (zarr v3) or ``"0.4"`` (zarr v2).
    :param overwrite: replace an existing node at ``url`` (deletes its keys first: the store
        must list them); otherwise an existing node raises :class:`~ngio_async.ExistsError` and
        nothing is changed. Never replaced, whatever ``overwrite``: a level of an image (its
        group's multiscales would name a group), a well of a plate, and a label image its
        image's ``labels`` group lists, unless the new image is a label image too
        (``create_like`` of one; else ``labels.create(name, overwrite=True)`` on the image).
        A whole image (a plate's field too) is replaced.
    :param path: the image's path inside the store; no parent of it may be a zarr array.
    :param fill_value: the value of unwritten pixels; must be a value of ``dtype``.
    :param name: the multiscale's ``name``; default: the image directory's name without
        ``.ome.zarr`` / ``.zarr`` (else ``"image"``). ``type`` and ``metadata`` say how lower
        levels are computed (``"mean"``, ``ngio_async.Dataset.build_pyramid``).
    :raises ExistsError: a zarr node exists there and ``overwrite`` is false, or a parent of
        ``path`` is a zarr array, or a group above lists the place as a level, a well or a
        label image (``kind="parent"``; nothing is deleted).
    :raises ValueError: an argument breaks a rule (non-finite or non-positive scale, unknown
        axis name, ...); ``TypeError``: an argument of the wrong type. Both before any I/O.
    """
    refuse_misspelled(store_options, "create")
    path = store_path(path)
    plan = plan_image(
        shape=shape,
        dtype=dtype,
        axes=axes,
        scale=scale,
        units=units,
        translation=translation,
        chunks=chunks,
        shards=shards,
        compressor=compressor,
        levels=levels,
        downscale=downscale,
        channels=channels,
        ngff_version=ngff_version,
        name=default_name(url, path) if name is None else name,
        fill_value=fill_value,
    )

    return _create_planned(
        url, plan, overwrite=overwrite, limits=limits, path=path, store_options=store_options
    )


#: the arguments of create_async that plan_image takes
_PLAN_KEYS = frozenset(
    (
        "shape", "dtype", "axes", "scale", "units", "translation", "chunks", "shards",
        "compressor", "levels", "downscale", "channels", "ngff_version", "name", "fill_value",
    )
)  # fmt: skip


#: every create_async argument (the others are store options)
_CREATE_KEYS = _PLAN_KEYS | {"overwrite", "limits", "path"}


def refuse_misspelled(options: Mapping[str, Any], caller: str) -> None:
    """Refuse a store option that looks like a misspelled create argument (``chunk=`` for
    ``chunks=``): the store refused it as an unknown store option, or took it silently."""
    import difflib

    for key in options:
        close = difflib.get_close_matches(key, sorted(_CREATE_KEYS), n=1, cutoff=0.8)
        if close:
            raise TypeError(
                f"{caller}() got an unexpected keyword argument {key!r}; did you mean {close[0]!r}?"
            )


def overwrite_flag(value: Any) -> bool:
    """``overwrite=`` as a bool: True, False (numpy's too) or None (False). Anything else is
    refused: taken for its truth, ``overwrite="no"`` deleted the image it meant to keep."""
    if value is None:
        return False
    if isinstance(value, bool | np.bool_):
        return bool(value)
    raise TypeError(f"overwrite must be True or False, got {value!r}")


def _create_planned(
    url: str | os.PathLike[str] | AsyncStore | Any,
    plan: ImagePlan,
    *,
    overwrite: bool,
    limits: Limits | None,
    path: str,
    store_options: dict[str, Any],
    consolidate: bool = True,
) -> _Opening[Dataset]:
    """The I/O half of :func:`create_async`: write ``plan`` at ``url`` (``consolidate``: see
    :func:`complete_root`)."""
    overwrite = overwrite_flag(overwrite)

    async def go() -> Dataset:
        label = plan.ome.image_label is not None
        store, owns = _open_target(url, limits, dict(store_options), label=label)
        return await closing_store_on_error(
            store,
            owns,
            create_in(
                store,
                path.strip("/"),
                plan,
                overwrite=overwrite,
                limits=limits,
                owns_store=owns,
                consolidate=consolidate,
            ),
        )

    return _Opening(go)
