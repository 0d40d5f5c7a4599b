"""``convert`` copies an image's and a plate's ngio / Fractal tables (ROI, masking ROI, feature,
generic; anndata and json backends) into the output's version (NGFF 0.4 -> 0.5 folder and
.ozx): ngio_async and ngio 1.1.3 read them back equal to the source's. A table that cannot be
read is left out with a warning naming it; a source without tables costs no request more; a
conversion failing while it writes the tables is re-run without ``overwrite``."""

from __future__ import annotations

import errno
import json
import re
import shutil
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async
from ngio_async import StoreError
from ngio_async.convert import is_complete
from ngio_async.stores import InstrumentedStore, open_store
from ngio_async.tables import Roi

if TYPE_CHECKING:
    from pathlib import Path

    from ngio_async.tables import Table

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.filterwarnings("ignore::FutureWarning"),  # anndata's, read through ngio
    pytest.mark.filterwarnings("ignore:Consolidated metadata is currently not part:UserWarning"),
]

NAMES = ["FOV_ROI_table", "nuclei_ROI_table", "nuclei_features", "facts"]


def box(name: str, x0: float, label: int | None = None) -> Roi:
    return Roi(name, {"x": (x0, x0 + 4.0), "y": (1.0, 3.0), "z": (0.0, 1.0)}, label=label)


async def write_tables(ds: Any) -> None:
    """An ROI table, a masking ROI table and a feature table of label ``nuclei``, and a json
    table (the other backend kept)."""
    await ds.tables.write_rois("FOV_ROI_table", [box("FOV_1", 0.0), box("FOV_2", 4.5)])
    await ds.tables.write_rois(
        "nuclei_ROI_table", [box("1", 0.0, 1), box("2", 2.0, 2)], label="nuclei"
    )
    features = {
        "area": np.array([1.5, 2.5, 3.5]),
        "count": np.array([4, 5, 6], np.int32),
        "kind": np.array(["a", "b", "a"], object),
    }
    await ds.tables.write_features(
        "nuclei_features", features, labels=np.array([1, 2, 3]), label="nuclei"
    )
    await ds.tables.write("facts", {"size": np.arange(4, dtype=np.int64)}, backend="json")


async def make_image(path: Path) -> Path:
    async with ngio_async.create_async(
        path, shape=(1, 32, 32), dtype="uint16", axes="cyx", chunks=(1, 16, 16),
        ngff_version="0.4",
    ) as ds:  # fmt: skip
        await ds.write(np.arange(32 * 32, dtype=np.uint16).reshape(1, 32, 32))
        cells = await ds.labels.create("nuclei", dtype="uint32")
        await cells.write(np.ones((32, 32), np.uint32))
        await write_tables(ds)
    return path


def same_table(a: Table, b: Table) -> None:
    assert (a.name, a.type, a.backend, a.index_key) == (b.name, b.type, b.backend, b.index_key)
    assert a.attrs == b.attrs
    assert list(a.index) == list(b.index)
    assert list(a.columns) == list(b.columns)
    for k, col in a.columns.items():
        assert col.dtype == b.columns[k].dtype, k
        assert col.tolist() == b.columns[k].tolist(), k


async def same_tables(src: Any, dst: Any) -> None:
    assert await dst.tables.names() == await src.tables.names()
    for name in await src.tables.names():
        same_table(await src.tables.read(name), await dst.tables.read(name))


def ngio_frames(container: Any) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {n: container.get_table(n).dataframe for n in container.list_tables()}


def ngio_same(src: Path, dst: Path) -> None:
    """ngio 1.1.3 reads the converted tables as it reads the source's."""
    ngio = pytest.importorskip("ngio")
    pd = pytest.importorskip("pandas")
    import zarr

    theirs = ngio_frames(ngio.open_ome_zarr_container(str(src), mode="r"))
    where: Any = str(dst)
    if dst.suffix == ".ozx":
        where = zarr.storage.ZipStore(dst, mode="r")
    ours = ngio_frames(ngio.open_ome_zarr_container(where, mode="r"))
    assert list(ours) == list(theirs) == NAMES
    for name, frame in theirs.items():
        pd.testing.assert_frame_equal(ours[name], frame, check_like=True, obj=name)
    c = ngio.open_ome_zarr_container(where, mode="r")
    masks = c.get_table("nuclei_ROI_table")
    assert masks.reference_label == "nuclei"
    assert [r.label for r in masks.rois()] == [1, 2]
    assert c.get_table("nuclei_features").reference_label == "nuclei"


