"""``write(..., merge=...)`` merges inside each stored object's own read-modify-write: one GET
per object touched (the selection's read, then the write's own read of each partial object,
were two), the same pixels as numpy's rule on the selection, the lower levels following with
``pyramid=True``, and list or strided selections merging only their pixels."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pytest

import ngio_async
from ngio_async.engine.pyramid import downsample
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio

SHAPE = (40, 40)
REGION = (slice(4, 36), slice(6, 30))  # 5 x 4 chunks of 8x8, 3 x 2 shards of 16x16
RULES: dict[str, Any] = {
    "max": np.maximum,
    "min": np.minimum,
    "sum": np.add,
    "keep_nonzero": lambda s, p: np.where(p != 0, p, s),
}


def _stored() -> np.ndarray[Any, Any]:
    return np.random.default_rng(1).integers(0, 1000, SHAPE, dtype="uint16")


def _patch() -> np.ndarray[Any, Any]:
    shape = tuple(s.stop - s.start for s in REGION)
    patch = np.random.default_rng(2).integers(0, 1000, shape, dtype="uint16")
    patch[::3] = 0  # for keep_nonzero
    return patch


async def _image(
    path: Path, shards: tuple[int, int] | Literal[False], levels: int = 1
) -> tuple[ngio_async.Dataset, InstrumentedStore]:
    async with await ngio_async.create_async(
        path, shape=SHAPE, dtype="uint16", axes="yx", chunks=(8, 8), shards=shards,
        levels=levels,
    ) as ds:  # fmt: skip
        await ds.write(_stored(), pyramid=levels > 1)
    store = InstrumentedStore(open_store(str(path)))
    return await ngio_async.open_async(store, mode="r+"), store


def _gets(store: InstrumentedStore) -> dict[str, int]:
    return {k: n for (m, k), n in store.calls.items() if m == "get" and "/c/" in k}


@pytest.mark.parametrize("shards", [False, (16, 16)])
@pytest.mark.parametrize("rule", [*RULES, "function"])
async def test_a_merge_reads_each_object_once_and_equals_numpy(
    tmp_path: Path, rule: str, shards: tuple[int, int] | Literal[False]
) -> None:
    ds, store = await _image(tmp_path / "a.zarr", shards)
    merge: Any = (lambda s, p: s // 2 + p // 2) if rule == "function" else rule
    fn = RULES.get(rule, merge)
    store.reset()
    await ds.write(_patch(), y=REGION[0], x=REGION[1], merge=merge)
    gets = _gets(store)
    want = _stored()
    want[REGION] = fn(want[REGION], _patch())
    np.testing.assert_array_equal(await ds.read(), want)
    await ds.aclose()
    objects = 3 * 2 if shards else 5 * 4
    assert len(gets) == objects and set(gets.values()) == {1}, gets


async def test_merges_follow_into_the_lower_levels(tmp_path: Path) -> None:
    ds, _ = await _image(tmp_path / "a.zarr", False, levels=3)
    await ds.write(_patch(), y=REGION[0], x=REGION[1], merge="max", pyramid=True)
    level0 = _stored()
    level0[REGION] = np.maximum(level0[REGION], _patch())
    np.testing.assert_array_equal(await ds.read(), level0)
    want = level0
    for level in (1, 2):
        want = downsample(want, (2, 2), "mean")
        np.testing.assert_array_equal(await ds.read(level), want, err_msg=f"level {level}")
    await ds.aclose()


async def test_list_and_strided_selections_merge_only_their_pixels(tmp_path: Path) -> None:
    async with await ngio_async.create_async(
        tmp_path / "c.zarr", shape=(3, *SHAPE), dtype="uint16", axes="cyx", chunks=(1, 8, 8),
        channels=["a", "b", "c"], levels=1, shards=False,
    ) as ds:  # fmt: skip
        stored = np.random.default_rng(3).integers(0, 1000, (3, *SHAPE), dtype="uint16")
        await ds.write(stored)
        patch = np.full((2, 13, 7), 5, dtype="uint8")
        await ds.write(patch, c=["c", "a"], y=slice(1, 40, 3), x=slice(2, 30, 4), merge="sum")
        want = stored.copy()
        want[[2, 0], 1:40:3, 2:30:4] += 5
        np.testing.assert_array_equal(await ds.read(), want)


async def test_a_function_not_elementwise_is_refused_naming_the_shapes(tmp_path: Path) -> None:
    ds, _ = await _image(tmp_path / "a.zarr", False)

    def total(stored: Any, patch: Any) -> Any:
        return np.sum(stored + patch, axis=0)

    with pytest.raises(
        ValueError, match=r"merge function 'total' gave shape \(\d+,\) .*elementwise"
    ):
        await ds.write(_patch(), y=REGION[0], x=REGION[1], merge=total)
    with pytest.raises(ValueError, match=r"does not fit the selection of shape \(32, 24\)"):
        await ds.write(np.ones((3, 3)), y=REGION[0], x=REGION[1], merge="max")
    np.testing.assert_array_equal(await ds.read(), _stored())  # nothing written
    await ds.aclose()


async def test_merges_of_tasks_and_of_threads_into_the_same_pixels_all_land(
    tmp_path: Path,
) -> None:
    import anyio
    import anyio.to_thread

    ds, _ = await _image(tmp_path / "a.zarr", (16, 16))
    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(partial(ds.write, 1, y=REGION[0], x=REGION[1], merge="sum"))
    await ds.aclose()
    with ngio_async.open(str(tmp_path / "a.zarr"), mode="r+") as sync:

        def add_one() -> None:
            sync.write(np.uint8(1), y=REGION[0], x=REGION[1], merge="sum")

        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(anyio.to_thread.run_sync, add_one)
        got = np.asarray(sync.read())
    want = _stored()
    want[REGION] += 8
    np.testing.assert_array_equal(got, want)
