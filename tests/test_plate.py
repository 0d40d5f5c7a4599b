"""HCS plates: open_plate / create_plate / add_image, NGFF 0.4 and 0.5, with interop checks
(zarr-python, ome-zarr-py, ome-zarr-models) and the library's own hierarchy validator."""

from __future__ import annotations

import json
import pickle
import sys
from typing import TYPE_CHECKING, Any, Literal, cast

import anyio
import numpy as np
import pytest
import zarr

import ngio_async
from ngio_async import (
    ExistsError,
    Limits,
    MetadataError,
    NotFoundError,
    ReadOnlyError,
    UnsupportedError,
)
from ngio_async.cli._validate import validate_hierarchy
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server

VERSIONS = ["0.4", "0.5"]
SHAPE = (2, 1, 32, 24)  # c z y x


def pixels(seed: int) -> np.ndarray[Any, np.dtype[np.uint16]]:
    return np.random.default_rng(seed).integers(0, 4000, SHAPE, dtype=np.uint16)


async def errors_of(url: str, **options: Any) -> list[str]:
    report = await validate_hierarchy(url, **options)
    return [p.line() for p in report.errors]


def field_options(**extra: Any) -> dict[str, Any]:
    return {
        "shape": SHAPE,
        "dtype": "uint16",
        "axes": "czyx",
        "channels": ["DAPI", "GFP"],
        "chunks": (1, 1, 16, 16),
        "levels": 2,
        **extra,
    }


async def write_field(plate: ngio_async.Plate, well: str, field: str, seed: int) -> None:
    async with await plate.add_image(well, field=field, **field_options()) as ds:
        await ds.write(pixels(seed), pyramid=True)


# ------------------------------------------------------------------------------ writing
@pytest.mark.parametrize("version", VERSIONS)
async def test_create_add_read_back(tmp_path: Path, version: Literal["0.4", "0.5"]) -> None:
    url = str(tmp_path / "plate.ome.zarr")
    async with ngio_async.create_plate_async(
        url, rows=["A", "B"], columns=["1", "2", "3"], ngff_version=version, name="screen"
    ) as plate:
        assert (plate.rows, plate.columns, plate.wells) == (["A", "B"], ["1", "2", "3"], [])
        assert (plate.version, plate.name, plate.mode) == (version, "screen", "r+")
        # every row and well group exists already, as plain zarr groups
        group = zarr.open_group(url, mode="r")
        assert sorted(group.group_keys()) == ["A", "B"]
        assert sorted(cast("zarr.Group", group["B"]).group_keys()) == ["1", "2", "3"]
        # no field yet: not an NGFF plate (a plate lists >= 1 well, a well >= 1 field) ...
        assert any("no NGFF metadata" in e for e in await errors_of(url))
        # ... but it opens (in any process) with no wells
        async with ngio_async.open_plate_async(url) as pending:
            assert (pending.wells, pending.rows, pending.name) == ([], ["A", "B"], "screen")

        await write_field(plate, "B/2", "0", seed=1)
        assert plate.wells == ["B/2"]
        assert await errors_of(url) == []  # valid after every completed call
        await write_field(plate, "A/3", "0", seed=2)
        assert await errors_of(url) == []
        await write_field(plate, "A/3", "1", seed=3)
        assert await errors_of(url) == []
        assert plate.wells == ["A/3", "B/2"]  # row then column order, whatever the add order

    async with ngio_async.open_plate_async(url) as plate:
        assert plate.wells == ["A/3", "B/2"]
        assert [(w.row_index, w.column_index) for w in plate.metadata.wells] == [(0, 2), (1, 1)]
        well = await plate.well("A", "3")
        assert (well.path, well.row, well.column, well.fields) == ("A/3", "A", "3", ["0", "1"])
        assert await plate.image_paths() == [("A/3", "0"), ("A/3", "1"), ("B/2", "0")]
        for (well_path, field), seed in zip(await plate.image_paths(), (2, 3, 1), strict=True):
            async with await plate.image(well_path, field=field) as ds:
                assert ds.metadata.ngff_version == version
                assert ds.mode == "r"
                np.testing.assert_array_equal(await ds.read(), pixels(seed))
                assert len(ds.levels) == 2
        async with await plate.image("A", 3, field=-1) as ds:  # index into the well's fields
            assert ds.root == "A/3/1"
        assert not plate.store.closed  # closing the field datasets left the store open

    # zarr-python reads the same hierarchy
    group = zarr.open_group(url, mode="r")
    attrs: dict[str, Any] = dict(group.attrs)
    plate_attrs = attrs["ome"]["plate"] if version == "0.5" else attrs["plate"]
    assert [w["path"] for w in plate_attrs["wells"]] == ["A/3", "B/2"]
    assert "ngio_async" not in attrs  # the pending layout is gone once a field exists
    well_attrs: dict[str, Any] = dict(group["A/3"].attrs)
    images = well_attrs["ome"]["well"] if version == "0.5" else well_attrs["well"]
    assert [im["path"] for im in images["images"]] == ["0", "1"]
    np.testing.assert_array_equal(cast("zarr.Array[Any]", group["B/2/0/0"])[:], pixels(1))


