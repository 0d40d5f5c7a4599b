"""Reading NGFF 0.1, 0.2 and 0.3 images (read only): zarr v2 arrays written with
zarr-python under the group attributes the old specs show (ome-zarr-py 0.18 no longer
writes these versions). Axes (0.1 / 0.2: ``tczyx``; 0.3: names typed t time, c channel,
others space), per-level scales (1 on level 0; lower levels: level 0's size over theirs
along space axes, the documented decision), channels, labels, pixels, tiles, nested chunk
keys of 0.2 / 0.3 without ``dimension_separator``, ``validate`` / ``info`` on them, and the
message refusing versions still not read."""

from __future__ import annotations

import json
import shutil
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import zarr
from cli_run import run

import ngio_async
from ngio_async import MetadataError, UnsupportedError
from ngio_async.meta import to_attrs, validate

if TYPE_CHECKING:
    from pathlib import Path

    from servers import StaticServer

TCZYX = (2, 3, 1, 45, 40)  # 45 rows: level 1 has 23 (45 / 23 is no integer)
CYX = (3, 45, 40)
CHANNELS = [("DAPI", "0000FF"), ("GFP", "00FF00"), ("RFP", "FF0000")]


def _ramp(shape: tuple[int, ...]) -> np.ndarray:
    return (np.arange(int(np.prod(shape))) % 4099).astype("uint16").reshape(shape)


def _levels(data: np.ndarray, n: int = 3) -> list[np.ndarray]:
    """Level i: every 2**i-th row and column (as ome-zarr-py's nearest scaler)."""
    return [data[..., :: 2**i, :: 2**i] for i in range(n)]


def write_old(
    path: Path,
    version: str,
    *,
    axes: list[str] | None = None,
    data: np.ndarray | None = None,
    separator_in_zarray: bool = True,
    extra: dict[str, Any] | None = None,
) -> list[np.ndarray]:
    """An NGFF ``version`` image at ``path``: zarr v2 levels (chunk keys flat for 0.1,
    nested for 0.2 / 0.3; ``separator_in_zarray=False``: the ``.zarray`` does not name it,
    as before zarr had ``dimension_separator``) and the ``.zattrs`` of the old spec
    (multiscales with paths only, ``axes`` names in 0.3, omero channels); the levels written."""
    shutil.rmtree(path, ignore_errors=True)
    if data is None:
        data = _ramp(CYX if axes == ["c", "y", "x"] else TCZYX)
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    levels = _levels(data)
    separator = "." if version == "0.1" else "/"
    for i, level in enumerate(levels):
        arr = group.create_array(
            str(i),
            shape=level.shape,
            dtype=level.dtype,
            chunks=tuple(min(s, 16) for s in level.shape),
            chunk_key_encoding={"name": "v2", "separator": separator},
        )
        arr[...] = level
        if not separator_in_zarray:
            doc = json.loads((path / str(i) / ".zarray").read_text())
            doc.pop("dimension_separator", None)
            (path / str(i) / ".zarray").write_text(json.dumps(doc))
    ms: dict[str, Any] = {
        "version": version,
        "name": "old",
        "datasets": [{"path": str(i)} for i in range(len(levels))],
    }
    if axes is not None:
        ms["axes"] = axes
    channels = [
        {
            "label": label,
            "color": color,
            "active": True,
            "window": {"min": 0, "max": 65535, "start": 10, "end": 3000},
        }
        for label, color in CHANNELS
    ]
    attrs = {"multiscales": [ms], "omero": {"version": version, "channels": channels}}
    (path / ".zattrs").write_text(json.dumps({**attrs, **(extra or {})}))
    return levels


def write_old_labels(path: Path, version: str, axes: list[str] | None) -> list[np.ndarray]:
    """A label image ``cells`` under the image at ``path`` (the old labels layout)."""
    label_axes = None if axes is None else ["y", "x"]
    shape = (1, 1, 1, 45, 40) if axes is None else (45, 40)
    data = (np.arange(45 * 40) % 7).astype("uint32").reshape(shape)
    (path / "labels").mkdir()
    (path / "labels" / ".zgroup").write_text('{"zarr_format": 2}')
    (path / "labels" / ".zattrs").write_text(json.dumps({"labels": ["cells"]}))
    levels = write_old(path / "labels" / "cells", version, axes=label_axes, data=data)
    doc = json.loads((path / "labels" / "cells" / ".zattrs").read_text())
    doc.pop("omero")
    doc["image-label"] = {
        "version": version,
        "colors": [{"label-value": 1, "rgba": [255, 0, 0, 255]}],
    }
    (path / "labels" / "cells" / ".zattrs").write_text(json.dumps(doc))
    return levels


