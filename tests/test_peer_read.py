"""Images and plates written by other tools open unchanged, with their pixels and calibration:
ngff-zarr (0.4 / 0.5, sharded), ome-zarr-models (multiscale-level transformations), the
bioformats2raw layout, and ngio plates with tables (which must not get in the way)."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import zarr

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_ngff_zarr(tmp_path: Path, version: str) -> None:
    nz = pytest.importorskip("ngff_zarr")
    data = np.random.default_rng(0).integers(0, 1000, (2, 3, 32, 24), dtype=np.uint16)
    image = nz.to_ngff_image(
        data,
        dims=["c", "z", "y", "x"],
        scale={"z": 2.0, "y": 0.5, "x": 0.5},
        translation={"z": 0.0, "y": 1.0, "x": 1.0},
        axes_units={"z": "micrometer", "y": "micrometer", "x": "micrometer"},
    )
    path = tmp_path / "nz.ome.zarr"
    options: dict[str, Any] = {"chunks_per_shard": 2} if version == "0.5" else {}
    multiscales = nz.to_multiscales(image, scale_factors=[2], chunks=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nz.to_ngff_zarr(str(path), multiscales, version=version, **options)
    before = snapshot(path)
    with ngio_async.open(path) as ds:
        assert ds.axes == ("c", "z", "y", "x")
        assert ds.metadata.ngff_version == version
        np.testing.assert_array_equal(ds[...], data)
        lower = np.asarray(nz.from_ngff_zarr(str(path)).images[1].data)
        np.testing.assert_array_equal(ds.levels[1][...], lower)
        cal = ds.metadata.spatial_calibration
        assert cal[0]["x"].scale == 0.5 and cal[0]["x"].translation == 1.0
        assert cal[0]["x"].unit == "micrometer" and cal[0]["z"].scale == 2.0
        assert cal[1]["x"].scale == 1.0 and cal[1]["x"].translation == 1.25
    assert snapshot(path) == before


def test_ome_zarr_models_image_with_multiscale_transformations(tmp_path: Path) -> None:
    pytest.importorskip("ome_zarr_models")
    from ome_zarr_models.v05 import Image
    from ome_zarr_models.v05.axes import Axis
    from pydantic_zarr.v3 import ArraySpec

    axes = [
        Axis(name="c", type="channel"),
        Axis(name="y", type="space", unit="micrometer"),
        Axis(name="x", type="space", unit="micrometer"),
    ]
    specs: list[ArraySpec[Any]] = [
        ArraySpec.from_array(np.zeros(shape, "uint16"), dimension_names=["c", "y", "x"])
        for shape in ((2, 16, 16), (2, 8, 8))
    ]
    image = Image.new(
        array_specs=specs,
        paths=["s0", "s1"],
        axes=axes,
        scales=[[1, 0.5, 0.5], [1, 1, 1]],
        translations=[None, [0, 0.25, 0.25]],
        global_scale=[1, 2, 2],
        global_translation=[0, 5, 5],
    )
    path = tmp_path / "ozm.zarr"
    image.to_zarr(zarr.storage.LocalStore(str(path)), path="")  # writes "unit": null, ...
    zarr.open_array(str(path / "s0"))[:] = 7
    with ngio_async.open(path) as ds:
        cal = ds.metadata.spatial_calibration
        assert [c.scale for c in cal] == [(1, 1, 1), (1, 2, 2)]
        assert [c.translation for c in cal] == [(0, 5, 5), (0, 5.5, 5.5)]
        assert int(ds[1, 15, 15]) == 7


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_bioformats2raw_layout(tmp_path: Path, version: str) -> None:
    """The container opens as its first series; every series opens by path."""
    path = tmp_path / "bf.zarr"
    root = zarr.open_group(str(path), mode="w", zarr_format=2 if version == "0.4" else 3)

    def ngff(body: dict[str, Any]) -> dict[str, Any]:
        return body if version == "0.4" else {"ome": {"version": "0.5", **body}}

    root.attrs.update(ngff({"bioformats2raw.layout": 3}))
    for series in ("0", "1"):
        with ngio_async.create(
            str(path / series), shape=(8, 8), dtype="uint8", ngff_version=version
        ) as ds:
            ds.write(np.full((8, 8), int(series) + 1, np.uint8))
    root.create_group("OME").attrs.update(ngff({"series": ["0", "1"]}))
    (path / "OME" / "METADATA.ome.xml").write_text("<OME/>")
    with ngio_async.open(path) as ds:
        assert int(ds[0, 0]) == 1
    with ngio_async.open(path / "1") as ds:
        assert int(ds[0, 0]) == 2
    with pytest.raises(ngio_async.UnsupportedError, match="not an image"):
        ngio_async.open(path / "OME")


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_ngio_plate_with_tables_labels_and_acquisitions(tmp_path: Path, version: str) -> None:
    ngio = pytest.importorskip("ngio")
    from ngio import ImageInWellPath

    path = tmp_path / "plate.zarr"
    images = [
        ImageInWellPath(row="A", column=1, path="0", acquisition_id=0, acquisition_name="a0"),
        ImageInWellPath(row="B", column=3, path="5", acquisition_id=1, acquisition_name="a1"),
    ]
    plate = ngio.create_empty_plate(str(path), name="p", images=images, ngff_version=version)
    for im in images:
        store = plate.get_image_store(im.row, im.column, im.path)
        container = ngio.create_synthetic_ome_zarr(
            store, shape=(2, 32, 32), levels=1, axes_names="cyx", ngff_version=version
        )
        container.add_table("FOV_ROI_table", container.build_image_roi_table("FOV"))
    plate.add_table("plate_table", container.build_image_roi_table("FOV"))
    before = snapshot(path)
    with ngio_async.open_plate(path) as ours:
        assert ours.wells == ["A/01", "B/03"]  # ngio writes column 1 as '01'
        assert [a.id for a in ours.acquisitions] == [0, 1]
        assert ours.image_paths() == [("A/01", "0"), ("B/03", "5")]
        assert ours.image_paths(acquisition=1) == [("B/03", "5")]
        with ours.image("B", "03") as ds:
            assert ds.shape == (2, 32, 32) and "nuclei" in ds.labels.names()
            expected = ngio.open_ome_zarr_container(str(path / "B" / "03" / "5")).get_image()
            np.testing.assert_array_equal(ds[...], expected.get_as_numpy())
    assert snapshot(path) == before


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_bioformats2raw_container_opens_the_series_its_ome_group_lists_first(
    tmp_path: Path, version: str
) -> None:
    """Series need not be called 0, 1, ...: ``OME/series`` names them (the container opened
    series '0', which may not exist)."""
    path = tmp_path / "bf.zarr"
    root = zarr.open_group(str(path), mode="w", zarr_format=2 if version == "0.4" else 3)

    def ngff(body: dict[str, Any]) -> dict[str, Any]:
        return body if version == "0.4" else {"ome": {"version": "0.5", **body}}

    root.attrs.update(ngff({"bioformats2raw.layout": 3}))
    for series, value in (("scan-b", 7), ("scan-a", 9)):
        with ngio_async.create(
            str(path / series), shape=(8, 8), dtype="uint8", ngff_version=version
        ) as ds:
            ds.write(np.full((8, 8), value, np.uint8))
    root.create_group("OME").attrs.update(ngff({"series": ["scan-b", "scan-a"]}))
    with ngio_async.open(path) as ds:
        assert int(ds[0, 0]) == 7


def test_a_label_of_a_bioformats2raw_series_pickles(tmp_path: Path) -> None:
    """A label reopens at its own path (under the series), not under the container."""
    import pickle

    path = tmp_path / "bf.zarr"
    root = zarr.open_group(str(path), mode="w", zarr_format=3)
    root.attrs.update({"ome": {"version": "0.5", "bioformats2raw.layout": 3}})
    with ngio_async.create(str(path / "0"), shape=(8, 8), dtype="uint8") as ds:
        ds.labels.create("m", dtype="uint8").close()
    with ngio_async.open(path) as ds:
        label = ds.labels["m"]
        again = pickle.loads(pickle.dumps(label))
        assert again.shape == (8, 8)
        again.close()
        label.close()