@pytest.mark.parametrize("version", VERSIONS)
async def test_ome_zarr_models_validate_the_plate(
    tmp_path: Path, version: Literal["0.4", "0.5"]
) -> None:
    models = pytest.importorskip(f"ome_zarr_models.v0{version[-1]}.hcs")
    url = str(tmp_path / "plate.ome.zarr")
    async with ngio_async.create_plate_async(
        url,
        rows=["A", "B"],
        columns=["1", "2"],
        wells=["A/1", ("B", "2")],
        acquisitions=[{"id": 0, "name": "first"}, 1],
        field_count=2,
        ngff_version=version,
    ) as plate:
        for well, field, acq in (("A/1", "0", 0), ("A/1", "1", 1), ("B/2", "0", 1)):
            async with await plate.add_image(
                well, field=field, acquisition=acq, **field_options()
            ) as ds:
                await ds.write(pixels(0))
        async with await plate.image("A/1", field="0", mode="r+") as ds:
            cells = await ds.labels.create("cells", dtype="uint32")
            await cells.write(np.ones((1, 32, 24), "uint32"))
            await cells.aclose()
    # in a fresh interpreter: importing ngio (tests/test_interop_write.py) in this process
    # makes ome-zarr-models 1.x refuse v2 arrays ("valid instance of GroupSpec")
    code = (
        "import sys, warnings, zarr\n"
        f"from {models.__name__} import HCS\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    hcs = HCS.from_zarr(zarr.open_group(sys.argv[1], mode='r'))\n"
        "    wells = list(hcs.well_groups)\n"
        "print(hcs.n_wells, len(wells), [str(w.message) for w in caught])\n"
    )
    done = await anyio.run_process([sys.executable, "-c", code, url], check=False)
    assert done.returncode == 0, done.stderr.decode()
    n_wells, found, warned = done.stdout.decode().split(" ", 2)
    assert (n_wells, found) == ("2", "2")  # every listed well group found and validated
    if version == "0.5":
        # NGFF 0.5 has one ome.version and no plate.version; ome-zarr-models 1.x warns about
        # the latter (ome-zarr-models-py issue 218), it is no validation error
        assert "'version' field not specified in plate" in warned
    assert await errors_of(url) == []
    async with ngio_async.open_plate_async(url) as plate:
        assert [a.id for a in plate.acquisitions] == [0, 1]
        assert plate.field_count == 2
        assert await plate.image_paths(acquisition=1) == [("A/1", "1"), ("B/2", "0")]
        async with await plate.image("A", "1") as ds:
            assert await ds.labels.names() == ["cells"]


