"""Shared benchmark helpers: the test image, a moto S3 server, timing and table printing."""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

DATA = Path(__file__).resolve().parent / "_data"
SHAPE = (1, 4, 8192, 8192)  # c, z, y, x
CHUNKS = (1, 1, 512, 512)
SHARDS = (1, 1, 4096, 4096)
AXES = "czyx"


def synthetic_plane(z: int, shape: tuple[int, int] = SHAPE[2:]) -> np.ndarray[Any, Any]:
    """A microscopy-like uint16 plane: smooth blobs plus shot noise (compresses ~2-3x)."""
    rng = np.random.default_rng(z)
    y = np.linspace(0, 24 * np.pi, shape[0], dtype=np.float32)[:, None]
    x = np.linspace(0, 24 * np.pi, shape[1], dtype=np.float32)[None, :]
    base = 800 + 600 * np.sin(y + z) * np.cos(x * 0.7)
    noise = rng.poisson(30, size=shape).astype(np.float32)
    return np.clip(base + noise, 0, 65535).astype(np.uint16)


def make_image(
    name: str,
    *,
    sharded: bool,
    shape: tuple[int, ...] = SHAPE,
    chunks: tuple[int, ...] = CHUNKS,
    shards: tuple[int, ...] = SHARDS,
) -> Path:
    """Write the benchmark image (NGFF 0.5, blosc-zstd) once; later runs reuse it."""
    import zarr
    import zarr.codecs

    from ngio_async.meta import Axis, Dataset, Multiscale, OmeMetadata, Scale, to_attrs

    root = DATA / name
    if (root / "zarr.json").exists():
        return root
    arr = zarr.create_array(
        store=root,
        name="0",
        shape=shape,
        chunks=chunks,
        shards=shards if sharded else None,
        dtype="uint16",
        compressors=zarr.codecs.BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle"),
        dimension_names=list(AXES),
        overwrite=True,
    )
    depth = (shards if sharded else chunks)[1]
    for z0 in range(0, shape[1], depth):  # whole chunks (or shards) at a time
        z1 = min(shape[1], z0 + depth)
        arr[0, z0:z1] = np.stack([synthetic_plane(z, shape[2:]) for z in range(z0, z1)])
    axes = [Axis(name="c", type="channel")] + [
        Axis(name=a, type="space", unit="micrometer") for a in "zyx"
    ]
    ms = Multiscale(
        axes=axes,
        datasets=[Dataset(path="0", coordinate_transformations=[Scale(scale=[1, 1, 0.2, 0.2])])],
    )
    group = zarr.open_group(root, mode="a", zarr_format=3)
    group.attrs.update(to_attrs(OmeMetadata(version="0.5", multiscales=[ms]), "0.5"))
    return root


def stored_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


@dataclass
class S3:
    endpoint: str
    bucket: str = "bench"
    key: str = "bench-key"
    secret: str = "bench-secret"
    region: str = "us-east-1"

    def options(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "access_key_id": self.key,
            "secret_access_key": self.secret,
            "region": self.region,
        }


@contextlib.contextmanager
def moto_s3(wrap: Callable[[Any], Any] | None = None) -> Iterator[S3]:
    """moto's S3 server on a free 127.0.0.1 port, with one bucket; ``wrap(app)``, if given,
    returns the WSGI app that serves in place of moto's ``app`` (to count requests)."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    if wrap is not None:
        server._server.app = wrap(server._server.app)  # type: ignore[union-attr]
    try:
        host, port = server.get_host_and_port()
        s3 = S3(endpoint=f"http://{host}:{port}")
        req = urllib.request.Request(f"{s3.endpoint}/{s3.bucket}", method="PUT")
        with urllib.request.urlopen(req, timeout=30):
            pass
        for k, v in {
            "AWS_ACCESS_KEY_ID": s3.key,
            "AWS_SECRET_ACCESS_KEY": s3.secret,
            "AWS_REGION": s3.region,
            "AWS_DEFAULT_REGION": s3.region,
        }.items():
            os.environ[k] = v
        yield s3
    finally:
        server.stop()


def timed(fn: Callable[[], Any], repeat: int = 2) -> float:
    """Best wall time of ``repeat`` runs, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def table(rows: list[tuple[str, str, float]], nbytes: int, baseline: str) -> None:
    """Print source | contender | seconds | MB/s | ratio to ``baseline`` (per source)."""
    print(f"{'source':22} {'contender':34} {'s':>7} {'MB/s':>8} {'vs ' + baseline:>22}")
    base = {src: t for src, name, t in rows if name == baseline}
    for src, name, t in rows:
        ratio = base.get(src, float("nan")) / t
        print(f"{src:22} {name:34} {t:7.2f} {nbytes / t / 1e6:8.0f} {ratio:21.2f}x")


def upload(root: Path, name: str, s3: S3) -> None:
    """Copy the files under ``root`` to ``s3://bucket/name/`` (concurrent PUTs)."""
    import anyio

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


def stop_process(proc: subprocess.Popen[Any]) -> None:
    """Terminate ``proc`` (kill it after 10 s) and reap it."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def child_line(args: list[str], prefix: str, *, stdin: bool = False) -> Iterator[str]:
    """Run ``python *args`` in a child process; yield the rest of its first stdout line, which
    must start with ``prefix`` (its address); stop it on exit."""
    proc = subprocess.Popen(
        [sys.executable, *args],
        stdin=subprocess.PIPE if stdin else None,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith(prefix):
            raise RuntimeError(f"{args[0]} did not start (said {line!r})")
        yield line[len(prefix) :].strip()
    finally:
        stop_process(proc)
