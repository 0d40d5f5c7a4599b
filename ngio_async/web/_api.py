"""``/api`` handlers: dataset listing and metadata, rendered tiles, raw regions as ``.npy``."""

from __future__ import annotations

import functools
import hashlib
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
import numpy as np
from aiohttp import web

from .._prefetch import start_deferred
from ..stores._seen import seeing_versions
from ._errors import ApiError
from ._params import (
    bad,
    etag_matches,
    parse_index,
    parse_region,
    parse_tile_query,
    single_values,
)
from ._render import (
    FORMATS,
    default_channels,
    default_colors,
    encode_npy,
    npy_header,
    render_tile,
)
from ._state import axis_index, axis_roles

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import NDArray

    from ..images import Dataset, Level
    from ..stores import AsyncStore
    from ._params import TileQuery
    from ._render import RGBA
    from ._state import ContainerEntry, Entry, FieldSlot, PlateEntry, WebState

__all__ = [
    "container_summary",
    "describe",
    "field_summary",
    "list_datasets",
    "plate_summary",
    "region",
    "summary",
    "tile",
]

_TILE_NAME = re.compile(r"^([0-9]+)\.([A-Za-z]+)$")
_COMPRESS_OVER = 4096  # bytes of a JSON answer compressed when the client accepts it


def _state(request: web.Request) -> WebState:
    from ._app import STATE

    return request.app[STATE]


def summary(entry: Entry) -> dict[str, Any]:
    """The short description in ``/api/datasets``."""
    ds = entry.dataset
    return {
        "name": entry.name,
        "ngff_version": ds.metadata.ngff_version,
        "axes": list(ds.axes),
        "shape": list(ds.shape),
        "dtype": str(ds.dtype),
        "levels": len(ds.levels),
        "channels": entry.n_channels,
        **_part_of(entry),
    }


def _part_of(entry: Entry) -> dict[str, Any]:
    """``{"plate": ...}`` or ``{"container": ...}``: where a field or container image lies."""
    where = entry.part_of
    return {} if where is None else {where.json_key: where.as_json()}


def field_summary(slot: FieldSlot) -> dict[str, Any]:
    """A plate's field or a container's image in ``/api/datasets``: its name and place
    (listing opens none)."""
    return {"name": slot.name, slot.where.json_key: slot.where.as_json()}


def container_summary(entry: ContainerEntry) -> dict[str, Any]:
    """A served bioformats2raw container in ``/api/datasets``: its images' dataset names."""
    return {
        "name": entry.name,
        "ngff_version": entry.ngff_version,
        "images": entry.images,
        "unavailable": entry.unavailable,
    }


def plate_summary(entry: PlateEntry) -> dict[str, Any]:
    """A served plate in ``/api/datasets``: its layout and the dataset names of its fields."""
    plate = entry.plate
    return {
        "name": entry.name,
        "ngff_version": plate.version,
        "plate_name": plate.name,
        "rows": plate.rows,
        "columns": plate.columns,
        "wells": plate.wells,
        "fields": entry.fields,
        "unavailable": entry.unavailable,
    }


async def list_datasets(request: web.Request) -> web.Response:
    """``GET /api/datasets``: the datasets (images, container images, plate fields), the
    plates and the containers."""
    state = _state(request)
    await state.retry_wells()
    revisions = state.revisions()
    if state.listing is None or state.listing[0] != revisions:  # made again only on changes
        body = msgspec.json.encode(
            {
                "datasets": [summary(e) for e in state.entries.values()]
                + [field_summary(slot) for slot in state.fields.values()],
                "plates": [plate_summary(p) for p in state.plates.values()],
                "containers": [container_summary(c) for c in state.containers.values()],
            }
        )
        state.listing = revisions, body
    body = state.listing[1]
    response = web.Response(body=body, content_type="application/json")
    if len(body) > _COMPRESS_OVER:  # plates: ~100 bytes per field (1.4 MB for 1536 x 9)
        response.headers["Vary"] = "Accept-Encoding"
        response.enable_compression()  # if the client accepts it (in a worker thread)
    return response


