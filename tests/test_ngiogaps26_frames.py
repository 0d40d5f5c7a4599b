"""``Table.to_polars()`` and ``Table.to_anndata()`` equal ngio 1.1.3's ``table.lazy_frame`` and
``table.anndata`` for the same table: tables ngio wrote and tables written here, of every type
and backend (anndata, json, csv, parquet), with categorical, nullable, string, boolean and
integer columns; async and blocking. Without polars or anndata: an ImportError naming the
extra that installs it."""

from __future__ import annotations

import contextlib
import sys
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async
from ngio_async.tables import Roi, Table

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]

BACKENDS = ("anndata", "json", "csv", "parquet")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _features() -> Any:
    import pandas as pd  # type: ignore[import-untyped]

    return pd.DataFrame(
        {
            "label": [1, 2, 3, 4],
            "cat": pd.Categorical(["a", "b", "a", None]),
            "nint": pd.array([1, None, 3, 4], dtype="Int64"),
            "s": ["x", "y", "é z", "w"],
            "f": [1.0, 2.0, np.nan, 4.0],
            "i": np.array([1, 2, 3, 4], np.int16),
            "ok": [True, False, True, True],
        }
    ).set_index("label")


def _image(path: Path, version: str) -> Any:
    import ngio

    with _quiet():
        c = ngio.create_ome_zarr_from_array(
            str(path),
            np.zeros((1, 8, 8), np.uint16),
            pixelsize=0.5,
            levels=1,
            axes_names="zyx",
            ngff_version=version,  # type: ignore[arg-type]
        )
        c.derive_label("nuclei")
    return c


def _ngio_writes(path: Path) -> None:
    """ROI, masking ROI, feature and generic tables, each backend: ``<kind>_<backend>``."""
    import pandas as pd
    from ngio import Roi as NgioRoi
    from ngio.tables import FeatureTable, GenericTable, MaskingRoiTable, RoiTable

    c = _image(path, "0.5")

    def box(name: str, x0: float, label: int | None = None) -> Any:
        slices = {"x": (x0, 2.5), "y": (1.0, 3.0), "z": (0.0, 1.0)}
        return NgioRoi.from_values(slices, name=name, space="world", label=label)

    with _quiet():
        for be in BACKENDS:
            c.add_table(
                f"roi_{be}", RoiTable(rois=[box("FOV_1", 0.0), box("FOV_2", 2.5)]), backend=be
            )
            masks = MaskingRoiTable(
                rois=[box("1", 0.0, 1), box("2", 1.0, 2)], reference_label="nuclei"
            )
            c.add_table(f"mask_{be}", masks, backend=be)
            c.add_table(
                f"feat_{be}", FeatureTable(_features(), reference_label="nuclei"), backend=be
            )
            gen = GenericTable(pd.DataFrame({"a": [1.25, 2.0], "s": ["x", "y"], "n": [3, 4]}))
            c.add_table(f"gen_{be}", gen, backend=be)


async def _our_writes(path: Path, version: str) -> None:
    _image(path, version)
    rois = [Roi.box("FOV_1", x=(0.0, 2.5), y=(1.0, 3.5)), Roi.box("FOV_2", x=(2.5, 4.0), y=(0, 2))]
    masks = [Roi.box("a", x=(0, 2), y=(0, 2), label=3), Roi.box("b", x=(1, 2), y=(0, 3), label=7)]
    async with ngio_async.open_async(path, mode="r+") as ds:
        for be in BACKENDS:
            await ds.tables.write_rois(f"roi_{be}", rois, backend=be)
            await ds.tables.write_rois(f"mask_{be}", masks, label="nuclei", backend=be)
            await ds.tables.write_features(f"feat_{be}", _features(), label="nuclei", backend=be)
            gen: dict[str, Any] = {
                "a": [1.25, 2.0],
                "s": ["x", "y"],
                "n": np.array([3, 4], np.int32),
            }
            await ds.tables.write(f"gen_{be}", gen, backend=be)


def _same_anndata(ours: Any, theirs: Any, name: str) -> None:
    import pandas as pd

    assert list(ours.obs_names) == list(theirs.obs_names), name
    assert ours.obs_names.name == theirs.obs_names.name, name
    assert list(ours.var_names) == list(theirs.var_names), name
    assert ours.X.dtype == theirs.X.dtype, name
    np.testing.assert_array_equal(ours.X, theirs.X, err_msg=name)
    pd.testing.assert_frame_equal(ours.obs, theirs.obs, obj=name)