@pytest.mark.parametrize("out", ["out.ome.zarr", "out.ozx"])
async def test_image_tables_convert_from_04_to_05(tmp_path: Path, out: str) -> None:
    src = await make_image(tmp_path / "src.ome.zarr")
    dst = tmp_path / out
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is left out
        await ngio_async.convert(src, dst, ngff_version="0.5")
    async with ngio_async.open_async(src) as a, ngio_async.open_async(dst) as b:
        assert b.metadata.ngff_version == "0.5"
        await same_tables(a, b)
        rois = await b.tables.rois("nuclei_ROI_table")
        assert [(r.label, r.ranges["x"]) for r in rois] == [(1, (0.0, 4.0)), (2, (2.0, 6.0))]
    if out.endswith(".ome.zarr"):  # zarr v3, as ngio writes the tables of a 0.5 image
        listing = json.loads((dst / "tables" / "zarr.json").read_text())
        assert listing["attributes"] == {"tables": NAMES}
        assert not list(dst.joinpath("tables").rglob(".z*"))
        doc = json.loads((dst / "tables" / "nuclei_ROI_table" / "zarr.json").read_text())
        assert doc["attributes"]["region"] == {"path": "../labels/nuclei"}
    ngio_same(src, dst)


async def test_same_version_and_back_to_04(tmp_path: Path) -> None:
    """0.4 -> 0.4 (zarr v2 kept) and 0.5 -> 0.4 (zarr v3 tables written as v2)."""
    src = await make_image(tmp_path / "src.ome.zarr")
    five = tmp_path / "five.ome.zarr"
    await ngio_async.convert(src, five, ngff_version="0.5")
    for source, dst in ((src, tmp_path / "same.ome.zarr"), (five, tmp_path / "back.ome.zarr")):
        await ngio_async.convert(source, dst, ngff_version="0.4")
        assert json.loads((dst / "tables" / ".zattrs").read_text()) == {"tables": NAMES}
        assert not list(dst.joinpath("tables").rglob("zarr.json"))
        async with ngio_async.open_async(src) as a, ngio_async.open_async(dst) as b:
            await same_tables(a, b)


async def test_plate_and_field_tables(tmp_path: Path) -> None:
    src, dst = tmp_path / "plate.zarr", tmp_path / "out.zarr"
    async with ngio_async.create_plate_async(
        src, rows=["A"], columns=["1", "2"], ngff_version="0.4"
    ) as plate:
        for i, well in enumerate(["A/1", "A/2"]):
            async with await plate.add_image(
                well, field="0", shape=(1, 16, 16), dtype="uint8", axes="cyx"
            ) as ds:
                await ds.write(np.full((1, 16, 16), i, np.uint8))
                await ds.tables.write_rois("FOV_ROI_table", [box(f"FOV_{i}", float(i))])
        conditions = {"drug": np.array(["A", "B"], object), "dose": np.array([1.5, 2.0])}
        await plate.tables.write("conditions", conditions, type="condition_table")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = await ngio_async.convert(src, dst, ngff_version="0.5")
    assert (result.kind, result.fields) == ("plate", 2)
    async with ngio_async.open_plate_async(src) as a, ngio_async.open_plate_async(dst) as b:
        assert b.version == "0.5"
        assert await b.tables.names() == ["conditions"]
        same_table(await a.tables.read("conditions"), await b.tables.read("conditions"))
        for well in ("A/1", "A/2"):
            async with (
                await a.image(well, field="0") as fa,
                await b.image(well, field="0") as fb,
            ):
                await same_tables(fa, fb)
    assert json.loads((dst / "tables" / "zarr.json").read_text())["attributes"] == {
        "tables": ["conditions"]
    }
    ngio = pytest.importorskip("ngio")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = ngio.open_ome_zarr_plate(str(dst), mode="r")
        assert theirs.list_tables() == ["conditions"]
        frame = theirs.get_table("conditions").dataframe
        assert frame["drug"].tolist() == ["A", "B"]
        assert frame["dose"].tolist() == [1.5, 2.0]
        field = ngio.open_ome_zarr_container(str(dst / "A" / "2" / "0"), mode="r")
        assert [r.name for r in field.get_table("FOV_ROI_table").rois()] == ["FOV_1"]


