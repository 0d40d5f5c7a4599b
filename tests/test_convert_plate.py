"""``convert`` / ``ngio-async convert`` of HCS plates between NGFF 0.4 and 0.5: the plate, well
and field documents in the target version, every field image converted as images are (pixels,
levels, labels, metadata), the plate group written last; checked with ome-zarr-models,
ome-zarr-py and ngio."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest

import ngio_async
from ngio_async import ExistsError, Limits, UnsupportedError
from ngio_async.cli import main
from ngio_async.cli._validate import validate_hierarchy
from ngio_async.convert._plate import _field_limits
from ngio_async.convert._resume import is_complete
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server

FIELDS = {("A/1", "0"): 0, ("A/1", "1"): 1, ("B/2", "0"): 0}  # (well, field): acquisition


def field_pixels(i: int) -> np.ndarray[Any, np.dtype[np.uint16]]:
    return np.random.default_rng(i).integers(0, 4000, (2, 32, 24), dtype=np.uint16)


async def make_plate(url: Any, version: str, **options: Any) -> None:
    """A 2 x 3 plate with two acquisitions, three fields in two wells, a label image in one."""
    async with ngio_async.create_plate_async(
        url,
        rows=["A", "B"],
        columns=["1", "2", "3"],
        acquisitions=[{"id": 0, "name": "day 1"}, {"id": 1, "maximumfieldcount": 2}],
        name="screen",
        ngff_version=version,  # type: ignore[arg-type]
        **options,
    ) as plate:
        for i, ((well, field), acq) in enumerate(FIELDS.items()):
            async with await plate.add_image(
                well,
                field=field,
                acquisition=acq,
                shape=(2, 32, 24),
                dtype="uint16",
                axes="cyx",
                channels=["DAPI", "GFP"],
                chunks=(1, 16, 16),
                levels=2,
            ) as ds:
                await ds.write(field_pixels(i), pyramid=True)
                if i == 0:
                    cells = await ds.labels.create("cells", dtype="uint32")
                    await cells.write(np.arange(32 * 24, dtype=np.uint32).reshape(32, 24))


def plate_doc(path: Path, version: str) -> dict[str, Any]:
    if version == "0.4":
        attrs: dict[str, Any] = json.loads((path / ".zattrs").read_text())
        return attrs
    ome: dict[str, Any] = json.loads((path / "zarr.json").read_text())["attributes"]["ome"]
    return ome


async def check_same_plate(src: Any, dst: Any, version: str, **options: Any) -> None:
    """``dst`` is ``src`` in NGFF ``version``: layout, wells, fields, pixels of every level,
    labels and channel metadata."""
    async with (
        ngio_async.open_plate_async(src, **options) as a,
        ngio_async.open_plate_async(dst) as b,
    ):
        assert b.version == version
        assert (b.rows, b.columns, b.wells, b.name) == (a.rows, a.columns, a.wells, a.name)
        assert b.metadata.wells == a.metadata.wells  # rowIndex / columnIndex kept
        assert b.acquisitions == a.acquisitions
        assert await b.image_paths() == await a.image_paths()
        for well in a.wells:
            assert (await b.well(well)).images == (await a.well(well)).images  # acquisitions
        for well, field in await a.image_paths():
            async with (
                await a.image(well, field=field) as x,
                await b.image(well, field=field) as y,
            ):
                assert y.metadata.ngff_version == version
                assert (y.axes, y.dtype, y.metadata.paths) == (x.axes, x.dtype, x.metadata.paths)
                assert [c.label for c in y.metadata.channels] == ["DAPI", "GFP"]
                for i in range(len(x.levels)):
                    np.testing.assert_array_equal(await y.read(level=i), await x.read(level=i))
                assert await y.labels.names() == await x.labels.names()
                for name in await x.labels.names():
                    lx, ly = await x.labels.open(name), await y.labels.open(name)
                    async with lx, ly:
                        np.testing.assert_array_equal(await ly.read(), await lx.read())


@pytest.mark.parametrize(("source", "target"), [("0.4", "0.5"), ("0.5", "0.4")])
async def test_convert_a_plate_between_versions(tmp_path: Path, source: str, target: str) -> None:
    src, dst = tmp_path / "src.zarr", tmp_path / "dst.zarr"
    await make_plate(src, source)
    result = await ngio_async.convert(src, dst, ngff_version=target)  # type: ignore[arg-type]
    assert (result.kind, result.ngff_version, result.fields) == ("plate", target, 3)
    assert (result.wells, result.labels) == (("A/1", "B/2"), ("cells",))
    await check_same_plate(src, dst, target)
    assert [p.line() for p in (await validate_hierarchy(str(dst))).errors] == []
    # one zarr format throughout: no document of the source's version is left
    other = "zarr.json" if target == "0.4" else ".zattrs"
    assert not list(dst.rglob(other))
    doc = plate_doc(dst, target)
    acquisitions = plate_doc(src, source)["plate"]["acquisitions"]
    assert doc["plate"]["acquisitions"] == acquisitions
    assert [(a["id"], a["name"]) for a in acquisitions] == [(0, "day 1"), (1, "1")]
    # ome-zarr-models' HCS model of the target version takes the whole plate (in a fresh
    # interpreter, as in test_plate.py: importing ngio makes it refuse v2 arrays)
    pytest.importorskip("ome_zarr_models")
    code = (
        "import sys, warnings, zarr\n"
        f"from ome_zarr_models.v0{target[-1]}.hcs import HCS\n"
        "warnings.simplefilter('ignore')\n"  # 0.5: no plate.version (ome-zarr-models #218)
        "hcs = HCS.from_zarr(zarr.open_group(sys.argv[1], mode='r'))\n"
        "print(hcs.n_wells, len(list(hcs.well_groups)))\n"
    )
    done = await anyio.run_process([sys.executable, "-c", code, str(dst)], check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().split() == ["2", "2"]


NGIO_SCRIPT = """
import sys, warnings
warnings.simplefilter("ignore")
import numpy as np, ngio
plate = ngio.open_ome_zarr_plate(sys.argv[1])
print(plate.rows, plate.columns, plate.acquisition_ids)
for key, container in sorted(plate.get_images().items()):
    image = container.get_image()
    print(key, image.shape, int(np.asarray(image.get_array()).sum()), container.list_labels())
