"""The ``parquet`` table backend against ngio 1.1.3: what ngio_async writes with
``backend="parquet"`` (every table type, NGFF 0.4 and 0.5) ngio reads with the same values,
and ngio's parquet tables read here (see also test_tables_interop); without pyarrow the error
names the ``tables`` extra, and nothing is written."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async
from ngio_async import MetadataError, UnsupportedError
from ngio_async.tables import Roi, Table

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]


def _ngio_image(path: Path, version: str) -> Any:
    import ngio

    c = ngio.create_ome_zarr_from_array(
        str(path),
        np.zeros((1, 2, 16, 16), np.uint16),
        pixelsize=0.5,
        levels=1,
        axes_names="czyx",
        ngff_version=version,  # type: ignore[arg-type]
        overwrite=True,
    )
    c.derive_label("nuclei")
    return c


def _same(ours: Table, frame: Any) -> None:
    assert list(ours.index) == list(frame.index), ours.name
    assert list(ours.columns) == list(frame.columns), ours.name
    for name, col in ours.columns.items():
        want = frame[name].to_numpy()
        if col.dtype == object or want.dtype == object:
            assert [str(v) for v in col] == [str(v) for v in want], (ours.name, name)
        else:
            assert col.dtype == want.dtype, (ours.name, name)
            np.testing.assert_array_equal(col, want, err_msg=f"{ours.name}.{name}")


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_parquet_tables_written_here_read_by_ngio(tmp_path: Path, version: str) -> None:
    import ngio

    path = tmp_path / "img.zarr"
    _ngio_image(path, version)
    rois = [
        Roi.box("FOV_1", x=(0.0, 4.0), y=(1.0, 4.0), z=(0.0, 2.0)),
        Roi.box("FOV 2 é", x=(4.0, 8.0), y=(1.0, 4.0)),
    ]
    masks = [Roi.box("a", x=(0, 2), y=(0, 2), label=3), Roi.box("b", x=(1, 2), y=(0, 5), label=7)]
    feats: dict[str, Any] = {
        "area": [1.5, 2.5],
        "n": np.array([3, 4], np.int32),
        "name": ["é", 'say "hi", ok'],
        "ok": [True, False],
    }
    pq: dict[str, Any] = {"backend": "parquet"}
    async with ngio_async.open_async(path, mode="r+") as ds:
        await ds.tables.write_rois("rois", rois, **pq)
        await ds.tables.write_rois("masks", masks, label="nuclei", **pq)
        await ds.tables.write_features("feats", feats, labels=[3, 7], label="nuclei", **pq)
        await ds.tables.write("gen", {"a": [1.0, 2.0], "s": ["x", "y"]}, **pq)
        await ds.tables.write(
            "cond", {"drug": ["A", "B"], "dose": [1.5, 2.0]}, type="condition_table", **pq
        )
        groi = [
            Roi.box("A", x=(1, 4), y=(1, 3), label=5),
            Roi.box("B", x=(2, 4), y=(1, 3), label=6),
        ]
        await ds.tables.write_rois("groi_src", groi)
        src = await ds.tables.read("groi_src")
        await ds.tables.write("groi", src, type="generic_roi_table", **pq)
        await ds.tables.delete("groi_src")
        names = await ds.tables.names()
        ours = {n: await ds.tables.read(n) for n in names}
        assert (path / "tables" / "feats" / "table.parquet").is_file()
        assert all(t.backend == "parquet" for t in ours.values())
    c: Any = ngio.open_ome_zarr_container(str(path), mode="r")
    assert c.list_tables() == names == ["rois", "masks", "feats", "gen", "cond", "groi"]
    kinds = {
        "rois": "RoiTableV1",
        "masks": "MaskingRoiTableV1",
        "feats": "FeatureTableV1",
        "cond": "ConditionTableV1",
        "groi": "GenericRoiTableV1",
    }
    for name, table in ours.items():
        theirs = c.get_table(name)
        assert type(theirs).__name__ == kinds.get(name, type(theirs).__name__), name
        _same(table, theirs.dataframe)
    got = {r.name: r for r in c.get_table("rois").rois()}
    assert got["FOV 2 é"].get("x").start == 4.0 and got["FOV 2 é"].get("x").length == 4.0
    assert c.get_table("masks").get_label(7).get("y").length == 5.0
    frame = c.get_table("feats").dataframe
    assert list(frame.index) == [3, 7] and frame["ok"].dtype == bool
    assert frame["n"].dtype == np.int32 and list(frame["name"]) == ["é", 'say "hi", ok']


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_ngio_parquet_tables_read_and_rewritten(tmp_path: Path, version: str) -> None:
    """ngio's parquet tables (every type) read with ngio's values; copied to another image as
    parquet, ngio reads the copy with the same values."""
    import ngio
    import pandas as pd  # type: ignore[import-untyped]
    from ngio import Roi as NgioRoi
    from ngio.tables import FeatureTable, GenericTable, MaskingRoiTable, RoiTable

    src, dst = tmp_path / "src.zarr", tmp_path / "dst.zarr"
    c = _ngio_image(src, version)
    _ngio_image(dst, version)

    def box(name: str, x0: float, label: int | None = None) -> Any:
        slices = {"x": (x0, 4.0), "y": (1.0, 3.0), "z": (0.0, 2.0), "t": (0.0, 1.0)}
        return NgioRoi.from_values(name=name, slices=slices, space="world", label=label)

    feats = pd.DataFrame(
        {"label": [1, 2, 3], "area": [1.5, 2.5, np.nan], "name": ["a", "b", "a"]}
    ).set_index("label")
    c.add_table("rois", RoiTable(rois=[box("FOV_1", 0.0), box("FOV_2", 4.5)]), backend="parquet")
    masks = MaskingRoiTable(rois=[box("1", 0.0, 1), box("2", 2.0, 2)], reference_label="nuclei")
    c.add_table("masks", masks, backend="parquet")
    c.add_table("feats", FeatureTable(feats, reference_label="nuclei"), backend="parquet")
    gen = pd.DataFrame({"a": [1, 2], "f32": np.array([0.5, np.nan], np.float32), "s": ["x", None]})
    c.add_table("gen", GenericTable(gen), backend="parquet")
    async with (
        ngio_async.open_async(src) as a,
        ngio_async.open_async(dst, mode="r+") as b,
    ):
        for name in await a.tables.names():
            table = await a.tables.read(name)
            _same(table, c.get_table(name).dataframe)
            await b.tables.write(name, table, backend="parquet")
        rois = await a.tables.rois("rois")
    assert rois[1].ranges["x"] == (4.5, 8.5) and rois[1].time == (0.0, 1.0)
    assert table["f32"].dtype == np.float32  # (it read as float64; pandas gets float32)
    assert table["s"].tolist() == ["x", None]
    d: Any = ngio.open_ome_zarr_container(str(dst), mode="r")
    for name in ("rois", "masks", "feats", "gen"):
        pd.testing.assert_frame_equal(
            d.get_table(name).dataframe, c.get_table(name).dataframe, check_index_type=False
        )
    assert d.get_table("masks").get_label(2).get("x").start == 2.0


async def test_without_pyarrow_the_error_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "img.zarr"
    async with ngio_async.create_async(path, shape=(8, 8), dtype="uint8", levels=1) as ds:
        await ds.tables.write("t", {"a": [1.0, 2.0]}, backend="parquet")
        monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if not installed
        with pytest.raises(UnsupportedError, match=r"'t'.*pyarrow.*ngio_async\[tables\]"):
            await ds.tables.read("t")
        with pytest.raises(UnsupportedError, match=r"'u'.*pyarrow.*ngio_async\[tables\]"):
            await ds.tables.write("u", {"a": [1.0]}, backend="parquet")
        assert await ds.tables.names() == ["t"]
        assert not (path / "tables" / "u").exists()


async def test_a_corrupt_parquet_file_names_its_key(tmp_path: Path) -> None:
    path = tmp_path / "img.zarr"
    async with ngio_async.create_async(path, shape=(8, 8), dtype="uint8", levels=1) as ds:
        await ds.tables.write("t", {"a": [1.0, 2.0]}, backend="parquet")
        (path / "tables" / "t" / "table.parquet").write_bytes(b"PAR1 not really")
        with pytest.raises(MetadataError, match=r"tables/t/table\.parquet"):
            await ds.tables.read("t")
        (path / "tables" / "t" / "table.parquet").unlink()
        with pytest.raises(MetadataError, match=r"no table\.parquet"):
            await ds.tables.read("t")


def test_importing_the_tables_does_not_import_pyarrow() -> None:
    code = (
        "import sys, ngio_async, ngio_async.tables, ngio_async.tables._tables;"
        "assert 'pyarrow' not in sys.modules, 'pyarrow imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


async def test_csv_tables_read_alike_with_and_without_pyarrow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With pyarrow a csv table is read by pyarrow (as ngio reads it; a 1,000,000-row table
    took 13 s and 1.7 GiB with the pure reader, 0.55 s and 0.5 GiB so); without, by the pure
    reader: the same columns either way, as ngio's DataFrame holds them."""
    import ngio
    import pandas as pd
    from ngio.tables import GenericTable

    path = tmp_path / "img.zarr"
    c = _ngio_image(path, "0.5")
    frame = pd.DataFrame(
        {
            "f": [1.5, np.nan, 3.0],
            "i": [1, 2, 3],
            "ni": pd.array([1, None, 3], dtype="Int64"),
            "b": [True, False, True],
            "nb": pd.array([True, None, False], dtype="boolean"),
            "s": ['a "quoted", one', "", "NA"],
        }
    )
    c.add_table("t", GenericTable(frame), backend="csv")
    async with ngio_async.open_async(path) as ds:
        fast = await ds.tables.read("t")
        monkeypatch.setitem(sys.modules, "pyarrow", None)
        pure = await ds.tables.read("t")
    theirs: Any = ngio.open_ome_zarr_container(str(path)).get_table("t").dataframe
    for table in (fast, pure):
        _same(table, theirs)
        assert table["s"].tolist() == ['a "quoted", one', "", "NA"]
        assert table["nb"].tolist() == [True, None, False]
        assert table["ni"].dtype == np.float64 and np.isnan(table["ni"][1])
    assert {k: v.dtype for k, v in fast.columns.items()} == {
        k: v.dtype for k, v in pure.columns.items()
    }
