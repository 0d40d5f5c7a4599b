"""The tile server over moto S3 (audit27w): a .ozx and a plate, tiles revalidated (304),
``/zarr`` ranges from the zip's entries, a plate's field by its name."""

from __future__ import annotations

from typing import TYPE_CHECKING

from images import upload
from test_audit27w_web import _zipped
from test_web_plate import write_plate
from webapp import running

from ngio_async.stores import open_store
from ngio_async.web import create_app

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server


async def test_a_zip_and_a_plate_on_s3(tmp_path: Path, s3_server: S3Server) -> None:
    zipped = await _zipped(tmp_path, "a.ozx", 5, chunks=(1, 32, 32))
    await write_plate(str(tmp_path / "p.zarr"), "0.5")
    url = s3_server.fresh_url()
    async with open_store(url, **s3_server.options()) as store:
        await store.put("a.ozx", zipped.read_bytes())
        await upload(tmp_path / "p.zarr", store, "p.zarr/")
    app = create_app({"z": f"{url}/a.ozx", "p": f"{url}/p.zarr"}, **s3_server.options())
    async with running(app) as (http, _):
        for name in ("z", "p/A/1/0"):
            tile = await http.get(f"/api/datasets/{name}/tiles/0/0/0/0/0.png")
            assert tile.status == 200, (name, await tile.text())
            again = await http.get(
                f"/api/datasets/{name}/tiles/0/0/0/0/0.png",
                headers={"If-None-Match": tile.headers["ETag"]},
            )
            assert again.status == 304, name
        whole = await (await http.get("/zarr/z/zarr.json")).read()
        part = await http.get("/zarr/z/zarr.json", headers={"Range": "bytes=-9"})
        assert part.status == 206
        assert await part.read() == whole[-9:]
        assert (await http.get("/zarr/p/A/1/zarr.json")).status == 200
        listed = await (await http.get("/api/datasets")).json()
        assert s3_server.endpoint not in str(listed)
