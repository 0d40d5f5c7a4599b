"""``create_app``: the aiohttp application serving datasets as JSON, tiles, regions and zarr."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import anyio
from aiohttp import web

from ..images import Dataset, open_async
from . import _api, _files
from ._errors import error_middleware
from ._state import Entry, WebState, dataset_identity

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping

__all__ = ["DEFAULT_MAX_REGION_PIXELS", "STATE", "create_app"]

DEFAULT_MAX_REGION_PIXELS = 64 * 1024 * 1024
STATE = web.AppKey("ngio_async.web.state", WebState)

Source = str | os.PathLike[str] | Dataset


def create_app(
    datasets: Mapping[str, Source],
    *,
    max_region_pixels: int = DEFAULT_MAX_REGION_PIXELS,
    tile_size: int = 512,
    cache_seconds: int = 3600,
    **open_options: Any,
) -> web.Application:
    """An aiohttp app serving ``datasets`` (name -> URL, path or open :class:`Dataset`).

    URLs are opened once when the app starts (concurrently; ``open_options`` go to
    :func:`~ngio_async.open_async`, e.g. ``limits=`` or S3 options) and closed when it shuts
    down; every request shares them and their store limits. A :class:`Dataset` passed in is
    used as is and left open (its owner closes it).

    Routes: ``GET /api/datasets``, ``/api/datasets/{name}``,
    ``/api/datasets/{name}/tiles/{level}/{t}/{z}/{row}/{col}.{png,jpg,jpeg,webp}``,
    ``/api/datasets/{name}/region.npy``, ``GET|HEAD /zarr/{name}/{key}``, ``/`` and
    ``/static/{path}``. Errors are JSON ``{"error", "message"}``.

    :param max_region_pixels: the most elements one ``region.npy`` answer may hold (else 413).
    :param tile_size: tile edge in pixels.
    :param cache_seconds: ``Cache-Control: max-age`` of tiles.
    """
    for name in datasets:
        if not name or "/" in name or name in (".", ".."):
            raise ValueError(f"invalid dataset name {name!r}: use a non-empty name without '/'")
    if max_region_pixels < 1 or tile_size < 1 or cache_seconds < 0:
        raise ValueError("max_region_pixels and tile_size must be >= 1, cache_seconds >= 0")
    app = web.Application(middlewares=[error_middleware])
    app[STATE] = WebState(
        max_region_pixels=max_region_pixels, tile_size=tile_size, cache_seconds=cache_seconds
    )
    sources = dict(datasets)

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        state = app[STATE]
        state.entries = await _open_all(sources, open_options)
        try:
            yield
        finally:
            entries, state.entries = state.entries, {}
            with anyio.CancelScope(shield=True):
                for entry in entries.values():
                    if entry.owned:
                        await entry.dataset.aclose()

    app.cleanup_ctx.append(lifespan)
    router = app.router
    router.add_get("/api/datasets", _api.list_datasets)
    router.add_get("/api/datasets/{name}", _api.describe)
    router.add_get("/api/datasets/{name}/region.npy", _api.region)
    router.add_get("/api/datasets/{name}/tiles/{level}/{t}/{z}/{row}/{col}", _api.tile)
    router.add_route("*", "/zarr/{name}/{key:.*}", _files.zarr_object)
    router.add_get("/", _files.index)
    router.add_get("/static/{path:.*}", _files.static_file)
    return app


async def _open_all(sources: dict[str, Source], options: dict[str, Any]) -> dict[str, Entry]:
    """Open every URL concurrently; on any failure close what was opened and re-raise."""
    opened: dict[str, tuple[Dataset, bool]] = {}

    async def one(name: str, source: Source) -> None:
        if isinstance(source, Dataset):
            opened[name] = (source, False)
        else:
            opened[name] = (await open_async(source, **options), True)

    try:
        async with anyio.create_task_group() as tg:
            for name, source in sources.items():
                tg.start_soon(one, name, source)
    except BaseException as exc:
        with anyio.CancelScope(shield=True):
            for ds, owned in opened.values():
                if owned:
                    await ds.aclose()
        leaf: BaseException = exc
        while isinstance(leaf, BaseExceptionGroup) and len(leaf.exceptions) == 1:
            leaf = leaf.exceptions[0]
        if leaf is exc:
            raise
        raise leaf from None
    return {
        name: Entry(name, opened[name][0], opened[name][1], dataset_identity(name, opened[name][0]))
        for name in sources
    }
