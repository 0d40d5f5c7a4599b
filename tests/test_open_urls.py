"""The URLs ``open`` takes for an image: a URL of the group's own document means the group."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

    from servers import StaticServer


def test_a_documents_url_with_a_query_keeps_the_query(
    http_root: Path, http_server: StaticServer
) -> None:
    """``.../img.zarr/zarr.json?token=abc`` (pasted from a browser) opens the group and sends
    the query with every request (the document's name was cut from the query string, or
    ``.../zarr.json?...`` taken for the group: "not found")."""
    path = http_root / "img.zarr"
    with ngio_async.create(str(path), shape=(8, 8), dtype="uint8", axes="yx", levels=1) as ds:
        ds.write(np.full((8, 8), 9, "uint8"))
    with ngio_async.open(f"{http_server.url}img.zarr/zarr.json?token=abc") as ds:
        assert ds.url.startswith(f"{http_server.url}img.zarr") and "zarr.json" not in ds.url
        assert (ds.read() == 9).all()
    assert http_server.raw_targets and all(
        t.endswith("?token=abc") for t in http_server.raw_targets
    ), http_server.raw_targets
    assert "/img.zarr/zarr.json" in {r.path for r in http_server.requests}
