"""The store layer against Azurite, Microsoft's Azure Blob Storage emulator, through ``az://``
URLs: reads, tiles, writes, the create-only put, listing, errors and retries.

Azurite runs once for the module (in memory, on a free loopback port, without telemetry);
it is installed from npm by ``make azurite``, and these tests skip when it or node is missing.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest
from servers import (
    AZURITE_ACCOUNT,
    AZURITE_KEY,
    AzuriteServer,
    FaultProxy,
    Faults,
    HangUpServer,
    S3Server,
)
from zarr_nodes import zarr_read

import ngio_async
from ngio_async import (
    ExistsError,
    Limits,
    NotFoundError,
    PermissionDeniedError,
    StoreError,
)
from ngio_async.stores import (
    AsyncStore,
    Buffer,
    OffsetByteRequest,
    RangeByteRequest,
    SuffixByteRequest,
    open_store,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

FAST = Limits(max_retries=2, backoff_base=0.001, backoff_max=0.002, timeout=10)


@pytest.fixture(scope="module")
def azure_proxy(azurite: AzuriteServer) -> Iterator[FaultProxy]:
    """A fault-injecting proxy in front of Azurite."""
    proxy = FaultProxy(Path("."), target=azurite.endpoint).start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def proxy(azure_proxy: FaultProxy) -> FaultProxy:
    azure_proxy.reset()
    azure_proxy.fault_methods = None
    return azure_proxy


def _bytes(buf: Buffer | None) -> bytes:
    assert buf is not None
    return bytes(buf)


def _via(proxy: FaultProxy) -> dict[str, Any]:
    """Options reaching Azurite through ``proxy``, as an account at an endpoint."""
    return {
        "account_name": AZURITE_ACCOUNT,
        "access_key": AZURITE_KEY,
        "endpoint": f"{proxy.url}{AZURITE_ACCOUNT}",
    }


# -- reaching the emulator --------------------------------------------------------------------


async def test_use_emulator_goes_to_the_endpoint_given(azurite: AzuriteServer) -> None:
    # obstore's use_emulator ignores `endpoint` (it went to 127.0.0.1:10000)
    options: dict[str, Any] = {"use_emulator": True, "endpoint": azurite.endpoint}
    async with open_store(azurite.fresh_url(), limits=FAST, **options) as store:
        await store.put("a/b", b"hello")
        assert _bytes(await store.get("a/b")) == b"hello"
        assert await store.list_prefix() == ["a/b"]


async def test_use_emulator_and_endpoint_from_the_environment(
    azurite: AzuriteServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_STORAGE_USE_EMULATOR", "true")
    monkeypatch.setenv("AZURE_STORAGE_ENDPOINT", azurite.endpoint)
    async with open_store(azurite.fresh_url(), limits=FAST) as store:
        await store.put("x", b"1")
        assert await store.exists("x")


async def test_account_at_endpoint_and_config_key_spellings(azurite: AzuriteServer) -> None:
    url = azurite.fresh_url()
    async with open_store(
        url,
        limits=FAST,
        azure_storage_use_emulator="true",
        azure_storage_endpoint=f"{azurite.endpoint}/{AZURITE_ACCOUNT}",
    ) as store:
        await store.put("k", b"v")
    explicit: dict[str, Any] = {"account_name": AZURITE_ACCOUNT, "account_key": AZURITE_KEY}
    async with open_store(
        url, limits=FAST, endpoint=f"{azurite.endpoint}/{AZURITE_ACCOUNT}", **explicit
    ) as store:
        assert _bytes(await store.get("k")) == b"v"


async def test_endpoint_from_the_environment_implies_plain_http(
    azurite: AzuriteServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an http:// AZURE_STORAGE_ENDPOINT allows plain http, as an http:// endpoint= does (it
    # failed with obstore's "HTTP error: builder error")
    monkeypatch.delenv("AZURE_ALLOW_HTTP", raising=False)
    monkeypatch.setenv("AZURE_STORAGE_ENDPOINT", f"{azurite.endpoint}/{AZURITE_ACCOUNT}")
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", AZURITE_ACCOUNT)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", AZURITE_KEY)
    async with open_store(azurite.fresh_url(), limits=FAST) as store:
        await store.put("k", b"v")
        assert _bytes(await store.get("k")) == b"v"


async def test_plain_http_refused_says_allow_http(azurite: AzuriteServer) -> None:
    options: dict[str, Any] = {"account_name": AZURITE_ACCOUNT, "account_key": AZURITE_KEY}
    endpoint = f"{azurite.endpoint}/{AZURITE_ACCOUNT}"
    async with open_store(
        azurite.fresh_url(), limits=FAST, endpoint=endpoint, allow_http=False, **options
    ) as store:
        with pytest.raises(StoreError, match=r"plain http:// refused for 'k'.*allow_http=True"):
            await store.get("k")
        with pytest.raises(StoreError, match="allow_http=True"):
            await store.list_prefix()


def test_sas_tokens_as_option_and_as_signed_url(azurite: AzuriteServer) -> None:
    url = azurite.fresh_url()
    data = np.arange(2 * 100 * 100, dtype="uint16").reshape(2, 100, 100)
    endpoint = f"{azurite.endpoint}/{AZURITE_ACCOUNT}"
    sas: dict[str, Any] = {"account_name": AZURITE_ACCOUNT, "endpoint": endpoint}
    with ngio_async.create(
        f"{url}/img.ome.zarr", shape=data.shape, dtype="uint16", axes="cyx",
        sas_key=azurite.container_sas("racwdl"), **sas,
    ) as ds:  # fmt: skip
        ds.write(data)
    with ngio_async.open(f"{url}/img.ome.zarr", sas_key=azurite.container_sas("rl"), **sas) as ds:
        assert np.array_equal(np.asarray(ds), data)
    with pytest.raises(PermissionDeniedError, match=r"zarr\.json"):  # read and list only
        ngio_async.create(
            f"{url}/new.ome.zarr", shape=(8, 8), dtype="uint8", axes="yx",
            sas_key=azurite.container_sas("rl"), **sas,
        )  # fmt: skip
    signed = url.replace("az://", f"{endpoint}/") + "/img.ome.zarr?" + azurite.container_sas()
    with ngio_async.open(signed) as ds:  # the http(s) store, its query sent with every request
        assert np.array_equal(np.asarray(ds), data)


# -- images through the public API ------------------------------------------------------------


async def test_create_write_pyramid_read_tiles(azurite: AzuriteServer) -> None:
    url = f"{azurite.fresh_url()}/img.ome.zarr"
    data = np.arange(2 * 300 * 500, dtype=np.uint16).reshape(2, 300, 500)
    async with ngio_async.create_async(
        url,
        shape=data.shape,
        dtype="uint16",
        axes="cyx",
        channels=["DAPI", "GFP"],
        chunks=(1, 128, 128),
        levels=2,
        **azurite.options(),
    ) as ds:
        await ds.write(data, pyramid=True)
    async with ngio_async.open_async(url, **azurite.options()) as ds:
        assert ds.shape == data.shape
        assert np.array_equal(await ds.read(level=0), data)
        assert np.array_equal(await ds.read(c="GFP", y=slice(100, 200)), data[1, 100:200])
        seen = np.zeros_like(data)
        async for tile in ds.tiles(level=0, ordered=False):
            seen[tile.region] = tile.data
        assert np.array_equal(seen, data)
        assert (await ds.read(level=1)).shape == (2, 150, 250)


def test_sync_api(azurite: AzuriteServer) -> None:
    url = f"{azurite.fresh_url()}/sync.ome.zarr"
    with ngio_async.create(
        url, shape=(64, 64), dtype="uint8", axes="yx", **azurite.options()
    ) as ds:
        ds.write(np.full((64, 64), 9, "uint8"))
    with ngio_async.open(url, **azurite.options()) as ds:
        assert int(ds[10, 10]) == 9
        assert np.asarray(ds).sum() == 9 * 64 * 64


async def test_create_refuses_an_image_and_overwrite_replaces_it(azurite: AzuriteServer) -> None:
    root = azurite.fresh_url()
    url = f"{root}/img.ome.zarr"
    async with ngio_async.create_async(
        url, shape=(2, 600, 600), dtype="uint16", axes="cyx", levels=3, **azurite.options()
    ) as ds:
        await ds.write(np.ones((2, 600, 600), "uint16"))
    with pytest.raises(ExistsError, match="overwrite=True"):
        await ngio_async.create_async(
            url, shape=(8, 8), dtype="uint8", axes="yx", **azurite.options()
        )
    async with ngio_async.create_async(
        url, shape=(8, 8), dtype="uint8", axes="yx", overwrite=True, **azurite.options()
    ) as ds:
        await ds.write(np.full((8, 8), 3, "uint8"))
    async with open_store(root, **azurite.options()) as store:
        keys = await store.list_prefix("img.ome.zarr")
    assert not [k for k in keys if k.startswith(("img.ome.zarr/1/", "img.ome.zarr/2/"))], keys
    async with ngio_async.open_async(url, **azurite.options()) as ds:
        assert ds.shape == (8, 8)
        assert int((await ds.read()).sum()) == 3 * 64


async def test_overwrite_deletes_in_bulk(azurite: AzuriteServer, proxy: FaultProxy) -> None:
    url = f"{azurite.fresh_url()}/img.ome.zarr"
    # a loaded machine (tests in parallel) slows Azurite
    limits = Limits(max_retries=2, backoff_base=0.001, timeout=60)
    options = {**_via(proxy), "limits": limits}
    async with ngio_async.create_async(  # straight to Azurite: the proxy counts what follows
        url, shape=(1, 1024, 1024), dtype="uint8", axes="cyx", chunks=(1, 32, 32),
        ngff_version="0.4", levels=1, **azurite.options(), limits=limits,
    ) as ds:  # fmt: skip
        await ds.write(np.ones((1, 1024, 1024), "uint8"))  # 1,024 chunks
    proxy.reset()
    async with ngio_async.create_async(
        url, shape=(8, 8), dtype="uint8", axes="yx", overwrite=True, **options
    ) as ds:
        await ds.write(np.full((8, 8), 3, "uint8"))
    assert proxy.count("DELETE") == 0
    assert 4 <= proxy.count("POST") <= 8  # batches of <= 256 keys per stage (was 1,027)
    async with ngio_async.open_async(url, **options) as ds:
        assert int((await ds.read()).sum()) == 3 * 64


async def test_put_if_absent_claims_a_key_once(azurite: AzuriteServer) -> None:
    async with open_store(azurite.fresh_url(), **azurite.options()) as store:
        won: list[bool] = []

        async def claim(i: int) -> None:
            won.append(await store.put_if_absent("claim", str(i).encode()))

        async with anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(claim, i)
        assert sorted(won) == [False] * 7 + [True]
        first = _bytes(await store.get("claim"))
        assert not await store.put_if_absent("claim", b"later")
        assert _bytes(await store.get("claim")) == first
        await store.put("claim", b"replaced")  # a plain put overwrites
        assert _bytes(await store.get("claim")) == b"replaced"


async def test_byte_requests(azurite: AzuriteServer) -> None:
    async with open_store(azurite.fresh_url(), **azurite.options()) as store:
        await store.put("t", b"0123456789")
        await store.put("empty", b"")
        assert _bytes(await store.get("t", SuffixByteRequest(3))) == b"789"  # no suffix
        assert _bytes(await store.get("t", SuffixByteRequest(30))) == b"0123456789"
        assert _bytes(await store.get("t", OffsetByteRequest(4))) == b"456789"
        assert _bytes(await store.get("t", RangeByteRequest(8, 20))) == b"89"
        assert _bytes(await store.get("empty")) == b""
        assert _bytes(await store.get("empty", SuffixByteRequest(4))) == b""
        parts = await store.get_ranges("t", [(0, 1), (5, 7), (9, 10)])
        assert [bytes(p) for p in parts or []] == [b"0", b"56", b"9"]
        with pytest.raises(StoreError, match="'t'"):
            await store.get("t", RangeByteRequest(10, 12))  # starts at the end


async def test_keys_are_literal(azurite: AzuriteServer) -> None:
    root = f"{azurite.fresh_url()}/a%20b c"
    keys = ["a b", "c%41", "p+q", "x=y&z", "ü"]
    async with open_store(root, **azurite.options()) as store:
        for key in keys:
            await store.put(key, key.encode())
        assert await store.list_prefix() == sorted(keys)
        assert [_bytes(await store.get(k)) for k in keys] == [k.encode() for k in keys]


# -- errors -----------------------------------------------------------------------------------


async def test_not_found(azurite: AzuriteServer) -> None:
    url = azurite.fresh_url()
    async with open_store(url, **azurite.options()) as store:
        assert await store.get("nope") is None
        assert not await store.exists("nope")
        assert await store.size("nope") is None
        await store.delete("nope")  # a missing key is fine
        assert await store.list_prefix("nope") == []
    with pytest.raises(NotFoundError, match="no OME-Zarr group") as info:
        await ngio_async.open_async(f"{url}/missing.ome.zarr", **azurite.options())
    assert isinstance(info.value, FileNotFoundError)
    absent = f"az://no-such-{uuid.uuid4().hex[:8]}/x"
    async with open_store(absent, limits=FAST, **azurite.options()) as store:
        with pytest.raises(NotFoundError, match="container") as info:
            await store.get("k")
        assert info.value.url == absent
        with pytest.raises(NotFoundError, match="container"):
            await store.list_prefix()
        with pytest.raises(NotFoundError, match="container"):
            await store.put("k", b"1")


async def test_permission_denied_names_the_key(azurite: AzuriteServer) -> None:
    url = azurite.fresh_url()
    async with open_store(url, **azurite.options()) as store:
        await store.put("img/zarr.json", b"{}")
    wrong = "A" * 86 + "=="  # a valid base64 key, not Azurite's
    for options in (
        {"account_name": AZURITE_ACCOUNT, "account_key": wrong},
        {"account_name": AZURITE_ACCOUNT, "skip_signature": True},
    ):
        endpoint = f"{azurite.endpoint}/{AZURITE_ACCOUNT}"
        async with open_store(url, limits=FAST, endpoint=endpoint, **options) as store:
            with pytest.raises(PermissionDeniedError, match=r"'img/zarr\.json'") as info:
                await store.get("img/zarr.json")
            assert isinstance(info.value, PermissionError)
            assert info.value.key == "img/zarr.json"
            with pytest.raises(PermissionDeniedError, match="'new'"):
                await store.put("new", b"1")
            with pytest.raises(PermissionDeniedError, match="'claim'"):
                await store.put_if_absent("claim", b"1")
            # obstore's listings and (bulk) deletes fail with a generic error: a StoreError
            with pytest.raises(PermissionDeniedError, match="403"):
                await store.list_prefix("img")
            with pytest.raises(PermissionDeniedError, match="403"):
                await store.stored_bytes()
            with pytest.raises(PermissionDeniedError, match=r"'img/a'.*403"):
                await store.delete("img/a")


@pytest.mark.parametrize(
    ("url", "names", "not_named"),
    [
        ("az://c/x", "AZURE_STORAGE_ACCOUNT_KEY", "AWS_"),
        ("gs://bkt/x", "GOOGLE_APPLICATION_CREDENTIALS", "AWS_"),
        ("s3://b/x", "AWS_ACCESS_KEY_ID", "AZURE_"),
    ],
)
def test_missing_credentials_say_how_to_give_them(url: str, names: str, not_named: str) -> None:
    """With no credentials obstore asks the instance metadata (169.254.169.254); the error
    names the store's own settings (an az:// URL was told to set AWS_ACCESS_KEY_ID). The
    message is injected: whether that address answers depends on the machine."""
    from obstore import exceptions as obs_exc

    from ngio_async.stores import ObstoreStore

    options: dict[str, Any] = {"account_name": AZURITE_ACCOUNT} if url.startswith("az") else {}
    store = open_store(url, **options)
    assert isinstance(store, ObstoreStore)
    fetch = "Generic error: GET http://169.254.169.254/metadata/identity/oauth2/token: 403"
    with pytest.raises(PermissionDeniedError, match=f"no credentials .*{names}") as info:  # noqa: SIM117
        with store._map_exceptions("a/zarr.json"):
            raise obs_exc.GenericError(fetch)
    assert not_named not in str(info.value)
    if url.startswith("gs"):  # the command line has no use_emulator option: the variable is named
        from ngio_async.cli._common import describe_error

        assert "STORAGE_EMULATOR_HOST" in str(info.value)
        _, line = describe_error(info.value)
        assert "STORAGE_EMULATOR_HOST for an emulator" in line and "use_emulator" not in line


# -- listing ----------------------------------------------------------------------------------


async def test_listing_sizes_labels_and_plates(azurite: AzuriteServer) -> None:
    root = azurite.fresh_url()
    url = f"{root}/img.ome.zarr"
    async with ngio_async.create_async(
        url, shape=(1, 64, 64), dtype="uint16", axes="cyx", **azurite.options()
    ) as ds:
        await ds.write(np.arange(64 * 64, dtype="uint16").reshape(1, 64, 64))
        cells = await ds.labels.create("cells", dtype="uint32")
        await cells.write(np.ones((64, 64), "uint32"))
        await ds.labels.create("nuclei", dtype="uint8")
    async with ngio_async.open_async(url, **azurite.options()) as ds:
        assert await ds.labels.names() == ["cells", "nuclei"]
    async with open_store(root, **azurite.options()) as store:
        keys = await store.list_prefix("img.ome.zarr")
        sizes = [await store.size(k) or 0 for k in keys]
        assert await store.stored_bytes("img.ome.zarr") == sum(sizes) > 0
        assert await store.stored_bytes("img.ome.zarr/labels/nuclei") < sum(sizes)
        assert await store.stored_bytes("nothing/here") == 0
    plate_url = f"{root}/plate.ome.zarr"
    async with ngio_async.create_plate_async(
        plate_url, rows=["A", "B"], columns=["1", "2"], **azurite.options()
    ) as plate:
        for row, column in (("A", "1"), ("B", "2")):
            async with await plate.add_image(
                row, column, field="0", shape=(16, 16), dtype="uint8", axes="yx"
            ) as fov:
                await fov.write(np.full((16, 16), 5, "uint8"))
    async with ngio_async.open_plate_async(plate_url, **azurite.options()) as plate:
        assert plate.wells == ["A/1", "B/2"]
        assert await plate.image_paths() == [("A/1", "0"), ("B/2", "0")]
        async with await plate.image("B", "2", field=0) as fov:
            assert int((await fov.read()).sum()) == 5 * 256


# -- retries ----------------------------------------------------------------------------------


async def test_5xx_are_retried(azurite: AzuriteServer, proxy: FaultProxy) -> None:
    async with open_store(azurite.fresh_url(), limits=FAST, **_via(proxy)) as store:
        await store.put("a", b"hello")
        for status in (500, 503):
            proxy.reset()
            proxy.faults = Faults(status=status, status_times=2)
            assert _bytes(await store.get("a")) == b"hello"
            assert proxy.count("GET") == 3
        proxy.reset()
        proxy.faults = Faults(status=503, status_times=2)
        await store.put("b", b"1")
        assert proxy.count("PUT") == 3
        proxy.reset()
        proxy.faults = Faults(status=503, status_times=2)
        assert await store.list_prefix() == ["a", "b"]
        proxy.reset()
        proxy.faults = Faults(status=503, status_times=-1)
        with pytest.raises(StoreError, match=r"'a'.*503") as info:
            await store.get("a")
        assert not isinstance(info.value, PermissionDeniedError | NotFoundError)
        assert proxy.count("GET") == FAST.max_retries + 1


async def test_a_cut_off_body_is_fetched_max_retries_times(
    azurite: AzuriteServer, proxy: FaultProxy
) -> None:
    # obstore fetches a cut-off GET body again itself (max_retries times); retrying its final
    # error as well made that (max_retries + 1) ** 2 requests: 25 by default
    data = bytes(range(256)) * 800
    async with open_store(azurite.fresh_url(), limits=FAST, **_via(proxy)) as store:
        await store.put("a", data)
        for request in (None, RangeByteRequest(10, 150_000), OffsetByteRequest(5)):
            proxy.reset()
            proxy.faults = Faults(drop=True, drop_times=1)
            expected = (
                data
                if request is None
                else data[5:]
                if request == OffsetByteRequest(5)
                else data[10:150_000]
            )
            assert _bytes(await store.get("a", request)) == expected
            assert proxy.count("GET") == 2
            proxy.reset()
            proxy.faults = Faults(drop=True, drop_times=-1)
            with pytest.raises(StoreError, match="'a'"):
                await store.get("a", request)
            assert proxy.count("GET") == FAST.max_retries + 1


async def test_a_hang_up_is_tried_max_retries_plus_one_times() -> None:
    # obstore retries a connection closed before the answer itself; retrying its final
    # error again made (max_retries + 1) ** 2 requests
    server = HangUpServer()
    try:
        endpoint = f"http://127.0.0.1:{server.port}/{AZURITE_ACCOUNT}"
        options: dict[str, Any] = {"account_name": AZURITE_ACCOUNT, "account_key": AZURITE_KEY}
        async with open_store("az://c/x", limits=FAST, endpoint=endpoint, **options) as store:
            calls: dict[str, Callable[[], Awaitable[object]]] = {
                "get": lambda: store.get("k"),
                "list": store.list_prefix,
                "put": lambda: store.put("k", b"1"),
                "delete": lambda: store.delete("k"),
            }
            for name, call in calls.items():
                server.count = 0
                with pytest.raises(StoreError):
                    await call()
                assert server.count == FAST.max_retries + 1, name
    finally:
        server.stop()


async def test_a_shard_sized_put_is_one_request(azurite: AzuriteServer, proxy: FaultProxy) -> None:
    # obstore's default made anything over 5 MiB a multipart upload (a block per 5 MiB and a
    # block list: 5 requests for 17 MB, against tensorstore's 1)
    data = np.random.default_rng(0).integers(0, 255, 17 << 20, dtype=np.uint8)
    async with open_store(azurite.fresh_url(), limits=FAST, **_via(proxy)) as store:
        proxy.reset()
        await store.put("shard", data.data)  # a memoryview of the array
        assert proxy.count() == 1
        assert bytes(await store.get("shard") or b"") == data.tobytes()


async def test_create_only_put_is_never_resent(azurite: AzuriteServer, proxy: FaultProxy) -> None:
    async with open_store(azurite.fresh_url(), limits=FAST, **_via(proxy)) as store:
        proxy.faults = Faults(status=503, status_times=1)
        with pytest.raises(StoreError, match="'claim'"):
            await store.put_if_absent("claim", b"1")
        assert proxy.count("PUT") == 1
        assert await store.put_if_absent("claim", b"1")  # nothing was stored


async def test_create_through_a_flaky_server(azurite: AzuriteServer, proxy: FaultProxy) -> None:
    url = f"{azurite.fresh_url()}/img.ome.zarr"
    data = np.arange(128 * 128, dtype=np.uint16).reshape(128, 128)
    proxy.fault_methods = frozenset({"GET", "HEAD", "DELETE"})
    # as many faults as one request may retry (FAST: 2): whichever requests meet them, in
    # whatever order concurrent requests reach the proxy, every one gets through
    proxy.faults = Faults(status=503, status_times=2)
    async with ngio_async.create_async(
        url, shape=data.shape, dtype="uint16", axes="yx", limits=FAST, **_via(proxy)
    ) as ds:
        await ds.write(data)
    proxy.faults = Faults(status=500, status_times=2)
    async with ngio_async.open_async(url, limits=FAST, **_via(proxy)) as ds:
        assert np.array_equal(await ds.read(), data)
    assert proxy.faults.status_times == 0  # both faults were met (and retried)


# -- peers ------------------------------------------------------------------------------------


def test_zarr_python_reads_and_writes_the_same_blobs(azurite: AzuriteServer) -> None:
    import zarr
    from obstore.store import AzureStore
    from zarr.storage import ObjectStore

    root = azurite.fresh_url()
    blobs = AzureStore(
        azurite.container,
        prefix=root.split("/", 3)[3],
        account_name=AZURITE_ACCOUNT,
        account_key=AZURITE_KEY,
        endpoint=f"{azurite.endpoint}/{AZURITE_ACCOUNT}",
        client_options={"allow_http": True},
    )
    data = np.random.default_rng(0).integers(0, 1000, (2, 200, 300), dtype="uint16")
    with ngio_async.create(
        f"{root}/ours.ome.zarr", shape=data.shape, dtype="uint16", axes="cyx",
        chunks=(1, 64, 64), **azurite.options(),
    ) as ds:  # fmt: skip
        ds.write(data)
    ours = zarr.open_group(ObjectStore(blobs, read_only=True), path="ours.ome.zarr", mode="r")
    assert np.array_equal(zarr_read(ours, "0"), data)

    theirs = zarr.open_group(ObjectStore(blobs), path="theirs.ome.zarr", mode="w")
    array = theirs.create_array(
        "0", shape=data.shape, dtype="uint16", chunks=(1, 64, 64), shards=(1, 128, 128)
    )
    array[:] = data
    axes = [
        {"name": n, "type": t} for n, t in zip("cyx", ("channel", "space", "space"), strict=True)
    ]
    scale = [{"type": "scale", "scale": [1.0, 1.0, 1.0]}]
    ome: dict[str, Any] = {
        "version": "0.5",
        "multiscales": [
            {"axes": axes, "datasets": [{"path": "0", "coordinateTransformations": scale}]}
        ],
    }
    theirs.attrs["ome"] = ome
    with ngio_async.open(f"{root}/theirs.ome.zarr", **azurite.options()) as ds:
        assert np.array_equal(np.asarray(ds), data)
    with ngio_async.open(blobs, path="theirs.ome.zarr") as ds:  # an obstore store object
        assert ds[1, 150, 250] == data[1, 150, 250]


# -- bulk deletes -----------------------------------------------------------------------------


async def _put_all(store: AsyncStore, keys: list[str]) -> None:
    async with anyio.create_task_group() as tg:
        for key in keys:
            tg.start_soon(store.put, key, b"x")


async def test_delete_many_in_batches(azurite: AzuriteServer, proxy: FaultProxy) -> None:
    keys = [f"img/c/{i}" for i in range(300)]
    async with open_store(azurite.fresh_url(), limits=FAST, **_via(proxy)) as store:
        assert store.delete_batch == 256
        await _put_all(store, [*keys, "keep"])
        proxy.reset()
        await store.delete_many(keys)
        assert proxy.count("POST") == 2  # two blob batches (256 + 44), no DELETE each
        assert await store.list_prefix() == ["keep"]
        await _put_all(store, keys[:10])
        await store.delete_many([*keys[:10], "gone/a", "gone/b"])  # missing keys are fine
        assert await store.list_prefix() == ["keep"]
        await store.delete_many([])
    absent = f"az://no-such-{uuid.uuid4().hex[:8]}/x"
    async with open_store(absent, limits=FAST, **azurite.options()) as store:
        with pytest.raises(NotFoundError, match="container"):
            await store.delete_many(["a", "b"])
    endpoint = f"{azurite.endpoint}/{AZURITE_ACCOUNT}"
    async with open_store(
        azurite.fresh_url(), limits=FAST, endpoint=endpoint, account_name=AZURITE_ACCOUNT,
        skip_signature=True,
    ) as store:  # fmt: skip
        with pytest.raises(PermissionDeniedError):
            await store.delete_many(["a", "b"])


@pytest.mark.parametrize("where", ["s3", "file", "memory"])
async def test_delete_many_elsewhere(where: str, s3_server: S3Server, tmp_path: Path) -> None:
    url = {"s3": s3_server.fresh_url(), "file": str(tmp_path), "memory": "memory://"}[where]
    options = s3_server.options() if where == "s3" else {}
    keys = [f"a/{i}" for i in range(300)]
    async with open_store(url, **options) as store:
        await _put_all(store, [*keys, "b/keep"])
        await store.delete_many([*keys, "a/missing"])
        assert await store.list_prefix() == ["b/keep"]