async def describe(request: web.Request) -> web.Response:
    """``GET /api/datasets/{name}``: axes, levels, channels, labels, sizes (no store URL)."""
    state = _state(request)
    async with state.lease(request.match_info["name"]) as entry:
        return await _describe(state, entry)


async def _describe(state: WebState, entry: Entry) -> web.Response:
    ds = entry.dataset
    meta = ds.metadata
    n_channels = entry.n_channels
    info = {c.index: c for c in meta.channels}
    every = list(range(n_channels))
    shown = set(default_channels(n_channels, meta.channels))
    windows = await _windows(state, entry, every)
    colors = default_colors(every, n_channels, meta.channels)
    channels = []
    for i in every:
        c = info.get(i)
        channels.append(
            {
                "index": i,
                "label": c.label if c else None,
                "color": c.color if c else None,
                "window": list(c.window) if c and c.window else None,
                "active": c.active if c else None,
                # what a tile without overrides shows
                "display": {
                    "shown": i in shown,
                    "window": list(windows[i]),
                    "color": "{:02X}{:02X}{:02X}".format(*colors[i]),
                },
            }
        )
    return web.json_response(
        {
            "name": entry.name,
            "ngff_version": meta.ngff_version,
            "axes": [{"name": a.name, "type": a.type, "unit": a.unit} for a in meta.axes],
            "dtype": str(ds.dtype),
            "tile_size": state.tile_size,
            "levels": [
                {
                    "index": i,
                    "path": path,
                    "shape": list(lvl.shape),
                    "chunks": list(lvl.chunks),
                    "shards": list(lvl.shards) if lvl.shards else None,
                    "scale": list(lvl.scale),
                    "translation": list(lvl.translation),
                }
                for i, (path, lvl) in enumerate(zip(meta.paths, ds.levels, strict=True))
            ],
            "channels": channels,
            "labels": await entry.label_names(),
            "sizes": {role: ds.shape[i] for role, i in sorted(axis_roles(ds).items())},
            **_part_of(entry),
        }
    )


# ------------------------------------------------------------------------------ tiles
def _plane_index(entry: Entry, axis: str, text: str, level_shape: tuple[int, ...]) -> int:
    value = parse_index(axis, text)
    index = axis_index(entry.dataset, axis)
    if index is None or index >= len(level_shape) - 2:
        if value != 0:
            raise bad(axis, f"the image has no {axis!r} axis: use 0")
        return 0
    if value >= level_shape[index]:
        raise ApiError(
            404,
            "out_of_range",
            f"{axis}={value} is out of range (axis {axis!r} of this level has "
            f"{level_shape[index]}: 0..{level_shape[index] - 1})",
        )
    return value


def _etag(
    entry: Entry, state: WebState, coords: tuple[Any, ...], query: TileQuery, versions: str | None
) -> str | None:
    """A strong ETag: the dataset, the tile, the query and the versions of the stored objects
    the tile is read from; ``None`` when the store cannot tell an object's version."""
    if versions is None:
        return None
    text = f"{entry.identity}|{state.tile_size}|{coords!r}|{query.canonical()}|{versions}"
    return '"' + hashlib.sha256(text.encode()).hexdigest()[:32] + '"'


def _object_keys(
    entry: Entry,
    level: int,
    t: int,
    z: int,
    channels: list[int],
    ys: slice,
    xs: slice,
    labels: Sequence[_LabelRead] = (),
) -> list[str]:
    """The stored objects (chunks or shards) a tile reads (those of the ``labels`` overlaid
    too), in key order."""
    lvl = entry.dataset.levels[level]
    reads = [(lvl, s) for s in _plane_selections(entry, level, t, z, channels, ys, xs)]
    reads += [(label.level, label.selection) for label in labels]
    return sorted(
        {
            key
            for level_of, selection in reads
            for key in level_of.object_keys(
                tuple(s if isinstance(s, slice) else slice(s, s + 1) for s in selection)
            )
        }
    )


