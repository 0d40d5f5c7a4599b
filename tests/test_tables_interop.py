"""Tables against ngio 1.1.3 and anndata: what they write, ngio_async reads with the same values;
what ngio_async writes, they read with the same values (NGFF 0.4 / zarr v2 and 0.5 / zarr v3).

ngio writes every table type it has (roi, masking roi, feature, generic, condition) with each
backend (anndata, json, csv, parquet); ngio_async reads them all (parquet with pyarrow). Columns are compared as ngio's DataFrame holds them (float, int, bool, string)."""

from __future__ import annotations

import contextlib
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async
from ngio_async.tables import Roi, Table

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.filterwarnings("ignore:Writing zarr v2 data:UserWarning"),
    pytest.mark.filterwarnings("ignore:Consolidated metadata is currently not part:UserWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]

BACKENDS = ("anndata", "json", "csv", "parquet")
KINDS = ("roi", "mask", "feat", "gen", "cond", "groi")


def _ngio_image(path: Path, version: str) -> Any:
    import ngio

    return ngio.create_ome_zarr_from_array(
        str(path),
        np.zeros((1, 4, 16, 16), np.uint16),
        pixelsize=0.5,
        levels=1,
        axes_names="czyx",
        ngff_version=version,  # type: ignore[arg-type]
        overwrite=True,
    )


def _ngio_tables(path: Path, version: str) -> None:
    """Every table type ngio has, with every backend: ``<kind>_<backend>``."""
    import pandas as pd  # type: ignore[import-untyped]
    from ngio import Roi as NgioRoi
    from ngio.tables import (
        ConditionTable,
        FeatureTable,
        GenericRoiTable,
        GenericTable,
        MaskingRoiTable,
        RoiTable,
    )

    c = _ngio_image(path, version)
    c.derive_label("nuclei")

    def box(name: str, x0: float, label: int | None = None) -> Any:
        return NgioRoi.from_values(
            name=name,
            slices={"x": (x0, 4.0), "y": (1.0, 3.0), "z": (0.0, 2.0)},
            space="world",
            label=label,
        )

    feats = pd.DataFrame(
        {
            "label": [1, 2, 3],
            "area": [1.5, 2.5, 3.5],
            "count": np.array([4, 5, 6], np.int32),
            "name": ["a", "b", "a"],
            "flag": [True, False, True],
        }
    ).set_index("label")
    for be in BACKENDS:
        c.add_table(f"roi_{be}", RoiTable(rois=[box("FOV_1", 0.0), box("FOV_2", 4.5)]), backend=be)
        masks = MaskingRoiTable(rois=[box("1", 0.0, 1), box("2", 2.0, 2)], reference_label="nuclei")
        c.add_table(f"mask_{be}", masks, backend=be)
        c.add_table(f"feat_{be}", FeatureTable(feats, reference_label="nuclei"), backend=be)
        gen = GenericTable(pd.DataFrame({"a": [1.25, 2.0], "s": ["x", "y"]}))
        c.add_table(f"gen_{be}", gen, backend=be)
        cond = ConditionTable(pd.DataFrame({"drug": ["A", "B"], "dose": [1.5, 2.0]}))
        c.add_table(f"cond_{be}", cond, backend=be)
        groi = GenericRoiTable(rois=[box("A", 1.0, 5), box("B", 2.0, 6)])
        c.add_table(f"groi_{be}", groi, backend=be)


@pytest.fixture(scope="module", params=["0.4", "0.5"])
def ngio_written(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    path = tmp_path_factory.mktemp("tables") / f"ngio-{request.param}.zarr"
    with _quiet():
        _ngio_tables(path, request.param)
    return path


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """ngio's and anndata's writers warn about zarr v2, consolidated metadata, ..."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _same(ours: Table, theirs: Any) -> None:
    """``ours`` holds what ngio's DataFrame ``theirs`` holds: row names, columns, values."""
    assert list(ours.index) == list(theirs.index), ours.name
    assert sorted(ours.columns) == sorted(theirs.columns), ours.name
    for name, col in ours.columns.items():
        want = theirs[name].to_numpy()
        if col.dtype == object or want.dtype == object:
            assert [str(v) for v in col] == [str(v) for v in want], (ours.name, name)
        else:
            np.testing.assert_array_equal(
                col, want.astype(col.dtype), err_msg=f"{ours.name}.{name}"
            )


async def test_ngio_tables_read_with_ngio_values(ngio_written: Path) -> None:
    import ngio

    c: Any = ngio.open_ome_zarr_container(str(ngio_written), mode="r")
    async with ngio_async.open_async(ngio_written) as ds:
        names = await ds.tables.names()
        assert names == c.list_tables()
        assert await ds.tables.names(type="roi_table") == c.list_tables(filter_types="roi_table")
        for name in names:
            with _quiet():
                theirs = c.get_table(name)
                frame = theirs.dataframe
            ours = await ds.tables.read(name)
            assert ours.type == (
                theirs.table_type() if not name.startswith("gen") else "generic_table"
            )
            _same(ours, frame)
            if name.startswith(("roi", "mask", "groi")):
                rois = {r.name: r for r in theirs.rois()}
                for roi in ours.rois():
                    want = rois[roi.name]
                    for axis in "xyz":
                        s = want.get(axis)
                        assert roi.ranges[axis] == pytest.approx((s.start, s.start + s.length))
                    if name.startswith(("mask", "groi")):
                        assert roi.label == want.label
            if name.startswith(("mask", "feat")):
                assert ours.region == "../labels/nuclei"
                assert ours.instance_key == "label"


async def test_anndata_categorical_and_nullable_columns(tmp_path: Path) -> None:
    """Columns anndata itself encodes as groups: categorical (repeated strings, with a missing
    value), nullable integer and boolean (pandas' masked arrays); read as their values."""
    import anndata  # type: ignore[import-untyped]
    import pandas as pd

    path = tmp_path / "img.zarr"
    with _quiet():
        _ngio_image(path, "0.5")
        obs = pd.DataFrame(
            {
                "cat": pd.Categorical(["a", "b", "a", None]),
                "nint": pd.array([1, None, 3, 4], dtype="Int64"),
                "nbool": pd.array([True, False, None, True], dtype="boolean"),
            },
            index=["1", "2", "3", "4"],
        )
        obs.index.name = "label"
        adata = anndata.AnnData(X=np.arange(8.0).reshape(4, 2), obs=obs)
        adata.var_names = ["m0", "m1"]
        with anndata.settings.override(zarr_write_format=3):
            adata.write_zarr(path / "tables" / "t")
    import zarr

    zarr.open_group(path / "tables", mode="a").attrs.update({"tables": ["t"]})
    t = zarr.open_group(path / "tables" / "t", mode="a")
    t.attrs.update({"type": "feature_table", "index_key": "label", "index_type": "int"})
    async with ngio_async.open_async(path) as ds:
        table = await ds.tables.read("t")
    assert list(table.index) == [1, 2, 3, 4]
    assert list(table.columns) == ["m0", "m1", "cat", "nint", "nbool"]
    assert list(table["cat"]) == ["a", "b", "a", None]
    assert table["nint"][1] is None  # a missing integer
    assert [table["nint"][i] for i in (0, 2, 3)] == [1, 3, 4]
    assert list(table["nbool"]) == [True, False, None, True]
    np.testing.assert_array_equal(table["m1"], [1.0, 3.0, 5.0, 7.0])


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_written_tables_read_by_ngio_and_anndata(tmp_path: Path, version: str) -> None:
    import anndata
    import ngio

    path = tmp_path / "img.zarr"
    with _quiet():
        _ngio_image(path, version).derive_label("nuclei")
    rois = [
        Roi.box("FOV_1", x=(0.0, 4.0), y=(1.0, 4.0), z=(0.0, 2.0)),
        Roi.box("FOV_2", x=(4.0, 8.0), y=(1.0, 4.0)),
    ]
    masks = [Roi.box("a", x=(0, 2), y=(0, 2), label=3), Roi.box("b", x=(1, 2), y=(0, 5), label=7)]
    feats: dict[str, Any] = {
        "area": [1.5, 2.5],
        "n": np.array([3, 4], np.int32),
        "name": ["é", "b"],
        "ok": [True, False],
    }
    async with ngio_async.open_async(path, mode="r+") as ds:
        await ds.tables.write_rois("rois", rois)
        await ds.tables.write_rois("masks", masks, label="nuclei")
        await ds.tables.write_features("feats", feats, labels=[3, 7], label="nuclei")
        await ds.tables.write("gen", {"a": [1.0, 2.0], "s": ["x", "y"]})
        await ds.tables.write("rois_json", await ds.tables.read("rois"), backend="json")
        await ds.tables.write_features(
            "feats_csv", feats | {"q": ['say "hi", ok', ""]}, labels=[3, 7], backend="csv"
        )
        await ds.tables.write("masks_json", await ds.tables.read("masks"), backend="json")
        ours = {n: await ds.tables.read(n) for n in await ds.tables.names()}
    c: Any = ngio.open_ome_zarr_container(str(path), mode="r")
    assert c.list_tables() == [
        "rois", "masks", "feats", "gen", "rois_json", "feats_csv", "masks_json"
    ]  # fmt: skip
    kinds = {"rois": "RoiTableV1", "masks": "MaskingRoiTableV1", "feats": "FeatureTableV1"}
    for name, table in ours.items():
        with _quiet():
            theirs = c.get_table(name)
            frame = theirs.dataframe
        assert type(theirs).__name__ == kinds.get(name, type(theirs).__name__)
        _same(table, frame)
    with _quiet():
        got = {r.name: r for r in c.get_table("rois").rois()}
        assert got["FOV_2"].get("x").start == 4.0 and got["FOV_2"].get("x").length == 4.0
        assert c.get_table("masks").get_label(7).get("y").length == 5.0
        assert c.get_table("feats").reference_label == "nuclei"
        feat_frame = c.get_table("feats").dataframe
    assert feat_frame["ok"].dtype == bool and list(feat_frame["name"]) == ["é", "b"]
    assert list(feat_frame.index) == [3, 7]
    with _quiet():
        csv_frame = c.get_table("feats_csv").dataframe
    assert csv_frame.loc[3, "q"] == 'say "hi", ok' and csv_frame["area"].dtype == float
    assert list(ours["feats_csv"]["q"]) == ['say "hi", ok', ""]
    with _quiet():
        adata = anndata.read_zarr(str(path / "tables" / "feats"))
    assert list(adata.obs_names) == ["3", "7"]
    assert list(adata.var_names) == ["area"]
    np.testing.assert_array_equal(adata.X[:, 0], [1.5, 2.5])
    assert list(adata.obs["n"]) == [3, 4] and list(adata.obs["name"]) == ["é", "b"]
