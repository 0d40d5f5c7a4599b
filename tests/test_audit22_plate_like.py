"""create_plate_like onto its own source (or a place inside it, or holding it) is refused
before anything is written: with overwrite=True it deleted the source plate's fields."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]


async def _plate(url: Any, **options: Any) -> None:
    async with ngio_async.create_plate_async(
        url, rows=["A"], columns=["1"], ngff_version="0.5", **options
    ) as plate:
        ds = await plate.add_image("A/1", field="0", shape=(8, 8), dtype="uint8", axes="yx")
        await ds.write(np.full((8, 8), 7, np.uint8))
        await ds.aclose()


async def _intact(url: Any, **options: Any) -> None:
    async with ngio_async.open_plate_async(url, **options) as plate:
        assert await plate.image_paths() == [("A/1", "0")]
        fov = await plate.image("A", "1", field=0)
        try:
            assert int((await fov.read()).sum()) == 7 * 64
        finally:
            await fov.aclose()


@pytest.mark.parametrize(
    ("where", "path", "how"),
    [
        ("a.zarr", "", "is the source"),
        ("a.zarr", "A/copy", "lies inside the source"),
        (".", "", "contains the source"),
    ],
)
async def test_create_plate_like_onto_its_source_is_refused(
    tmp_path: Path, where: str, path: str, how: str
) -> None:
    await _plate(tmp_path / "a.zarr")
    async with ngio_async.open_plate_async(tmp_path / "a.zarr") as src:
        with pytest.raises(ValueError, match=how):
            await ngio_async.create_plate_like_async(
                src, tmp_path / where, path=path, overwrite=True
            )
    await _intact(tmp_path / "a.zarr")


async def test_create_plate_like_onto_its_source_on_s3(s3_server: S3Server) -> None:
    url = s3_server.fresh_url() + "/a.zarr"
    options = s3_server.options()
    await _plate(url, **options)
    async with ngio_async.open_plate_async(url, **options) as src:
        with pytest.raises(ValueError, match="is the source"):
            await ngio_async.create_plate_like_async(src, url, overwrite=True, **options)
    await _intact(url, **options)


def test_blocking_twin_refuses_too(tmp_path: Path) -> None:
    import anyio

    anyio.run(_plate, tmp_path / "a.zarr")
    with (
        ngio_async.open_plate(tmp_path / "a.zarr") as src,
        pytest.raises(ValueError, match="is the source"),
    ):
        ngio_async.create_plate_like(src, tmp_path / "a.zarr", overwrite=True)
    anyio.run(_intact, tmp_path / "a.zarr")