"""


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
async def test_peer_tools_read_the_converted_plate(tmp_path: Path) -> None:
    pytest.importorskip("ome_zarr")
    src, dst = tmp_path / "src.zarr", tmp_path / "dst.zarr"
    await make_plate(src, "0.4")
    await ngio_async.convert(src, dst, ngff_version="0.5")
    from ome_zarr.io import parse_url  # type: ignore[import-untyped]
    from ome_zarr.reader import Reader  # type: ignore[import-untyped]

    nodes = list(Reader(parse_url(str(dst)))())
    assert [type(s).__name__ for s in nodes[0].specs] == ["Plate"]
    # ome-zarr-py tiles the fields into one plate image (its well grid)
    assert len(nodes[0].data) == 2 and nodes[0].data[0].shape[0] == 2
    out = await anyio.run_process([sys.executable, "-c", NGIO_SCRIPT, str(dst)], check=False)
    stderr = out.stderr.decode()
    if out.returncode and "No module named 'ngio'" in stderr:
        pytest.skip("ngio is not installed")
    assert out.returncode == 0, stderr
    lines = out.stdout.decode().splitlines()
    assert lines[0] == "['A', 'B'] ['1', '2', '3'] [0, 1]"
    expected = [
        f"{w}/{f} (2, 32, 24) {int(field_pixels(i).sum())} {['cells'] if i == 0 else []}"
        for i, (w, f) in enumerate(FIELDS)
    ]
    assert lines[1:] == expected


async def test_an_interrupted_plate_conversion_looks_incomplete(tmp_path: Path) -> None:
    """The plate group is written last: a conversion that fails on a field leaves no plate
    (a plain group marked unfinished), running it again replaces the leftovers (no
    ``overwrite`` needed), and ``convert_many`` then skips the complete plate."""
    src, dst = tmp_path / "src.zarr", tmp_path / "out" / "src.ome.zarr"
    await make_plate(src, "0.5")
    chunk = src / "B" / "2" / "0" / "0" / "c" / "1" / "0" / "0"
    good = chunk.read_bytes()
    chunk.write_bytes(b"not a shard at all")
    with pytest.raises(ngio_async.CodecError):  # one field at a time: B/2/0 comes last
        await ngio_async.convert(src, dst, limits=Limits(decode_threads=1))
    assert (dst / "A" / "1" / "1" / "zarr.json").exists()  # fields were written ...
    assert "ome" not in json.loads((dst / "zarr.json").read_text())["attributes"]  # no plate
    assert not await is_complete(dst)
    chunk.write_bytes(good)
    result = await ngio_async.convert(src, dst)
    assert not result.skipped
    await check_same_plate(src, dst, "0.5")
    with pytest.raises(ExistsError):  # complete now: a plate of ours is no leftover
        await ngio_async.convert(src, dst)
    again = (await ngio_async.convert_many([src], tmp_path / "out"))[str(src)]
    assert isinstance(again, ngio_async.ConvertResult)
    assert (again.skipped, again.kind, again.fields, again.wells) == (
        True,
        "plate",
        3,
        result.wells,
    )


async def test_plate_refusals_write_nothing(tmp_path: Path) -> None:
    src = tmp_path / "src.zarr"
    await make_plate(src, "0.5")
    with pytest.raises(ValueError, match="lies inside the source"):
        await ngio_async.convert(src, src / "A" / "copy.zarr")
    with pytest.raises(UnsupportedError, match="sharding needs zarr v3"):
        await ngio_async.convert(src, tmp_path / "a.zarr", ngff_version="0.4", shards=(1, 32, 32))
    with pytest.raises(
        ValueError, match=r"field [AB]/[12]/[01] of plate .*: chunks .*one per axis"
    ):
        # (leading 1s beyond the fields' axes would be ignored: 2 is not)
        await ngio_async.convert(src, tmp_path / "b.zarr", chunks=(2, 1, 16, 16))
    assert not (tmp_path / "a.zarr").exists() and not (tmp_path / "b.zarr").exists()


async def test_convert_a_plate_object_and_a_pending_plate(tmp_path: Path) -> None:
    src = tmp_path / "src.zarr"
    await make_plate(src, "0.4")
    async with ngio_async.open_plate_async(src) as plate:
        result = await ngio_async.convert(plate, tmp_path / "dst.zarr", ngff_version="0.5")
        assert not plate.closed  # a plate given is left open
    assert result.src == plate.url and result.fields == 3
    await check_same_plate(src, tmp_path / "dst.zarr", "0.5")
    # a plate without fields yet converts to a plate without fields (its layout kept)
    async with ngio_async.create_plate_async(
        tmp_path / "empty.zarr", rows=["C"], columns=["7", "8"], field_count=4, ngff_version="0.4"
    ):
        pass
    result = await ngio_async.convert(tmp_path / "empty.zarr", tmp_path / "e5.zarr")
    assert (result.kind, result.wells, result.fields) == ("plate", (), 0)
    result = await ngio_async.convert(
        tmp_path / "empty.zarr", tmp_path / "e5.zarr", ngff_version="0.5", overwrite=True
    )
    async with ngio_async.open_plate_async(tmp_path / "e5.zarr", mode="r+") as empty:
        assert (empty.version, empty.rows, empty.columns, empty.field_count) == (
            "0.5",
            ["C"],
            ["7", "8"],
            4,
        )
        await empty.add_image("C/8", shape=(8, 8), dtype="uint8")
        assert empty.wells == ["C/8"]


async def test_convert_a_plate_on_s3(s3_server: S3Server, tmp_path: Path) -> None:
    url, options = s3_server.fresh_url() + "/plate.zarr", s3_server.options()
    await make_plate(url, "0.4", **options)
    dst = tmp_path / "dst.zarr"
    await ngio_async.convert(url, dst, ngff_version="0.5", src_options=options)
    await check_same_plate(url, dst, "0.5", **options)
    back = s3_server.fresh_url() + "/back.zarr"
    await ngio_async.convert(dst, back, ngff_version="0.4", dst_options=options)
    async with ngio_async.open_plate_async(back, **options) as plate:
        assert (plate.version, plate.wells) == ("0.4", ["A/1", "B/2"])
        async with await plate.image("B/2") as ds:
            np.testing.assert_array_equal(await ds.read(), field_pixels(2))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_convert_an_ome_zarr_py_plate(tmp_path: Path, version: str) -> None:
    pytest.importorskip("ome_zarr")
    from test_plate import write_with_ome_zarr_py

    src = tmp_path / "omz.zarr"
    data = write_with_ome_zarr_py(src, version)
    target = "0.5" if version == "0.4" else "0.4"
    await ngio_async.convert(src, tmp_path / "dst.zarr", ngff_version=target)  # type: ignore[arg-type]
    async with ngio_async.open_plate_async(tmp_path / "dst.zarr") as plate:
        assert (plate.version, plate.name, plate.wells) == (target, "omz", ["A/1", "B/2"])
        for key, expected in data.items():
            well, field = key.rsplit("/", 1)
            async with await plate.image(well, field=field) as ds:
                np.testing.assert_array_equal(await ds.read(), expected)


def test_cli_converts_a_plate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "src.zarr"
    anyio.run(make_plate, src, "0.4")
    assert main(["convert", str(src), str(tmp_path / "dst.zarr"), "--ngff-version", "0.5"]) == 0
    assert "plate: 2 wells, 3 fields" in capsys.readouterr().out
    with ngio_async.open_plate(tmp_path / "dst.zarr") as plate:
        assert (plate.version, plate.wells) == ("0.5", ["A/1", "B/2"])


def test_fields_convert_a_few_at_a_time_within_the_limits() -> None:
    limits = Limits(decode_threads=3, prefetch_tiles=16, prefetch_bytes=300, cache_bytes=600)
    assert _field_limits(limits, 10) == (
        3,
        Limits(decode_threads=3, prefetch_tiles=5, prefetch_bytes=100, cache_bytes=200),
    )
    assert _field_limits(limits, 1) == (1, limits)
    assert _field_limits(Limits(decode_threads=8, prefetch_tiles=2), 100)[1].prefetch_tiles == 1


async def test_the_plate_root_is_checked_once_not_per_field(tmp_path: Path) -> None:
    """The destination's plate root is refused or cleared once: every field's own check (four
    probes, one per ancestor and a listing each) found nothing new on a listing store."""
    src = tmp_path / "src.zarr"
    await make_plate(src, "0.4")
    dst = InstrumentedStore(open_store("memory://"))
    await ngio_async.convert(src, dst, ngff_version="0.5")
    assert [k for m, k in dst.calls if m == "list"] == [""]
    assert sorted(k for m, k in dst.calls if m == "exists") == [
        ".zarray",
        ".zattrs",
        ".zgroup",
        "zarr.json",
    ]
    await check_same_plate(src, dst, "0.5")


async def test_convert_many_redoes_a_plate_asked_with_other_levels(tmp_path: Path) -> None:
    """A complete plate output was skipped whatever ``levels`` asked (an image's is converted
    again): the plate's result has its first field's levels, compared as an image's."""
    src, out = tmp_path / "src.zarr", tmp_path / "out"
    await make_plate(src, "0.5")  # fields of 2 levels
    first = (await ngio_async.convert_many([src], out))[str(src)]
    assert isinstance(first, ngio_async.ConvertResult) and first.levels == 2
    again = (await ngio_async.convert_many([src], out, levels=3))[str(src)]
    assert isinstance(again, ngio_async.ConvertResult)
    assert (again.skipped, again.levels) == (False, 3)
    same = (await ngio_async.convert_many([src], out, levels=3))[str(src)]
    assert isinstance(same, ngio_async.ConvertResult)
    assert (same.skipped, same.levels) == (True, 3)
    async with ngio_async.open_plate_async(out / "src.ome.zarr") as plate:
        for well, field in await plate.image_paths():
            async with await plate.image(well, field=field) as ds:
                assert len(ds.levels) == 3


