"""Two processes editing one plate (or one image's labels) lose nothing: every well and field
added, every label image created, is listed; on local disk (``flock`` of the document's
directory), on S3 (moto on 127.0.0.1) and Azure (Azurite): conditional puts, ``If-Match`` on
the version read or create-only.

A spawn pool of 2 workers runs for the module; each round starts both workers' edits at
once (both wait on a shared barrier once they have opened the node) so that their
read-modify-writes of the plate's and the wells' documents interleave. Before ``store.update`` the plate lost wells (15 of 16 listed, say)."""

from __future__ import annotations

import multiprocessing
import time
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from processes import spawned_pool

import ngio_async

if TYPE_CHECKING:
    import threading
    from collections.abc import Iterator
    from multiprocessing.pool import Pool
    from pathlib import Path

    from servers import AzuriteServer, S3Server

ROUNDS = 3
WELLS = [f"{r}/{c}" for r in "ABCD" for c in "1234"]


#: in the workers: the barrier both jobs of a round pass together, and the event the label
#: job of test_image_metadata_edits_keep_labels_another_process_lists sets when done
_shared: tuple[Any, Any] | None = None


@pytest.fixture(scope="module")
def pool() -> Iterator[Pool]:
    ctx = multiprocessing.get_context("spawn")
    with spawned_pool(_share, ((ctx.Barrier(2), ctx.Event()),)) as workers:
        yield workers


def _share(shared: tuple[Any, Any]) -> None:
    global _shared
    _shared = shared


def _wait() -> None:
    """Until the other job of the round is ready too (both start their edits at once)."""
    assert _shared is not None
    _shared[0].wait(60)


def _labels_done() -> threading.Event:
    assert _shared is not None
    event: threading.Event = _shared[1]
    return event


def _add_fields(args: tuple[str, dict[str, Any], list[str]]) -> list[str]:
    """In a worker: add one field to each of ``wells`` of the plate at ``url`` (``"A/1"``, or
    ``"A/1:<field>"``), all at once."""
    url, options, wells = args

    async def main() -> None:
        async with await ngio_async.open_plate_async(url, mode="r+", **options) as plate:
            _wait()

            async def add(item: str) -> None:  # "A/1", or "A/1:<field>"
                well, _, field = item.partition(":")
                image = await plate.add_image(well, field=field or "0", shape=(4, 4), dtype="uint8")
                await image.aclose()

            async with anyio.create_task_group() as tg:
                for well in wells:
                    tg.start_soon(add, well)

    anyio.run(main)
    return wells


def _add_labels(args: tuple[str, dict[str, Any], list[str]]) -> list[str]:
    """In a worker: create each label image of ``names`` on the image at ``url``, all at
    once."""
    url, options, names = args

    async def main() -> None:
        async with ngio_async.open_async(url, mode="r+", **options) as ds:
            _wait()

            async def add(name: str) -> None:
                await (await ds.labels.create(name)).aclose()

            async with anyio.create_task_group() as tg:
                for name in names:
                    tg.start_soon(add, name)

    anyio.run(main)
    return names


def _split(items: list[str]) -> list[list[str]]:
    return [items[0::2], items[1::2]]


def _plate_round(pool: Pool, url: str, options: dict[str, Any], version: str) -> None:
    ngio_async.create_plate(
        url, rows=list("ABCD"), columns=["1", "2", "3", "4"], ngff_version=version, **options
    ).close()
    pool.map(_add_fields, [(url, options, part) for part in _split(WELLS)], chunksize=1)
    with ngio_async.open_plate(url, **options) as plate:
        assert sorted(plate.wells) == sorted(WELLS)
        for well in WELLS:
            assert plate.well(well).fields == ["0"], well


