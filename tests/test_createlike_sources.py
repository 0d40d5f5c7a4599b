"""``create_like`` from sources as users have them: on S3, and written by other tools
(ome-zarr-py over zarr-python, NGFF 0.4): the copy's layout, pixels written and read back by the
other tool, and the ``image-label.source`` link of a label copy followed on S3 too."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import pytest
from interop_writers import WARNING_FILTERS, read_ome_zarr, write_ome_zarr

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server

pytestmark = [pytest.mark.filterwarnings(f) for f in WARNING_FILTERS]


def test_a_copy_of_an_ome_zarr_py_04_image(tmp_path: Path) -> None:
    written = write_ome_zarr(tmp_path / "oz.zarr", "0.4")
    copy_url = tmp_path / "copy.zarr"
    with ngio_async.open(written.path) as ds, ngio_async.create_like(ds, copy_url) as copy:
        assert copy.metadata.ngff_version == "0.4"
        assert [lvl.shape for lvl in copy.levels] == [lvl.shape for lvl in ds.levels]
        assert [c.label for c in copy.metadata.channels] == written.channels
        cal = [(c.scale, c.translation) for c in copy.metadata.spatial_calibration]
        assert cal == [(c.scale, c.translation) for c in ds.metadata.spatial_calibration]
        copy.write(written.image, pyramid=True)
        label = ds.labels["cells"]
        with ngio_async.create_like(label, tmp_path / "cells.zarr") as lab:
            made, given = lab.metadata.ome.image_label, label.metadata.ome.image_label
            assert made is not None and given is not None
            assert made.colors == given.colors
            assert lab.axes == ("z", "y", "x")
            assert lab.dtype == np.uint32
    back = read_ome_zarr(copy_url)  # ome-zarr-py reads the copy
    np.testing.assert_array_equal(back[0], written.image)
    assert [a.shape for a in back] == [lvl.shape for lvl in copy.levels]


def test_sources_on_s3(s3_server: S3Server, tmp_path: Path) -> None:
    opts = s3_server.options()
    src = s3_server.fresh_url()
    with ngio_async.create(
        src, shape=(2, 32, 32), dtype="uint16", axes="cyx", levels=2, channels=["A", "B"], **opts
    ) as ds:
        ds.write(np.arange(2 * 32 * 32, dtype="uint16").reshape(2, 32, 32), pyramid=True)
        ds.labels.create("cells", dtype="uint8", colors={1: "#00FF00"})
    other = s3_server.fresh_url()
    with ngio_async.open(src, **opts) as ds:
        # an S3 image copied to local disk, and to S3 with another version
        with ngio_async.create_like(ds, tmp_path / "local.zarr", ngff_version="0.4") as copy:
            assert (copy.shape, copy.metadata.ngff_version) == ((2, 32, 32), "0.4")
            assert [c.label for c in copy.metadata.channels] == ["A", "B"]
        ngio_async.create_like(ds, other, **opts).close()
        label = ds.labels["cells"]
        # into the other image's labels/: '../../' leads to it (looked up on S3); alone: none
        into = f"{other}/labels/cells"
        with ngio_async.create_like(label, into, **opts) as lab:
            assert lab.metadata.ome.image_label is not None
            assert lab.metadata.ome.image_label.source is not None
        alone = s3_server.fresh_url()
        with ngio_async.create_like(label, alone, **opts) as lab:
            assert lab.metadata.ome.image_label is not None
            assert lab.metadata.ome.image_label.source is None
    with ngio_async.open(other, **opts) as image:
        assert image.labels.names() == ["cells"]  # listed by the image it went into
        lab = image.labels["cells"]
        assert lab.metadata.ome.image_label is not None
        assert lab.metadata.ome.image_label.source is not None
    assert json.loads((tmp_path / "local.zarr" / ".zattrs").read_text())["omero"]["channels"]
