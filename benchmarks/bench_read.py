"""Full read of a 1x4x8192x8192 uint16 (czyx) image: ngio_async vs zarr-python 3.1 and tensorstore.

Same data, one run: blosc-zstd 512x512 chunks, and the same in 4096x4096 shards; from local disk
and from a moto S3 server on 127.0.0.1. Prints MB/s of decoded data and ratios to zarr-python.

Every measurement runs in a fresh subprocess (``--one``): the moto server stays in the parent, so
no contender shares its GIL with the server, and every contender starts with the same cold
process (imports done, no pages of a previous output array to reuse). The child checks its result
against the reference digest (blake2b of the bytes) and reports the best of ``--repeat`` runs and
its peak RSS as JSON.

    make bench-read       # or: .venv/bin/python benchmarks/bench_read.py [--small] [--repeat N]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import S3, SHAPE, make_image, moto_s3, peak_rss_mb, stored_bytes, table, upload

CONTENDERS = (
    "zarr-python (default)",
    "zarr-python (concurrency=64)",
    "tensorstore",
    "ngio_async",
)


def read_ngio(url: str, **options: Any) -> np.ndarray[Any, Any]:
    import ngio_async

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


def reader(contender: str, root: Path, s3: S3 | None, name: str) -> Any:
    """A no-argument function reading the whole level 0 with ``contender``."""
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
        }[contender]
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
    }[contender]


def digest(arr: np.ndarray[Any, Any]) -> str:
    return hashlib.blake2b(np.ascontiguousarray(arr).data, digest_size=16).hexdigest()


def run_one(contender: str, root: Path, s3: S3 | None, want: str, repeat: int) -> dict[str, Any]:
    """In the child: read once to check, then ``repeat`` timed reads; the best and peak RSS."""
    fn = reader(contender, root, s3, root.name)
    got = digest(fn())
    if got != want:
        return {"error": f"{contender} read wrong data"}
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return {"seconds": best, "rss_mb": peak_rss_mb()}


def spawn(contender: str, root: Path, s3: S3 | None, want: str, repeat: int) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--one",
        json.dumps(
            {
                "contender": contender,
                "root": str(root),
                "s3": None if s3 is None else s3.__dict__,
                "want": want,
                "repeat": repeat,
            }
        ),
    ]
    env = dict(os.environ, PYTHONHASHSEED="0")
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=900, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        err = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        return {"error": err[:160]}
    return json.loads(lines[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a 1x2x2048x2048 image")
    parser.add_argument("--repeat", type=int, default=2, help="timed reads per contender")
    parser.add_argument("--sources", default="disk,s3", help="comma-separated: disk, s3")
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        job = json.loads(args.one)
        s3 = None if job["s3"] is None else S3(**job["s3"])
        res = run_one(job["contender"], Path(job["root"]), s3, job["want"], job["repeat"])
        print(json.dumps(res), flush=True)
        return

    shape = (1, 2, 2048, 2048) if args.small else SHAPE
    nbytes = int(np.prod(shape)) * 2
    suffix = "-small" if args.small else ""
    images = {
        "chunked": make_image("read-chunked" + suffix, sharded=False, shape=shape),
        "sharded": make_image("read-sharded" + suffix, sharded=True, shape=shape),
    }
    reference = {k: digest(read_zarr(str(v), None)) for k, v in images.items()}
    print(
        f"image {shape} uint16 = {nbytes / 1e6:.0f} MB decoded; stored: "
        + ", ".join(f"{k} {stored_bytes(v) / 1e6:.0f} MB" for k, v in images.items())
    )
    wanted = [c.strip() for c in args.contenders.split(",") if c.strip()]
    sources = [s.strip() for s in args.sources.split(",")]
    rows: list[tuple[str, str, float]] = []
    with moto_s3() as s3:
        if "s3" in sources:
            for root in images.values():
                upload(root, root.name, s3)
        for where in sources:
            label = "disk" if where == "disk" else "s3 (moto)"
            for kind, root in images.items():
                src = f"{label} {kind}"
                for name in wanted:
                    res = spawn(name, root, None if where == "disk" else s3, reference[kind],
                                args.repeat)  # fmt: skip
                    if "error" in res:
                        print(f"  {src}: {name} failed: {res['error']}")
                        continue
                    rows.append((src, name, res["seconds"]))
                    print(
                        f"  {src:20} {name:30} {res['seconds']:6.2f} s  "
                        f"peak RSS {res['rss_mb']:5.0f} MB",
                        flush=True,
                    )
    print()
    table(rows, nbytes, "zarr-python (default)")


if __name__ == "__main__":
    main()
