"""``convert`` of a label image into ``<image>/labels/<new>`` lists ``<new>`` in the image's
``labels`` group, as ``create_like`` to the same place does (it wrote the label unlisted)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path


def _image(path: Path, version: str, *, label: bool = False) -> Path:
    with ngio_async.create(
        path, shape=(2, 32, 32), dtype="uint8", axes="cyx", levels=2, ngff_version=version
    ) as ds:
        if label:
            with ds.labels.create("cells", dtype="uint16", colors={1: "#FF0000"}) as lab:
                lab.write(np.tile(np.arange(32, dtype="uint16"), (32, 1)), pyramid=True)
    return path


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_a_converted_label_is_listed_by_its_image(tmp_path: Path, version: str) -> None:
    src = _image(tmp_path / "src.zarr", version, label=True)
    other = _image(tmp_path / "other.zarr", version)
    with ngio_async.open(other, mode="r+") as image:
        image.labels.create("first", dtype="uint8").close()
    ngio_async.convert_sync(str(src / "labels" / "cells"), str(other / "labels" / "cells"))
    with ngio_async.open(other) as image:
        assert image.labels.names() == ["first", "cells"]  # appended, after the data
        np.testing.assert_array_equal(
            np.asarray(image.labels["cells"]), np.tile(np.arange(32, dtype="uint16"), (32, 1))
        )


def test_a_converted_label_of_another_version_is_refused_before_any_write(
    tmp_path: Path,
) -> None:
    src = _image(tmp_path / "src.zarr", "0.5", label=True)
    other = _image(tmp_path / "other.zarr", "0.4")
    with pytest.raises(ngio_async.UnsupportedError, match=r"ngff_version='0\.4'"):
        ngio_async.convert_sync(str(src / "labels" / "cells"), str(other / "labels" / "cells"))
    assert not (other / "labels").exists()
    ngio_async.convert_sync(
        str(src / "labels" / "cells"), str(other / "labels" / "cells"), ngff_version="0.4"
    )
    with ngio_async.open(other) as image:
        assert image.labels.names() == ["cells"]


def test_a_converted_label_outside_labels_is_not_listed(tmp_path: Path) -> None:
    src = _image(tmp_path / "src.zarr", "0.5", label=True)
    other = _image(tmp_path / "other.zarr", "0.5")
    ngio_async.convert_sync(str(src / "labels" / "cells"), str(other / "cells"))
    with ngio_async.open(other) as image:
        assert image.labels.names() == []


def test_a_converted_label_that_cannot_be_listed_is_replaced_by_a_retry(tmp_path: Path) -> None:
    """The listing fails (the ``labels`` group's listing is no list): the label stays, marked
    unfinished, and the same conversion run again (no overwrite) replaces and lists it."""
    src = _image(tmp_path / "src.zarr", "0.5", label=True)
    other = _image(tmp_path / "other.zarr", "0.5")
    group = other / "labels" / "zarr.json"
    group.parent.mkdir()
    good = {"zarr_format": 3, "node_type": "group", "attributes": {"ome": {"version": "0.5"}}}
    bad = {**good, "attributes": {"ome": {"version": "0.5", "labels": "cells"}}}
    group.write_text(json.dumps(bad))
    args = (str(src / "labels" / "cells"), str(other / "labels" / "cells"))
    with pytest.raises(ngio_async.MetadataError, match="not a list"):
        ngio_async.convert_sync(*args)
    marked = json.loads((other / "labels" / "cells" / "zarr.json").read_text())
    assert marked["attributes"]["ngio_async"] == {"convert": "unfinished"}
    group.write_text(json.dumps(good))
    ngio_async.convert_sync(*args)
    with ngio_async.open(other) as image:
        assert image.labels.names() == ["cells"]
        assert int(np.asarray(image.labels["cells"]).max()) == 31
    done = json.loads((other / "labels" / "cells" / "zarr.json").read_text())
    assert "ngio_async" not in done["attributes"]