CASES = [("0.1", None), ("0.2", None), ("0.3", ["c", "y", "x"])]


# ------------------------------------------------------------------ metadata (no I/O)
@pytest.mark.parametrize(("version", "axes"), CASES)
def test_validate_gives_a_04_shaped_view_keeping_the_version(
    version: str, axes: list[str] | None
) -> None:
    ms: dict[str, Any] = {"version": version, "datasets": [{"path": "0"}, {"path": "1"}]}
    if axes is not None:
        ms["axes"] = axes
    meta = validate({"multiscales": [ms], "omero": {"version": version, "channels": []}})
    assert meta.version == version
    view = meta.multiscales[0] if meta.multiscales else None
    assert view is not None
    names = axes or ["t", "c", "z", "y", "x"]
    assert [a.name for a in view.axes] == names
    types = {"t": "time", "c": "channel"}
    assert [a.type for a in view.axes] == [types.get(n, "space") for n in names]
    # no sizes here: every level's scale is 1 until the reader sees their shapes
    assert [d.scale for d in view.datasets] == [[1] * len(names)] * 2
    # written back, it is a valid 0.4 or 0.5 document with no trace of the old version
    for target in ("0.4", "0.5"):
        attrs = to_attrs(meta, target)
        assert version not in json.dumps(attrs)
        assert validate(attrs).version == target


def test_old_plate_wells_get_their_indices_from_their_paths() -> None:
    doc = {
        "plate": {
            "version": "0.2",
            "rows": [{"name": "A"}, {"name": "B"}],
            "columns": [{"name": "1"}, {"name": "2"}],
            "wells": [{"path": "B/2"}, {"path": "A/1"}],
        }
    }
    meta = validate(doc)
    assert meta.version == "0.2" and meta.plate is not None
    assert [(w.path, w.row_index, w.column_index) for w in meta.plate.wells] == [
        ("B/2", 1, 1),
        ("A/1", 0, 0),
    ]


def test_an_old_document_breaking_a_rule_names_the_field() -> None:
    doc = {"multiscales": [{"version": "0.3", "axes": ["y", "y"], "datasets": [{"path": "0"}]}]}
    with pytest.raises(MetadataError, match="duplicate axis name") as info:
        validate(doc)
    assert info.value.path == "$.multiscales[0].axes[1].name"


@pytest.mark.parametrize("version", ["0.0", "0.7", "banana"])
def test_versions_not_read_are_refused_listing_those_read(version: str) -> None:
    listed = r"reads NGFF 0\.1, 0\.2 and 0\.3 \(read only\), 0\.4, 0\.5 and 0\.6"
    with pytest.raises(UnsupportedError, match=rf"'{version}' is not supported.*{listed}"):
        validate({"labels": ["a"]}, version=version)
    doc = {"multiscales": [{"version": version, "datasets": [{"path": "0"}]}]}
    with pytest.raises((MetadataError, UnsupportedError), match=listed):
        validate(doc)


# ------------------------------------------------------------------ images
@pytest.mark.parametrize(("version", "axes"), CASES)
def test_an_old_image_reads_as_written(
    tmp_path: Path, version: str, axes: list[str] | None
) -> None:
    levels = write_old(tmp_path / "old.zarr", version, axes=axes)
    with ngio_async.open(tmp_path / "old.zarr") as ds:
        assert ds.metadata.ngff_version == version
        assert f"ngff={version}" in repr(ds)
        assert ds.axes == tuple(axes or "tczyx")
        assert [lvl.shape for lvl in ds.levels] == [lv.shape for lv in levels]
        # the documented scales: 1 on level 0, level 0's size over the level's on space axes
        first = levels[0].shape
        for lvl, written in zip(ds.levels, levels, strict=True):
            expected = tuple(
                first[i] / n if name in "zyx" else 1.0
                for i, (name, n) in enumerate(zip(ds.axes, written.shape, strict=True))
            )
            assert lvl.scale == pytest.approx(expected)
            assert lvl.translation == (0.0,) * len(ds.axes)
        assert ds.levels[1].scale[-2] == pytest.approx(45 / 23)  # not rounded to 2
        assert [c.label for c in ds.metadata.channels] == [n for n, _ in CHANNELS]
        assert [c.color for c in ds.metadata.channels] == [c for _, c in CHANNELS]
        assert ds.metadata.channels[0].window == (10, 3000)
        for i, written in enumerate(levels):
            np.testing.assert_array_equal(ds.read(level=i), written)
        np.testing.assert_array_equal(ds[..., 3:30, 5:9], levels[0][..., 3:30, 5:9])
        np.testing.assert_array_equal(
            ds.read(level=1, c="GFP"), levels[1][..., 1, :, :, :] if axes is None else levels[1][1]
        )
        out = np.zeros_like(levels[0])
        for tile in ds.tiles(level=0):
            out[tile.region] = tile.data
        np.testing.assert_array_equal(out, levels[0])


