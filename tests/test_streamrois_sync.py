"""``stream_sync``: the blocking twin of ``stream()`` over the ROIs of a blocking dataset or
masked image, results equal to a plain read -> func -> write loop."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from test_streamrois_stream import FOVS, _image, _labels, segment

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.filterwarnings("ignore")


def test_stream_sync_writes_what_a_blocking_loop_writes(tmp_path: Path) -> None:
    import anyio

    anyio.run(_image, tmp_path / "img.zarr")
    with ngio_async.open(tmp_path / "img.zarr", mode="r+") as ds:
        a = ds.labels.create("a", dtype="uint32")
        b = ds.labels.create("b", dtype="uint32")
        for r in ds.read_rois("FOV_ROI_table"):
            a.write_roi(r.roi, segment(r.data))
        rois = ds.read_rois("FOV_ROI_table", prefetch=2)
        assert ngio_async.stream_sync(rois, segment, out=b, window=2) is None
        assert a.read().any()
        np.testing.assert_array_equal(b.read(), a.read())
        got = ngio_async.stream_sync(ds.read_rois(FOVS), lambda p: int(p.sum()))
        assert got is not None
        assert {r.roi.name: v for r, v in got} == {
            r.name: int(ds.read_roi(r).data.sum()) for r in FOVS
        }

        def bad(p: Any) -> Any:
            raise ValueError("no")

        with pytest.raises(ValueError, match="no") as info:
            ngio_async.stream_sync(ds.read_rois(FOVS[3:]), bad, threads=1, window=1)
        assert any("ROI 'FOV_3'" in n for n in info.value.__notes__)
        with pytest.raises(TypeError, match="takes the tiles or ROIs of a blocking dataset"):
            ngio_async.stream_sync(list(ds.read_rois(FOVS)), segment)
        want = ds.read()
        want[:, _labels() != 0] = 7
        with ds.masked("nuclei") as m:
            assert ngio_async.stream_sync(m.stream(), lambda p: np.full_like(p, 7), out=m) is None
        np.testing.assert_array_equal(ds.read(), want)
        a.close()
        b.close()
