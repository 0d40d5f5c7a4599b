"""Every document of a written hierarchy (an image with colored labels, a plate with
acquisitions, several fields and rows past Z) passes the official strict NGFF schemas, and
ome-zarr-py and ngio read what was written."""

from __future__ import annotations

import json
import warnings
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

Version = Literal["0.4", "0.5"]


def _documents(root: Path, version: Version) -> dict[str, dict[str, Any]]:
    """The NGFF attributes of every group below ``root`` (and ``root``), by relative path."""
    out = {}
    name = ".zattrs" if version == "0.4" else "zarr.json"
    for path in [root / name, *sorted(root.rglob(name))]:
        doc = json.loads(path.read_text())
        if version == "0.5":
            if doc.get("node_type") != "group":
                continue
            doc = doc.get("attributes", {})
        out[str(path.parent.relative_to(root))] = doc
    return out


def _kinds(attrs: dict[str, Any], version: Version) -> list[str]:
    body = attrs.get("ome", {}) if version == "0.5" else attrs
    kinds = [k for k in ("plate", "well") if k in body]
    kinds += ["label"] if "image-label" in body else ["image"] if "multiscales" in body else []
    return kinds


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_written_hierarchies_pass_the_strict_schemas_and_peer_readers(
    tmp_path: Path, version: Version
) -> None:
    from test_meta import schema

    image = tmp_path / "img.zarr"
    data = np.random.default_rng(0).integers(0, 4000, (2, 3, 40, 50), dtype=np.uint16)
    with ngio_async.create(
        image, shape=data.shape, dtype="uint16", axes="czyx", scale=(1, 2.0, 0.5, 0.5),
        channels=["DAPI", "GFP"], levels=3, chunks=(1, 1, 16, 16), ngff_version=version,
    ) as ds:  # fmt: skip
        ds.write(data, pyramid=True)
        cells = ds.labels.create(
            "cells", dtype="uint16", properties={1: {"class": "nucleus"}}, colors={1: "#FF0000"}
        )
        mask = (data[0] > 2000).astype(np.uint16)
        cells.write(mask, pyramid=True)
        ds.labels.set_colors("cells")
    plate = tmp_path / "plate.zarr"
    rows = [*"ABCDEFGHIJKLMNOPQRSTUVWXYZ", "AA", "AF"]
    with ngio_async.create_plate(
        plate, rows=rows, columns=[str(c) for c in range(1, 49)], acquisitions=[0, 1],
        ngff_version=version,
    ) as p:  # fmt: skip
        for row, column, field, acquisition in [
            ("A", "1", "0", 0), ("A", "1", "1", 1), ("AF", "48", "0", 1)
        ]:  # fmt: skip
            with p.add_image(
                row, column, field=field, acquisition=acquisition, shape=(2, 32, 32),
                dtype="uint8", axes="cyx", channels=["a", "b"], levels=2,
            ) as fov:  # fmt: skip
                fov.write(np.full((2, 32, 32), 5, np.uint8), pyramid=True)
    seen: set[str] = set()
    for root in (image, plate):
        for attrs in _documents(root, version).values():
            for kind in _kinds(attrs, version):
                schema(version, f"strict_{kind}").validate(attrs)
                schema(version, kind).validate(attrs)
                seen.add(kind)
    assert seen == {"image", "label", "plate", "well"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from ome_zarr.io import parse_url  # type: ignore[import-untyped]
        from ome_zarr.reader import Reader  # type: ignore[import-untyped]

        nodes = list(Reader(parse_url(str(image)))())
        label = next(n for n in nodes if "labels/cells" in str(n.zarr))
        assert label.metadata["color"][1] == [1.0, 0.0, 0.0, 1.0]
        assert [np.asarray(d).shape for d in label.data] == [(3, 40, 50), (3, 20, 25), (3, 10, 13)]
        np.testing.assert_array_equal(np.asarray(label.data[0]), mask)
        import ngio

        container = ngio.open_ome_zarr_container(str(image))
        assert container.list_labels() == ["cells"]
        np.testing.assert_array_equal(np.asarray(container.get_image().get_array()), data)
        opened = ngio.open_ome_zarr_plate(str(plate))
        assert sorted(opened.get_images()) == ["A/1/0", "A/1/1", "AF/48/0"]
        assert opened.acquisition_ids == [0, 1]