@pytest.mark.parametrize(("source", "target"), [("0.4", "0.5"), ("0.5", "0.4")])
async def test_a_bioformats2raw_plate_keeps_its_ome_xml(
    tmp_path: Path, source: str, target: str
) -> None:
    """bioformats2raw writes plates with an ``OME`` group holding ``METADATA.ome.xml``: it was
    dropped (the plate kept its ``bioformats2raw.layout`` key)."""
    src, dst = tmp_path / "src.zarr", tmp_path / "dst.zarr"
    await make_plate(src, source)
    if source == "0.4":
        attrs = json.loads((src / ".zattrs").read_text())
        (src / ".zattrs").write_text(json.dumps({**attrs, "bioformats2raw.layout": 3}))
        (src / "OME").mkdir()
        (src / "OME" / ".zgroup").write_text('{"zarr_format": 2}')
    else:
        doc = json.loads((src / "zarr.json").read_text())
        doc["attributes"]["ome"]["bioformats2raw.layout"] = 3
        (src / "zarr.json").write_text(json.dumps(doc))
        (src / "OME").mkdir()
        ome = {"version": "0.5", "series": []}
        group = {"zarr_format": 3, "node_type": "group", "attributes": {"ome": ome}}
        (src / "OME" / "zarr.json").write_text(json.dumps(group))
    xml = b'<?xml version="1.0" encoding="UTF-8"?><OME><Plate ID="Plate:0"/></OME>'
    (src / "OME" / "METADATA.ome.xml").write_bytes(xml)
    await ngio_async.convert(src, dst, ngff_version=target)  # type: ignore[arg-type]
    assert (dst / "OME" / "METADATA.ome.xml").read_bytes() == xml
    assert (dst / "OME" / ("zarr.json" if target == "0.5" else ".zgroup")).exists()
    assert plate_doc(dst, target)["bioformats2raw.layout"] == 3
    # (not validate_hierarchy: it asks a bioformats2raw plate for a series '0' and its OME
    # group for NGFF keys, already in the source)
    await check_same_plate(src, dst, target)


