"""``create_app``: the aiohttp application serving datasets as JSON, tiles, regions and zarr."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import anyio
from aiohttp import web

from .._errors import MetadataError, UnsupportedError
from .._prefetch import start_deferred
from ..images import Dataset, Plate
from ..images._open import container_series, read_group_metadata
from ..images._opening import closing_store_on_error
from ..stores import AsyncStore, open_store
from . import _api, _files
from ._errors import add_cors, error_middleware
from ._state import (
    DEFAULT_MAX_OPEN_FIELDS,
    ContainerEntry,
    Entry,
    FieldSlot,
    PlateEntry,
    WebState,
    dataset_identity,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping


__all__ = ["DEFAULT_MAX_REGION_PIXELS", "MAX_TILE_SIZE", "STATE", "create_app"]

DEFAULT_MAX_REGION_PIXELS = 64 * 1024 * 1024
#: the largest tile edge: a tile of the 3 channels shown by default then reads 3 x 4096 x 4096
#: = 48 Mi elements, within what one region.npy answer may hold by default (64 Mi); the
#: command line's ``--tile-size`` has the same bound (``ngio_async.cli._common``)
MAX_TILE_SIZE = 4096
STATE = web.AppKey("ngio_async.web.state", WebState)
#: how long shutdown waits for the requests still handled (cancelled) to end before it closes
#: their datasets
_END_REQUESTS_SECONDS = 5.0

Source = str | os.PathLike[str] | AsyncStore | Dataset | Plate


def create_app(
    datasets: Mapping[str, Source],
    *,
    max_region_pixels: int = DEFAULT_MAX_REGION_PIXELS,
    tile_size: int = 512,
    cache_seconds: int = 3600,
    max_open_fields: int = DEFAULT_MAX_OPEN_FIELDS,
    **open_options: Any,
) -> web.Application:
    """An aiohttp app serving ``datasets`` (name -> URL, path, store, open :class:`Dataset`
    or :class:`Plate`).

    URLs are opened once when the app starts (concurrently; ``open_options`` go to
    :func:`~ngio_async.open_async`, e.g. ``limits=`` or S3 options) and closed when it shuts
    down; every request shares them and their store limits. A :class:`Dataset`,
    :class:`Plate` or :class:`~ngio_async.stores.AsyncStore` (the node at its root) passed
    in is used as is and left open (its owner closes it).

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
    ``OME/series``) serves each image as ``<name>/<path>`` and ``<name>`` alone as its first
    image. Start-up reads the layout group and the list of images only; an image is opened
    like a plate's field (on first use, once, kept among the ``max_open_fields``); one that
    cannot be opened answers 502 ``image_unavailable``. ``/zarr/<name>/`` is the whole
    container.

    Routes: ``GET /api/datasets``, ``/api/datasets/{name}``,
    ``/api/datasets/{name}/tiles/{level}/{t}/{z}/{row}/{col}.{png,jpg,jpeg,webp}``,
    ``/api/datasets/{name}/region.npy``, ``GET|HEAD /zarr/{name}/{key}``, ``/`` and
    ``/static/{path}``. Errors are JSON ``{"error", "message"}``. The app may be mounted under
    a prefix of a larger one (``main.add_subapp("/ngio/", create_app(...))``).

    :param max_region_pixels: the most elements one ``region.npy`` answer may hold (else 413),
        and all the tiles and regions being read and encoded together (the others wait).
    :param tile_size: tile edge in pixels, 1 to :data:`MAX_TILE_SIZE` (4096).
    :param cache_seconds: ``Cache-Control: max-age`` of tiles.
    :param max_open_fields: how many plate fields and container images are kept open (all
        together).
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
    if tile_size > MAX_TILE_SIZE:  # every tile request would read up to tile_size² pixels
        raise ValueError(
            f"tile_size must be at most {MAX_TILE_SIZE} (pixels per tile edge), got {tile_size}"
        )
    # a client that disconnects cancels its handler (and so its reads) under any runner:
    # web.run_app and a plain AppRunner leave aiohttp's handler_cancellation off
    app = web.Application(
        middlewares=[error_middleware], handler_args={"handler_cancellation": True}
    )
    app.on_response_prepare.append(add_cors)
    app[STATE] = WebState(
        max_region_pixels=max_region_pixels,
        tile_size=tile_size,
        cache_seconds=cache_seconds,
        max_open_fields=max_open_fields,
    )
    sources = dict(datasets)

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        state = app[STATE]
        await _open_all(state, sources, open_options)
        try:
            yield
        finally:
            entries, state.entries = state.entries, {}
            plates, state.plates = state.plates, {}
            containers, state.containers = state.containers, {}
            state.fields, state.aliases = {}, {}
            with anyio.CancelScope(shield=True):
                await state.end_requests(_END_REQUESTS_SECONDS)
                await state.close_fields()
                for entry in entries.values():
                    await entry.aclose()
                for plate in plates.values():
                    if plate.owned:
                        await plate.plate.aclose()
                for container in containers.values():
                    await container.aclose()

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


