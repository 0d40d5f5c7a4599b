"""What a dataset or plate hands out keeps it open while used, in one expression too:
``ngio_async.open(url).tables.read(name)``, ``(await open_async(url)).labels.open(name)``.

The blocking tables held the async tables only: the blocking dataset they came from was
collected (its finalizer closing the dataset) while their call ran, a ``ClosedError``. The
async labels and tables held their dataset weakly (to break a reference cycle): a dataset
dropped in the expression that asked for them was gone before their call. Now each holds
what it is of, and the dataset and plate keep them weakly: no cycle either way.
"""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path


def _held(obj: Any) -> Any:
    """``obj`` after a full collection: whatever it does not hold is gone."""
    gc.collect()
    return obj


@pytest.fixture(scope="module")
def urls(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    root: Path = tmp_path_factory.mktemp("chained")
    url, purl = str(root / "img.ome.zarr"), str(root / "plate.zarr")
    with ngio_async.create(url, shape=(1, 32, 32), dtype="uint16", axes="cyx") as ds:
        ds.write(np.arange(32 * 32, dtype="uint16").reshape(1, 32, 32))
        with ds.labels.create("nuc", dtype="uint32") as lab:
            lab.write(np.ones((32, 32), "uint32"))
        ds.tables.write_rois("rois", [ds.image_roi()])
    with ngio_async.create_plate(purl, rows=["A"], columns=["1"]) as plate:
        plate.add_image("A", "1", "0", shape=(1, 8, 8), dtype="uint8").close()
    return url, purl


BLOCKING: dict[str, Callable[[str, str], Any]] = {
    "tables.read": lambda u, p: len(_held(ngio_async.open(u).tables).read("rois").to_pandas()),
    "tables.names": lambda u, p: _held(ngio_async.open(u).tables).names(),
    "labels.names": lambda u, p: _held(ngio_async.open(u).labels).names(),
    "labels[name]": lambda u, p: _held(ngio_async.open(u).labels["nuc"])[0:2, 0:2].sum(),
    "label tables": lambda u, p: _held(ngio_async.open(u).labels["nuc"].tables).names(),
    "levels[0]": lambda u, p: _held(ngio_async.open(u).levels[0])[0, 0:2, 0:2].sum(),
    "masked": lambda u, p: _held(ngio_async.open(u).masked("nuc")).read(1).shape,
    "tiles": lambda u, p: sum(1 for _ in _held(ngio_async.open(u).tiles())),
    "plate.image": lambda u, p: _held(ngio_async.open_plate(p).image("A", "1", "0")).shape,
    "plate.tables": lambda u, p: _held(ngio_async.open_plate(p).tables).names(),
}


@pytest.mark.filterwarnings("ignore::ResourceWarning")  # (dropped without close: the point)
@pytest.mark.parametrize("what", list(BLOCKING))
def test_blocking_handouts_keep_their_dataset(urls: tuple[str, str], what: str) -> None:
    BLOCKING[what](*urls)  # raised ClosedError ("closed while the call ran") for tables


@pytest.mark.anyio
@pytest.mark.filterwarnings("ignore::ResourceWarning")
async def test_async_handouts_keep_their_dataset(urls: tuple[str, str]) -> None:
    url, purl = urls
    open_async = ngio_async.open_async
    tables = _held((await open_async(url)).tables)
    assert await tables.names() == ["rois"]
    labels = _held((await open_async(url)).labels)
    assert await labels.names() == ["nuc"]
    label = await (await open_async(url)).labels.open("nuc")  # one expression
    assert int((await _held(label).read()).sum()) == 32 * 32
    plate_tables = _held((await ngio_async.open_plate_async(purl)).tables)
    assert await plate_tables.names() == []
    await label.aclose()


@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.parametrize("use", ["open", "read", "levels", "labels", "tiles", "tables"])
def test_a_dropped_blocking_dataset_is_closed_at_once(urls: tuple[str, str], use: str) -> None:
    """Its levels and labels held it and it held them (cycles): dropped without close(), it
    and its store stayed open until the collector's next full pass (fds of a batch job)."""
    url = urls[0]
    gc.collect()
    gc.disable()
    try:
        ds = ngio_async.open(url)
        closing = ds._finalizer  # (closes it in a thread of its own when it is dropped)
        if use == "read":
            ds[0, 0:4, 0:4]
        elif use == "levels":
            ds.levels[0][0, 0:2, 0:2]
        elif use == "labels":
            assert ds.labels.names() == ["nuc"]
        elif use == "tiles":
            assert sum(1 for _ in ds.tiles()) == 1
        elif use == "tables":
            assert ds.tables.names() == ["rois"]
        level = ds.levels[0]
        del ds
        assert closing.alive  # its level holds it
        assert level[0, 0:1, 0:1].shape == (1, 1)
        del level
        assert not closing.alive  # dropped: its finalizer ran, no collection needed
    finally:
        gc.enable()
