"""tables.write_features(name, df, label=...) takes each row's label value from the DataFrame's
'label' column or its index named 'label', as ngio 1.1.3's FeatureTable(df) does (a
regionprops_table DataFrame as is; labels= was required): ngio reads back the same DataFrame
from both (NGFF 0.4 and 0.5)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_label_column_or_index_gives_the_rows_as_in_ngio(
    tmp_path: Path, version: str
) -> None:
    import ngio
    import pandas as pd  # type: ignore[import-untyped]

    data = np.zeros((1, 8, 8), np.uint16)
    container = ngio.create_ome_zarr_from_array(
        str(tmp_path / "img.zarr"),
        data,
        pixelsize=0.5,
        axes_names="cyx",
        levels=1,
        ngff_version=version,  # type: ignore[arg-type]
    )
    df = pd.DataFrame({"label": [3, 1, 2], "area": [1.5, 2.0, 3.0], "kind": ["a", "b", "c"]})
    container.add_table("theirs", ngio.FeatureTable(df, reference_label="nuclei"))
    container.add_table("theirs_ix", ngio.FeatureTable(df.set_index("label")))
    async with ngio_async.open_async(tmp_path / "img.zarr", mode="r+") as ds:
        await ds.tables.write_features("mine", df, label="nuclei")
        await ds.tables.write_features("mine_ix", df.set_index("label"))
        with pytest.raises(TypeError, match="'bare': give each row's label value"):
            await ds.tables.write_features("bare", df.drop(columns="label"))
        assert "bare" not in await ds.tables.names()
        mine = await ds.tables.read("mine")
        assert mine.index.tolist() == [3, 1, 2] and "label" not in mine.columns
    reread = ngio.open_ome_zarr_container(str(tmp_path / "img.zarr"))
    for theirs, mine_name in (("theirs", "mine"), ("theirs_ix", "mine_ix")):
        pd.testing.assert_frame_equal(
            reread.get_table(mine_name).dataframe, reread.get_table(theirs).dataframe
        )
    assert reread.get_feature_table("mine").reference_label == "nuclei"