def test_convert_sync_takes_the_blocking_apis_plate_and_dataset(tmp_path: Path) -> None:
    """``convert_sync(ngio_async.open_plate(...), ...)`` (or a ``SyncDataset``) was a
    TypeError 'expected a URL, path or store, got SyncPlate'."""
    src = tmp_path / "src.zarr"
    anyio.run(make_plate, src, "0.4")
    with ngio_async.open_plate(src) as plate:
        result = ngio_async.convert_sync(plate, tmp_path / "p5.zarr", ngff_version="0.5")
        assert (result.kind, result.fields) == ("plate", 3)
        with plate.image("B/2") as ds:
            image = ngio_async.convert_sync(ds, tmp_path / "f5.zarr", ngff_version="0.5")
            assert image.shape == (2, 32, 24)
        assert not plate.closed
    with ngio_async.open(tmp_path / "f5.zarr") as ds:
        np.testing.assert_array_equal(ds[...], field_pixels(2))
    anyio.run(check_same_plate, src, tmp_path / "p5.zarr", "0.5")


@pytest.mark.parametrize("missing", ["field", "well"])
async def test_listed_fields_or_wells_that_do_not_exist_are_left_out(
    tmp_path: Path, missing: str
) -> None:
    """A plate whose well lists a field (or whose plate lists a well) with no group: the rest
    converts, with a warning, and the listings name only what was written (the conversion
    failed: "no OME-Zarr group at .../A/1/1")."""
    import shutil

    from ngio_async.meta import MetadataWarning

    src, dst = tmp_path / "src.zarr", tmp_path / "dst.zarr"
    await make_plate(src, "0.4")
    shutil.rmtree(src / "A" / "1" / "1" if missing == "field" else src / "B" / "2")
    with pytest.warns(MetadataWarning, match=f"{missing} .* does not exist"):
        result = await ngio_async.convert(src, dst, ngff_version="0.5")
    assert result.fields == 2
    assert result.wells == (("A/1", "B/2") if missing == "field" else ("A/1",))
    assert [p.line() for p in (await validate_hierarchy(str(dst))).errors] == []
    async with ngio_async.open_plate_async(dst) as plate:
        expected = (
            [("A/1", "0"), ("B/2", "0")] if missing == "field" else [("A/1", "0"), ("A/1", "1")]
        )
        assert await plate.image_paths() == expected
        for well, field in expected:
            row, column = well.split("/")
            async with await plate.image(row, column, field=field) as fov:
                i = list(FIELDS).index((well, field))
                np.testing.assert_array_equal(await fov.read(), field_pixels(i))