async def _look_up(store: AsyncStore, keys: list[str], found: dict[str, str | None]) -> None:
    """The versions of the ``keys`` not in ``found`` yet, one ``store.version`` (a HEAD) each,
    concurrently, into ``found`` (local files: their stats in one worker-thread call)."""
    missing = [key for key in keys if key not in found]
    if not missing:
        return
    if store.blocking_reads:  # (a thread call per stat took a quarter of a local tile's CPU)
        stats = await anyio.to_thread.run_sync(store.versions_blocking, missing)
        if stats is not None:
            found.update(zip(missing, stats, strict=True))
            return

    async def one(key: str) -> None:
        found[key] = await store.version(key)

    async with anyio.create_task_group() as tg:
        for key in missing:
            start_deferred(tg, one, key)


def _versions(keys: list[str], found: dict[str, str | None]) -> str | None:
    """The versions of ``keys`` (each in ``found``) as one text, ``-`` for an absent object;
    ``None`` if the store cannot tell one of them (``""``)."""
    if any(found[key] == "" for key in keys):
        return None
    return "|".join(f"{key}={found[key] or '-'}" for key in keys)


async def tile(request: web.Request) -> web.StreamResponse:
    """``GET /api/datasets/{name}/tiles/{level}/{t}/{z}/{row}/{col}.{png|jpg|jpeg|webp}``."""
    state = _state(request)
    async with state.lease(request.match_info["name"]) as entry:
        return await _tile(request, state, entry)