@pytest.mark.parametrize("version", VERSIONS)
async def test_overwrite_a_field_keeps_the_plate_valid(
    tmp_path: Path, version: Literal["0.4", "0.5"]
) -> None:
    url = str(tmp_path / "plate.ome.zarr")
    async with ngio_async.create_plate_async(
        url, rows=["A"], columns=["1", "2"], ngff_version=version
    ) as plate:
        await write_field(plate, "A/1", "0", seed=1)
        await write_field(plate, "A/1", "1", seed=2)
        await write_field(plate, "A/2", "0", seed=3)
        with pytest.raises(ExistsError, match="pass overwrite=True"):
            await plate.add_image("A/1", field="0", **field_options())
        # a field among others: unlisted, replaced, listed again at its place
        async with await plate.add_image(
            "A/1", field="0", overwrite=True, **field_options(dtype="uint8")
        ) as ds:
            assert ds.dtype == np.uint8
        assert (await plate.well("A/1")).fields == ["0", "1"]
        assert await errors_of(url) == []
        # the only field of the only other well: the well leaves the plate meanwhile
        async with await plate.add_image(
            "A/2", field="0", overwrite=True, shape=(16, 16), dtype="uint8"
        ) as ds:
            assert ds.shape == (16, 16)
        assert plate.wells == ["A/1", "A/2"]
        assert await errors_of(url) == []
    async with ngio_async.open_plate_async(url) as plate:
        async with await plate.image("A/1") as ds:
            assert ds.dtype == np.uint8
            assert int((await ds.read()).max()) == 0  # the replaced field starts empty
        async with await plate.image("A/1", field="1") as ds:
            np.testing.assert_array_equal(await ds.read(), pixels(2))


async def test_adding_refusals_happen_before_any_write(tmp_path: Path) -> None:
    url = str(tmp_path / "plate.ome.zarr")
    async with ngio_async.create_plate_async(
        url, rows=["A"], columns=["1"], acquisitions=[0, 1], field_count=1
    ) as plate:
        options = field_options()
        with pytest.raises(ValueError, match="row 'B' is not a row"):
            await plate.add_image("B", "1", acquisition=0, **options)
        with pytest.raises(ValueError, match="column '7' is not a column"):
            await plate.add_image("A", 7, acquisition=0, **options)
        with pytest.raises(ValueError, match="pass acquisition=<id>"):
            await plate.add_image("A", "1", **options)
        with pytest.raises(ValueError, match="acquisition 5 is not one"):
            await plate.add_image("A", "1", acquisition=5, **options)
        with pytest.raises(ValueError, match=r"ngff_version '0\.4'"):
            await plate.add_image("A", "1", acquisition=0, ngff_version="0.4", **options)
        with pytest.raises(ValueError, match="letters and digits"):
            await plate.add_image("A", "1", field="f-1", acquisition=0, **options)
        assert sorted(p.name for p in (tmp_path / "plate.ome.zarr" / "A" / "1").iterdir()) == [
            "zarr.json"
        ]
        await (await plate.add_image("A", "1", acquisition=0, **options)).aclose()
        # field_count is the most fields of any well (NGFF), no bound: raised
        await (await plate.add_image("A", "1", field="1", acquisition=1, **options)).aclose()
        assert plate.field_count == 2
    async with ngio_async.open_plate_async(url) as plate:
        with pytest.raises(ReadOnlyError, match="mode='r'"):
            await plate.add_image("A", "1", field="1", acquisition=0, **options)
    with pytest.raises(ExistsError, match="overwrite=True"):
        await ngio_async.create_plate_async(url, rows=["A"], columns=["1"])
    async with ngio_async.create_plate_async(
        url, rows=["A"], columns=["1"], overwrite=True
    ) as plate:
        assert plate.wells == []
    for bad, message in (
        ({"rows": [], "columns": ["1"]}, "at least one row"),
        ({"rows": ["A"], "columns": ["1"], "wells": ["B/1"]}, "not in the plate"),
        ({"rows": ["A"], "columns": ["1"], "wells": ["A/1", "A/1"]}, "given twice"),
        ({"rows": ["A", "A"], "columns": ["1"]}, "duplicate row name"),
        ({"rows": ["A"], "columns": ["1"], "field_count": 0}, "field_count"),
        ({"rows": ["A"], "columns": ["1"], "ngff_version": "0.6"}, "ngff_version"),
    ):
        with pytest.raises(ValueError, match=message):
            await ngio_async.create_plate_async(tmp_path / "other.zarr", **bad)
    assert not (tmp_path / "other.zarr").exists()


