"""Plate tables against ngio 1.1.3: the plate group's own ``tables/`` (listed, read, written,
deleted as an image's, NGFF 0.4 and 0.5) and the wells' image tables concatenated as ngio's
``concatenate_image_tables`` gives them (rows tagged with row, column and path_in_well)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async
from ngio_async import NotFoundError, ReadOnlyError
from ngio_async.tables import Roi

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]

FIELDS = [("A", "1", "0"), ("A", "1", "1"), ("B", "2", "0")]


async def _plate(path: Path, version: Any) -> None:
    """Three fields, each with a feature table, a generic table and (two of them) an ROI one."""
    async with ngio_async.create_plate_async(
        path, rows=["A", "B"], columns=["1", "2"], ngff_version=version
    ) as plate:
        for i, (r, c, f) in enumerate(FIELDS):
            async with await plate.add_image(r, c, f, shape=(8, 8), dtype="uint8", levels=1) as ds:
                await ds.tables.write_features(
                    "feats",
                    {"area": [1.0 + i, 2.5 + i], "kind": ["x", "y"], "n": [i, 7]},
                    labels=[1, 2 + i],
                    label="nuclei",
                )
                await ds.tables.write("gen", {"a": [i, i + 1]})
                if i < 2:
                    box = Roi.box(f"FOV_{i}", x=(0.0, 4.0), y=(0.0, 4.0))
                    await ds.tables.write_rois("only_some", [box])


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_concatenated_image_tables_equal_ngios(tmp_path: Path, version: str) -> None:
    import ngio
    import pandas as pd  # type: ignore[import-untyped]

    path = tmp_path / "plate.zarr"
    await _plate(path, version)
    theirs: Any = ngio.open_ome_zarr_plate(str(path), mode="r")
    async with ngio_async.open_plate_async(path) as plate:
        assert await plate.tables.names() == []
        assert await plate.tables.image_names() == ["feats", "gen"]
        assert await plate.tables.image_names(mode="all") == ["feats", "gen", "only_some"]
        assert await plate.tables.image_names(type="feature_table") == ["feats"]
        assert await plate.tables.image_names() == theirs.list_image_tables()
        for name in ("feats", "gen"):
            for key in (None, "new_index"):
                ours = await plate.tables.concatenate(name, index_key=key)
                want = theirs.concatenate_image_tables(name, index_key=key)
                assert ours.type == (want.table_type() if name == "feats" else "generic_table")
                pd.testing.assert_frame_equal(ours.to_pandas(), want.dataframe)
        feats = await plate.tables.concatenate("feats", index_key="new_index")
        assert feats.index.tolist()[:3] == ["A_1_0_1", "A_1_0_2", "A_1_1_1"]
        assert feats["path_in_well"].tolist() == ["0", "0", "1", "1", "0", "0"]
        assert feats.attrs["index_key"] == "new_index" and feats.region == "../labels/nuclei"
        with pytest.raises(NotFoundError, match=r"'only_some'"):
            await plate.tables.concatenate("only_some")
        some = await plate.tables.concatenate("only_some", strict=False)
        want = theirs.concatenate_image_tables("only_some", strict=False)
        # (ngio's ROI tables put path_in_well first: rebuilt from its Roi objects)
        pd.testing.assert_frame_equal(some.to_pandas(), want.dataframe, check_like=True)
        assert [r.name for r in some.rois()] == ["FOV_0", "FOV_1"]
        with pytest.raises(NotFoundError, match=r"no image of plate .* 'nope'"):
            await plate.tables.concatenate("nope", strict=False)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_plate_level_tables_both_ways_with_ngio(tmp_path: Path, version: str) -> None:
    import ngio
    import pandas as pd
    from ngio.tables import ConditionTable

    path = tmp_path / "plate.zarr"
    await _plate(path, version)
    async with ngio_async.open_plate_async(path, mode="r+") as plate:
        feats = await plate.tables.concatenate("feats", index_key="cell")
        await plate.tables.write("all_feats", feats)
        await plate.tables.write(
            "conditions", {"drug": ["A", "B"], "dose": [1.5, 2.0]}, type="condition_table"
        )
        await plate.tables.write(
            "cond_pq", {"x": [1, 2]}, type="condition_table", backend="parquet"
        )
        assert await plate.tables.names() == ["all_feats", "conditions", "cond_pq"]
    assert (path / "tables" / "conditions").is_dir()
    theirs: Any = ngio.open_ome_zarr_plate(str(path), mode="r+")
    assert theirs.list_tables() == ["all_feats", "conditions", "cond_pq"]
    assert theirs.list_tables(filter_types="condition_table") == ["conditions", "cond_pq"]
    got = theirs.get_table("all_feats").dataframe
    want = theirs.concatenate_image_tables("feats", index_key="cell").dataframe
    # as ngio writes it: anndata stores repeated strings as categorical
    import anndata  # type: ignore[import-untyped]

    written = anndata.AnnData(obs=want.copy())
    written.strings_to_categoricals()
    # the AnnData layout keeps numbers (X) and the others (obs) apart: ngio reads X first
    pd.testing.assert_frame_equal(got, written.obs, check_like=True)
    assert theirs.get_condition_table("conditions").dataframe["dose"].tolist() == [1.5, 2.0]
    assert theirs.get_table("cond_pq").dataframe["x"].tolist() == [1, 2]
    theirs.add_table("ngio_cond", ConditionTable(pd.DataFrame({"drug": ["C"], "n": [3]})))
    theirs.delete_table("conditions")
    async with ngio_async.open_plate_async(path) as plate:
        assert await plate.tables.names() == ["all_feats", "cond_pq", "ngio_cond"]
        cond = await plate.tables.read("ngio_cond")
        assert cond.type == "condition_table" and cond["drug"].tolist() == ["C"]
        assert cond["n"].tolist() == [3]
        with pytest.raises(ReadOnlyError, match=r"plate\.zarr.*mode='r'"):
            await plate.tables.write("x", {"a": [1.0]})
        with pytest.raises(ReadOnlyError, match=r"mode='r'"):
            await plate.tables.delete("ngio_cond")
    assert not (path / "tables" / "x").exists()


def test_sync_plate_tables(tmp_path: Path) -> None:
    import anyio

    path = tmp_path / "plate.zarr"
    anyio.run(_plate, path, "0.5")
    with ngio_async.open_plate(path, mode="r+") as plate:
        table = plate.tables.concatenate("gen", acquisition=None)
        assert table["a"].tolist() == [0, 1, 1, 2, 2, 3]
        assert table["row"].tolist() == ["A", "A", "A", "A", "B", "B"]
        plate.tables.write("gen_all", table)
        assert plate.tables.names() == ["gen_all"]
        assert plate.tables.image_names(mode="all") == ["feats", "gen", "only_some"]
        np.testing.assert_array_equal(plate.tables.read("gen_all")["a"], table["a"])
        plate.tables.delete("gen_all")
        assert list(plate.tables) == []


async def test_plate_tables_on_s3(s3_server: S3Server) -> None:
    url = s3_server.fresh_url() + "/plate é.zarr"
    options = s3_server.options()
    async with ngio_async.create_plate_async(
        url, rows=["A"], columns=["1", "2"], **options
    ) as plate:
        for col in ("1", "2"):
            async with await plate.add_image("A", col, shape=(4, 4), dtype="uint8", levels=1) as ds:
                await ds.tables.write_features("f", {"a": [float(col)]}, labels=[1])
    async with ngio_async.open_plate_async(url, mode="r+", **options) as plate:
        table = await plate.tables.concatenate("f", index_key="cell")
        assert table.index.tolist() == ["A_1_0_1", "A_2_0_1"]
        await plate.tables.write("all f", table, backend="parquet")
    async with ngio_async.open_plate_async(url, **options) as plate:
        assert await plate.tables.names() == ["all f"]
        back = await plate.tables.read("all f")
    assert back["a"].tolist() == [1.0, 2.0] and back["column"].tolist() == ["1", "2"]
    assert back.index.tolist() == ["A_1_0_1", "A_2_0_1"] and back.index_key == "cell"
