"""Multi-file OME-TIFFs on a server or bucket whose OME-XML names its TIFFs in another folder
(``FileName="../tifs/a b.ome.tif"``, as the local reader resolves them): they failed with
'invalid store key' (the store was rooted at the XML's folder), and a TIFF named by a path was
not recognised as the lead (its planes read as missing: a plane axis lost)."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

import anyio
import numpy as np
import pytest
from test_tiffset25_remote import _arrays, _images, write_set

import ngio_async
from ngio_async import NotFoundError
from ngio_async.stores import open_store

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server, StaticServer


def _apart(root: Path) -> list[str]:
    """A companion set in ``root/meta``, its TIFFs (names with a space) in ``root/tifs``;
    returns the keys under ``root``."""
    (root / "meta").mkdir(parents=True)
    (root / "tifs").mkdir()
    names = write_set(root / "meta", _images(yx=64))
    xml = (root / "meta" / "set.companion.ome").read_text()
    for n in names[1:]:
        to = n.replace("_", " ")
        shutil.move(root / "meta" / n, root / "tifs" / to)
        xml = xml.replace(f'FileName="{n}"', f'FileName="../tifs/{to}"')
    (root / "meta" / "set.companion.ome").write_text(xml)
    return ["meta/set.companion.ome", *(f"tifs/{n.replace('_', ' ')}" for n in names[1:])]


def test_tiffs_in_a_sibling_folder_over_http(
    http_server: StaticServer, http_root: Path, tmp_path: Path
) -> None:
    _apart(http_root)
    local, remote = tmp_path / "local.ome.zarr", tmp_path / "remote.ome.zarr"
    ngio_async.convert_sync(http_root / "meta" / "set.companion.ome", local)
    ngio_async.convert_sync(http_server.url + "meta/set.companion.ome", remote)
    got, want = _arrays(remote), _arrays(local)
    assert want[0].shape == (2, 3, 64, 64)
    for a, b in zip(want, got, strict=True):
        np.testing.assert_array_equal(a, b)
    shutil.copy(http_root / "meta" / "set.companion.ome", http_root / "top.companion.ome")
    with pytest.raises(NotFoundError, match=r"1 folder\(s\) above .* past its host"):
        ngio_async.convert_sync(http_server.url + "top.companion.ome", tmp_path / "x.ome.zarr")


def test_tiffs_in_a_sibling_folder_on_s3(s3_server: S3Server, tmp_path: Path) -> None:
    keys = _apart(tmp_path / "set")
    url = s3_server.fresh_url()

    async def put() -> None:
        async with open_store(url, **s3_server.options()) as store:
            for key in keys:
                await store.put(key, (tmp_path / "set" / key).read_bytes())

    anyio.run(put)
    out = tmp_path / "out.ome.zarr"
    ngio_async.convert_sync(f"{url}/{keys[0]}", out, src_options=s3_server.options())
    local = tmp_path / "local.ome.zarr"
    ngio_async.convert_sync(tmp_path / "set" / keys[0], local)
    for a, b in zip(_arrays(local), _arrays(out), strict=True):
        np.testing.assert_array_equal(a, b)
