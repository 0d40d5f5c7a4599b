"""Opening (and ``info`` on) bioformats2raw containers whose ``OME`` group lists no series:
the images are ``0/``, ``1/``, ... (RULES B4), whatever else the ``OME`` group holds."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import pytest
from test_validate_bf2raw import container

import ngio_async
from ngio_async.cli import main

if TYPE_CHECKING:
    from pathlib import Path


def bare_ome_group(path: Path, version: str) -> None:
    """An ``OME`` group with no NGFF metadata (as when it only holds METADATA.ome.xml)."""
    ome = path / "OME"
    ome.mkdir(exist_ok=True)
    if version == "0.5":
        doc = {"zarr_format": 3, "node_type": "group", "attributes": {}}
        (ome / "zarr.json").write_text(json.dumps(doc))
    else:
        (ome / ".zgroup").write_text('{"zarr_format": 2}')
        (ome / ".zattrs").write_text("{}")
    (ome / "METADATA.ome.xml").write_text("<OME/>")


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_open_and_info_without_series(
    tmp_path: Path, version: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = container(tmp_path, version)
    bare_ome_group(path, version)
    with ngio_async.open(str(path / "0"), mode="r+") as first:
        first.write(np.full((8, 8), 3, dtype="uint8"))
    with ngio_async.open(str(path)) as ds:  # the first series, 0/
        assert (ds.read() == 3).all()
    assert main(["info", str(path)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "0" in out and "1" in out


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_container_series_on_a_store_that_denies_missing_keys(
    tmp_path: Path, version: str
) -> None:
    """Numbered images are probed up to the first missing one; on a store answering 403 for
    a missing key (S3 without s3:ListBucket) that 403 ends the list too (it was raised: the
    tile server and convert failed on such containers)."""
    from ngio_async.images._open import container_series
    from ngio_async.stores import InstrumentedStore, open_store

    path = container(tmp_path, version)

    def deny_missing(method: str, key: str) -> BaseException | None:
        if (path / key).exists():
            return None
        return ngio_async.PermissionDeniedError(f"access denied (HTTP 403) to {key!r}", key=key)

    async with InstrumentedStore(open_store(str(path)), fail=deny_missing) as store:
        assert await container_series(store, "", version) == ["0", "1"]