def _labels_round(pool: Pool, url: str, options: dict[str, Any], version: str) -> None:
    ngio_async.create(
        url, shape=(8, 8), dtype="uint8", axes="yx", levels=1, ngff_version=version, **options
    ).close()
    names = [f"l{i}" for i in range(8)]
    pool.map(_add_labels, [(url, options, part) for part in _split(names)], chunksize=1)
    with ngio_async.open(url, **options) as ds:
        assert sorted(ds.labels.names()) == names


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_two_processes_add_fields_to_one_plate_on_disk(
    pool: Pool, tmp_path: Path, version: str
) -> None:
    for i in range(ROUNDS):
        _plate_round(pool, str(tmp_path / f"p{i}.zarr"), {}, version)


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_two_processes_add_labels_to_one_image_on_disk(
    pool: Pool, tmp_path: Path, version: str
) -> None:
    for i in range(ROUNDS):
        _labels_round(pool, str(tmp_path / f"i{i}.zarr"), {}, version)


def test_two_processes_add_fields_to_one_plate_on_s3(pool: Pool, s3_server: S3Server) -> None:
    for _ in range(2):
        _plate_round(pool, s3_server.fresh_url() + "/p.zarr", s3_server.options(), "0.5")


def test_two_processes_add_labels_to_one_image_on_s3(pool: Pool, s3_server: S3Server) -> None:
    for _ in range(2):
        _labels_round(pool, s3_server.fresh_url() + "/i.zarr", s3_server.options(), "0.4")


@pytest.mark.filterwarnings("ignore:Consolidated metadata is currently not part")
def test_two_processes_keep_a_consolidated_copy_current(pool: Pool, tmp_path: Path) -> None:
    """Both processes add fields to one well of a plate whose metadata zarr-python
    consolidated: the copy (which zarr-python reads alone) lists every well and field; a copy
    written last never brings back an older version of a document another process edited."""
    import zarr

    for i in range(ROUNDS):
        url = str(tmp_path / f"c{i}.zarr")
        with ngio_async.create_plate(url, rows=["A", "B"], columns=["1", "2"]) as plate:
            plate.add_image("A/1", shape=(4, 4), dtype="uint8").close()
        zarr.consolidate_metadata(url)
        items = [f"A/1:f{j}" for j in range(6)] + ["A/2", "B/1", "B/2"]
        pool.map(_add_fields, [(url, {}, part) for part in _split(items)], chunksize=1)
        group = zarr.open_consolidated(url)
        attrs: Any = group.attrs.asdict()
        wells = [w["path"] for w in attrs["ome"]["plate"]["wells"]]
        assert sorted(wells) == ["A/1", "A/2", "B/1", "B/2"]
        well: Any = group["A/1"].attrs.asdict()
        fields = sorted(im["path"] for im in well["ome"]["well"]["images"])
        assert fields == ["0"] + [f"f{j}" for j in range(6)]


def test_two_processes_add_fields_and_labels_on_azure(pool: Pool, azurite: AzuriteServer) -> None:
    _plate_round(pool, azurite.fresh_url() + "/p.zarr", azurite.options(), "0.5")
    _labels_round(pool, azurite.fresh_url() + "/i.zarr", azurite.options(), "0.5")


def _add_fields_to_one_well(args: tuple[str, list[str]]) -> int:
    """In a worker: add fields ``names`` to well A/1, all at once; how many were added."""
    url, names = args
    added = 0

    async def main() -> None:
        async with await ngio_async.open_plate_async(url, mode="r+") as plate:
            _wait()

            async def add(name: str) -> None:
                nonlocal added
                image = await plate.add_image("A/1", field=name, shape=(4, 4), dtype="uint8")
                await image.aclose()
                added += 1

            async with anyio.create_task_group() as tg:
                for name in names:
                    tg.start_soon(add, name)

    anyio.run(main)
    return added


def test_two_processes_adding_past_the_field_count_both_land(pool: Pool, tmp_path: Path) -> None:
    """field_count is NGFF's most fields of any well, no bound: both processes' fields land
    and it ends as the well's count."""
    for i in range(ROUNDS):
        url = str(tmp_path / f"f{i}.zarr")
        ngio_async.create_plate(url, rows=["A"], columns=["1"], field_count=4).close()
        names = [f"f{j}" for j in range(8)]
        jobs = [(url, part) for part in _split(names)]
        added = pool.map(_add_fields_to_one_well, jobs, chunksize=1)
        with ngio_async.open_plate(url) as plate:
            fields = plate.well("A/1").fields
            assert sum(added) == len(fields) == 8, (added, fields)
            assert plate.field_count == 8
            for field in fields:  # every listed field opens
                plate.image("A/1", field=field).close()
        well = tmp_path / f"f{i}.zarr" / "A" / "1"
        stored = {p.relative_to(well).parts[0] for p in well.rglob("*") if p.is_file()}
        assert stored == {*fields, "zarr.json"}


