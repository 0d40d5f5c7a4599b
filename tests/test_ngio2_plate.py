"""ngio 1.1.3's plate operations in ngio_async, compared with ngio on the same plates (NGFF 0.4
and 0.5): ``remove_image`` (``plate.remove_image``) and ``derive_ome_zarr_plate``
(``create_plate_like``), async and blocking, local and on the moto S3 server."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async
from ngio_async import NotFoundError, ReadOnlyError

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]


async def _plate(url: Any, version: str, **options: Any) -> None:
    async with ngio_async.create_plate_async(
        url,
        rows=["A", "B"],
        columns=["1", "2"],
        acquisitions=[{"id": 0, "name": "first", "maximumfieldcount": 2}],
        field_count=2,
        name="screen",
        ngff_version=version,  # type: ignore[arg-type]
        **options,
    ) as plate:
        for well, field in (("A/1", "0"), ("A/1", "1"), ("B/2", "0")):
            ds = await plate.add_image(
                well, field=field, acquisition=0, shape=(8, 8), dtype="uint8", axes="yx"
            )
            await ds.write(np.full((8, 8), 7, np.uint8))
            await ds.aclose()


def _ngio_layout(path: Path) -> Any:
    import ngio

    plate = ngio.open_ome_zarr_plate(str(path))
    wells = plate.wells_paths()
    return wells, {w: plate.get_well(*w.split("/")).paths() for w in wells}


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_remove_image_matches_ngio(tmp_path: Path, version: str) -> None:
    import ngio

    await _plate(tmp_path / "a.zarr", version)
    shutil.copytree(tmp_path / "a.zarr", tmp_path / "b.zarr")
    theirs = ngio.open_ome_zarr_plate(str(tmp_path / "a.zarr"))
    theirs.remove_image("A", "1", "0")
    theirs.remove_image("B", "2", "0")  # its well's last field: the well goes too
    async with ngio_async.open_plate_async(tmp_path / "b.zarr", mode="r+") as plate:
        await plate.remove_image("A", "1", field="0")
        await plate.remove_image("B/2", field=0)
        assert plate.wells == ["A/1"]
        assert (await plate.well("A/1")).fields == ["1"]
        with pytest.raises(NotFoundError, match="'0'"):
            await plate.remove_image("A", "1", field="0")
        with pytest.raises(NotFoundError, match="B/2"):
            await plate.remove_image("B", "2", field="0")
    assert _ngio_layout(tmp_path / "b.zarr") == _ngio_layout(tmp_path / "a.zarr")
    # ngio keeps the data, and so does remove_image by default
    assert (tmp_path / "b.zarr" / "B" / "2" / "0").exists()
    async with ngio_async.open_async(tmp_path / "b.zarr", path="A/1/0") as ds:
        assert int((await ds.read()).sum()) == 7 * 64


async def test_remove_image_deletes_the_data_when_asked(tmp_path: Path) -> None:
    await _plate(tmp_path / "a.zarr", "0.5")
    async with ngio_async.open_plate_async(tmp_path / "a.zarr", mode="r+") as plate:
        await plate.remove_image("A", "1", field="1", delete=True)
        await plate.remove_image("B", "2", field="0", delete=True)
        assert plate.wells == ["A/1"]
        # the field may be added again (its place is free)
        ds = await plate.add_image("B", "2", acquisition=0, shape=(4, 4), dtype="uint8")
        await ds.aclose()
    assert not (tmp_path / "a.zarr" / "A" / "1" / "1").exists()
    async with ngio_async.open_plate_async(tmp_path / "a.zarr") as plate:
        assert plate.wells == ["A/1", "B/2"]
        assert await plate.image_paths() == [("A/1", "0"), ("B/2", "0")]
        with pytest.raises(ReadOnlyError):
            await plate.remove_image("A", "1", field="0")


async def test_a_failed_delete_leaves_the_field_unlisted(tmp_path: Path) -> None:
    """Fault injection: deleting the field's objects fails; it is unlisted already (the plate
    never lists a field whose data is missing), its well too when it was the last."""
    await _plate(tmp_path / "a.zarr", "0.5")
    async with ngio_async.open_plate_async(tmp_path / "a.zarr", mode="r+") as plate:
        store: Any = plate.store

        async def failing(keys: Any) -> None:
            raise OSError("injected: the store fails")

        real, store.delete_many = store.delete_many, failing
        try:
            with pytest.raises(OSError, match="injected"):
                await plate.remove_image("B", "2", field="0", delete=True)
        finally:
            store.delete_many = real
    async with ngio_async.open_plate_async(tmp_path / "a.zarr") as plate:
        assert plate.wells == ["A/1"]


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_create_plate_like_matches_ngio_derive(tmp_path: Path, version: str) -> None:
    import ngio

    await _plate(tmp_path / "src.zarr", version)
    src = ngio.open_ome_zarr_plate(str(tmp_path / "src.zarr"))
    for keep in (False, True):
        theirs = src.derive_plate(str(tmp_path / f"theirs{keep}.zarr"), keep_acquisitions=keep)
        async with (
            ngio_async.open_plate_async(tmp_path / "src.zarr") as plate,
            ngio_async.create_plate_like_async(
                plate, tmp_path / f"mine{keep}.zarr", keep_acquisitions=keep
            ) as mine,
        ):
            assert (mine.rows, mine.columns) == (theirs.rows, theirs.columns)
            assert [a.id for a in mine.acquisitions] == theirs.acquisition_ids
            assert mine.name == theirs.meta.plate.name == "screen"
            assert mine.field_count == theirs.meta.plate.field_count == 2
            assert mine.version == theirs.meta.plate.version == version
            assert mine.wells == theirs.wells_paths() == []  # empty, as ngio's
            acq = 0 if keep else None
            ds = await mine.add_image("B", "2", acquisition=acq, shape=(4, 4), dtype="uint8")
            await ds.aclose()
        # the groups of the source's wells are there; ngio reads the plate
        assert (tmp_path / f"mine{keep}.zarr" / "A" / "1").is_dir()
        assert ngio.open_ome_zarr_plate(str(tmp_path / f"mine{keep}.zarr")).wells_paths() == ["B/2"]


def test_blocking_twins(tmp_path: Path) -> None:
    import anyio

    anyio.run(_plate, tmp_path / "a.zarr", "0.5")
    with ngio_async.open_plate(tmp_path / "a.zarr", mode="r+") as plate:
        plate.remove_image("A", "1", field="1")
        with ngio_async.create_plate_like(plate, tmp_path / "b.zarr", name="copy") as like:
            assert (like.rows, like.columns, like.name) == (["A", "B"], ["1", "2"], "copy")
            assert like.acquisitions == []
    with ngio_async.open_plate(tmp_path / "a.zarr") as plate:
        assert plate.well("A/1").fields == ["0"]


async def test_remove_and_create_like_on_s3(s3_server: S3Server) -> None:
    base = s3_server.fresh_url()
    options = s3_server.options()
    await _plate(base + "/a.zarr", "0.5", **options)
    async with ngio_async.open_plate_async(base + "/a.zarr", mode="r+", **options) as plate:
        await plate.remove_image("B", "2", field="0", delete=True)
        assert await plate.store.list_prefix("B/2/0") == []
        async with ngio_async.create_plate_like_async(
            plate, base + "/b.zarr", keep_acquisitions=True, **options
        ) as like:
            assert like.acquisitions == plate.acquisitions
    async with ngio_async.open_plate_async(base + "/a.zarr", **options) as plate:
        assert plate.wells == ["A/1"]
        assert await plate.image_paths() == [("A/1", "0"), ("A/1", "1")]


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_remove_image_of_a_plate_ngio_wrote(tmp_path: Path, version: str) -> None:
    """ngio's zero-padded columns ("01") found by column=1, as ngio takes it."""
    import ngio
    from ngio import ImageInWellPath

    images = [
        ImageInWellPath(row="A", column=1, path="0"),
        ImageInWellPath(row="A", column=1, path="1"),
        ImageInWellPath(row="B", column=3, path="0"),
    ]
    ngio.create_empty_plate(
        str(tmp_path / "p.zarr"),
        name="p",
        images=images,
        ngff_version=version,  # type: ignore[arg-type]
    )
    async with ngio_async.open_plate_async(tmp_path / "p.zarr", mode="r+") as plate:
        await plate.remove_image("A", 1, field="0")
        await plate.remove_image("B", 3, field="0")
        assert plate.wells == ["A/01"]
    theirs = ngio.open_ome_zarr_plate(str(tmp_path / "p.zarr"))
    assert theirs.wells_paths() == ["A/01"]
    assert theirs.get_well("A", 1).paths() == ["1"]


async def test_create_plate_like_of_a_plate_with_swapped_well_paths(tmp_path: Path) -> None:
    """A 0.4 plate whose well paths are '<column>/<row>' (NGFF 0.4 only warns): the copy's
    wells are taken by position, as '<row>/<column>'."""
    import json

    src = tmp_path / "src.zarr"
    src.mkdir()
    (src / ".zgroup").write_text('{"zarr_format": 2}')
    plate = {
        "version": "0.4",
        "name": "swapped",
        "rows": [{"name": "A"}, {"name": "B"}],
        "columns": [{"name": "1"}, {"name": "2"}],
        "wells": [{"path": "2/B", "rowIndex": 1, "columnIndex": 1}],
    }
    (src / ".zattrs").write_text(json.dumps({"plate": plate}))
    async with (
        ngio_async.open_plate_async(src) as theirs,
        ngio_async.create_plate_like_async(theirs, tmp_path / "like.zarr") as like,
    ):
        assert (like.rows, like.columns, like.name) == (["A", "B"], ["1", "2"], "swapped")
        assert like.version == "0.4"
    assert (tmp_path / "like.zarr" / "B" / "2" / ".zgroup").exists()