# ------------------------------------------------------------------------------ reading
def write_with_ome_zarr_py(path: Path, version: str) -> dict[str, np.ndarray[Any, Any]]:
    """A 2 x 2 plate with ome-zarr-py: A/1 (fields 0, 1) and B/2 (field 0)."""
    from ome_zarr.format import FormatV04, FormatV05  # type: ignore[import-untyped]
    from ome_zarr.writer import write_image, write_plate_metadata, write_well_metadata  # type: ignore[import-untyped]

    fmt = FormatV04() if version == "0.4" else FormatV05()
    root = zarr.open_group(str(path), mode="w", zarr_format=fmt.zarr_format)
    wells = {"A/1": ["0", "1"], "B/2": ["0"]}
    write_plate_metadata(root, ["A", "B"], ["1", "2"], list(wells), fmt=fmt, name="omz")
    data = {}
    for i, (well_path, fields) in enumerate(wells.items()):
        row, col = well_path.split("/")
        well = root.require_group(row).require_group(col)
        write_well_metadata(well, [{"path": f} for f in fields], fmt=fmt)
        for j, field in enumerate(fields):
            image = np.full((1, 32, 32), 10 * i + j, dtype=np.uint8)
            write_image(image, well.require_group(field), axes="cyx", fmt=fmt, scale_factors=[2])
            data[f"{well_path}/{field}"] = image
    return data


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("version", VERSIONS)
async def test_read_an_ome_zarr_py_plate(tmp_path: Path, version: str) -> None:
    pytest.importorskip("ome_zarr")
    path = tmp_path / "omz.zarr"
    data = write_with_ome_zarr_py(path, version)
    async with ngio_async.open_plate_async(path) as plate:
        assert (plate.version, plate.name) == (version, "omz")
        assert plate.wells == ["A/1", "B/2"]
        assert await plate.image_paths() == [("A/1", "0"), ("A/1", "1"), ("B/2", "0")]
        for key, expected in data.items():
            well_path, field = key.rsplit("/", 1)
            async with await plate.image(well_path, field=field) as ds:
                assert ds.axes == ("c", "y", "x")
                np.testing.assert_array_equal(await ds.read(), expected)
                assert len(ds.levels) == 2