async def _open_source(
    name: str, source: str | os.PathLike[str] | AsyncStore, options: dict[str, Any]
) -> Dataset | Plate | ContainerEntry:
    """Open ``source`` as an image, a bioformats2raw container (its list of images read,
    none opened) or an HCS plate (its group read); the image's error when it is none."""
    from .._open_any import _is_tiff
    from ..stores._url_utils import redact_url

    if not isinstance(source, AsyncStore) and _is_tiff(source):
        raise UnsupportedError(
            f"{redact_url(os.fspath(source))} is a TIFF: the tile server serves OME-Zarr images and "
            "plates (convert it first: ngio-async convert)"
        )
    owns = not isinstance(source, AsyncStore)
    if isinstance(source, AsyncStore):
        store = source
    else:
        store_options = dict(options)
        store = open_store(source, limits=store_options.pop("limits", None), **store_options)
    return await closing_store_on_error(store, owns, _open_node(name, store, owns))


async def _open_node(name: str, store: AsyncStore, owns: bool) -> Dataset | Plate | ContainerEntry:
    try:
        ome = await read_group_metadata(store, "")
    except MetadataError:  # told again by the image's opening
        ome = None
    layout = ome is not None and ome.bioformats2raw_layout is not None
    if ome is not None and layout and ome.multiscales is None and not ome.plate:
        series = await container_series(store, "", ome.version)
        unique = list(dict.fromkeys(series))  # an image listed twice is served once
        return ContainerEntry(name, store, ome.version, owns, unique)
    try:
        return await Dataset.open_in(store, owns_store=owns)
    except (UnsupportedError, MetadataError) as exc:
        try:
            return await Plate.open_in(store, owns_store=owns)
        except Exception:  # noqa: BLE001 - not a plate either: the image's error says why
            raise exc from None


async def _open_all(state: WebState, sources: dict[str, Source], options: dict[str, Any]) -> None:
    """Open every source concurrently (a plate's wells are read and a container's list of
    images, their images left to their first use) into ``state``; on any failure close what
    was opened and re-raise."""
    opened: dict[str, tuple[Dataset | Plate | ContainerEntry, bool]] = {}
    plates: dict[str, PlateEntry] = {}

    async def one(name: str, source: Source) -> None:
        if isinstance(source, Dataset | Plate):
            node: Dataset | Plate | ContainerEntry = source
            owned = False
        else:
            node, owned = await _open_source(name, source, options), True
        opened[name] = (node, owned)
        if isinstance(node, Plate):
            plates[name] = PlateEntry(name, node, owned)
            await plates[name].read_wells(node.wells)

    try:
        async with anyio.create_task_group() as tg:
            for name, source in sources.items():
                start_deferred(tg, one, name, source)
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
    plates = {name: plates[name] for name in sources if name in plates}  # in their order
    containers = {n: c for n in sources if isinstance(c := opened[n][0], ContainerEntry)}
    slots: dict[str, FieldSlot] = {}
    for name, container in containers.items():
        slots.update(container.slots())
        if container.series:
            state.aliases[name] = container.images[0]
    for plate in plates.values():
        slots.update(plate.slots({}))
    state.entries = {
        name: Entry(name, node, owned, dataset_identity(name, node))
        for name in sources
        for node, owned in [opened[name]]
        if isinstance(node, Dataset)
    }
    state.plates, state.containers, state.fields = plates, containers, slots
