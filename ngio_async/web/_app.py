"""``create_app``: the aiohttp application serving datasets as JSON, tiles, regions and zarr."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import anyio
from aiohttp import web

from .._errors import MetadataError, UnsupportedError
from ..images import Dataset, Plate, open_async, open_plate_async
from ..images._open import container_series
from . import _api, _files
from ._errors import error_middleware
from ._state import (
    DEFAULT_MAX_OPEN_FIELDS,
    Entry,
    FieldSlot,
    PlateEntry,
    WebState,
    dataset_identity,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping


__all__ = ["DEFAULT_MAX_REGION_PIXELS", "STATE", "create_app"]

DEFAULT_MAX_REGION_PIXELS = 64 * 1024 * 1024
STATE = web.AppKey("ngio_async.web.state", WebState)

Source = str | os.PathLike[str] | Dataset | Plate


def create_app(
    datasets: Mapping[str, Source],
    *,
    max_region_pixels: int = DEFAULT_MAX_REGION_PIXELS,
    tile_size: int = 512,
    cache_seconds: int = 3600,
    max_open_fields: int = DEFAULT_MAX_OPEN_FIELDS,
    **open_options: Any,
) -> web.Application:
    """An aiohttp app serving ``datasets`` (name -> URL, path, open :class:`Dataset` or
    :class:`Plate`).

    URLs are opened once when the app starts (concurrently; ``open_options`` go to
    :func:`~ngio_async.open_async`, e.g. ``limits=`` or S3 options) and closed when it shuts
    down; every request shares them and their store limits. A :class:`Dataset` or
    :class:`Plate` passed in is used as is and left open (its owner closes it).

    An HCS plate (a URL whose group is a plate, or a :class:`Plate`) serves each of its fields
    of view as a dataset named ``<name>/<row>/<column>/<field>`` (``plate/A/1/0``: the field's
    path in the plate). Start-up reads the plate's and its wells' documents only; a field is
    opened by the first request for it (once, however many arrive meanwhile) and stays open
    among the ``max_open_fields`` most recently used (the least recently used one no request
    is using is closed past that bound). A well that cannot be read is logged and left out
    (one the store failed to give is read again when the plate is listed or one of its fields
    asked for), a field that cannot be opened answers 502 (both listed as ``unavailable``);
    the other fields are still served. ``/zarr/<name>/`` is the whole plate.

    A bioformats2raw container (a URL whose group lists images ``0``, ``1``, ... or
    ``OME/series``) serves each image as ``<name>/<path>``, all opened at start-up, and
    ``<name>`` alone as its first image; ``/zarr/<name>/`` is the whole container.

    Routes: ``GET /api/datasets``, ``/api/datasets/{name}``,
    ``/api/datasets/{name}/tiles/{level}/{t}/{z}/{row}/{col}.{png,jpg,jpeg,webp}``,
    ``/api/datasets/{name}/region.npy``, ``GET|HEAD /zarr/{name}/{key}``, ``/`` and
    ``/static/{path}``. Errors are JSON ``{"error", "message"}``. The app may be mounted under
    a prefix of a larger one (``main.add_subapp("/ngio/", create_app(...))``).

    :param max_region_pixels: the most elements one ``region.npy`` answer may hold (else 413).
    :param tile_size: tile edge in pixels.
    :param cache_seconds: ``Cache-Control: max-age`` of tiles.
    :param max_open_fields: how many plate fields are kept open (all plates together).
    """
    from .._sync_api import SyncDataset, SyncPlate

    for name, source in datasets.items():
        if not name or "/" in name or name in (".", ".."):
            raise ValueError(f"invalid dataset name {name!r}: use a non-empty name without '/'")
        if isinstance(source, SyncDataset | SyncPlate):  # they live on the blocking API's loop
            kind = "dataset" if isinstance(source, SyncDataset) else "plate"
            raise TypeError(
                f"{name!r}: a {kind} of the blocking API (ngio_async.open, open_plate) runs on "
                "another event loop: give its URL, or open it with open_async / open_plate_async"
            )
    if max_region_pixels < 1 or tile_size < 1 or cache_seconds < 0 or max_open_fields < 1:
        raise ValueError(
            "max_region_pixels, tile_size and max_open_fields must be >= 1, cache_seconds >= 0"
        )
    # a client that disconnects cancels its handler (and so its reads) under any runner:
    # web.run_app and a plain AppRunner leave aiohttp's handler_cancellation off
    app = web.Application(
        middlewares=[error_middleware], handler_args={"handler_cancellation": True}
    )
    app[STATE] = WebState(
        max_region_pixels=max_region_pixels,
        tile_size=tile_size,
        cache_seconds=cache_seconds,
        max_open_fields=max_open_fields,
    )
    sources = dict(datasets)

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        state = app[STATE]
        state.entries, state.plates, state.fields = await _open_all(sources, open_options)
        try:
            yield
        finally:
            entries, state.entries = state.entries, {}
            plates, state.plates = state.plates, {}
            state.fields = {}
            with anyio.CancelScope(shield=True):
                await state.close_fields()
                for entry in reversed(entries.values()):  # a container's images before it
                    if entry.owned:
                        await entry.dataset.aclose()
                for plate in plates.values():
                    if plate.owned:
                        await plate.plate.aclose()

    app.cleanup_ctx.append(lifespan)
    router = app.router
    app[STATE].anchor = router.add_get("/api/datasets", _api.list_datasets).resource
    # a dataset name is one segment; a plate's field has four (plate/A/1/0), an image of a
    # bioformats2raw container two or more (container/1)
    name = "{name:[^/]+(?:/[^/]+){0,3}}"
    # the longer routes first: 'c/region.npy' would match a two-segment dataset name
    router.add_get(f"/api/datasets/{name}/region.npy", _api.region)
    router.add_get(f"/api/datasets/{name}/tiles/{{level}}/{{t}}/{{z}}/{{row}}/{{col}}", _api.tile)
    router.add_get(f"/api/datasets/{name}", _api.describe)
    router.add_route("*", "/zarr/{name}/{key:.*}", _files.zarr_object)
    router.add_get("/", _files.index)
    router.add_get("/static/{path:.*}", _files.static_file)
    return app


async def _open_source(source: str | os.PathLike[str], options: dict[str, Any]) -> Dataset | Plate:
    """Open ``source`` as an image, else (an HCS plate's group) as a plate; the image's error
    when it is neither."""
    from .._open_any import _is_tiff
    from ..stores._url_utils import redact_url

    if _is_tiff(source):
        raise UnsupportedError(
            f"{redact_url(os.fspath(source))} is a TIFF: the tile server serves OME-Zarr images and "
            "plates (convert it first: ngio-async convert)"
        )
    try:
        return await open_async(source, **options)
    except (UnsupportedError, MetadataError) as exc:
        try:
            return await open_plate_async(source, **options)
        except Exception:  # noqa: BLE001 - not a plate either: the image's error says why
            raise exc from None


async def _open_all(
    sources: dict[str, Source], options: dict[str, Any]
) -> tuple[dict[str, Entry], dict[str, PlateEntry], dict[str, FieldSlot]]:
    """Open every URL concurrently (a plate's wells are read, its fields left to their first
    use); on any failure close what was opened and re-raise."""
    opened: dict[str, tuple[Dataset | Plate, bool]] = {}
    plates: dict[str, PlateEntry] = {}
    fields: dict[str, dict[str, FieldSlot]] = {}
    children: dict[str, list[str]] = {}  # a container's images, in its order

    async def one(name: str, source: Source) -> None:
        if isinstance(source, Dataset | Plate):
            node, owned = source, False
        else:
            node, owned = await _open_source(source, options), True
        opened[name] = (node, owned)
        if owned and isinstance(node, Dataset) and node.root:
            # a bioformats2raw container (its first image opened): every image as name/<path>
            paths = await container_series(node.store, "", node.metadata.ngff_version)
            children[name] = [f"{name}/{path}" for path in paths]
            opened[f"{name}/{node.root}"] = (node, False)

            async def image(path: str) -> None:
                ds = await Dataset.open_in(node.store, path, limits=node.limits)
                opened[f"{name}/{path}"] = (ds, True)

            async with anyio.create_task_group() as images:  # together: one round of reads
                for path in paths:
                    if path != node.root:
                        images.start_soon(image, path)
        if isinstance(node, Plate):
            plates[name] = PlateEntry(name, node, owned)
            await plates[name].read_wells(node.wells)
            fields[name] = plates[name].slots({})

    try:
        async with anyio.create_task_group() as tg:
            for name, source in sources.items():
                tg.start_soon(one, name, source)
    except BaseException as exc:
        with anyio.CancelScope(shield=True):
            for node, owned in opened.values():
                if owned:
                    await node.aclose()
        leaf: BaseException = exc
        while isinstance(leaf, BaseExceptionGroup) and len(leaf.exceptions) == 1:
            leaf = leaf.exceptions[0]
        if leaf is exc:
            raise
        raise leaf from None
    entries: dict[str, Entry] = {}
    slots: dict[str, FieldSlot] = {}
    for name in [n for source in sources for n in (source, *children.get(source, ()))]:
        node, owned = opened[name]
        if isinstance(node, Plate):
            slots.update(fields[name])
        else:
            entries[name] = Entry(name, node, owned, dataset_identity(name, node))
            if name in children:  # /zarr/<name>/ is the whole container
                entries[name].zarr_root = ""
    return entries, plates, slots
