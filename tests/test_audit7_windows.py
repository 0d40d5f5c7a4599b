"""Tile windows past float32's range, and float64 pixels past it: drawn as they say, without
numpy warnings. Real files, the app on a loopback AppRunner."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import zarr
from images import Spec, write_image
from webapp import png_rgb, running

from ngio_async.web import create_app

if TYPE_CHECKING:
    from pathlib import Path

    import aiohttp
    from numpy.typing import NDArray


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``f64``: a float64 yx image whose first row holds 0, 1e300, -1e300 and NaN;
    ``u8``: a uint8 yx image of 200s."""
    root = tmp_path_factory.mktemp("a7windows")
    paths = {"f64": root / "f64.zarr", "u8": root / "u8.zarr"}
    write_image(paths["f64"], Spec(shape=(16, 16), chunks=(16, 16), dtype="float64", levels=1))
    data = np.zeros((16, 16))
    data[0, :4] = [0.0, 1e300, -1e300, np.nan]
    zarr.open_array(paths["f64"] / "0", mode="r+")[...] = data
    write_image(paths["u8"], Spec(shape=(16, 16), chunks=(16, 16), dtype="uint8", levels=1))
    zarr.open_array(paths["u8"] / "0", mode="r+")[...] = np.full((16, 16), 200, np.uint8)
    return paths


async def tile(http: aiohttp.ClientSession, path: str) -> NDArray[Any]:
    resp = await http.get(path)
    body = await resp.read()
    assert resp.status == 200, body
    return png_rgb(body)


async def test_windows_past_float32_render_as_they_say(images: dict[str, Path]) -> None:
    """Windows whose bounds or span float32 cannot hold, and float64 pixels past its range,
    answered 500 (numpy's overflow and divide-by-zero warnings in the render thread, which
    run as errors here and are stderr noise elsewhere) or drew the wrong colour."""
    app = create_app({name: str(path) for name, path in images.items()})
    async with running(app) as (http, _):
        base = "/api/datasets/f64/tiles/0/0/0/0/0.png"
        rgb = await tile(http, f"{base}?window=-1e308:1e308")
        # 0 is half way (127.5), +-1e300 a 200,000th of the span either side; NaN is black
        assert rgb[0, :4, 0].tolist() == [128, 128, 127, 0]
        rgb = await tile(http, f"{base}?window=0:1")
        assert rgb[0, :4, 0].tolist() == [0, 255, 0, 0]
        rgb = await tile(http, f"{base}?window=0:1e-300")
        assert rgb[0, :4, 0].tolist() == [0, 255, 0, 0]
        rgb = await tile(http, "/api/datasets/u8/tiles/0/0/0/0/0.png?window=0:1e39")
        assert (rgb == 0).all()  # 200 of 1e39
        rgb = await tile(http, "/api/datasets/u8/tiles/0/0/0/0/0.png?window=0:1e-40")
        assert (rgb == 255).all()
        rgb = await tile(http, "/api/datasets/u8/tiles/0/0/0/0/0.png?window=100:300")
        assert (rgb == 128).all()  # the usual case is unchanged: 100/200 of 255
