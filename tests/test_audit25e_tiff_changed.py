"""A TIFF on a server rewritten while it is read by ranges (a single TIFF, a file of a
multi-file OME-TIFF): its later ranges came from the new file and mixed into the old one's
pixels, silently. Now every range asks for the version first read (``If-Match``): a
``ChangedError`` naming the file (not an exception group), and a rerun reads the new file."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest
import tifffile
from test_tiffset25_remote import _images, write_set

import ngio_async
from ngio_async import ChangedError
from ngio_async.convert._tiffremote import open_remote_tiff
from ngio_async.convert._tiffremoteset import open_remote_set

if TYPE_CHECKING:
    from pathlib import Path

    from servers import StaticServer

TOP = (slice(0, 128), slice(None))
BOTTOM = (slice(896, 1024), slice(None))


def _zero_second_half(path: Path) -> None:
    """``path`` rewritten, the same size, its second half zeros (a new ETag)."""
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2 :] = bytes(len(raw) - len(raw) // 2)
    path.write_bytes(bytes(raw))


def _read_across_a_rewrite(opener: Any, lead: tuple[slice, ...], path: Path) -> None:
    async def main() -> None:
        source = await opener()
        async with source:
            first = await source.read((*lead, *TOP))
            assert first.any()
            _zero_second_half(path)
            with pytest.raises(ChangedError, match=path.name):
                await source.read((*lead, *BOTTOM))

    anyio.run(main)


def test_a_file_of_a_set_rewritten_mid_read(http_server: StaticServer, http_root: Path) -> None:
    images = _images(c=1, z=2, yx=1024)
    names = write_set(http_root, images, per_file=1, compression=None)
    url = http_server.url + "set.companion.ome"
    _read_across_a_rewrite(lambda: open_remote_set(url), (slice(1, 2),), http_root / names[2])


def test_a_tiff_rewritten_mid_read_then_converted_again(
    http_server: StaticServer, http_root: Path, tmp_path: Path
) -> None:
    data = np.random.default_rng(5).integers(1, 60000, (1024, 1024), dtype=np.uint16)
    tifffile.imwrite(http_root / "a.tif", data, tile=(128, 128))
    url = http_server.url + "a.tif"
    _read_across_a_rewrite(lambda: open_remote_tiff(url), (), http_root / "a.tif")
    out = tmp_path / "a.ome.zarr"
    ngio_async.convert_sync(url, out)  # the file as it is now
    with ngio_async.open(out) as ds:
        np.testing.assert_array_equal(ds[...], tifffile.imread(http_root / "a.tif"))
