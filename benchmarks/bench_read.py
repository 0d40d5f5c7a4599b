"""Full read of a 1x4x8192x8192 uint16 (czyx) image: ngio_async vs zarr-python 3.1 and tensorstore.

Same data, one run: blosc-zstd 512x512 chunks, and the same in 4096x4096 shards; from local disk
and from a moto S3 server on 127.0.0.1. Prints MB/s of decoded data and ratios to zarr-python.

    make bench-read       # or: .venv/bin/python benchmarks/bench_read.py [--small]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import anyio
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import S3, SHAPE, make_image, moto_s3, peak_rss_mb, stored_bytes, table, timed

import ngio_async


def read_ngio(url: str, **options: Any) -> np.ndarray[Any, Any]:
    async def go() -> np.ndarray[Any, Any]:
        async with ngio_async.open_async(url, **options) as ds:
            return await ds.levels[0].getitem(...)

    return anyio.run(go, backend="asyncio")


def read_zarr(store: Any, concurrency: int | None) -> np.ndarray[Any, Any]:
    import zarr
    import zarr.api.asynchronous as za

    cfg: dict[str, Any] = {}
    if concurrency is not None:
        cfg = {"async.concurrency": concurrency, "threading.max_workers": 4}

    async def go() -> np.ndarray[Any, Any]:
        arr = await za.open_array(store=store, path="0", mode="r")
        out: np.ndarray[Any, Any] = await arr.getitem(...)
        return out

    with zarr.config.set(cfg):
        return anyio.run(go, backend="asyncio")


def read_tensorstore(kvstore: dict[str, Any]) -> np.ndarray[Any, Any]:
    import tensorstore as ts

    arr = ts.open({"driver": "zarr3", "kvstore": kvstore}, read=True).result()
    return arr.read().result()  # type: ignore[no-any-return]


def contenders(src: str, root: Path, s3: S3 | None, name: str) -> dict[str, Any]:
    import zarr.storage

    if s3 is None:
        return {
            "zarr-python (default)": lambda: read_zarr(
                zarr.storage.LocalStore(root, read_only=True), None
            ),
            "zarr-python (concurrency=64)": lambda: read_zarr(
                zarr.storage.LocalStore(root, read_only=True), 64
            ),
            "tensorstore": lambda: read_tensorstore(
                {"driver": "file", "path": str(root / "0") + "/"}
            ),
            "ngio_async": lambda: read_ngio(str(root)),
        }
    from obstore.store import S3Store

    def obstore_zarr() -> Any:
        return zarr.storage.ObjectStore(
            S3Store(
                s3.bucket,
                prefix=name,
                endpoint=s3.endpoint,
                region=s3.region,
                access_key_id=s3.key,
                secret_access_key=s3.secret,
                client_options={"allow_http": True},
            ),
            read_only=True,
        )

    return {
        "zarr-python (default)": lambda: read_zarr(obstore_zarr(), None),
        "zarr-python (concurrency=64)": lambda: read_zarr(obstore_zarr(), 64),
        "tensorstore": lambda: read_tensorstore(
            {
                "driver": "s3",
                "bucket": s3.bucket,
                "path": f"{name}/0/",
                "endpoint": s3.endpoint,
                "aws_region": s3.region,
            }
        ),
        "ngio_async": lambda: read_ngio(f"s3://{s3.bucket}/{name}", **s3.options()),
    }


def upload(root: Path, name: str, s3: S3) -> None:
    from ngio_async.stores import open_store

    files = {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}

    async def go() -> None:
        async with (
            open_store(f"s3://{s3.bucket}/{name}", **s3.options()) as store,
            anyio.create_task_group() as tg,
        ):
            for key, data in files.items():
                tg.start_soon(store.put, key, data)

    anyio.run(go, backend="asyncio")


def main() -> None:
    small = "--small" in sys.argv
    shape = (1, 2, 2048, 2048) if small else SHAPE
    nbytes = int(np.prod(shape)) * 2
    images = {
        "chunked": make_image(
            "read-chunked" + ("-small" if small else ""), sharded=False, shape=shape
        ),
        "sharded": make_image(
            "read-sharded" + ("-small" if small else ""), sharded=True, shape=shape
        ),
    }
    reference = {k: read_ngio(str(v)) for k, v in images.items()}
    print(
        f"image {shape} uint16 = {nbytes / 1e6:.0f} MB decoded; stored: "
        + ", ".join(f"{k} {stored_bytes(v) / 1e6:.0f} MB" for k, v in images.items())
    )
    rows: list[tuple[str, str, float]] = []
    with moto_s3() as s3:
        for root in images.values():
            upload(root, root.name, s3)
        for where in ("disk", "s3 (moto)"):
            for kind, root in images.items():
                src = f"{where} {kind}"
                for name, fn in contenders(
                    where, root, s3 if where != "disk" else None, root.name
                ).items():
                    try:
                        got = fn()
                        assert np.array_equal(got, reference[kind]), f"{name} read wrong data"
                        t = timed(fn, repeat=2)
                    except Exception as exc:  # noqa: BLE001 - a contender that cannot read this source
                        print(f"  {src}: {name} failed: {type(exc).__name__}: {exc}"[:200])
                        continue
                    rows.append((src, name, t))
                    print(f"  {src:20} {name:30} {t:6.2f} s", flush=True)
    print()
    table(rows, nbytes, "zarr-python (default)")
    print(f"\npeak RSS of the benchmark process: {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
