"""Opening a bucket URL builds one obstore client when its path needs no literal handling."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from obstore.store import S3Store

from ngio_async.stores import _url, open_store

if TYPE_CHECKING:
    from servers import S3Server


class _Counting:
    """Stands in for ``S3Store`` in ``_url``: counts the clients built, builds the real ones."""

    def __init__(self) -> None:
        self.built: list[str | None] = []

    def from_url(self, url: str, **kw: Any) -> S3Store:
        store = S3Store.from_url(url, **kw)
        self.built.append(store.prefix)
        return store

    def __call__(self, **kw: Any) -> S3Store:
        store = S3Store(**kw)
        self.built.append(store.prefix)
        return store


@pytest.mark.parametrize(
    ("name", "clients"),
    [("plain/img.zarr", 1), ("img_v1.0-a.zarr", 1), ("plate #1.zarr", 2), ("pct%41.zarr", 2)],
)
async def test_a_plain_prefix_builds_one_client(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, name: str, clients: int
) -> None:
    """Each client costs 9-20 ms of the event loop; the path's literal key is kept either way."""
    counting = _Counting()
    monkeypatch.setattr(_url, "S3Store", counting)
    tables: tuple[dict[Any, Any], ...] = (_url._ENDPOINT_ENV, _url._ENV_PREFIX)
    for table in tables:  # the class is their key
        monkeypatch.setitem(table, counting, table[S3Store])
    base = s3_server.fresh_url()
    async with open_store(f"{base}/{name}", **s3_server.options()) as store:
        await store.put("zarr.json", b"{}")
        assert store.obstore.prefix.endswith(f"/{name}")  # type: ignore[attr-defined]
    assert len(counting.built) == clients
    monkeypatch.undo()
    async with open_store(base, **s3_server.options()) as root:
        assert await root.list_prefix("") == [f"{name}/zarr.json"]
