"""Reading NGFF 0.6rc0 (RFC-5) images: zarr-python arrays under the corpus's 0.6rc0 group
attributes; axes from the intrinsic coordinate system, levels from the datasets' scale /
sequence transformations, labels, tiles, writes into existing arrays, conversion to 0.5."""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import zarr
from cli_run import run
from corpus_files import CORPUS

import ngio_async
from ngio_async import UnsupportedError
from ngio_async.meta import validate
from ngio_async.meta._transforms06 import Identity, Scale06, Sequence

if TYPE_CHECKING:
    from pathlib import Path

    from servers import StaticServer

SHAPES = ((1, 2, 4, 16, 16), (1, 2, 2, 8, 8), (1, 2, 1, 4, 4))


def _attrs(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((CORPUS / "0.6rc0" / name).read_text())
    attrs: dict[str, Any] = doc.get("attributes", doc)
    return attrs


def _write(
    path: Path,
    attrs: dict[str, Any],
    shapes: tuple[tuple[int, ...], ...],
    dtype: str = "uint16",
    dims: list[str] | None = None,
) -> list[np.ndarray]:
    """A zarr v3 group with ``attrs`` and one array per dataset (dimension names as the
    intrinsic axes), each filled with a ramp; the arrays written."""
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    group.attrs.update(attrs)
    ms = attrs["ome"]["multiscales"][0]
    names = [a["name"] for a in ms["coordinateSystems"][-1]["axes"]]
    out = []
    for ds, shape in zip(ms["datasets"], shapes, strict=True):
        arr = group.create_array(
            ds["path"],
            shape=shape,
            dtype=dtype,
            chunks=tuple(min(s, 8) for s in shape),
            dimension_names=dims or names[-len(shape) :],
        )
        data = (np.arange(int(np.prod(shape))) % 251).astype(dtype).reshape(shape)
        arr[...] = data
        out.append(data)
    return out


@pytest.fixture
def image06(tmp_path: Path) -> tuple[Path, list[np.ndarray]]:
    path = tmp_path / "img06.zarr"
    return path, _write(
        path, _attrs("zarr_json/valid/example-image-multiscales_example.json"), SHAPES
    )


def test_open_read_calibration(image06: tuple[Path, list[np.ndarray]]) -> None:
    """Axes of the intrinsic system; per level scale (single scale, sequence[scale,
    translation]) and translation; pixels; the typed 0.6 multiscale on the metadata."""
    path, data = image06
    with ngio_async.open(str(path)) as ds:
        assert ds.metadata.ngff_version == "0.6rc0"
        assert ds.metadata.axis_names == ("t", "c", "z", "y", "x")
        assert ds.metadata.paths == ("s0", "s1", "s2")
        cal = ds.metadata.spatial_calibration
        assert cal[0].scale == (0.1, 1.0, 0.5, 0.5, 0.5) and cal[0].translation == (0,) * 5
        assert cal[2].scale == (0.1, 1.0, 2.0, 2.0, 2.0)
        assert cal[2].translation == (0, 0, 0.75, 0.75, 0.75)
        assert cal[1]["z"].unit == "micrometer"
        for level, expected in enumerate(data):
            np.testing.assert_array_equal(ds.read(level=level), expected)
        ms06 = ds.metadata.ngff06
        assert ms06 is not None and ms06.intrinsic.name == "intrinsic"
        assert isinstance(ms06.datasets[0].transform, Scale06)
        assert isinstance(ms06.datasets[1].transform, Sequence)


async def test_open_async_tiles(image06: tuple[Path, list[np.ndarray]]) -> None:
    """The async API: tiles cover level 0 as stored."""
    path, data = image06
    async with await ngio_async.open_async(str(path)) as ds:
        out = np.zeros_like(data[0])
        count = 0
        async for tile in ds.tiles(level=0):
            out[tile.region] = tile.data
            count += 1
        assert count >= 4
        np.testing.assert_array_equal(out, data[0])


def test_other_systems_and_transforms_kept(tmp_path: Path) -> None:
    """A multiscale-level transformation to another system stays on the metadata (typed);
    the image reads in its intrinsic system."""
    path = tmp_path / "t.zarr"
    attrs = _attrs("zarr_json/valid/example-image-multiscales_transformations.json")
    # the arrays' dimensions are the array coordinate system's: 0.6 asks no names of them
    (data,) = _write(path, attrs, ((12, 10),), dims=["dim_0", "dim_1"])
    with ngio_async.open(str(path)) as ds:
        assert ds.metadata.axis_names == ("y", "x")
        assert ds.metadata.spatial_calibration[0].scale == (1, 1)
        ms06 = ds.metadata.ngff06
        assert ms06 is not None
        assert [cs.name for cs in ms06.coordinate_systems] == ["physical", "intrinsic"]
        assert ms06.coordinate_transformations is not None
        outer = ms06.coordinate_transformations[0]
        assert isinstance(outer, Scale06) and outer.scale == [10, 10]
        np.testing.assert_array_equal(ds.read(), data)


def test_identity_level_and_labels(tmp_path: Path) -> None:
    """An identity dataset transform reads as scale 1; a 0.6 labels group and label image
    (image-label colors) open as for 0.5."""
    path = tmp_path / "withlabels.zarr"
    attrs = _attrs("image/valid/example-multiscales_reference_to_label.json")
    ds0 = attrs["ome"]["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]
    ds0.clear()
    ds0.update(type="identity", input={"path": "s0"}, output={"name": "physical"})
    (image,) = _write(path, attrs, ((4, 8, 8),))
    labels = zarr.open_group(str(path / "labels"), mode="w", zarr_format=3)
    labels.attrs.update({"ome": {"version": "0.6rc0", "labels": ["cell_segmentation"]}})
    label_attrs = _attrs("zarr_json/valid/example-label-colors_properties.json")
    (cells,) = _write(path / "labels" / "cell_segmentation", label_attrs, ((4, 8, 8),), "uint8")
    with ngio_async.open(str(path)) as ds:
        ms06 = ds.metadata.ngff06
        assert ms06 is not None and isinstance(ms06.datasets[0].transform, Identity)
        assert ds.metadata.spatial_calibration[0].scale == (1.0, 1.0, 1.0)
        np.testing.assert_array_equal(ds.read(), image)
        assert ds.labels.names() == ["cell_segmentation"]
        with ds.labels["cell_segmentation"] as label:
            assert label.metadata.ngff_version == "0.6rc0"
            assert label.metadata.spatial_calibration[0].scale == (0.5, 0.5, 1)
            np.testing.assert_array_equal(label.read(), cells)


def test_write_existing_arrays_leaves_metadata(image06: tuple[Path, list[np.ndarray]]) -> None:
    """mode="r+": writes go to the existing arrays; the 0.6 group document is untouched."""
    path, data = image06
    before = (path / "zarr.json").read_bytes()
    patch = np.full((1, 2, 4, 8, 8), 9, "uint16")
    with ngio_async.open(str(path), mode="r+") as ds:
        ds.write(patch, level=0, y=slice(0, 8), x=slice(8, 16))
    assert (path / "zarr.json").read_bytes() == before
    stored = np.asarray(zarr.open_array(str(path / "s0"), mode="r")[...])
    np.testing.assert_array_equal(stored[..., :8, 8:], patch)
    np.testing.assert_array_equal(stored[..., 8:, :], data[0][..., 8:, :])


def test_convert_to_05(image06: tuple[Path, list[np.ndarray]], tmp_path: Path) -> None:
    """convert: a 0.6 image becomes a 0.5 one by default (0.6 is read, not written), with the
    intrinsic axes, the levels' transformations and the pixels."""
    path, data = image06
    out = tmp_path / "out05.zarr"
    result = ngio_async.convert_sync(str(path), str(out))
    assert result.ngff_version == "0.5"
    meta = validate(json.loads((out / "zarr.json").read_text()))
    assert meta.version == "0.5" and meta.multiscales is not None
    assert meta.multiscales[0].axis_names == ["t", "c", "z", "y", "x"]
    assert meta.multiscales[0].datasets[2].translation == [0, 0, 0.75, 0.75, 0.75]
    with ngio_async.open(str(out)) as ds:
        for level, expected in enumerate(data):
            np.testing.assert_array_equal(ds.read(level=level), expected)


def test_array_intrinsic_system_refused(tmp_path: Path) -> None:
    """A valid 0.6 image whose intrinsic system is an array one is not read: it says why."""
    path = tmp_path / "arr.zarr"
    _write(path, _attrs("image/valid/byDimension.json"), ((8, 8),))
    with pytest.raises(UnsupportedError, match="array coordinate system"):
        ngio_async.open(str(path))


def test_cli_info_and_validate(
    image06: tuple[Path, list[np.ndarray]], capsys: pytest.CaptureFixture[str]
) -> None:
    """ngio-async info and validate read a 0.6 image (validate: valid, no refusal)."""
    path, _ = image06
    code, out, _ = run(["info", str(path)], capsys)
    assert code == 0 and "NGFF 0.6rc0" in out and "axes tczyx" in out
    code, out, err = run(["validate", str(path)], capsys)
    assert (code, err) == (0, "") and "valid: 1 groups checked, 0 errors" in out


def test_cli_validate_06_groups(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """ngio-async validate on 0.6 group documents: a scene is valid; an invalid 0.6 image
    document is INVALID, the error naming its key and JSON path."""
    scene = tmp_path / "scene.zarr"
    scene.mkdir()
    doc = json.loads(
        (CORPUS / "0.6rc0/zarr_json/valid/example-scene-scene_stitching.json").read_text()
    )
    (scene / "zarr.json").write_text(json.dumps(doc))
    code, out, _ = run(["validate", str(scene)], capsys)
    assert code == 0 and "valid: 1 groups checked, 0 errors" in out
    bad = tmp_path / "bad.zarr"
    attrs = _attrs("zarr_json/valid/example-image-multiscales_transformations.json")
    attrs["ome"]["multiscales"][0]["coordinateTransformations"][0]["scale"] = [10, 10, 10]
    _write(bad, attrs, ((12, 10),))
    code, out, _ = run(["validate", str(bad)], capsys)
    assert code == 1
    assert "zarr.json" in out and "has 3 values, the input 2 axes" in out
    assert "$.attributes.ome.multiscales[0].coordinateTransformations[0].scale" in out


def test_metadata_edit_refused(image06: tuple[Path, list[np.ndarray]]) -> None:
    """A metadata edit of a 0.6 image is refused (it rewrote the group as 0.5); the document
    stays as stored; writes into the arrays stay allowed."""
    path, _ = image06
    before = (path / "zarr.json").read_bytes()
    with ngio_async.open(str(path), mode="r+") as ds:
        with pytest.raises(UnsupportedError, match=r"cannot edit the metadata of an NGFF 0\.6rc0"):
            ds.set_channels(["a", "b"])
        with pytest.raises(UnsupportedError, match=r"to add label image 'cells'.*nothing was read"):
            ds.labels.create("cells", dtype="uint16")  # refused before any I/O, naming it
        with pytest.raises(UnsupportedError, match=r"cannot build the pyramid of an NGFF 0\.6"):
            ds.build_pyramid(levels=4)  # it created the new level's array, then failed
    assert (path / "zarr.json").read_bytes() == before
    assert sorted(p.name for p in path.iterdir()) == ["s0", "s1", "s2", "zarr.json"]


async def test_tile_server(image06: tuple[Path, list[np.ndarray]]) -> None:
    """ngio-async serve's app summarises and tiles a 0.6 image."""
    from aiohttp.test_utils import TestClient, TestServer

    from ngio_async.web import create_app

    path, data = image06
    async with TestClient(TestServer(create_app({"img": str(path)}))) as client:
        resp = await client.get("/api/datasets/img")
        assert resp.status == 200
        doc = await resp.json()
        assert doc["ngff_version"] == "0.6rc0"
        assert [a["name"] for a in doc["axes"]] == list("tczyx")
        assert doc["levels"][2]["translation"] == [0, 0, 0.75, 0.75, 0.75]
        resp = await client.get("/api/datasets/img/region.npy?level=1&c=1&z=0:1&y=0:8&x=0:8")
        assert resp.status == 200
        got = np.load(io.BytesIO(await resp.read()))  # c=1, z=0 of level 1
        np.testing.assert_array_equal(got.squeeze(), data[1][0, 1, 0])


def test_plate(tmp_path: Path) -> None:
    """A 0.6 plate opens (fields are 0.6 images), converts to a 0.5 plate, and refuses
    writes (an added field would be a 0.5 image in a 0.6 hierarchy)."""
    root = tmp_path / "plate.zarr"
    plate_attrs = _attrs("zarr_json/valid/example-plate-plate_2wells.json")
    group = zarr.open_group(str(root), mode="w", zarr_format=3)
    group.attrs.update(plate_attrs)
    wells = plate_attrs["ome"]["plate"]["wells"]
    image_attrs = _attrs("zarr_json/valid/example-image-multiscales_example.json")
    for w in wells:
        well = zarr.open_group(str(root / w["path"]), mode="w", zarr_format=3)
        well.attrs.update({"ome": {"version": "0.6rc0", "well": {"images": [{"path": "0"}]}}})
    fields = [_write(root / w["path"] / "0", image_attrs, SHAPES) for w in wells]
    before = (root / "zarr.json").read_bytes()
    with ngio_async.open_plate(str(root), mode="r+") as plate:
        assert plate.version == "0.6rc0" and plate.wells == [w["path"] for w in wells]
        row, col = wells[1]["path"].split("/")
        with plate.image(row, col, field="0") as fov:
            assert fov.metadata.axis_names == ("t", "c", "z", "y", "x")
            np.testing.assert_array_equal(fov.read(level=2), fields[1][2])
        with pytest.raises(UnsupportedError, match=r"cannot write to an NGFF 0\.6rc0 plate"):
            plate.add_image(row, col, field="1", shape=(2, 8, 8), dtype="uint8", axes="cyx")
    assert (root / "zarr.json").read_bytes() == before
    assert not (root / wells[1]["path"] / "1").exists()
    out = tmp_path / "plate05.zarr"
    result = ngio_async.convert_sync(str(root), str(out))
    assert result.ngff_version == "0.5"
    with ngio_async.open_plate(str(out)) as plate05:
        assert plate05.version == "0.5"
        with plate05.image(row, col, field="0") as fov:
            assert fov.metadata.ngff_version == "0.5"
            np.testing.assert_array_equal(fov.read(level=0), fields[1][0])


async def test_over_http(http_root: Path, http_server: StaticServer) -> None:
    """A 0.6 image on a plain HTTP server (no listing) reads as on disk."""
    data = _write(
        http_root / "img06.zarr",
        _attrs("zarr_json/valid/example-image-multiscales_example.json"),
        SHAPES,
    )
    async with await ngio_async.open_async(f"{http_server.url}img06.zarr") as ds:
        assert ds.metadata.ngff_version == "0.6rc0"
        assert ds.metadata.axis_names == ("t", "c", "z", "y", "x")
        np.testing.assert_array_equal(await ds.read(level=1), data[1])


async def test_label_create_refused_before_any_request(
    image06: tuple[Path, list[np.ndarray]],
) -> None:
    """labels.create on a 0.6 image makes no request (it made a GET, then refused without
    naming the label or the image)."""
    from ngio_async.stores import InstrumentedStore, open_store

    path, _ = image06
    store = InstrumentedStore(open_store(str(path)))
    async with ngio_async.open_async(store, mode="r+") as ds:
        store.reset()
        with pytest.raises(UnsupportedError, match=r"add label image 'cells'"):
            await ds.labels.create("cells", dtype="uint16")
        assert store.total_requests == 0