async def test_a_table_that_cannot_be_read_is_left_out_with_a_warning(tmp_path: Path) -> None:
    src = await make_image(tmp_path / "src.ome.zarr")
    attrs_key = src / "tables" / "facts" / ".zattrs"
    attrs = json.loads(attrs_key.read_text())
    shutil.copytree(src / "tables" / "facts", src / "tables" / "__odd")  # v3 reserves "__"
    attrs_key.write_text(json.dumps({**attrs, "backend": "mystery_v9"}))
    (src / "tables" / ".zattrs").write_text(json.dumps({"tables": [*NAMES, "__odd"]}))
    dst = tmp_path / "out.ome.zarr"
    with pytest.warns(UserWarning, match=r"tables/facts: .*unknown backend 'mystery_v9'") as w:
        await ngio_async.convert(src, dst, ngff_version="0.5")
    assert len(w) == 1
    message = str(w[0].message)
    assert message.startswith("2 table(s) cannot be converted and are left out of the output")
    assert re.search(r"tables/__odd: invalid table name '__odd'", message)
    assert await is_complete(dst)
    async with ngio_async.open_async(dst) as ds:
        assert await ds.tables.names() == NAMES[:3]
    assert not (dst / "tables" / "facts").exists()
    assert not (dst / "tables" / "__odd").exists()


async def test_no_tables_group_no_request_more(tmp_path: Path) -> None:
    """A source without tables: one look for its ``tables`` group (as before tables were
    copied), nothing of tables in the output."""
    src = tmp_path / "src.ome.zarr"
    async with ngio_async.create_async(
        src, shape=(1, 16, 16), dtype="uint8", axes="cyx", ngff_version="0.4"
    ) as ds:
        await ds.write(np.ones((1, 16, 16), np.uint8))
    source = InstrumentedStore(open_store(src))
    target = InstrumentedStore(open_store(tmp_path / "out.ome.zarr", mkdir=True))
    async with source, target:
        await ngio_async.convert(source, target, ngff_version="0.5")
    assert [c for c in source.calls if "tables" in c[1]] == [("exists", "tables/.zgroup")]
    assert not [c for c in target.calls if "tables" in c[1]]


async def test_a_failure_while_writing_tables_then_a_rerun(tmp_path: Path) -> None:
    src = await make_image(tmp_path / "src.ome.zarr")
    dst = tmp_path / "out.ome.zarr"

    def fail(method: str, key: str) -> BaseException | None:
        if method == "put" and key.startswith("tables/nuclei_features/"):
            return OSError(errno.ENOSPC, "No space left on device")
        return None

    target = InstrumentedStore(open_store(dst, mkdir=True), fail=fail)
    async with target:
        with pytest.raises(StoreError, match="No space left"):
            await ngio_async.convert(src, target, ngff_version="0.5")
    assert not await is_complete(dst)
    listing = json.loads((dst / "tables" / "zarr.json").read_text())["attributes"]["tables"]
    assert listing == NAMES[:2]  # the table that failed is not listed
    await ngio_async.convert(src, dst, ngff_version="0.5")  # no overwrite
    assert await is_complete(dst)
    async with ngio_async.open_async(src) as a, ngio_async.open_async(dst) as b:
        await same_tables(a, b)


async def test_tables_ngio_wrote_convert_with_every_backend(tmp_path: Path) -> None:
    """A 0.4 image whose tables ngio 1.1.3 wrote (each type with the anndata, json, csv and
    parquet backends) converts to 0.5 with no table left out: ngio reads each as the source's,
    ngio_async finds the same attributes (backend kept)."""
    ngio = pytest.importorskip("ngio")
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    from test_tables_interop import _ngio_tables

    src, dst = tmp_path / "ngio.zarr", tmp_path / "out.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _ngio_tables(src, "0.4")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        await ngio_async.convert(src, dst, ngff_version="0.5")
    theirs = ngio_frames(ngio.open_ome_zarr_container(str(src), mode="r"))
    ours = ngio_frames(ngio.open_ome_zarr_container(str(dst), mode="r"))
    assert list(ours) == list(theirs) and len(ours) == 24
    for name, frame in theirs.items():
        pd.testing.assert_frame_equal(ours[name], frame, check_like=True, obj=name)
    async with ngio_async.open_async(src) as a, ngio_async.open_async(dst) as b:
        for name in await a.tables.names():
            assert (await b.tables.read(name)).attrs == (await a.tables.read(name)).attrs
