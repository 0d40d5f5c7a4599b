"""The browser viewer: it groups a bioformats2raw container's images under the container (they
were listed flat among the images) and moves between them with the image picker; it overlays
label images (they were not shown at all). Headless Chromium against the real server (skips
without Chromium or OpenSeadragon, like test_viewer_browser.py, whose helpers it uses)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from browser import launch
from images import Spec, write_image
from test_validate_bf2raw import container
from test_viewer_browser import _require_browser, running_server

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path


async def test_viewer_groups_container_images(tmp_path: Path) -> None:
    chromium = _require_browser()
    write_image(tmp_path / "img.ome.zarr", Spec(shape=(64, 64), chunks=(32, 32), levels=1))
    path = container(tmp_path, "0.5", ("0", "1", "2"), ome={"series": ["0", "1", "2", "3"]})
    for i in range(3):
        with ngio_async.open(str(path / str(i)), mode="r+") as ds:
            ds.write(np.full((8, 8), 50 * i, dtype="uint8"))
    served: list[str] = []
    async with (
        running_server({"img": str(tmp_path / "img.ome.zarr"), "slide": str(path)}, served) as base,
        launch(chromium, tmp_path / "profile") as page,
    ):
        await page.goto(f"{base}/")
        links = await page.wait_for(
            "[...document.querySelectorAll('.container-images a')].map(a => a.textContent)"
        )
        assert links == ["0", "1", "2", "3"]
        images = "[...document.querySelectorAll('#datasets a')].map(a => a.textContent)"
        assert await page.evaluate(images) == ["img"]  # container images are under it only
        assert await page.evaluate("document.getElementById('status').textContent") == (
            "1 dataset, 1 container"
        )
        await page.evaluate("document.querySelectorAll('.container-images a')[1].click()")
        await page.wait_for("window.ngioViewer.tilesLoaded > 0")
        assert await page.evaluate("ngioViewer.dataset.name") == "slide/1"
        assert "/api/datasets/slide/1/tiles/" in served[-1]
        options = await page.wait_for(
            "!document.getElementById('field-pick').hidden &&"
            " [...document.querySelectorAll('#field-select option')].map(o => o.textContent)"
        )
        assert options == ["image 0", "image 1", "image 2", "image 3"]
        await page.evaluate(
            "(() => { const s = document.getElementById('field-select');"
            " s.value = 'slide/2'; s.dispatchEvent(new Event('change')); })()"
        )
        await page.wait_for("ngioViewer.dataset?.name === 'slide/2' && ngioViewer.tilesLoaded > 0")
        assert await page.evaluate("ngioViewer.failures") == []
        # the image OME/series lists but the container lacks: named, and struck out in the list
        await page.evaluate("location.hash = '#/slide/3'")
        error = await page.wait_for("ngioViewer.error")
        assert "502" in error and "image '3' of container 'slide'" in error
        await page.evaluate("location.hash = '#'")
        struck = await page.wait_for(
            "[...document.querySelectorAll('.container-images a.unavailable')]"
            ".map(a => a.textContent).join(',') || null"
        )
        assert struck == "3"


async def test_viewer_overlays_a_label_image(tmp_path: Path) -> None:
    chromium = _require_browser()
    url = str(tmp_path / "img.zarr")
    with ngio_async.create(url, shape=(64, 64), dtype="uint8", axes="yx", levels=1) as ds:
        ds.write(np.full((64, 64), 100, "uint8"))
        cells = ds.labels.create("cells", colors={1: (255, 0, 0, 255)})
        cells.write(np.ones((64, 64), "uint32"))
    served: list[str] = []
    async with (
        running_server({"img": url}, served) as base,
        launch(chromium, tmp_path / "profile") as page,
    ):
        await page.goto(f"{base}/#/img")
        await page.wait_for("window.ngioViewer.tilesLoaded > 0")
        assert "labels=" not in served[-1]
        shown = "!document.getElementById('labels').hidden"
        assert await page.evaluate(shown)
        await page.evaluate(
            "(() => { const b = document.querySelector('#label-list input[data-label=cells]');"
            " b.checked = true; b.dispatchEvent(new Event('change')); })()"
        )
        await page.wait_for(
            "ngioViewer.lastTileUrl.includes('labels=cells') && ngioViewer.tilesLoaded > 1"
        )
        assert "labels=cells" in served[-1]
        assert await page.evaluate("ngioViewer.failures") == []