async def _tile(request: web.Request, state: WebState, entry: Entry) -> web.StreamResponse:
    ds = entry.dataset
    m = request.match_info
    name_match = _TILE_NAME.match(m["col"])
    if name_match is None:
        raise bad("col", f"expected <col>.png, .jpg, .jpeg or .webp, got {m['col']!r}")
    ext = name_match[2].lower()
    if ext not in FORMATS:
        raise bad("format", f"unsupported tile format {ext!r} (png, jpg, jpeg, webp)")
    level = parse_index("level", m["level"])
    row, col = parse_index("row", m["row"]), int(name_match[1])
    if level >= len(ds.levels):
        raise ApiError(404, "out_of_range", f"level {level} of {len(ds.levels)} does not exist")
    lvl = ds.levels[level]
    t = _plane_index(entry, "t", m["t"], lvl.shape)
    z = _plane_index(entry, "z", m["z"], lvl.shape)
    size = state.tile_size
    height, width = lvl.shape[-2], lvl.shape[-1]
    if row * size >= height or col * size >= width:
        rows, cols = -(-height // size), -(-width // size)
        raise ApiError(
            404,
            "out_of_range",
            f"tile row={row}, col={col} is outside level {level} "
            f"({rows} x {cols} tiles: row 0..{rows - 1}, col 0..{cols - 1})",
        )
    query = parse_tile_query(single_values(request.query), entry.n_channels, ds.metadata.channels)
    if query.channels is not None:
        _check_channel_count(state, len(query.channels), entry.n_channels)
    label_entries = [await entry.label(name) for name in query.labels]
    selected = list(query.channels or default_channels(entry.n_channels, ds.metadata.channels))
    if query.windows is not None and len(query.windows) != len(selected):
        raise bad("window", f"expected {len(selected)} windows (one per channel shown)")
    if query.colors is not None and len(query.colors) != len(selected):
        raise bad("color", f"expected {len(selected)} colours (one per channel shown)")

    ys = slice(row * size, min(height, (row + 1) * size))
    xs = slice(col * size, min(width, (col + 1) * size))
    label_reads = [_label_read(entry, label, level, t, z, ys, xs) for label in label_entries]
    coords = (level, t, z, row, col, ext)
    plane_channels = selected if ds.metadata.channel_axis is not None else [0]
    headers = {"Cache-Control": f"public, max-age={state.cache_seconds}"}
    store = ds.levels[level].store
    keys = _object_keys(entry, level, t, z, plane_channels, ys, xs, label_reads)
    found: dict[str, str | None] = {}

    def tag() -> str | None:
        versions = _versions(keys, found)
        if versions is not None and label_entries:  # their metadata (colours) too
            versions += "|" + ",".join(label.identity for label in label_entries)
        return _etag(entry, state, coords, query, versions)

    if_none_match = request.headers.get("If-None-Match")
    if if_none_match:  # a revalidation: the objects' versions alone decide (no pixels read)
        await _look_up(store, keys, found)
        etag = tag()
        if etag is not None and etag_matches(if_none_match, etag):
            return web.Response(status=304, headers={**headers, "ETag": etag})

    windows = (
        list(query.windows) if query.windows is not None else await _windows(state, entry, selected)
    )
    colors = list(query.colors or default_colors(selected, entry.n_channels, ds.metadata.channels))
    label_planes: list[Any] = [None] * len(label_reads)

    async def read_label(i: int) -> None:
        label_planes[i] = await label_reads[i].read()

    plane = (ys.stop - ys.start) * (xs.stop - xs.start)
    pixels = plane * len(set(plane_channels)) + sum(read.pixels for read in label_reads)
    async with state.budget.hold(pixels):
        with seeing_versions() as seen:  # the versions the GETs of the pixels tell
            async with anyio.create_task_group() as tg:
                if store.blocking_reads:  # read in worker threads, which tell none: stats
                    start_deferred(tg, _look_up, store, keys, found)
                for i in range(len(label_reads)):
                    start_deferred(tg, read_label, i)
                planes = await _read_planes(entry, level, t, z, selected, ys, xs)
        found.update({key: seen.version(key) for key in keys if seen.knows(key)})
        overlays = [(p, read.colors) for p, read in zip(label_planes, label_reads, strict=True)]
        render = functools.partial(
            render_tile, planes, windows, colors, ext, overlays, query.label_opacity
        )
        if all(key in found for key in keys):
            body = await anyio.to_thread.run_sync(render, limiter=state.render_limiter)
        else:  # versions no GET told (cached or shared chunks, weak ETags): HEADs, meanwhile
            async with anyio.create_task_group() as tg:
                start_deferred(tg, _look_up, store, keys, found)
                body = await anyio.to_thread.run_sync(render, limiter=state.render_limiter)
    etag = tag()
    if etag is not None:
        headers["ETag"] = etag
    else:  # no validator: caches must not reuse the tile after the data changes
        headers["Cache-Control"] = "no-cache"
    return web.Response(body=body, content_type=FORMATS[ext][1], headers=headers)


def _check_channel_count(state: WebState, count: int, n_channels: int) -> None:
    """A 413 naming ``c`` when it lists more channels than the image has and more than the
    pixel budget holds in tiles (a channel may be shown more than once, each costs a plane)."""
    pixels = state.tile_size * state.tile_size
    most = max(n_channels, state.max_region_pixels // pixels)
    if count > most:
        raise ApiError(
            413,
            "too_many_channels",
            f"parameter 'c': {count} channels of {state.tile_size} x {state.tile_size} pixels "
            f"exceed the pixel budget of {state.max_region_pixels}: at most {most}",
        )


@dataclass(frozen=True)
class _LabelRead:
    """What of a label image a tile overlays: a region of one of its levels (the objects
    under it are the tile's) and, per tile pixel, the row and column of that level it shows
    (nearest neighbour)."""

    level: Level
    selection: tuple[Any, ...]
    rows: NDArray[np.intp]
    cols: NDArray[np.intp]
    colors: dict[int, RGBA]

    @property
    def pixels(self) -> int:
        """The elements read: one per tile pixel."""
        return len(self.rows) * len(self.cols)

    async def read(self) -> NDArray[Any]:
        """The label pixels shown, read chunk by chunk (a level finer than the tile is not
        read whole: a full-resolution label under a coarse tile read 256 times what it
        shows)."""
        *planes, _, _ = self.selection
        return await self.level.read_orthogonal((*planes, self.rows, self.cols))


def _label_read(
    image: Entry, label: Entry, level: int, t: int, z: int, ys: slice, xs: slice
) -> _LabelRead:
    """The part of ``label`` under tile ``ys``, ``xs`` of the image's ``level`` (plane ``t``,
    ``z``): from the coarsest label level still as fine as the image's level (the same one
    when the label image follows the image's pyramid), mapped by the levels' extents."""
    lvl = image.dataset.levels[level]
    height, width = lvl.shape[-2], lvl.shape[-1]
    levels = label.dataset.levels
    fine = [i for i, lab in enumerate(levels) if lab.shape[-2] >= height and lab.shape[-1] >= width]
    index = fine[-1] if fine else 0
    lab = levels[index]
    rows = _nearest(ys, height, lab.shape[-2])
    cols = _nearest(xs, width, lab.shape[-1])
    roles = axis_roles(image.dataset)
    planes = {}
    for role, value in (("t", t), ("z", z)):
        here, there = roles.get(role), axis_roles(label.dataset).get(role)
        if here is not None and there is not None and there < lab.ndim - 2:
            planes[role] = min(lab.shape[there] - 1, value * lab.shape[there] // lvl.shape[here])
    region_y = slice(int(rows[0]), int(rows[-1]) + 1)
    region_x = slice(int(cols[0]), int(cols[-1]) + 1)
    (selection,) = _plane_selections(
        label, index, planes.get("t", 0), planes.get("z", 0), [0], region_y, region_x
    )
    image_label = label.dataset.metadata.ome.image_label
    colors = {
        c.label_value: (c.rgba[0], c.rgba[1], c.rgba[2], c.rgba[3])
        for c in (image_label.colors or [] if image_label else [])
        if c.rgba is not None
    }
    return _LabelRead(lab, selection, rows, cols, colors)


def _nearest(span: slice, size: int, other: int) -> NDArray[np.intp]:
    """For each pixel of ``span`` of an axis of ``size`` pixels, the nearest pixel of the same
    axis sampled with ``other`` pixels."""
    centres = (np.arange(span.start, span.stop, dtype=np.float64) + 0.5) * (other / size)
    out: NDArray[np.intp] = np.minimum(other - 1, np.floor(centres)).astype(np.intp)
    return out


async def _windows(state: WebState, entry: Entry, selected: list[int]) -> list[tuple[float, float]]:
    info = {c.index: c for c in entry.dataset.metadata.channels}
    out: list[tuple[float, float] | None] = []
    for i in selected:
        c = info.get(i)
        out.append(c.window if c is not None and c.window and c.window[1] > c.window[0] else None)
    if any(w is None for w in out):
        computed = await entry.default_windows(state.budget)
        out = [w if w is not None else computed[i] for w, i in zip(out, selected, strict=True)]
    return [w for w in out if w is not None]


def _plane_selections(
    entry: Entry, level: int, t: int, z: int, channels: list[int], ys: slice, xs: slice
) -> list[tuple[Any, ...]]:
    """The selection of each channel's 2-D plane of a tile (integers on the other axes)."""
    ds = entry.dataset
    ndim = ds.levels[level].ndim
    c_axis = ds.metadata.channel_axis
    roles = axis_roles(ds)
    plane = {roles.get("t"): t, roles.get("z"): z}
    out = []
    for channel in channels:
        selection: list[Any] = []
        for axis in range(ndim):
            if axis >= ndim - 2:
                selection.append(ys if axis == ndim - 2 else xs)
            elif axis == c_axis:
                selection.append(channel)
            else:
                selection.append(plane.get(axis, 0))
        out.append(tuple(selection))
    return out


async def _read_planes(
    entry: Entry, level: int, t: int, z: int, selected: list[int], ys: slice, xs: slice
) -> list[Any]:
    """The 2-D planes of ``selected`` channels, read concurrently, each channel once however
    often it is shown (``c=0,0``: twice)."""
    c_axis = entry.dataset.metadata.channel_axis
    distinct = [0] if c_axis is None else list(dict.fromkeys(selected))
    planes = await _read_planes_of(entry, level, t, z, distinct, ys, xs)
    if c_axis is None:  # one plane, shown once per channel asked for
        return planes * len(selected)
    of = dict(zip(distinct, planes, strict=True))
    return [of[channel] for channel in selected]


async def _read_planes_of(
    entry: Entry,
    level: int,
    t: int,
    z: int,
    channels: list[int],
    ys: slice,
    xs: slice,
) -> list[Any]:
    lvl = entry.dataset.levels[level]
    planes: list[Any] = [None] * len(channels)
    selections = _plane_selections(entry, level, t, z, channels, ys, xs)

    async def read(i: int) -> None:
        planes[i] = await lvl.getitem(selections[i])

    if len(channels) == 1:
        await read(0)
    else:
        async with anyio.create_task_group() as tg:
            for i in range(len(channels)):
                start_deferred(tg, read, i)
    return planes


# ------------------------------------------------------------------------------ regions
async def region(request: web.Request) -> web.Response:
    """``GET /api/datasets/{name}/region.npy?level=0&c=..&z=..&y=a:b&x=a:b``."""
    state = _state(request)
    async with state.lease(request.match_info["name"]) as entry:
        return await _region(request, state, entry)


async def _region(request: web.Request, state: WebState, entry: Entry) -> web.Response:
    ds = entry.dataset
    query = single_values(request.query)
    level = parse_index("level", query.get("level", "0"))
    if level >= len(ds.levels):
        raise ApiError(404, "out_of_range", f"level {level} of {len(ds.levels)} does not exist")
    lvl = ds.levels[level]
    c_axis = ds.metadata.channel_axis
    labels = {} if c_axis is None else {ds.axes[c_axis]: [c.label for c in ds.metadata.channels]}
    selection = parse_region(query, ds.axes, lvl.shape, labels)
    count = 1
    for name, n in zip(ds.axes, lvl.shape, strict=True):
        sel = selection.get(name)
        count *= 1 if isinstance(sel, int) else (n if sel is None else sel.stop - sel.start)
    if count > state.max_region_pixels:
        raise ApiError(
            413,
            "region_too_large",
            f"the region has {count} elements; the limit is {state.max_region_pixels}",
        )
    if request.method == "HEAD":  # its shape, dtype and length, nothing read
        return _region_head(ds, lvl.shape, selection)
    async with state.budget.hold(count):  # the requests in flight share the budget
        data = await ds.read(level=level, axes_order=None, **selection)
        body = await anyio.to_thread.run_sync(encode_npy, data, limiter=state.render_limiter)
    return web.Response(
        body=body,
        content_type="application/octet-stream",
        headers={"X-Shape": ",".join(map(str, data.shape)), "X-Dtype": str(data.dtype)},
    )


def _region_head(
    ds: Dataset, shape: tuple[int, ...], selection: dict[str, int | slice]
) -> web.Response:
    """The headers a ``region.npy`` GET would answer with (``X-Shape``, ``X-Dtype``,
    ``Content-Length``), computed from the selection."""
    out: list[int] = []
    for name, n in zip(ds.axes, shape, strict=True):
        sel = selection.get(name)
        if not isinstance(sel, int):
            out.append(n if sel is None else sel.stop - sel.start)
    dims = tuple(out)
    length = len(npy_header(dims, ds.dtype)) + math.prod(dims) * ds.dtype.itemsize
    headers = {
        "X-Shape": ",".join(map(str, dims)),
        "X-Dtype": str(ds.dtype),
        "Content-Type": "application/octet-stream",
        "Content-Length": str(length),
    }
    return web.Response(headers=headers)
