"""This session's readers pickled and read by dask's threads: a zipped OME-Zarr (``.ozx``,
local, on S3, over HTTP), an NGFF 0.2 / 0.3 image and a lenient peer plate's field pickle by
reference and read the same pixels; ``ds.tables`` and a table pickle; ``Limits(part_size=)``
pickles, and a copy of a dataset whose store was judged slow starts afresh in a spawned child;
the errors the readers raise pickle with their url and key."""

from __future__ import annotations

import pickle
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from processes import run_in_fork, spawned_pool
from test_oldngff27_read import write_old
from test_ozx27_local import DATA, LABEL, write_source, zip_folder
from test_plates27_read import drop_indices, peer_plate

import ngio_async
from ngio_async import ChangedError, CredentialsRefusedError, Limits, ReadOnlyError

da = pytest.importorskip("dask.array")

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server, StaticServer


@pytest.fixture(scope="module")
def ozx(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    folder = tmp_path_factory.mktemp("dask27")
    return zip_folder(write_source(folder), folder / "img.ozx").read_bytes()


def _directory_gets(server: StaticServer) -> int:
    return sum(1 for r in server.requests if r.range is not None and r.range.startswith("bytes=-"))


def _put_s3(s3: S3Server, ozx: bytes) -> str:
    import boto3  # type: ignore[import-untyped]

    url = f"{s3.fresh_url()}/img.ozx"
    bucket, key = url.removeprefix("s3://").split("/", 1)
    client = boto3.client(
        "s3",
        endpoint_url=s3.endpoint,
        aws_access_key_id=s3.access_key_id,
        aws_secret_access_key=s3.secret_access_key,
        region_name=s3.region,
    )
    client.put_object(Bucket=bucket, Key=key, Body=ozx)
    return url


@pytest.mark.parametrize("where", ["local", "s3", "http"])
def test_an_ozx_pickles_and_reads_in_dask_threads(
    where: str, ozx: bytes, tmp_path: Path, s3_server: S3Server, http_server: StaticServer
) -> None:
    options: dict[str, Any] = {}
    if where == "local":
        url = str(tmp_path / "img.ozx")
        (tmp_path / "img.ozx").write_bytes(ozx)
    elif where == "http":
        url = f"{http_server.url}img.ozx"
        (http_server.root / "img.ozx").write_bytes(ozx)
    else:
        url, options = _put_s3(s3_server, ozx), s3_server.options()
    with ngio_async.open(url, **options) as ds:
        payload = pickle.dumps(ds)
        assert DATA.tobytes()[:64] not in payload  # by reference, no pixels
        with pickle.loads(payload) as copy:
            np.testing.assert_array_equal(copy[...], DATA)
            np.testing.assert_array_equal(
                pickle.loads(pickle.dumps(copy.labels))["cells"][...], LABEL
            )
        http_server.reset()
        arr = da.from_array(ds, chunks=(1, 16, 16))
        np.testing.assert_array_equal(arr.compute(scheduler="threads"), DATA)
        level = da.from_array(ds.levels[1], chunks=(1, 16, 16))
        np.testing.assert_array_equal(level.compute(scheduler="threads"), ds.levels[1][...])
        if where == "http":  # the directory stays read: no block reads it again
            assert _directory_gets(http_server) == 0
            assert http_server.count() == 32 + 8 + 8  # one ranged GET per chunk read


def test_tables_and_a_table_pickle(ozx: bytes, tmp_path: Path) -> None:
    (tmp_path / "img.ozx").write_bytes(ozx)
    with ngio_async.open(tmp_path / "img.ozx") as ds:
        tables = pickle.loads(pickle.dumps(ds.tables))  # was: cannot pickle '_thread.lock'
        assert tables._owner._pending is not None  # unpickling opened nothing
        assert tables.names() == ["facts"]
        table = tables.read("facts")
        again = pickle.loads(pickle.dumps(table))
        assert again.name == "facts" and again.columns["size"].tolist() == [0, 1, 2, 3]
        tables._owner.close()


def test_plate_tables_pickle(tmp_path: Path) -> None:
    url = tmp_path / "plate.ome.zarr"
    with ngio_async.create_plate(url, rows=["A"], columns=["1"]) as plate:
        plate.tables.write("facts", {"n": np.arange(3, dtype=np.int64)}, backend="json")
    with ngio_async.open_plate(url) as plate:
        tables = pickle.loads(pickle.dumps(plate.tables))
        assert tables.names() == ["facts"]
        assert tables.read("facts").columns["n"].tolist() == [0, 1, 2]
        tables._owner.close()


@pytest.mark.parametrize("version", ["0.2", "0.3"])
def test_an_old_ngff_image_pickles_and_reads_in_dask_threads(tmp_path: Path, version: str) -> None:
    levels = write_old(
        tmp_path / "old.zarr", version, axes=None if version == "0.2" else ["c", "y", "x"]
    )
    with ngio_async.open(tmp_path / "old.zarr") as ds:
        with pickle.loads(pickle.dumps(ds)) as copy:
            np.testing.assert_array_equal(copy[...], levels[0])
            assert copy.metadata.ome == ds.metadata.ome
        arr = da.from_array(ds, chunks=ds.chunks)
        np.testing.assert_array_equal(arr.compute(scheduler="threads"), levels[0])
        np.testing.assert_array_equal(
            da.from_array(ds.levels[2]).compute(scheduler="threads"), levels[2]
        )


def test_a_lenient_peer_plate_field_pickles_and_reads_in_dask_threads(tmp_path: Path) -> None:
    pytest.importorskip("ome_zarr")
    path = tmp_path / "plate.ome.zarr"
    peer_plate(path, "0.4", ["fov_a", "fov-b"])
    drop_indices(path, "0.4")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with ngio_async.open_plate(path) as plate:
            copy = pickle.loads(pickle.dumps(plate))
            with copy.image("A", "1", field="fov-b") as fov:
                field = pickle.loads(pickle.dumps(fov))
                np.testing.assert_array_equal(field[...], np.full((2, 16, 16), 2, np.uint8))
                arr = da.from_array(fov, chunks=(1, 8, 8))
                assert int(arr.sum().compute(scheduler="threads")) == 2 * 2 * 16 * 16
                field.close()
            copy.close()


def _read_sum(payload: bytes) -> tuple[int, bool, int]:
    """In a child: the copy's pixel sum, whether its zip's store is judged slow, its part size."""
    with pickle.loads(payload) as ds:
        total = int(ds[...].sum())
        store = ds.async_dataset.store
        inner = getattr(store, "inner", store)
        return total, inner._parts.slow, inner.limits.part_size


def test_part_size_pickles_and_a_slow_store_starts_afresh_in_a_child(
    ozx: bytes, http_server: StaticServer
) -> None:
    limits = Limits(part_size=64 * 1024)
    assert pickle.loads(pickle.dumps(limits)) == limits
    (http_server.root / "img.ozx").write_bytes(ozx)
    with ngio_async.open(f"{http_server.url}img.ozx", limits=limits) as ds:
        store = ds.async_dataset.store
        parts = getattr(store, "inner", store)._parts  # the zip's own store: judged slow
        parts.slow = True
        payload = pickle.dumps(ds)
        with spawned_pool() as pool:
            assert pool.apply(_read_sum, (payload,)) == (int(DATA.sum()), False, 64 * 1024)
        run_in_fork(lambda: _check(_read_sum(payload)))  # a forked child: afresh too
        assert int(ds[...].sum()) == int(DATA.sum())  # the parent reads on, in parts


def _check(seen: tuple[int, bool, int]) -> None:
    assert seen == (int(DATA.sum()), False, 64 * 1024), seen


def test_the_errors_of_the_readers_pickle_with_their_url_and_key() -> None:
    for error in (
        CredentialsRefusedError(
            "refused: 'img.ozx' at s3://b/img.ozx", url="s3://b", key="img.ozx"
        ),
        ChangedError("replaced: 'img.ozx' at http://h/", url="http://h/", key="img.ozx"),
    ):
        again = pickle.loads(pickle.dumps(error))
        assert type(again) is type(error) and str(again) == str(error)
        assert (again.url, again.key) == (error.url, error.key)
    assert pickle.loads(pickle.dumps(CredentialsRefusedError("x"))).missing_credentials is False
    readonly = pickle.loads(pickle.dumps(ReadOnlyError("/x/img.ozx is read-only")))
    assert isinstance(readonly, ReadOnlyError) and "/x/img.ozx" in str(readonly)
