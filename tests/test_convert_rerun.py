"""Re-running a ``convert`` that failed part-way (a source read error, a destination write
error, a cancellation): what it left (arrays, chunks, a root group marked unfinished) is
replaced without ``overwrite``, while a real image, or zarr data that is not ours, is still
refused."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest
from test_convert import ArraySource, assert_same, make_source, snapshot
from test_faults_write import NthPut, faulty
from tiffs import ramp

import ngio_async
from ngio_async import ExistsError, StoreError
from ngio_async.convert import is_complete

if TYPE_CHECKING:
    from pathlib import Path

    from numpy.typing import NDArray

pytestmark = pytest.mark.anyio


class NthReadFails(ArraySource):
    """An image source whose ``n``-th read fails (a source read error)."""

    def __init__(self, data: NDArray[Any], n: int) -> None:
        super().__init__(data)
        self.n, self.reads = n, 0

    async def read(self, region: tuple[slice, ...]) -> NDArray[Any]:
        self.reads += 1
        if self.reads == self.n:
            raise OSError("input/output error on the source")
        return self.data[region]


def root_attrs(path: Path) -> dict[str, Any]:
    if (path / "zarr.json").exists():
        return dict(json.loads((path / "zarr.json").read_text())["attributes"])
    return dict(json.loads((path / ".zattrs").read_text()))


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_a_source_failing_part_way_then_a_rerun(tmp_path: Path, version: str) -> None:
    data = ramp((2, 128, 64))
    dst = tmp_path / "f.ome.zarr"
    options: dict[str, Any] = {"chunks": (1, 32, 32), "shards": False, "ngff_version": version}
    with pytest.raises(OSError, match="input/output error"):
        await ngio_async.convert(NthReadFails(data, 5), dst, **options)
    assert (dst / "0").is_dir() and not await is_complete(dst)
    assert "multiscales" not in json.dumps(root_attrs(dst))
    options["levels"] = 2
    result = await ngio_async.convert(ArraySource(data), dst, **options)  # no overwrite
    assert result.levels == 2
    async with ngio_async.open_async(dst) as ds:
        np.testing.assert_array_equal(await ds.read(), data)
        assert ds.metadata.ngff_version == version
    with pytest.raises(ExistsError):  # complete now: a real image is refused again
        await ngio_async.convert(ArraySource(data), dst, **options)
    async with ngio_async.open_async(dst) as ds:  # and left as it was
        np.testing.assert_array_equal(await ds.read(), data)


@pytest.mark.parametrize(("version", "n"), [("0.5", 2), ("0.5", 3), ("0.5", 12), ("0.4", 9)])
async def test_a_destination_failing_the_nth_put_then_a_rerun(
    tmp_path: Path, version: str, n: int
) -> None:
    """OME-Zarr -> OME-Zarr with a label image; the n-th put (a metadata document, a chunk)
    fails as a full disk does."""
    src, dst = tmp_path / "a.zarr", tmp_path / "b.zarr"
    await make_source(src, "0.5" if version == "0.4" else "0.4")
    fail = NthPut(n)
    with pytest.raises(StoreError, match="No space left"):
        await ngio_async.convert(src, faulty(dst, fail), ngff_version=version)  # type: ignore[arg-type]
    assert fail.failed and not await is_complete(dst)
    result = await ngio_async.convert(src, dst, ngff_version=version)  # type: ignore[arg-type]
    assert result.labels == ("cells",)
    assert_same(await snapshot(src), await snapshot(dst))


async def test_a_cancelled_conversion_then_a_rerun(tmp_path: Path) -> None:
    src, dst = tmp_path / "a.zarr", tmp_path / "b.zarr"
    await make_source(src, "0.4")

    with anyio.CancelScope() as scope:

        def progress(done: int, total: int) -> None:
            if done == 4:
                scope.cancel()

        await ngio_async.convert(src, dst, ngff_version="0.5", progress=progress)
    assert scope.cancelled_caught
    assert (dst / "0" / "zarr.json").exists() and not await is_complete(dst)
    await ngio_async.convert(src, dst, ngff_version="0.5")
    assert_same(await snapshot(src), await snapshot(dst))


async def test_a_rerun_into_another_version_replaces_the_leftovers(tmp_path: Path) -> None:
    """0.5 leftovers (zarr.json everywhere), re-run as 0.4: none of them stays behind."""
    data = ramp((2, 64, 64))
    dst = tmp_path / "f.ome.zarr"
    with pytest.raises(OSError, match="input/output error"):
        await ngio_async.convert(NthReadFails(data, 2), dst, chunks=(1, 32, 32))
    await ngio_async.convert(ArraySource(data), dst, chunks=(1, 32, 32), ngff_version="0.4")
    assert not list(dst.rglob("zarr.json"))
    async with ngio_async.open_async(dst) as ds:
        np.testing.assert_array_equal(await ds.read(), data)


async def test_zarr_data_that_is_not_an_unfinished_conversion_is_still_refused(
    tmp_path: Path,
) -> None:
    """Arrays with no root group (not ours), a plain group: refused without ``overwrite``."""
    import zarr

    data = ramp((2, 32, 32))
    loose = tmp_path / "loose"
    zarr.create_array(loose / "0", shape=(4,), dtype="uint8")
    grouped = tmp_path / "grouped"
    zarr.open_group(grouped, mode="w", attributes={"mine": 1})
    zarr.create_array(grouped / "data", shape=(4,), dtype="uint8")
    for dst in (loose, grouped):
        with pytest.raises(ExistsError):
            await ngio_async.convert(ArraySource(data), dst)
        assert (dst / ("data" if dst is grouped else "0") / "zarr.json").exists()


async def test_a_failure_while_building_extra_levels_then_a_rerun(tmp_path: Path) -> None:
    """``levels`` more than the source has: the extra ones are built after the group metadata
    is written; a failure there leaves an image marked unfinished, not a complete-looking one
    with too few levels, and running it again finishes it."""
    src, dst = tmp_path / "a.zarr", tmp_path / "b.zarr"
    data = await make_source(src, "0.5")

    def fail(method: str, key: str) -> BaseException | None:
        return OSError(28, "No space left on device") if key.startswith("2/c/") else None

    with pytest.raises(StoreError, match="No space left"):
        await ngio_async.convert(src, faulty(dst, fail), levels=3)
    assert not await is_complete(dst)
    result = await ngio_async.convert(src, dst, levels=3)
    assert result.levels == 3
    assert await is_complete(dst)
    assert "ngio_async" not in root_attrs(dst)
    async with ngio_async.open_async(dst) as ds:
        assert len(ds.levels) == 3
        np.testing.assert_array_equal(await ds.read(), data)
        assert ds.levels[2].shape == (2, 3, 24, 20)
        async with await ds.labels.open("cells") as cells:
            assert len(cells.levels) == 3


def test_the_command_line_rerun_writes_where_the_first_run_did(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``ngio-async convert SRC out`` failing on a bad chunk, then again once it is fixed:
    the image goes to ``out`` (an existing directory without a root node used to be taken
    for a directory to convert *into*: ``out/src.ome.zarr``, beside the leftovers)."""
    from ngio_async.cli import main

    src, out = tmp_path / "src.zarr", tmp_path / "out"
    data = ramp((2, 64, 64))
    with ngio_async.create(
        src, shape=data.shape, dtype="uint16", axes="cyx", chunks=(1, 32, 32), ngff_version="0.4"
    ) as ds:
        ds.write(data)
    chunk = src / "0" / "1" / "1" / "1"
    good = chunk.read_bytes()
    chunk.write_bytes(b"not zstd")
    argv = ["convert", "--quiet", "--shards", "none", str(src), str(out)]
    assert main(argv) == 1  # a codec error: invalid data
    chunk.write_bytes(good)
    assert main(argv) == 0, capsys.readouterr().err
    assert not (out / "src.ome.zarr").exists()
    with ngio_async.open(out) as done:
        np.testing.assert_array_equal(done[...], data)


async def test_an_ome_zarr_source_failing_the_nth_read_then_a_rerun(tmp_path: Path) -> None:
    """The source store fails its 12th read (a chunk, past the metadata)."""
    import errno

    from ngio_async.stores import InstrumentedStore, open_store

    src, dst = tmp_path / "a.zarr", tmp_path / "b.zarr"
    await make_source(src, "0.4")
    seen = 0

    def fail(method: str, key: str) -> BaseException | None:
        nonlocal seen
        if method == "get" and "/" in key and not key.endswith((".zarray", ".zattrs", ".zgroup")):
            seen += 1
            if seen == 12:
                return OSError(errno.EIO, "Input/output error")
        return None

    store = InstrumentedStore(open_store(src), fail=fail, blocking=False)
    async with ngio_async.open_async(store) as source:
        with pytest.raises(StoreError, match="Input/output error"):
            await ngio_async.convert(source, dst, ngff_version="0.5")
    assert seen >= 12 and not await is_complete(dst)
    await ngio_async.convert(src, dst, ngff_version="0.5")
    assert_same(await snapshot(src), await snapshot(dst))