@pytest.mark.parametrize("version", VERSIONS)
async def test_read_a_hand_written_plate(tmp_path: Path, version: str) -> None:
    """Plate and well groups written with zarr-python (acquisitions, field paths that are not
    0..n), fields written by ngio_async as plain images."""
    path = tmp_path / "hand.zarr"
    zarr_format: Literal[2, 3] = 3 if version == "0.5" else 2
    plate_body = {
        "rows": [{"name": "C"}, {"name": "D"}],
        "columns": [{"name": "05"}, {"name": "06"}],
        "wells": [{"path": "D/05", "rowIndex": 1, "columnIndex": 0}],
        "acquisitions": [{"id": 3, "name": "day 1"}, {"id": 4}],
        "field_count": 2,
    }
    well_body = {"images": [{"path": "f7", "acquisition": 4}, {"path": "f2", "acquisition": 3}]}

    def attrs(key: str, body: dict[str, Any]) -> dict[str, Any]:
        if version == "0.5":
            return {"ome": {"version": "0.5", key: body}}
        return {key: {**body, "version": "0.4"}}

    top = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    top.attrs.update(attrs("plate", plate_body))
    top.require_group("D").require_group("05").attrs.update(attrs("well", well_body))
    for i, field in enumerate(("f7", "f2")):
        with ngio_async.create(
            str(path / "D" / "05" / field),
            shape=(16, 16),
            dtype="uint8",
            ngff_version=version,
        ) as ds:
            ds.write(np.full((16, 16), i + 1, np.uint8))
    with ngio_async.open_plate(path) as plate:
        assert plate.wells == ["D/05"] and plate.columns == ["05", "06"]
        assert [a.name for a in plate.acquisitions] == ["day 1", None]
        well = plate.well("D", "05")
        assert well.fields == ["f7", "f2"]
        assert [im.acquisition for im in well.images] == [4, 3]
        assert well.field_paths(acquisition=3) == ["f2"]
        assert plate.image_paths(acquisition=4) == [("D/05", "f7")]
        with plate.image("D", "05", field="f2") as ds:
            assert int(ds[0, 0]) == 2
        with plate.image("D/05") as ds:
            assert int(ds[0, 0]) == 1


async def test_opening_reads_only_the_plate_group(tmp_path: Path) -> None:
    url = str(tmp_path / "plate.ome.zarr")
    rows, cols = ["A", "B", "C"], ["1", "2", "3", "4"]
    async with ngio_async.create_plate_async(url, rows=rows, columns=cols) as plate:
        for r in rows:
            for c in cols:
                await (await plate.add_image(r, c, shape=(8, 8), dtype="uint8")).aclose()
    limits = Limits(max_requests=4)
    store = InstrumentedStore(open_store(url, limits=limits), latency=0.01)
    async with ngio_async.open_plate_async(store) as plate:
        assert [key for _, key in store.calls] == ["zarr.json"]
        assert len(plate.wells) == 12
        paths = await plate.image_paths()
        assert len(paths) == 12
        well_keys = [key for _, key in store.calls if key != "zarr.json"]
        assert sorted(well_keys) == sorted(f"{w}/zarr.json" for w in plate.wells)
        assert 1 < store.peak_in_flight <= 4  # concurrent, bounded by limits.max_requests
        before = sum(store.calls.values())
        await plate.well("B/3")  # cached
        assert sum(store.calls.values()) == before
    await store.aclose()


