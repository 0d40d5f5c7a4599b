"""``make demo``: a local S3 server, a generated pyramid, streamed with ``async for``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import zarr
from test_meta import schema

import ngio_async
from ngio_async import demo

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


def test_demo_image_is_valid_ome_zarr(tmp_path: Path) -> None:
    demo.write_image(tmp_path, shape=(2, 2, 128, 96))
    attrs = json.loads((tmp_path / "zarr.json").read_text())["attributes"]
    schema("0.5", "image").validate(attrs)
    group = zarr.open_group(tmp_path, mode="r")
    level0, level2 = group["0"], group["2"]
    assert isinstance(level0, zarr.Array) and isinstance(level2, zarr.Array)
    np.testing.assert_array_equal(level2[:], np.asarray(level0[:])[:, :, ::4, ::4])


def test_demo_streams_from_local_s3(capsys: pytest.CaptureFixture[str]) -> None:
    import anyio

    with demo.local_s3() as s3:
        url = demo.put_demo_image(s3, shape=(2, 2, 256, 256))
        anyio.run(demo.stream_from_s3, url, s3.options, backend="asyncio")
        out = capsys.readouterr().out
        assert "streamed 4 tiles, 1 MB decoded" in out
        with ngio_async.open(url, **s3.options) as ds:
            assert ds.shape == (2, 2, 256, 256)
            assert ds.metadata.channels[1].label == "GFP"
            assert [lvl.shape[-1] for lvl in ds.levels] == [256, 128, 64]