async def _check_against_ngio(path: Path) -> int:
    """Every table of ``path``: ours equal to ngio's, async and blocking; how many."""
    import ngio
    from polars.testing import assert_frame_equal

    c: Any = ngio.open_ome_zarr_container(str(path), mode="r")
    async with ngio_async.open_async(path) as ds:
        names = await ds.tables.names()
        for name in names:
            with _quiet():
                theirs = c.get_table(name)
                lazy, adata = theirs.lazy_frame, theirs.anndata
            table = await ds.tables.read(name)
            assert_frame_equal(table.to_polars(lazy=True), lazy)
            assert_frame_equal(table.to_polars(), lazy.collect())
            with _quiet():
                _same_anndata(table.to_anndata(), adata, name)
    with ngio_async.open(path) as sds:
        table = sds.tables.read(names[-1])
        assert_frame_equal(table.to_polars(), c.get_table(names[-1]).lazy_frame.collect())
    return len(names)


async def test_tables_ngio_wrote(tmp_path: Path) -> None:
    path = tmp_path / "ngio.zarr"
    _ngio_writes(path)
    assert await _check_against_ngio(path) == 4 * len(BACKENDS)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_tables_written_here(tmp_path: Path, version: str) -> None:
    path = tmp_path / "ours.zarr"
    await _our_writes(path, version)
    assert await _check_against_ngio(path) == 4 * len(BACKENDS)


async def test_what_each_gives(tmp_path: Path) -> None:
    """A feature table stored as AnnData: X holds its float columns (as stored), obs the
    others; the polars frame starts with the label column, dtypes kept."""
    import polars as pl

    path = tmp_path / "ours.zarr"
    _image(path, "0.5")
    async with ngio_async.open_async(path, mode="r+") as ds:
        await ds.tables.write_features("feats", _features(), label="nuclei")
        await ds.tables.write_features("feats_json", _features(), backend="json")
        table = await ds.tables.read("feats")
        as_json = await ds.tables.read("feats_json")
    frame = table.to_polars()
    assert frame.columns[0] == "label" and frame["label"].to_list() == [1, 2, 3, 4]
    assert frame.schema["cat"] == pl.Categorical and frame.schema["nint"] == pl.Int64
    assert frame["nint"].to_list() == [1, None, 3, 4]
    assert isinstance(table.to_polars(lazy=True), pl.LazyFrame)
    with _quiet():
        adata = table.to_anndata()
    assert table.x_columns == ("f",) and list(adata.var_names) == ["f"]
    assert list(adata.obs.columns) == ["cat", "nint", "s", "i", "ok"]
    assert list(adata.obs_names) == ["1", "2", "3", "4"] and adata.obs_names.name == "label"
    # the same columns from json (no categories nor nullable integers there: nint reads as
    # floats): ngio's DataFrame rule, numbers (booleans too) in X, strings then integers in obs
    assert as_json.x_columns is None
    with _quiet():
        converted = as_json.to_anndata()
    assert list(converted.var_names) == ["nint", "f", "ok"] and converted.X.dtype == np.float64
    assert list(converted.obs.columns) == ["cat", "s", "i"]


def test_missing_packages_name_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    table = Table("t", "generic_table", np.asarray(["0", "1"]), {"a": np.asarray([1.0, 2.0])})
    monkeypatch.setitem(sys.modules, "polars", None)  # (fault injection: as if not installed)
    with pytest.raises(
        ImportError, match=r"to_polars needs polars: pip install 'ngio_async\[polars\]'"
    ):
        table.to_polars()
    monkeypatch.setitem(sys.modules, "anndata", None)
    with pytest.raises(ImportError, match=r"ngio_async\[anndata\]"):
        table.to_anndata()


def test_a_column_anndata_cannot_hold_is_named() -> None:
    mixed = np.asarray(["a", 1], dtype=object)
    table = Table("t", "generic_table", np.asarray(["0", "1"]), {"m": mixed})
    with pytest.raises(ValueError, match="table 't': column 'm'"):
        table.to_anndata()