async def test_errors(tmp_path: Path) -> None:
    url = str(tmp_path / "plate.ome.zarr")
    async with ngio_async.create_plate_async(
        url, rows=["A", "B"], columns=["1", "2"], ngff_version="0.4"
    ) as plate:
        await plate.add_image("A", "1", shape=(8, 8), dtype="uint8")
        with pytest.raises(NotFoundError, match=r"no well 'B/2' .*\(wells: A/1\)"):
            await plate.well("B", "2")
        with pytest.raises(NotFoundError, match="no well 'Z/9'"):
            await plate.image("Z", "9")
        with pytest.raises(NotFoundError, match=r"has no field '3' \(fields: 0\)"):
            await plate.image("A", "1", field="3")
        with pytest.raises(NotFoundError, match="no field index 1"):
            await plate.image("A", "1", field=1)
        with pytest.raises(ValueError, match="'row/column'"):
            await plate.well("A1")
    with pytest.raises(UnsupportedError, match="not an image"):  # a plate is no image
        await ngio_async.open_async(url)
    # not plates: an image, a well, a plain group, nothing
    with pytest.raises(UnsupportedError, match=r"A/1/0/\.zattrs has no 'plate' .*image"):
        await ngio_async.open_plate_async(url, path="A/1/0")
    with pytest.raises(UnsupportedError, match="two levels up"):
        await ngio_async.open_plate_async(url, path="A/1")
    with pytest.raises(
        NotFoundError, match=r"plate\.ome\.zarr/B \(neither zarr\.json nor \.zattrs"
    ):
        await ngio_async.open_plate_async(url, path="B")  # 0.4: a .zgroup alone
    with pytest.raises(NotFoundError):
        await ngio_async.open_plate_async(url, path="nothing")
    v5 = str(tmp_path / "v5.zarr")
    await (await ngio_async.create_plate_async(v5, rows=["A"], columns=["1"])).aclose()
    with pytest.raises(MetadataError, match=r"A/zarr\.json has no 'ome' attributes"):
        await ngio_async.open_plate_async(v5, path="A")
    # a listed well whose group is gone
    for name in (".zattrs", ".zgroup"):
        (tmp_path / "plate.ome.zarr" / "A" / "1" / name).unlink()
    async with ngio_async.open_plate_async(url) as plate:
        with pytest.raises(NotFoundError, match=r"listed by plate .* group is missing"):
            await plate.image_paths()
    # the plate's own metadata broken: the key and JSON path named
    doc = json.loads((tmp_path / "plate.ome.zarr" / ".zattrs").read_text())
    doc["plate"]["wells"][0]["rowIndex"] = -1  # (0.4, out of range: read at the path)
    (tmp_path / "plate.ome.zarr" / ".zattrs").write_text(json.dumps(doc))
    with pytest.raises(MetadataError, match=r"\.zattrs.*rowIndex"):
        await ngio_async.open_plate_async(url)


@pytest.mark.parametrize("version", VERSIONS)
async def test_concurrent_adds(tmp_path: Path, version: Literal["0.4", "0.5"]) -> None:
    """Fields of several wells added at once by one plate object: every one listed."""
    url = str(tmp_path / "plate.ome.zarr")
    rows, cols = ["A", "B"], ["1", "2", "3"]
    async with ngio_async.create_plate_async(
        url, rows=rows, columns=cols, wells=[], ngff_version=version
    ) as plate:

        async def add(well: str, field: str) -> None:
            async with await plate.add_image(well, field=field, shape=(8, 8), dtype="uint8") as ds:
                await ds.write(np.full((8, 8), int(field) + 1, np.uint8))

        async with anyio.create_task_group() as tg:
            for r in rows:
                for c in cols:
                    for f in ("0", "1"):
                        tg.start_soon(add, f"{r}/{c}", f)
        assert plate.wells == [f"{r}/{c}" for r in rows for c in cols]
    assert await errors_of(url) == []
    async with ngio_async.open_plate_async(url) as plate:
        paths = await plate.image_paths()
        assert sorted(paths) == sorted((f"{r}/{c}", f) for r in rows for c in cols for f in "01")
        async with await plate.image("B/3", field="1") as ds:
            assert int((await ds.read())[0, 0]) == 2


async def test_closed_plate(tmp_path: Path) -> None:
    plate = await ngio_async.create_plate_async(tmp_path / "p.zarr", rows=["A"], columns=["1"])
    await plate.add_image("A", "1", shape=(8, 8), dtype="uint8")
    await plate.aclose()
    assert plate.closed and plate.store.closed
    with pytest.raises(ngio_async.ClosedError):
        await plate.well("A/1")
    await plate.aclose()  # idempotent


# ------------------------------------------------------------------------------ S3, sync
async def test_plate_on_s3(s3_server: S3Server) -> None:
    url = s3_server.fresh_url() + "/plate.ome.zarr"
    options = s3_server.options()
    async with ngio_async.create_plate_async(
        url, rows=["A", "B"], columns=["1", "2"], **options
    ) as plate:
        await write_field(plate, "B/1", "0", seed=4)
        await write_field(plate, "A/2", "0", seed=5)
    assert await errors_of(url, **options) == []
    async with ngio_async.open_plate_async(url, **options) as plate:
        assert plate.wells == ["A/2", "B/1"]
        assert await plate.image_paths() == [("A/2", "0"), ("B/1", "0")]
        async with await plate.image("B", "1") as ds:
            np.testing.assert_array_equal(await ds.read(), pixels(4))
            np.testing.assert_array_equal(await ds.read(c="GFP", z=0), pixels(4)[1, 0])