def _edit_or_label(args: tuple[str, str, int]) -> int:
    """In a worker, with the other job: ``set_channels`` until the other job has created its
    label images (at least ``n`` times, for at most 1 s), or create ``n`` label images."""
    url, what, n = args
    done = _labels_done()

    async def main() -> None:
        async with ngio_async.open_async(url, mode="r+") as ds:
            _wait()
            if what == "channels":  # until the other's labels are all created (or 1 s)
                i, deadline = 0, time.monotonic() + 1
                while (i < n or not done.is_set()) and time.monotonic() < deadline:
                    await ds.set_channels(labels=[f"c{i}"])
                    i += 1
                done.clear()  # for the next round: its label job starts after we return
                await ds.set_channels(labels=["last"])
            else:
                try:
                    for i in range(n):
                        await (await ds.labels.create(f"l{i}")).aclose()
                finally:
                    done.set()

    anyio.run(main)
    return n


@pytest.mark.filterwarnings("ignore:Consolidated metadata is currently not part")
@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_image_metadata_edits_keep_labels_another_process_lists(
    pool: Pool, tmp_path: Path, version: str
) -> None:
    """``set_channels`` in one process while another creates label images: the image's
    document (0.5: holding the consolidated copy) keeps every label (a plain read-then-write
    of it dropped the other's entries)."""
    import zarr
    from zarr_nodes import zarr_group

    for r in range(2):
        url = str(tmp_path / f"img{r}.ome.zarr")
        ngio_async.create(
            url, shape=(1, 8, 8), dtype="uint8", axes="cyx", levels=1, channels=["x"],
            ngff_version=version,
        ).close()  # fmt: skip
        zarr.consolidate_metadata(url)
        jobs = [(url, "channels", 1), (url, "labels", 6)]  # edits until the labels are done
        assert pool.map(_edit_or_label, jobs, chunksize=1) == [1, 6]
        names = [f"l{i}" for i in range(6)]
        with ngio_async.open(url) as ds:
            assert sorted(ds.labels.names()) == names
            assert ds.metadata.channels[0].label == "last"
        group = zarr.open_consolidated(url, mode="r")
        assert sorted(zarr_group(group, "labels").group_keys()) == names  # the copy lists them too


def _change_image(args: tuple[str, str]) -> str:
    """In a worker: set the image's pixel size to 0.5, or build a pyramid of 2 levels."""
    url, what = args
    with ngio_async.open(url, mode="r+") as ds:
        if what == "scale":
            ds.set_scale(0.5, units="micrometer")
        else:
            ds.build_pyramid(levels=2)
    return what


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_a_label_follows_what_another_process_changed_since_the_open(
    pool: Pool, tmp_path: Path, version: str
) -> None:
    """A label image created from a dataset opened before another process set the image's
    scale (or added a level) gets the image's current scale and levels (it got the cached
    ones: scale 1, one level), and the dataset sees them too."""
    url = str(tmp_path / "img.ome.zarr")
    ngio_async.create(
        url, shape=(2, 16, 16), dtype="uint8", axes="cyx", levels=1, ngff_version=version
    ).close()
    with ngio_async.open(url, mode="r+") as ds:
        assert pool.map(_change_image, [(url, "scale")]) == ["scale"]
        assert pool.map(_change_image, [(url, "levels")]) == ["levels"]
        with ds.labels.create("cells") as label:
            assert [lvl.shape for lvl in label.levels] == [(16, 16), (8, 8)]
            assert label.levels[0].scale == (0.5, 0.5)
        assert ds.levels[0].scale == (1.0, 0.5, 0.5) and len(ds.levels) == 2
        assert ds.metadata.axes[-1].unit == "micrometer"
    with ngio_async.open(url) as ds, ds.labels.open("cells") as label:
        assert label.metadata.spatial_calibration[1].scale == (1.0, 1.0)
        assert label.axes == ("y", "x") and label.metadata.axes[-1].unit == "micrometer"
