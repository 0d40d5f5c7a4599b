"""Write-path failure safety: a create that fails part-way leaves nothing a retry trips on.

Faults are injected into real stores (local files) by :class:`InstrumentedStore`: the N-th
metadata put fails as a full disk fails it (``OSError(ENOSPC)``), or the task is cancelled there.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any, Literal, cast

import anyio
import numpy as np
import pytest
import zarr

import ngio_async
from ngio_async import NotFoundError, StoreError
from ngio_async.images._write import KeyLocks
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from ngio_async.stores import AsyncStore

pytestmark = pytest.mark.anyio

_NODE_KEYS = ("zarr.json", ".zattrs", ".zgroup", ".zarray")


class NthPut:
    """Fail the ``n``-th put (and, ``sticky``, every later put and delete) with ENOSPC."""

    def __init__(self, n: int, *, sticky: bool = False) -> None:
        self.n, self.sticky, self.seen = n, sticky, 0
        self.failed: list[str] = []

    def __call__(self, method: str, key: str) -> BaseException | None:
        if method == "delete" and self.sticky and self.failed:
            return OSError(errno.EIO, "I/O error")
        if method != "put":
            return None
        self.seen += 1
        if self.seen == self.n or (self.sticky and self.seen > self.n):
            self.failed.append(key)
            return OSError(errno.ENOSPC, "No space left on device")
        return None


def faulty(root: Path, fail: Callable[[str, str], BaseException | None]) -> AsyncStore:
    return InstrumentedStore(open_store(root, mkdir=True), fail=fail)


def node_keys(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.name in _NODE_KEYS)


async def create(store: AsyncStore | str, version: Literal["0.4", "0.5"]) -> None:
    async with ngio_async.create_async(
        store, shape=(2, 96, 80), dtype="uint16", axes="cyx", chunks=(1, 32, 32), levels=3,
        ngff_version=version, channels=["a", "b"],
    ) as ds:  # fmt: skip
        await ds.write(np.full((2, 96, 80), 9, "uint16"), pyramid=True)


# 0.5: 0/, 1/, 2/zarr.json then zarr.json; 0.4: three .zarray, .zgroup, .zattrs
@pytest.mark.parametrize(("version", "n"), [("0.5", n) for n in (1, 2, 3, 4)] + [
    ("0.4", n) for n in (2, 4, 5)
])  # fmt: skip
async def test_create_failing_put_leaves_no_node_and_a_retry_succeeds(
    tmp_path: Path, version: Literal["0.4", "0.5"], n: int
) -> None:
    root = tmp_path / "img.ome.zarr"
    fail = NthPut(n)
    with pytest.raises(StoreError, match="No space left") as info:
        await create(faulty(root, fail), version)
    assert fail.failed[0] in str(info.value)  # the error names the key that failed
    assert node_keys(root) == []  # the half-made node is gone: nothing half-readable is left
    with pytest.raises(NotFoundError):
        await ngio_async.open_async(str(root))
    await create(str(root), version)  # the same call, retried (no overwrite=True needed)
    with ngio_async.open(str(root)) as ds:
        assert [int(lvl[1, 0, 0]) for lvl in ds.levels] == [9, 9, 9]
    assert np.asarray(zarr.open_array(str(root / "2"), mode="r")).min() == 9  # zarr-python too


@pytest.mark.parametrize(("key", "complete"), [("0/zarr.json", False), ("zarr.json", True)])
async def test_create_cancelled_mid_put_is_all_or_nothing(
    tmp_path: Path, key: str, complete: bool
) -> None:
    """Cancelled (``anyio.fail_after``) while a metadata document is being put: that put is
    finished, then the create is either undone (the claim) or complete (the group document):
    never NGFF metadata without its arrays, nor a claim that refuses the retry."""
    root = tmp_path / "img.ome.zarr"
    with anyio.CancelScope() as scope:

        def cancel_at(method: str, at: str) -> None:
            if method == "put" and at == key:
                scope.cancel()

        await create(InstrumentedStore(open_store(root, mkdir=True), fail=cancel_at), "0.5")
    assert scope.cancelled_caught
    if not complete:
        assert node_keys(root) == []
        await create(str(root), "0.5")  # retried
    with ngio_async.open(str(root)) as ds:
        assert [lvl.shape for lvl in ds.levels] == [(2, 96, 80), (2, 48, 40), (2, 24, 20)]
    assert zarr.open_array(str(root / "2"), mode="r").shape == (2, 24, 20)


async def test_create_failing_cleanup_says_what_is_left(tmp_path: Path) -> None:
    root = tmp_path / "img.ome.zarr"
    with pytest.raises(StoreError, match="No space left") as info:
        await create(faulty(root, NthPut(3, sticky=True)), "0.5")  # deletes fail too
    notes = " ".join(getattr(info.value, "__notes__", []))
    assert "could not be removed" in notes
    assert "overwrite=True" in notes
    with pytest.raises(ngio_async.ExistsError):
        await create(str(root), "0.5")
    async with ngio_async.create_async(
        str(root), shape=(2, 96, 80), dtype="uint16", axes="cyx", overwrite=True
    ):
        pass


# the label's 0/, 1/, 2/zarr.json, its zarr.json, then the labels group (the listing)
@pytest.mark.parametrize("n", [2, 4, 5])
async def test_labels_create_failing_put_leaves_no_label_and_a_retry_succeeds(
    tmp_path: Path, n: int
) -> None:
    root = tmp_path / "img.ome.zarr"
    await create(str(root), "0.5")
    fail = NthPut(n)
    async with await ngio_async.open_async(faulty(root, fail), mode="r+") as ds:
        with pytest.raises(StoreError, match="No space left"):
            await ds.labels.create("cells")
    assert [k for k in node_keys(root) if k.startswith("labels/cells")] == []
    async with await ngio_async.open_async(str(root), mode="r+") as ds:
        cells = await ds.labels.create("cells")  # retried
        await cells.write(np.ones((96, 80), "uint32"), pyramid=True)
        assert await ds.labels.names() == ["cells"]
    with ngio_async.open(str(root)) as ds:
        assert [int(lvl[0, 0]) for lvl in ds.labels["cells"].levels] == [1, 1, 1]


# the field's 0/, 1/zarr.json and zarr.json, the well's zarr.json, then the plate's
@pytest.mark.parametrize("n", [2, 4, 5])
async def test_add_image_failing_put_leaves_no_field_and_a_retry_succeeds(
    tmp_path: Path, n: int
) -> None:
    root = tmp_path / "plate.ome.zarr"
    async with ngio_async.create_plate_async(str(root), rows=["A"], columns=["1", "2"]) as plate:
        await (await plate.add_image("A", "1", shape=(64, 64), dtype="uint8", levels=2)).aclose()
    fail = NthPut(n)

    async def add(store: AsyncStore | str) -> None:
        async with await ngio_async.open_plate_async(store, mode="r+") as plate:
            field = await plate.add_image("A", "2", shape=(64, 64), dtype="uint8", levels=2)
            async with field:
                await field.write(np.full((64, 64), 4, "uint8"))

    with pytest.raises(StoreError, match="No space left"):
        await add(faulty(root, fail))
    assert [k for k in node_keys(root) if k.startswith("A/2/0")] == []
    await add(str(root))  # retried
    with ngio_async.open_plate(str(root)) as done:
        assert done.wells == ["A/1", "A/2"]
        with done.image("A", "2", field=0) as fov:
            assert int(fov[10, 10]) == 4


async def test_create_over_arrays_without_group_metadata_says_so(tmp_path: Path) -> None:
    """What a create interrupted before its group metadata (and unable to clean up) leaves is
    refused with a message that says what it is, not just 'a zarr node'."""
    root = tmp_path / "img.ome.zarr"
    with pytest.raises(StoreError):
        await create(faulty(root, NthPut(4, sticky=True)), "0.5")
    assert node_keys(root) == ["0/zarr.json", "1/zarr.json", "2/zarr.json"]
    with pytest.raises(ngio_async.ExistsError, match=r"none of its own .*interrupted") as info:
        await create(str(root), "0.5")
    assert "0/zarr.json" in str(info.value)


class LostClaimAnswer(InstrumentedStore):
    """A conditional put that lands but whose answer is lost, so the client sends it again
    (obstore retries a reset connection itself): the second attempt finds the object."""

    async def _put_once(self, key: str, data: bytes | memoryview, *, if_absent: bool) -> bool:
        if if_absent:
            await self.inner._put_once(key, data, if_absent=True)
        return await super()._put_once(key, data, if_absent=if_absent)


async def test_create_whose_claim_answer_was_lost_does_not_blame_another_writer(
    tmp_path: Path,
) -> None:
    root = tmp_path / "img.ome.zarr"
    with pytest.raises(ngio_async.ExistsError, match="answer was") as info:
        await create(LostClaimAnswer(open_store(root, mkdir=True)), "0.5")
    assert "another writer" not in str(info.value)
    assert "overwrite=True" in str(info.value)
    assert str(root) in str(info.value)


async def test_overwrite_interrupted_while_deleting_leaves_nothing_the_retry_misses(
    tmp_path: Path,
) -> None:
    """create(overwrite=True) over an image with a label fails deleting one of the label's
    chunks: the retry finds what is left (its metadata is deleted last) and deletes it all;
    no stale chunk outlives the overwrite (a later label of that name would refuse them)."""
    root = tmp_path / "img.ome.zarr"
    await create(str(root), "0.5")
    async with await ngio_async.open_async(str(root), mode="r+") as ds:
        await (await ds.labels.create("cells")).write(np.ones((96, 80), "uint32"), pyramid=True)

    def fail(method: str, key: str) -> BaseException | None:
        return OSError(errno.EIO, "I/O error") if key == "labels/cells/1/c/0/0" else None

    async def overwrite(store: AsyncStore | str) -> None:
        async with ngio_async.create_async(
            store, shape=(32, 32), dtype="uint8", axes="yx", overwrite=True
        ):
            pass

    with pytest.raises(StoreError, match="labels/cells/1/c/0/0"):
        await overwrite(faulty(root, fail))
    await overwrite(str(root))  # retried
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) == [
        "0/zarr.json",
        "zarr.json",
    ]


@pytest.mark.filterwarnings("ignore:Consolidated metadata is currently not part")
@pytest.mark.parametrize("version", ["0.5", "0.4"])
async def test_failed_overwrite_in_a_consolidated_hierarchy_is_not_read_as_zeros(
    tmp_path: Path, version: Literal["0.4", "0.5"]
) -> None:
    """An overwrite deletes the old image, then fails writing the new one: the consolidated
    copy above (which zarr-python trusts alone) must not still describe the deleted arrays, or
    they read as all fill value (0 instead of 5), silently."""
    fmt: Literal[2, 3] = 3 if version == "0.5" else 2
    zarr.open_group(str(tmp_path), mode="w", zarr_format=fmt)
    options: dict[str, Any] = {
        "path": "img",
        "dtype": "uint8",
        "axes": "yx",
        "ngff_version": version,
    }
    async with ngio_async.create_async(str(tmp_path), shape=(64, 64), levels=2, **options) as ds:
        await ds.write(np.full((64, 64), 5, "uint8"), pyramid=True)
    zarr.consolidate_metadata(str(tmp_path), zarr_format=fmt)

    def fail(method: str, key: str) -> BaseException | None:
        first_new = key in ("img/0/zarr.json", "img/0/.zarray")
        return OSError(errno.EIO, "I/O error") if method == "put" and first_new else None

    with pytest.raises(StoreError, match="I/O error"):
        await ngio_async.create_async(
            faulty(tmp_path, fail), shape=(32, 32), overwrite=True, **options
        )
    with pytest.raises(KeyError):
        zarr.open_group(str(tmp_path), mode="r")["img/0"]  # consolidated view: gone, not zeros
    async with ngio_async.create_async(str(tmp_path), shape=(32, 32), overwrite=True, **options):
        pass  # retried
    back = cast("zarr.Array[Any]", zarr.open_group(str(tmp_path), mode="r")["img/0"])
    assert back.shape == (32, 32)


def cancelling(root: Path, scope: anyio.CancelScope, at: str) -> AsyncStore:
    """A store on ``root`` that cancels ``scope`` when the put of ``at`` starts (as
    ``anyio.fail_after`` or Ctrl-C in the blocking API would fire at that moment)."""

    def hook(method: str, key: str) -> None:
        if method == "put" and key == at:
            scope.cancel()

    return InstrumentedStore(open_store(root), fail=hook)


async def test_labels_create_cancelled_at_its_group_document_is_listed_or_gone(
    tmp_path: Path,
) -> None:
    """Cancelled while the label's group document is put: the label ends listed, or gone
    (never complete but unlisted: the retry was refused, 'already holds a zarr node')."""
    root = tmp_path / "img.ome.zarr"
    await create(str(root), "0.5")
    with anyio.CancelScope() as scope:
        store = cancelling(root, scope, "labels/cells/zarr.json")
        async with await ngio_async.open_async(store, mode="r+") as ds:
            await ds.labels.create("cells")
    assert scope.cancelled_caught
    async with await ngio_async.open_async(str(root), mode="r+") as ds:
        if "cells" not in await ds.labels.names():
            assert [k for k in node_keys(root) if k.startswith("labels/cells")] == []
            await ds.labels.create("cells")  # retried
        assert await ds.labels.names() == ["cells"]


async def test_add_image_cancelled_at_its_group_document_is_listed_or_gone(
    tmp_path: Path,
) -> None:
    root = tmp_path / "plate.ome.zarr"
    async with ngio_async.create_plate_async(str(root), rows=["A"], columns=["1"]):
        pass
    with anyio.CancelScope() as scope:
        store = cancelling(root, scope, "A/1/0/zarr.json")
        async with await ngio_async.open_plate_async(store, mode="r+") as plate:
            await plate.add_image("A", "1", shape=(32, 32), dtype="uint8", levels=1)
    assert scope.cancelled_caught
    async with await ngio_async.open_plate_async(str(root), mode="r+") as plate:
        if not plate.wells:
            assert [k for k in node_keys(root) if k.startswith("A/1/0")] == []
            await (await plate.add_image("A", "1", shape=(32, 32), dtype="uint8")).aclose()
    with ngio_async.open_plate(str(root)) as done:
        assert done.image_paths() == [("A/1", "0")]


class ClaimTimesOutAfterLanding(InstrumentedStore):
    """A conditional put stored by the server whose answer never comes (a timeout)."""

    async def _put_once(self, key: str, data: bytes | memoryview, *, if_absent: bool) -> bool:
        landed = await super()._put_once(key, data, if_absent=if_absent)
        if if_absent:
            raise TimeoutError("no answer")
        return landed


async def test_create_whose_claim_landed_without_an_answer_goes_on(tmp_path: Path) -> None:
    """The claim timed out but is stored, byte for byte: the create is complete (it stopped
    with a StoreTimeoutError and left a claim that refused every retry)."""
    root = tmp_path / "img.ome.zarr"
    await create(ClaimTimesOutAfterLanding(open_store(root, mkdir=True)), "0.5")
    with ngio_async.open(str(root)) as ds:
        assert [int(lvl[0, 0, 0]) for lvl in ds.levels] == [9, 9, 9]


# 0.5: the groups A, B, A/1, A/2, B/1, B/2 (concurrently), then the plate's zarr.json
@pytest.mark.parametrize("n", [3, 7])
async def test_create_plate_failing_put_leaves_no_groups_and_a_retry_succeeds(
    tmp_path: Path, n: int
) -> None:
    root = tmp_path / "plate.ome.zarr"
    options: dict[str, Any] = {"rows": ["A", "B"], "columns": ["1", "2"]}
    with pytest.raises(StoreError, match="No space left"):
        await ngio_async.create_plate_async(faulty(root, NthPut(n)), **options)
    assert node_keys(root) == []
    async with ngio_async.create_plate_async(str(root), **options) as plate:  # retried
        await (await plate.add_image("B", "2", shape=(16, 16), dtype="uint8")).aclose()
    with ngio_async.open_plate(str(root)) as done:
        assert done.wells == ["B/2"]


@pytest.mark.filterwarnings("ignore:Consolidated metadata is currently not part")
@pytest.mark.parametrize(
    ("version", "well_doc"), [("0.5", "B/2/zarr.json"), ("0.4", "B/2/.zattrs")]
)
async def test_add_image_to_a_consolidated_plate_failing_leaves_no_field_in_the_copy(
    tmp_path: Path, version: Literal["0.4", "0.5"], well_doc: str
) -> None:
    """The field's documents reached the plate's consolidated copy, then listing it in its
    well failed: the field is removed from the copy too (zarr-python read it as all zeros)."""
    async with ngio_async.create_plate_async(
        str(tmp_path), rows=["A", "B"], columns=["1", "2"], ngff_version=version
    ) as plate:
        await (await plate.add_image("A", "1", shape=(32, 32), dtype="uint8")).aclose()
    zarr.consolidate_metadata(str(tmp_path), zarr_format=3 if version == "0.5" else 2)

    def fail(method: str, key: str) -> BaseException | None:
        return OSError(errno.ENOSPC, "No space") if method == "put" and key == well_doc else None

    async def add(store: AsyncStore | str) -> None:
        async with await ngio_async.open_plate_async(store, mode="r+") as plate:
            await (await plate.add_image("B", "2", shape=(32, 32), dtype="uint8")).aclose()

    with pytest.raises(StoreError, match="No space"):
        await add(faulty(tmp_path, fail))
    with pytest.raises(KeyError):
        zarr.open_group(str(tmp_path), mode="r")["B/2/0/0"]  # consolidated view
    await add(str(tmp_path))  # retried
    back = cast("zarr.Array[Any]", zarr.open_group(str(tmp_path), mode="r")["B/2/0/0"])
    assert back.shape == (32, 32)


@pytest.mark.filterwarnings("ignore:Consolidated metadata is currently not part")
async def test_labels_create_in_a_consolidated_image_failing_leaves_no_label_in_the_copy(
    tmp_path: Path,
) -> None:
    await create(str(tmp_path), "0.5")
    async with await ngio_async.open_async(str(tmp_path), mode="r+") as ds:
        await ds.labels.create("nuclei")  # the labels group exists: the copy takes new labels
    zarr.consolidate_metadata(str(tmp_path))

    def fail(method: str, key: str) -> BaseException | None:
        listing = key == "labels/zarr.json"
        return OSError(errno.ENOSPC, "No space") if method == "put" and listing else None

    async with await ngio_async.open_async(faulty(tmp_path, fail), mode="r+") as ds:
        with pytest.raises(StoreError, match="No space"):
            await ds.labels.create("cells")
    with pytest.raises(KeyError):
        zarr.open_group(str(tmp_path), mode="r")["labels/cells/0"]  # consolidated view
    async with await ngio_async.open_async(str(tmp_path), mode="r+") as ds:
        await ds.labels.create("cells")  # retried
        assert await ds.labels.names() == ["nuclei", "cells"]
    back = cast("zarr.Array[Any]", zarr.open_group(str(tmp_path), mode="r")["labels/cells/0"])
    assert back.shape == (96, 80)


async def test_labels_overwrite_failing_before_it_clears_keeps_the_old_label(
    tmp_path: Path,
) -> None:
    """labels.create(overwrite=True) fails listing the old label's keys: nothing was written,
    so nothing is removed (the old label's documents stay; only a retry replaces them)."""
    root = tmp_path / "img.ome.zarr"
    await create(str(root), "0.5")
    async with await ngio_async.open_async(str(root), mode="r+") as ds:
        await (await ds.labels.create("cells")).write(np.ones((96, 80), "uint32"))
    before = node_keys(root)

    def fail(method: str, key: str) -> BaseException | None:
        return OSError(errno.EIO, "I/O error") if method == "list" else None

    async with await ngio_async.open_async(faulty(root, fail), mode="r+") as ds:
        with pytest.raises(StoreError, match="I/O error"):
            await ds.labels.create("cells", dtype="uint8", overwrite=True)
    assert node_keys(root) == before
    async with await ngio_async.open_async(str(root), mode="r+") as ds:  # retried
        cells = await ds.labels.create("cells", dtype="uint8", overwrite=True)
        assert cells.dtype == np.uint8
        assert await ds.labels.names() == ["cells"]


# -- partial-shard writes against other writers of the shard ----------------------------------

_SHARD_KEY = "0/c/0/0"  # the one shard of the image below: 16x32, eight 8x8 chunks


class ChangedBeforePut(InstrumentedStore):
    """Before each of the first ``times`` conditional puts of :data:`_SHARD_KEY`, another
    writer (a dataset on another store object over the same objects) writes the shard's right
    half with 50, 51, ... (inside the put's limiter token: only the other store's requests)."""

    def __init__(
        self, inner: AsyncStore, other: AsyncStore, times: int, key: str = _SHARD_KEY
    ) -> None:
        super().__init__(inner)
        self.other, self.times, self.key, self.meddled = other, times, key, 0

    async def _write_for_update_once(
        self, key: str, data: bytes | memoryview, version: object
    ) -> bool:
        if key == self.key and self.meddled < self.times:
            async with ngio_async.open_async(self.other, mode="r+") as ds:
                # another process: its own write locks (this process's are shared by its opens)
                ds.levels[0]._write_locks = KeyLocks()
                await ds.levels[0].write((slice(0, 16), slice(16, 32)), 50 + self.meddled)
            self.meddled += 1
        return await super()._write_for_update_once(key, data, version)


@pytest.fixture(params=["memory", "s3", "azure"])
def twin_stores(request: pytest.FixtureRequest) -> tuple[AsyncStore, AsyncStore]:
    """Two store objects over the same objects (a memory store, or a fresh prefix of moto's
    S3 or Azurite's blob service)."""
    if request.param == "memory":
        from ngio_async.stores import ObstoreStore

        first = open_store("memory://")
        assert isinstance(first, ObstoreStore)
        return first, ObstoreStore(first.obstore)
    server = request.getfixturevalue("s3_server" if request.param == "s3" else "azurite")
    url = server.fresh_url()
    return open_store(url, **server.options()), open_store(url, **server.options())


async def _one_shard_image(store: AsyncStore) -> None:
    async with ngio_async.create_async(
        store, shape=(16, 32), dtype="uint16", axes="yx", chunks=(8, 8), shards=(16, 32),
        levels=1,
    ) as ds:  # fmt: skip
        await ds.levels[0].write((slice(0, 16), slice(0, 32)), 1)


async def test_partial_shard_write_changed_before_its_put_merges_again(
    twin_stores: tuple[AsyncStore, AsyncStore],
) -> None:
    """Another writer rewrites the shard between the read and the put of a partial write:
    the put fails on the version, the shard is read and merged again, nothing is lost."""
    first, other = twin_stores
    await _one_shard_image(first)
    store = ChangedBeforePut(first, other, times=2)
    async with other, ngio_async.open_async(store, mode="r+") as ds:
        await ds.levels[0].write((slice(0, 16), slice(0, 16)), 7)
        assert store.meddled == 2
        assert store.method_counts["put"] == 3  # two refused, the third stored
        got = await ds.levels[0].read((slice(0, 16), slice(0, 32)))
    assert (got[:, :16] == 7).all() and (got[:, 16:] == 51).all()


async def test_partial_shard_write_changed_before_every_put_fails_and_keeps_theirs(
    twin_stores: tuple[AsyncStore, AsyncStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shard rewritten before every put: ``ChangedError`` naming the shard and the store;
    the shard holds the other writer's last write and our old pixels, the metadata is as
    it was."""
    from ngio_async.images import _write

    monkeypatch.setattr(_write, "PATCH_ATTEMPTS", 3)
    first, other = twin_stores
    await _one_shard_image(first)
    meta = await first.get("0/zarr.json"), await first.get("zarr.json")
    store = ChangedBeforePut(first, other, times=100)
    async with other, ngio_async.open_async(store, mode="r+") as ds:
        with pytest.raises(ngio_async.ChangedError) as info:
            await ds.levels[0].write((slice(0, 16), slice(0, 16)), 7)
        assert store.meddled == 3
        assert _SHARD_KEY in str(info.value) and first.url in str(info.value)
        assert info.value.key == _SHARD_KEY
        got = await ds.levels[0].read((slice(0, 16), slice(0, 32)))
    assert (got[:, :16] == 1).all() and (got[:, 16:] == 52).all()
    assert (await first.get("0/zarr.json"), await first.get("zarr.json")) == meta
    await first.aclose()


async def test_partial_shard_write_requests(twin_stores: tuple[AsyncStore, AsyncStore]) -> None:
    """A partial write of a shard is one GET (it tells the version) and one PUT (conditional
    on it), as a plain read-modify-write; a whole-shard write one PUT and no GET. A write
    leaving the shard all fill value stores an empty shard (a delete cannot be conditional),
    which reads as the fill value."""
    first, other = twin_stores
    await _one_shard_image(first)
    store = InstrumentedStore(first)
    async with other, ngio_async.open_async(store, mode="r+") as ds:
        level = ds.levels[0]
        store.reset()  # the metadata read by the opening
        await level.write((slice(0, 16), slice(0, 16)), 3)
        assert store.method_counts == {"get": 1, "put": 1}
        store.reset()
        await level.write((slice(0, 16), slice(0, 32)), 4)
        assert store.method_counts == {"put": 1}
        store.reset()
        await level.write((slice(0, 16), slice(0, 32)), 0)  # whole and empty: deleted
        assert store.method_counts == {"delete": 1}
        await level.write((slice(0, 16), slice(0, 16)), 5)  # absent: created
        store.reset()
        await level.write((slice(0, 16), slice(0, 16)), 0)  # all fill value now
        assert store.method_counts == {"get": 1, "put": 1}
        stored = await first.get(_SHARD_KEY)
        assert stored is not None and len(stored) == 8 * 16 + 4  # the index alone
        assert not (await level.read((slice(0, 16), slice(0, 32)))).any()


async def test_partial_shard_write_on_disk_requests_and_lock_file(tmp_path: Path) -> None:
    """On local disk: one GET and one PUT too (the lock is no request), the lock file
    ``<shard>#0`` is gone after, and a shard left all fill value is deleted with its
    directories."""
    root = tmp_path / "img.zarr"
    await _one_shard_image(open_store(root, mkdir=True))
    store = InstrumentedStore(open_store(root))
    async with ngio_async.open_async(store, mode="r+") as ds:
        level = ds.levels[0]
        store.reset()
        await level.write((slice(0, 16), slice(0, 16)), 3)
        assert store.method_counts == {"get": 1, "put": 1}
        assert sorted(p.name for p in (root / "0" / "c" / "0").iterdir()) == ["0"]
        store.reset()
        await level.write((slice(0, 16), slice(0, 32)), 4)
        assert store.method_counts == {"put": 1}
        await level.write((slice(0, 16), slice(16, 32)), 0)
        store.reset()
        await level.write((slice(0, 16), slice(0, 16)), 0)  # all fill value now: deleted
        assert store.method_counts == {"get": 1, "delete": 1}
    assert not (root / "0" / "c").exists()
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == [
        "0", "0/zarr.json", "zarr.json",
    ]  # fmt: skip


@pytest.mark.parametrize("where", ["memory", "s3"])
async def test_partial_chunk_write_changed_before_its_put_merges_again(
    where: str, request: pytest.FixtureRequest
) -> None:
    """The same for an unsharded (0.4) image: a chunk's read-modify-write merges again."""
    if where == "memory":
        from ngio_async.stores import ObstoreStore

        first = open_store("memory://")
        assert isinstance(first, ObstoreStore)
        other: AsyncStore = ObstoreStore(first.obstore)
    else:
        s3 = request.getfixturevalue("s3_server")
        url = s3.fresh_url()
        first, other = open_store(url, **s3.options()), open_store(url, **s3.options())
    async with ngio_async.create_async(
        first, shape=(16, 32), dtype="uint16", axes="yx", chunks=(16, 32), levels=1,
        ngff_version="0.4",
    ):  # fmt: skip
        pass
    store = ChangedBeforePut(first, other, times=1, key="0/0/0")
    async with other, ngio_async.open_async(store, mode="r+") as ds:
        await ds.levels[0].write((slice(0, 16), slice(0, 16)), 7)
        assert store.meddled == 1 and store.method_counts["put"] == 2
        got = await ds.levels[0].read((slice(0, 16), slice(0, 32)))
    assert (got[:, :16] == 7).all() and (got[:, 16:] == 50).all()