def test_sync_twins(tmp_path: Path) -> None:
    url = str(tmp_path / "plate.ome.zarr")
    with ngio_async.create_plate(url, rows=["A"], columns=["1", "2"], ngff_version="0.4") as plate:
        assert isinstance(plate, ngio_async.SyncPlate)
        assert plate.wells == [] and plate.mode == "r+"
        with plate.add_image("A", "2", **field_options()) as ds:
            ds.write(pixels(7))
        assert plate.wells == ["A/2"]
    assert plate.closed
    with ngio_async.open_plate(url) as plate:
        assert (plate.rows, plate.columns, plate.version) == (["A"], ["1", "2"], "0.4")
        assert plate.metadata.wells[0].path == "A/2"
        assert plate.well("A/2").fields == ["0"]
        assert plate.image_paths() == [("A/2", "0")]
        ds = plate.image("A", "2", field=0)
        try:
            np.testing.assert_array_equal(np.asarray(ds), pixels(7))
            again = pickle.loads(pickle.dumps(ds))  # reopened by URL and path (dask)
            with again:
                assert again.url.endswith("plate.ome.zarr/A/2/0")
                np.testing.assert_array_equal(again.read(c="DAPI"), pixels(7)[0])
        finally:
            ds.close()
        with pytest.raises(ReadOnlyError):
            plate.add_image("A", "1", shape=(8, 8), dtype="uint8")


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_well_of_the_other_ngff_version_is_refused_not_hidden(
    tmp_path: Path, version: Literal["0.4", "0.5"]
) -> None:
    # NGFF: the version MUST be consistent within a hierarchy; writing this plate's document
    # beside the well's other one would hide the fields that one lists
    url = str(tmp_path / "plate.ome.zarr")
    well = tmp_path / "plate.ome.zarr" / "A" / "2"
    async with ngio_async.create_plate_async(
        url, rows=["A"], columns=["1", "2"], ngff_version=version
    ) as plate:
        await write_field(plate, "A/1", "0", seed=1)
        if version == "0.5":  # a 0.4 well (another writer) in a 0.5 plate
            (well / "zarr.json").unlink()
            (well / ".zgroup").write_text('{"zarr_format": 2}')
            (well / ".zattrs").write_text(json.dumps({"well": {"images": [{"path": "0"}]}}))
        else:  # a 0.5 well in a 0.4 plate
            (well / "zarr.json").write_text(
                json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {}})
            )
        with pytest.raises(UnsupportedError, match="must be the same throughout"):
            await write_field(plate, "A/2", "0", seed=2)
        assert plate.wells == ["A/1"]


async def test_an_acquisitions_maximumfieldcount_is_raised_past(tmp_path: Path) -> None:
    """NGFF's maximumfieldcount is the most fields of the acquisition in a well, no bound."""
    url = str(tmp_path / "plate.ome.zarr")
    acquisitions = [{"id": 0, "maximumfieldcount": 1}, {"id": 1}]
    async with ngio_async.create_plate_async(
        url, rows=["A"], columns=["1", "2"], acquisitions=acquisitions
    ) as plate:
        for field, acquisition in (("0", 0), ("1", 1), ("2", 0)):
            await (
                await plate.add_image(
                    "A", "1", field=field, acquisition=acquisition, **field_options()
                )
            ).aclose()
        await (
            await plate.add_image("A", "2", field="0", acquisition=0, **field_options())
        ).aclose()
        assert (await plate.well("A", "1")).fields == ["0", "1", "2"]
        assert [a.maximumfieldcount for a in plate.acquisitions] == [2, 1]
