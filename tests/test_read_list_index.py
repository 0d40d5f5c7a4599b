"""One list, integer array or boolean mask on one axis, as zarr-python reads it (orthogonal:
the list's axis stays where it is), reading only the chunks that hold its indices."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async
from ngio_async.engine.plan import UnsupportedIndexError

if TYPE_CHECKING:
    from pathlib import Path

    from servers import StaticServer

SHAPE = (2, 3, 64, 64)
DATA = np.arange(np.prod(SHAPE), dtype="uint16").reshape(SHAPE)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("list") / "img.zarr"
    with ngio_async.create(
        path, shape=SHAPE, dtype="uint16", axes="czyx", channels=["a", "b"], chunks=(1, 1, 16, 16)
    ) as ds:
        ds.write(DATA)
    return path


CASES: list[Any] = [
    np.s_[0, 0, [1, 5, 3]],  # out of order
    np.s_[0, 0, [7, 7, 2]],  # repeats
    np.s_[0, 0, np.ones(64, bool)],
    np.s_[0, 0, :, [1, 2]],  # zarr-python: (64, 2); numpy would put the list's axis first
    np.s_[0, 0, 5:40:3, np.arange(0, 64, 9)],
    np.s_[[1, 0]],
    np.s_[0, 0, np.array([-1, -64])],
    np.s_[1, 2, [60, 0, 33, 17], 8:12],
]


@pytest.mark.parametrize("selection", CASES)
def test_list_indexes_read_as_zarr_python(image: Path, selection: Any) -> None:
    import zarr

    want = np.asarray(zarr.open_array(str(image / "0"), mode="r")[selection])
    with ngio_async.open(image) as ds:
        got = ds[selection]
        np.testing.assert_array_equal(got, want)
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_array_equal(ds.levels[0][selection], want)


@pytest.mark.parametrize(
    ("selection", "want"),
    [
        (np.s_[..., [63, 0, 0, 17]], DATA[..., [63, 0, 0, 17]]),  # '...' (zarr-python: no)
        (np.s_[:, None, 1, [40, 2, 40], ::3], DATA[:, None, 1][:, :, [40, 2, 40]][..., ::3]),
        (np.s_[0, 0, []], DATA[0, 0, []]),
    ],
)
def test_list_indexes_with_ellipsis_new_axes_and_empty_lists(
    image: Path, selection: Any, want: np.ndarray[Any, Any]
) -> None:
    with ngio_async.open(image) as ds:
        got = ds[selection]
    np.testing.assert_array_equal(got, want)
    assert got.shape == want.shape


@pytest.mark.parametrize(
    ("selection", "error", "match"),
    [
        (np.s_[0, 0, [64]], IndexError, "index 64 is out of bounds for axis 2 with size 64"),
        (np.s_[0, 0, np.zeros(3, bool)], IndexError, "boolean index did not match"),
        (np.s_[0, [0, 1], [1, 2]], UnsupportedIndexError, r"one list or array index.*\.oindex"),
        (np.s_[0, 0, [[1]]], UnsupportedIndexError, "one dimension"),
        (np.s_[0, 0, [1.5]], UnsupportedIndexError, "integers or booleans, got float64"),
    ],
)
def test_bad_list_indexes_say_why(image: Path, selection: Any, error: type, match: str) -> None:
    with ngio_async.open(image) as ds, pytest.raises(error, match=match):
        ds[selection]


def test_a_list_reads_only_the_chunks_holding_its_indices(
    tmp_path: Path, http_server: StaticServer
) -> None:
    """Indices 1 and 50 of a row: chunks 0 and 3 of the 4 along x, not the span between."""
    path = http_server.root / "img.zarr"
    with ngio_async.create(
        path, shape=SHAPE, dtype="uint16", axes="czyx", chunks=(1, 1, 16, 16), shards=False
    ) as ds:
        ds.write(DATA)
    with ngio_async.open(http_server.url + "img.zarr") as ds:
        http_server.requests.clear()
        got = ds[0, 0, 3, [50, 1]]
        np.testing.assert_array_equal(got, DATA[0, 0, 3, [50, 1]])
    chunks = sorted(r.path.rsplit("/0/c/", 1)[1] for r in http_server.requests if "/0/c/" in r.path)
    assert chunks == ["0/0/0/0", "0/0/0/3"], chunks


def _assign(view: np.ndarray[Any, Any], selection: Any, value: Any) -> None:
    view[selection] = value


@pytest.mark.parametrize(
    ("selection", "value", "reference"),
    [
        (np.s_[0, 0, [1, 50, 3]], 7, None),
        # orthogonal, as zarr-python: numpy would want the list's axis first
        (
            np.s_[1, 2, :, [60, 0, 17]],
            np.arange(64 * 3).reshape(64, 3),
            lambda a, v: _assign(a[1, 2], np.s_[:, [60, 0, 17]], v),
        ),
        (np.s_[0, 1, [5, 5, 40], 2:6], np.arange(12).reshape(3, 4), None),  # the last wins
        (np.s_[..., np.arange(64) % 7 == 0], 9, None),
        (np.s_[0, 0, []], 1, None),
    ],
)
def test_list_index_writes_as_zarr_python(
    tmp_path: Path, selection: Any, value: Any, reference: Any
) -> None:
    import zarr

    path = tmp_path / "img.zarr"
    with ngio_async.create(
        path, shape=SHAPE, dtype="uint16", axes="czyx", chunks=(1, 1, 16, 16), shards=False
    ) as ds:
        ds.write(DATA)
    want = DATA.copy()
    if reference is None:
        want[selection] = value
    else:
        reference(want, value)
    with ngio_async.open(path, mode="r+") as ds:
        ds.levels[0][selection] = value
    np.testing.assert_array_equal(zarr.open_array(str(path / "0"), mode="r")[...], want)


@pytest.mark.anyio
async def test_a_list_index_write_cascades_to_the_lower_levels(tmp_path: Path) -> None:
    """write_at(pyramid=True) with a list: the lower levels equal a full rebuild (the display
    windows follow the span written; it raised UnsupportedIndexError after writing)."""
    path = tmp_path / "img.zarr"
    async with ngio_async.create_async(
        path, shape=SHAPE, dtype="uint16", axes="czyx", chunks=(1, 1, 16, 16), levels=2
    ) as ds:
        await ds.write(DATA, pyramid=True)
        await ds.write_at(np.s_[0, 1, :, [3, 60, 17]], 999, pyramid=True)
        cascaded = await ds.levels[1].read(tuple(slice(0, n) for n in ds.levels[1].shape))
        await ds.build_pyramid()
        rebuilt = await ds.levels[1].read(tuple(slice(0, n) for n in ds.levels[1].shape))
        level0 = await ds.levels[0].getitem(np.s_[0, 1, :, [3, 60, 17]])
    np.testing.assert_array_equal(level0, 999)
    np.testing.assert_array_equal(cascaded, rebuilt)