@pytest.mark.parametrize("version", ["0.2", "0.3"])
def test_nested_chunk_keys_without_dimension_separator(tmp_path: Path, version: str) -> None:
    """0.2 and 0.3 store chunks nested; a .zarray from before zarr had dimension_separator
    does not say so (ome-zarr-py 0.18 reads such an image as all zeros)."""
    axes = ["c", "y", "x"] if version == "0.3" else None
    levels = write_old(tmp_path / "old.zarr", version, axes=axes, separator_in_zarray=False)
    assert (tmp_path / "old.zarr" / "0" / "0" / "0").is_dir()  # nested on disk
    with ngio_async.open(tmp_path / "old.zarr") as ds:
        for i, written in enumerate(levels):
            np.testing.assert_array_equal(ds.read(level=i), written)


def test_flat_01_chunk_keys_without_dimension_separator(tmp_path: Path) -> None:
    levels = write_old(tmp_path / "old.zarr", "0.1", separator_in_zarray=False)
    assert (tmp_path / "old.zarr" / "0" / "0.0.0.0.0").is_file()
    with ngio_async.open(tmp_path / "old.zarr") as ds:
        np.testing.assert_array_equal(ds.read(), levels[0])


@pytest.mark.parametrize(("version", "axes"), [CASES[1], CASES[2]])
def test_old_labels(tmp_path: Path, version: str, axes: list[str] | None) -> None:
    write_old(tmp_path / "old.zarr", version, axes=axes)
    labels = write_old_labels(tmp_path / "old.zarr", version, axes)
    with ngio_async.open(tmp_path / "old.zarr") as ds:
        assert ds.labels.names() == ["cells"]
        with ds.labels.open("cells") as lab:
            assert lab.metadata.ngff_version == version
            assert lab.metadata.ome.image_label is not None
            colors = lab.metadata.ome.image_label.colors or []
            assert [(c.label_value, c.rgba) for c in colors] == [(1, [255, 0, 0, 255])]
            assert [lvl.scale[-1] for lvl in lab.levels] == [1.0, 2.0, 4.0]
            for i, written in enumerate(labels):
                np.testing.assert_array_equal(lab.read(level=i), written)


async def test_an_old_image_over_http(http_root: Path, http_server: StaticServer) -> None:
    levels = write_old(http_root / "old.zarr", "0.2", separator_in_zarray=False)
    async with await ngio_async.open_async(f"{http_server.url}old.zarr") as ds:
        assert ds.metadata.ngff_version == "0.2"
        assert [lvl.scale[-1] for lvl in ds.levels] == [1.0, 2.0, 4.0]
        np.testing.assert_array_equal(await ds.read(level=1), levels[1])


def test_info_and_validate_name_the_old_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_old(tmp_path / "old.zarr", "0.3", axes=["c", "y", "x"])
    write_old_labels(tmp_path / "old.zarr", "0.3", ["c", "y", "x"])
    code, out, _ = run(["info", str(tmp_path / "old.zarr")], capsys)
    assert code == 0 and "NGFF 0.3" in out
    code, out, _ = run(["validate", str(tmp_path / "old.zarr")], capsys)
    assert code == 0, out
    assert "0 errors" in out
    assert "NGFF 0.3, a version before 0.4: read, not validated" in out
    assert out.count("a version before 0.4") == 1  # said once, not per group
    code, out, _ = run(["validate", "--json", str(tmp_path / "old.zarr")], capsys)
    report = json.loads(out)
    assert report["errors"] == [] and report["nodes"] == 3


def test_scales_a_03_document_states_are_kept(tmp_path: Path) -> None:
    """Only levels without transformations get scales from their shapes."""
    write_old(tmp_path / "old.zarr", "0.3", axes=["c", "y", "x"])
    doc = json.loads((tmp_path / "old.zarr" / ".zattrs").read_text())
    for i, ds in enumerate(doc["multiscales"][0]["datasets"]):
        ds["coordinateTransformations"] = [{"type": "scale", "scale": [1, 0.5 * 3**i, 0.5 * 3**i]}]
    (tmp_path / "old.zarr" / ".zattrs").write_text(json.dumps(doc))
    with ngio_async.open(tmp_path / "old.zarr") as ds:
        assert [lvl.scale for lvl in ds.levels] == [(1, 0.5, 0.5), (1, 1.5, 1.5), (1, 4.5, 4.5)]
