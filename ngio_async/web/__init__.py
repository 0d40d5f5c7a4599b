"""``ngio_async.web``: an aiohttp tile server over OME-Zarr datasets (``ngio-async serve``).

``create_app({"name": url, ...})`` returns an ``aiohttp.web.Application``; :func:`serve` runs
it until cancelled (or mount it in a larger app: ``main.add_subapp("/ngio/", app)``). Every
image is opened once at start-up and shared by all requests (and its store limits); a client
that disconnects cancels its reads, under any runner. The tiles and regions being read and
encoded hold at most ``max_region_pixels`` elements together (the others wait their turn,
first come first served), so memory stays bounded however many clients ask at once (an
answer already encoded is not counted while it is sent).

Endpoints (errors are always JSON ``{"error": code, "message": text}``)::

    GET  /api/datasets                          name, axes, shape, dtype, levels, channels
    GET  /api/datasets/{name}                   axes, levels, channels, labels, sizes
    GET  /api/datasets/{name}/tiles/{level}/{t}/{z}/{row}/{col}.{png,jpg,jpeg,webp}
    GET  /api/datasets/{name}/region.npy?level=0&c=0&y=0:512&x=0:512   (c: index or label)
    GET|HEAD /zarr/{name}/{key}                 the store's objects (ranges, ETag and 304;
                                                larger than 8 MiB: sent piece by piece)
    GET  /  and  /static/{path}                 the browser viewer

HCS plates: a URL whose group is an NGFF plate (or an open :class:`~ngio_async.images.Plate`)
serves every field of view as a dataset named ``<name>/<row>/<column>/<field>`` (its path in the
plate, e.g. ``plate/A/1/0``), in plate order; the ``{name}`` of the routes above may be such a
four-segment name (its slashes plain or ``%2F``). Start-up reads the plate's and wells'
documents only: a field is opened by its first request (once, however many arrive meanwhile)
and kept among the ``max_open_fields`` (256) most recently used open fields; past that bound
the least recently used one no request is using is closed. ``/api/datasets`` adds ``plates``
(name, rows, columns, wells, the field dataset names, and what could not be opened: wells at
start-up, fields since, logged), lists each field as ``{name, plate: {name, well, field,
acquisition}}`` alone (listing opens no field; ``/api/datasets/{name}`` describes it), a field
that cannot be opened answers 502 ``field_unavailable`` (the others are still served), and
``/zarr/<name>/`` is the whole plate (``/zarr/plate/A/1/0/0/zarr.json``; a field alone:
``/zarr/plate%2FA%2F1%2F0/0/zarr.json``). The viewer shows a
plate as a well grid linking its fields, and a field picker beside a field.

bioformats2raw containers (a URL whose group has ``bioformats2raw.layout``): each image is a
dataset named ``<name>/<path>`` (``OME/series``, else ``0``, ``1``, ...) and ``<name>`` alone is
its first. Start-up reads the layout group and the list of images only; the images open like a
plate's fields (first use, once, in the same LRU), one that cannot be opened answers 502
``image_unavailable``. ``/api/datasets`` lists them as ``{name, container: {name, path}}`` and
adds ``containers`` (name, images, unavailable); ``/zarr/<name>/`` is the whole container.

Tiles: ``tile_size`` pixels square (at most ``MAX_TILE_SIZE``, 4096; edge tiles cropped),
``t``/``z`` 0 where the image has no such axis. The channels shown by default are those marked
``active`` in ``omero``, else the first three. Each channel maps linearly through its window
(``omero`` window; else the 0.1 and 99.9 percentiles of a bounded sample of the smallest level,
computed once; the dtype's range if that sample cannot be decoded), is clipped to 0..1 (NaN pixels:
0; complex pixels: their modulus) and multiplied by its colour (``omero`` colour; else white for
one channel, else red, green, blue, yellow, magenta, cyan, white by channel index); the channels
add up, clipped to 0..255. Query overrides: ``c=0,2`` (indices or labels; a channel may be
shown more than once, in at most max(channels, ``max_region_pixels // tile_size**2``)
entries, else 413), ``window=0:4000,100:2000`` and ``color=FF0000,00FF00`` (one per channel
shown). A parameter given twice (``?c=0&c=1``) is a 400 naming it (tiles, regions).
``labels=cells,nuclei`` paints label images (those ``/api/datasets/{name}`` lists) over the tile at
``label_opacity`` (0..1, default 0.5): each value in its ``image-label`` colour, else a colour
hashed from the value, 0 transparent; a label image of another resolution or without the image's z
is mapped by the levels' extents. The viewer has a checkbox per label image. Tiles carry a strong
``ETag`` and ``Cache-Control: public``: the ETag hashes the tile, its query and the versions (ETag,
else mtime and size) of the chunks or shards under it, so a chunk rewritten by another program
changes it. ``If-None-Match`` costs one HEAD (a ``stat`` locally) per object under the tile and
answers 304 without reading pixels. A store that tells no versions (an HTTP server without
``ETag``/``Last-Modified``): no ETag, ``no-cache``.
"""

from __future__ import annotations

from ._app import DEFAULT_MAX_REGION_PIXELS, MAX_TILE_SIZE, create_app
from ._server import serve

__all__ = ["DEFAULT_MAX_REGION_PIXELS", "MAX_TILE_SIZE", "create_app", "serve"]
