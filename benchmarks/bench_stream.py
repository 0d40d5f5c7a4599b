"""Streaming tile iteration over a 1x4x8192x8192 uint16 (czyx) image, side by side, as ratios.

Every contender reads the same tiles (one storage tile per (c, z) plane: 512x512 chunks, the
512x512 inner chunks of the sharded image, and whole 4096x4096 shards), in any order:

- zarr-python 3.1 ``AsyncArray.getitem``: one tile at a time (``zarr seq``) and with a bounded
  set of concurrent getitems (``zarr conc=N``, ``async.concurrency`` raised to N as well);
- tensorstore: ``arr[tile].read()`` futures, a bounded number in flight;
- ngio_async: ``async for tile in ds.tiles(level=0, ordered=False)``.

Sources: local disk, moto S3 on 127.0.0.1, a static HTTP server on 127.0.0.1 that waits
20 ms before every answer (``_proxy.py``, in its own process), and ``cloud``: the same server
sending every body at ``--cloud-rate`` MB/s (70) a connection, a cloud object store's shape
(loopback gives every connection GB/s). Two limits measured in the same
run: ``io-limit`` (obstore GETs of every chunk object or whole shard, 64 in flight, no decode) and
``cpu-limit`` (blosc decode of every chunk already in memory, on 2 threads, by the fastest
decoder installed: c-blosc2 from ``imagecodecs``, else numcodecs). Every measurement
runs in a fresh subprocess (``--one``), which reports its best time and peak RSS as JSON.

    .venv/bin/python benchmarks/bench_stream.py [--small] [--sources disk,s3,http,cloud]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import DATA, S3, SHAPE, make_image, moto_s3, stored_bytes, upload

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator

Region = tuple[slice, ...]

SMALL_SHAPE = (1, 2, 2048, 2048)
LATENCY = 0.02  # seconds the HTTP server waits before each answer
CLOUD_RATE = 70.0  # MB/s a connection of the cloud source (per request: 1 at a time a connection)
SOURCES = ("disk", "s3", "http", "cloud")
IO_IN_FLIGHT = 64  # requests in flight for the I/O limit
DECODE_THREADS = 2  # threads for the CPU limit (the machine's cores)
# tiles in flight for the concurrent contenders, by tile edge: (low, high)
IN_FLIGHT = {512: (8, 64), 4096: (2, 8)}
CONTENDERS = ("zarr seq", "zarr conc=lo", "zarr conc=hi", "tensorstore", "ngio_async")
LIMITS = ("io-limit", "cpu-limit", "pipe-limit")


# ------------------------------------------------------------------------------------ clocks
def machine_busy() -> float:
    """Core-seconds every process on this machine (servers and kernel too) has spent busy since
    boot, from ``/proc/stat`` (ticks of 10 ms, summed over the cores); NaN off Linux."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return math.nan
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK")


@dataclass
class Clock:
    """Wall, this process's CPU, and the whole machine's busy core-seconds, from one start."""

    wall: float
    cpu: float
    busy: float

    @classmethod
    def start(cls) -> Clock:
        return cls(time.perf_counter(), time.process_time(), machine_busy())

    def stop(self) -> tuple[float, float, float]:
        """Seconds, CPU seconds, machine core-seconds since the start."""
        return (
            time.perf_counter() - self.wall,
            time.process_time() - self.cpu,
            machine_busy() - self.busy,
        )


# ------------------------------------------------------------------------------------ the tiles
def tile_regions(shape: tuple[int, ...], tile: int) -> list[Region]:
    """One region per (c, z) plane and ``tile`` x ``tile`` y/x block (clipped at the edges)."""
    c, z, y, x = shape
    return [
        (
            slice(ic, ic + 1),
            slice(iz, iz + 1),
            slice(y0, min(y0 + tile, y)),
            slice(x0, min(x0 + tile, x)),
        )
        for ic in range(c)
        for iz in range(z)
        for y0 in range(0, y, tile)
        for x0 in range(0, x, tile)
    ]


class Sink:
    """Consumes tiles: checks the shape, keeps a cheap order-independent checksum, counts bytes.

    Time budget: once ``budget`` seconds have passed, ``open`` is False and contenders stop
    starting new tiles; the rate is then measured on the tiles done (a partial run).
    """

    def __init__(self, shape: tuple[int, ...], tile: int, budget: float) -> None:
        self.shape = shape
        self.tile = tile
        self.budget = budget
        self.clock = Clock.start()
        self.t0 = self.clock.wall
        self.nbytes = 0
        self.tiles = 0
        self.checksum = 0

    @property
    def open(self) -> bool:
        return time.perf_counter() - self.t0 < self.budget

    def __call__(self, region: Region, data: np.ndarray[Any, Any]) -> None:
        want = tuple(s.stop - s.start for s in region)
        if data.shape != want:
            raise AssertionError(f"tile {region} has shape {data.shape}, expected {want}")
        c, z, y, x = (s.start for s in region)
        ny = math.ceil(self.shape[2] / self.tile)
        nx = math.ceil(self.shape[3] / self.tile)
        tile_id = ((c * self.shape[1] + z) * ny + y // self.tile) * nx + x // self.tile
        sample = int(data[..., ::61, ::67].sum(dtype=np.uint64))
        self.checksum = (self.checksum + sample * (tile_id + 1)) % (1 << 61)
        self.nbytes += data.nbytes
        self.tiles += 1


# ------------------------------------------------------------------------------------ sources
@dataclass
class Source:
    """Where an image lives: ``kind`` is disk, s3, http or cloud (read as http: the same server,
    rate-limited); ``name`` is the image's directory."""

    kind: str
    name: str
    s3: dict[str, str] | None = None  # endpoint, bucket, key, secret, region
    base_url: str | None = None

    @property
    def root(self) -> Path:
        return DATA / self.name

    def ngio(self) -> tuple[str, dict[str, Any]]:
        if self.kind == "disk":
            return str(self.root), {}
        if self.kind == "s3":
            s3 = S3(**self.s3)  # type: ignore[arg-type]
            return f"s3://{s3.bucket}/{self.name}", s3.options()
        return f"{self.base_url}/{self.name}", {}

    def obstore(self) -> Any:
        from obstore.store import HTTPStore, LocalStore, S3Store

        if self.kind == "disk":
            return LocalStore(self.root)
        if self.kind == "s3":
            s3 = S3(**self.s3)  # type: ignore[arg-type]
            return S3Store(
                s3.bucket,
                prefix=self.name,
                endpoint=s3.endpoint,
                region=s3.region,
                access_key_id=s3.key,
                secret_access_key=s3.secret,
                client_options={"allow_http": True},
            )
        return HTTPStore.from_url(
            f"{self.base_url}/{self.name}", client_options={"allow_http": True}
        )

    def zarr_store(self) -> Any:
        import zarr.storage

        if self.kind == "disk":
            return zarr.storage.LocalStore(self.root, read_only=True)
        return zarr.storage.ObjectStore(self.obstore(), read_only=True)

    def tensorstore_kvstore(self) -> dict[str, Any]:
        if self.kind == "disk":
            return {"driver": "file", "path": f"{self.root}/0/"}
        if self.kind == "s3":
            s3 = S3(**self.s3)  # type: ignore[arg-type]
            return {
                "driver": "s3",
                "bucket": s3.bucket,
                "path": f"{self.name}/0/",
                "endpoint": s3.endpoint,
                "aws_region": s3.region,
            }
        return {"driver": "http", "base_url": f"{self.base_url}/{self.name}/0/"}


# ------------------------------------------------------------------------------------ contenders
async def bounded(
    regions: list[Region],
    read: Callable[[Region], Any],
    sink: Sink,
    in_flight: int,
) -> None:
    """Run ``await read(region)`` for every region, at most ``in_flight`` at once, into ``sink``."""
    sem = asyncio.Semaphore(in_flight)

    async def one(region: Region) -> None:
        try:
            sink(region, await read(region))
        finally:
            sem.release()

    async with asyncio.TaskGroup() as tg:
        for region in regions:
            await sem.acquire()
            if not sink.open:
                sem.release()
                break
            tg.create_task(one(region))


async def run_zarr(src: Source, regions: list[Region], sink: Sink, in_flight: int) -> None:
    import zarr
    import zarr.api.asynchronous as za

    cfg = {"async.concurrency": max(in_flight, 10)} if in_flight > 1 else {}
    with zarr.config.set(cfg):
        arr = await za.open_array(store=src.zarr_store(), path="0", mode="r")
        if in_flight == 1:
            for region in regions:
                if not sink.open:
                    break
                sink(region, np.asarray(await arr.getitem(region)))
        else:
            await bounded(regions, arr.getitem, sink, in_flight)


async def run_tensorstore(src: Source, regions: list[Region], sink: Sink, in_flight: int) -> None:
    import tensorstore as ts

    # a small cache pool keeps decoded shard indexes (a sharded tile costs 1 request, not 2)
    ctx = ts.Context({"cache_pool": {"total_bytes_limit": 64 << 20}})
    spec = {"driver": "zarr3", "kvstore": src.tensorstore_kvstore()}
    arr = await ts.open(spec, read=True, context=ctx)

    async def read(region: Region) -> np.ndarray[Any, Any]:
        return np.asarray(await arr[region].read())

    await bounded(regions, read, sink, in_flight)


async def ngio_tiles(src: Source, tile: int) -> AsyncIterator[tuple[Region, np.ndarray[Any, Any]]]:
    import ngio_async

    url, options = src.ngio()
    async with ngio_async.open_async(url, **options) as ds:
        async for t in ds.tiles(level=0, shape=(tile, tile), ordered=False):
            yield t.region, t.data


async def run_ngio(src: Source, regions: list[Region], sink: Sink, tile: int) -> None:
    it = ngio_tiles(src, tile)
    try:
        async for region, data in it:
            sink(region, data)
            if not sink.open:
                break
    finally:
        await it.aclose()  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------ the limits
def chunk_requests(
    src: Source, tile: int, *, whole_shards: bool = False
) -> list[tuple[str, tuple[int, int] | None]]:
    """(key, byte range or None for the whole object) of every stored tile a reader fetches.

    Chunked image: every chunk object. Sharded image: every inner chunk's byte range (tiles
    smaller than a shard), or every whole shard (tiles of a shard or more, or
    ``whole_shards``).
    """
    meta = json.loads((src.root / "0" / "zarr.json").read_text())
    files = sorted(p for p in (src.root / "0" / "c").rglob("*") if p.is_file())
    keys = [p.relative_to(src.root).as_posix() for p in files]
    codec = meta["codecs"][0]
    if codec["name"] != "sharding_indexed":
        return [(k, None) for k in keys]
    shard = meta["chunk_grid"]["configuration"]["chunk_shape"]
    if tile >= shard[-1] or whole_shards:
        return [(k, None) for k in keys]
    n = math.prod(s // c for s, c in zip(shard, codec["configuration"]["chunk_shape"], strict=True))
    out: list[tuple[str, tuple[int, int] | None]] = []
    for key, path in zip(keys, files, strict=True):
        with path.open("rb") as f:
            f.seek(-(16 * n + 4), os.SEEK_END)
            index = np.frombuffer(f.read()[:-4], dtype="<u8").reshape(n, 2)
        out.extend((key, (int(off), int(off + size))) for off, size in index if off != 2**64 - 1)
    return out


async def run_io_limit(src: Source, tile: int) -> tuple[int, tuple[float, float, float]]:
    """Stored bytes fetched, and ``Clock.stop()``: concurrent obstore GETs, no decode.

    The fastest way to fetch all the chunk bytes: every chunk object, or every whole shard (for
    512 tiles too: ngio_async reads those shard by shard, and whole shards are 2-20x faster
    than one ranged GET per inner chunk on every source here).
    """
    import obstore

    store = src.obstore()
    requests = chunk_requests(src, tile, whole_shards=True)
    sem = asyncio.Semaphore(IO_IN_FLIGHT)
    total = 0

    async def one(key: str, rng: tuple[int, int] | None) -> None:
        nonlocal total
        async with sem:
            if rng is None:
                resp = await obstore.get_async(store, key)
                data = await resp.bytes_async()
            else:
                data = await obstore.get_range_async(store, key, start=rng[0], end=rng[1])
            total += len(memoryview(data))

    clock = Clock.start()
    async with asyncio.TaskGroup() as tg:
        for key, rng in requests:
            tg.create_task(one(key, rng))
    return total, clock.stop()


async def run_pipe_limit(src: Source, tile: int) -> tuple[float, float, float]:
    """``Clock.stop()`` of the plainest reader this machine runs: obstore GETs (64 in
    flight) of exactly the bytes the tiles need, each decoded by ``blosc_decoder`` on 2 threads into
    a fresh tile array (a whole shard: its inner chunks, in 2 parts, into one fresh shard array).
    No planning, limits, retries or tile objects: I/O and decode sharing the same cores."""
    import obstore

    store = src.obstore()
    meta = json.loads((src.root / "0" / "zarr.json").read_text())
    first = meta["codecs"][0]
    sharded = first["name"] == "sharding_indexed"
    inner = (
        first["configuration"]["chunk_shape"]
        if sharded
        else meta["chunk_grid"]["configuration"]["chunk_shape"]
    )
    shard = meta["chunk_grid"]["configuration"]["chunk_shape"]
    ch, cw = inner[-2], inner[-1]
    decode = blosc_decoder()[1]
    loop = asyncio.get_running_loop()
    pool = ThreadPoolExecutor(DECODE_THREADS)
    sem = asyncio.Semaphore(IO_IN_FLIGHT)

    def decode_chunk(buf: Any) -> np.ndarray[Any, Any]:
        out = np.empty((ch, cw), dtype="uint16")
        decode(buf, out)
        return out

    def decode_part(whole: Any, out: np.ndarray[Any, Any], part: int) -> None:
        per_row = out.shape[1] // cw
        n = (out.shape[0] // ch) * per_row
        index = np.frombuffer(whole[-(16 * n + 4) : -4], dtype="<u8").reshape(n, 2)
        scratch = np.empty((ch, cw), dtype="uint16")
        for i in range(part, n, DECODE_THREADS):
            off, size = int(index[i, 0]), int(index[i, 1])
            if off == 2**64 - 1:  # an absent inner chunk (past the edge of the image)
                continue
            decode(whole[off : off + size], scratch)
            y, x = divmod(i, per_row)
            out[y * ch : (y + 1) * ch, x * cw : (x + 1) * cw] = scratch

    async def one(key: str, rng: tuple[int, int] | None) -> None:
        async with sem:
            if rng is None:
                data = await obstore.get_range_async(store, key, start=0, end=1 << 40)
            else:
                data = await obstore.get_range_async(store, key, start=rng[0], end=rng[1])
        buf = memoryview(data)
        if sharded and rng is None:  # a whole shard
            out = np.empty((shard[-2], shard[-1]), dtype="uint16")
            await asyncio.gather(
                *(loop.run_in_executor(pool, decode_part, buf, out, i) for i in range(2))
            )
        else:
            await loop.run_in_executor(pool, decode_chunk, buf)

    clock = Clock.start()
    try:
        async with asyncio.TaskGroup() as tg:
            for key, rng in chunk_requests(src, tile):
                tg.create_task(one(key, rng))
    finally:
        pool.shutdown()
    return clock.stop()


def blosc_decoder() -> tuple[str, Callable[[Any, Any], Any]]:
    """The fastest blosc decoder installed for the benchmark image's zstd frames, for the
    limits: c-blosc2 (``imagecodecs``, what ngio_async decodes zstd frames of 2-byte and wider
    types with), else numcodecs' c-blosc1."""
    try:
        import imagecodecs
    except ImportError:
        import numcodecs

        codec = numcodecs.Blosc()
        return "numcodecs c-blosc1", lambda buf, out: codec.decode(buf, out=out)
    return "c-blosc2", lambda buf, out: imagecodecs.blosc2_decode(
        buf, numthreads=1, out=out.reshape(-1).view(np.uint8)
    )


def all_chunk_bytes(src: Source) -> list[bytes]:
    """Every (inner) chunk's stored bytes, from the local copy."""
    out: list[bytes] = []
    files: dict[str, bytes] = {}
    for key, rng in chunk_requests(src, 512):
        if key not in files:
            files = {key: (src.root / key).read_bytes()}  # requests come grouped by object
        raw = files[key]
        out.append(raw if rng is None else raw[rng[0] : rng[1]])
    return out


def run_cpu_limit(src: Source) -> tuple[int, tuple[float, float, float]]:
    """Decoded bytes and ``Clock.stop()``: blosc-decode every chunk in memory, 2 threads."""
    chunks = all_chunk_bytes(src)
    decode = blosc_decoder()[1]
    outs = [np.empty((512, 512), dtype="uint16") for _ in range(2 * DECODE_THREADS)]

    def work(i: int) -> int:
        out = outs[i % len(outs)]
        for buf in chunks[i::DECODE_THREADS]:
            decode(buf, out)
        return len(chunks[i::DECODE_THREADS]) * out.nbytes

    with ThreadPoolExecutor(DECODE_THREADS) as pool:
        clock = Clock.start()
        done = sum(pool.map(work, range(DECODE_THREADS)))
        return done, clock.stop()


# ------------------------------------------------------------------------------------ one run
def run_one(
    contender: str, src: Source, shape: tuple[int, ...], tile: int, args: Any
) -> dict[str, Any]:
    """Best of ``args.repeat`` runs of one contender (in this fresh process), as a JSON-able dict."""
    decoded = math.prod(shape) * 2
    # import the contender's library before the clock starts
    for prefix, module in (
        ("zarr", "zarr.api.asynchronous"),
        ("tensorstore", "tensorstore"),
        ("ngio", "ngio_async.images"),  # (the package itself loads its reader on first use)
        ("io", "obstore"),
        ("cpu", "numcodecs"),
    ):
        if contender.startswith(prefix):
            __import__(module)
    best: dict[str, Any] = {}
    res: dict[str, Any]
    for _ in range(args.repeat):
        cpu0 = time.process_time()  # all threads of this process
        if contender == "cpu-limit":
            nbytes, (seconds, cpu, busy) = run_cpu_limit(src)
            res = {"seconds": seconds, "mbps": nbytes / seconds / 1e6, "complete": True}
            res["cpu_s"] = cpu  # the decode only, not loading the bytes
        elif contender == "pipe-limit":
            seconds, cpu, busy = asyncio.run(run_pipe_limit(src, tile))
            res = {"seconds": seconds, "mbps": decoded / seconds / 1e6, "complete": True}
            res["cpu_s"] = cpu
        elif contender == "io-limit":
            stored, (seconds, cpu, busy) = asyncio.run(run_io_limit(src, tile))
            res = {
                "seconds": seconds,
                "mbps": decoded / seconds / 1e6,  # decoded MB/s this I/O rate would feed
                "stored_mbps": stored / seconds / 1e6,
                "complete": True,
                "cpu_s": cpu,
            }
        else:
            regions = tile_regions(shape, tile)
            sink = Sink(shape, tile, args.budget)
            lo, hi = IN_FLIGHT[tile if tile in IN_FLIGHT else 4096]
            if contender == "zarr seq":
                coro = run_zarr(src, regions, sink, 1)
            elif contender == "zarr conc=lo":
                coro = run_zarr(src, regions, sink, lo)
            elif contender == "zarr conc=hi":
                coro = run_zarr(src, regions, sink, hi)
            elif contender == "tensorstore":
                coro = run_tensorstore(src, regions, sink, hi)
            elif contender == "ngio_async":
                coro = run_ngio(src, regions, sink, tile)
            else:
                raise SystemExit(f"unknown contender {contender!r}")
            asyncio.run(coro)
            seconds, _, busy = sink.clock.stop()
            complete = sink.tiles == len(regions)
            res = {
                "seconds": seconds,
                "mbps": sink.nbytes / seconds / 1e6,
                "complete": complete,
                "checksum": sink.checksum if complete else None,
                "tiles": sink.tiles,
            }
            if sink.nbytes > decoded:
                raise AssertionError(f"{sink.nbytes} bytes of tiles from a {decoded}-byte image")
        res.setdefault("cpu_s", time.process_time() - cpu0)
        # every process's busy core-seconds in the run (servers too), per decoded MB
        res["busy_s"] = busy
        res["busy_per_mb"] = busy / (res["mbps"] * seconds)
        if not best or res["mbps"] > best["mbps"]:
            best = res
        if not res["complete"]:
            break  # over budget: one partial run is enough
    best["rss_mb"] = peak_rss_mb()
    return best


def peak_rss_mb() -> float:
    """This process's peak RSS. ``VmHWM`` restarts at exec; ``ru_maxrss`` keeps the parent's."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def spawn(
    contender: str, src: Source, shape: tuple[int, ...], tile: int, args: Any
) -> dict[str, Any]:
    """Run one measurement in a fresh Python process; its JSON answer (or the error)."""
    cmd = [
        sys.executable,
        __file__,
        "--one",
        contender,
        json.dumps(src.__dict__),
        "--shape",
        ",".join(map(str, shape)),
        "--tile",
        str(tile),
        "--repeat",
        str(args.repeat),
        "--budget",
        str(args.budget),
    ]
    proc = subprocess.run(
        cmd, check=False, capture_output=True, text=True, timeout=args.budget * 6 + 120
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        err = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        return {"error": err[:160]}
    return json.loads(lines[-1])  # type: ignore[no-any-return]


# ------------------------------------------------------------------------------------ the run
@contextlib.contextmanager
def serving(
    kind: str, names: list[str], http: str = "auto", cloud_rate: float = CLOUD_RATE
) -> Iterator[dict[str, Any]]:
    """Source options for ``kind``, with its server running (and the images uploaded);
    ``cloud_rate``: MB/s a connection of the ``cloud`` source."""
    if kind == "disk":
        yield {}
    elif kind == "s3":
        with moto_s3() as s3:
            for name in names:
                upload(DATA / name, name, s3)
            yield {"s3": s3.__dict__}
    elif kind in ("http", "cloud"):
        from _proxy import http_server

        rate = cloud_rate * 1e6 if kind == "cloud" else None
        with http_server(DATA, delay=LATENCY, rate=rate, server=http) as (base_url, name):
            paced = f", bodies at {cloud_rate:g} MB/s a connection" if rate else ""
            print(
                f"  {kind}: {name} on {base_url}, {LATENCY * 1e3:.0f} ms before each answer{paced}"
            )
            yield {"base_url": base_url}
    else:
        raise SystemExit(f"unknown source {kind!r} ({', '.join(SOURCES)})")


def fmt(res: dict[str, Any] | None, key: str = "mbps") -> str:
    if not res:
        return "-"
    if "error" in res:
        return "fail"
    return f"{res[key]:.0f}" + ("*" if not res.get("complete", True) else "")


def ratio(a: dict[str, Any] | None, b: dict[str, Any] | None) -> str:
    if not a or not b or "error" in a or "error" in b:
        return "-"
    return f"{a['mbps'] / b['mbps']:.2f}x"


def report(
    results: dict[tuple[str, str, str], dict[str, Any]],
    cases: list[tuple[str, int]],
    sources: list[str],
) -> None:
    """The detailed table, then one summary line per (source, case) with the ratios."""
    print(
        f"\n{'source':6} {'image/tile':16} {'contender':14} {'s':>7} {'MB/s':>7} {'RSS MB':>7} "
        f"{'CPU s':>6} {'busy s':>6} {'cores':>5}"
    )
    for (src, case, name), res in results.items():
        if "error" in res:
            print(f"{src:6} {case:16} {name:14} failed: {res['error']}")
            continue
        print(
            f"{src:6} {case:16} {name:14} {res['seconds']:7.2f} {fmt(res):>7} {res['rss_mb']:7.0f} "
            f"{res['cpu_s']:6.2f} {res.get('busy_s', math.nan):6.2f} "
            f"{res.get('busy_s', math.nan) / res['seconds']:5.2f}"
        )
    print(
        "\nMB/s of decoded data (* = partial run, stopped at the time budget); RSS: the child's\n"
        "peak; CPU s: the child's CPU time (all threads) in its best run. zarr best = the\n"
        "fastest of the three zarr rows. limit = min(io-limit, cpu-limit); pipe = pipe-limit,\n"
        "the plainest GET + decode reader on the same cores. shared = 1 / (1/io-limit +\n"
        "1/cpu-limit): the rate when the I/O limit's work and the decode share the cores (each\n"
        "limit alone had the whole machine; on loopback the I/O is CPU work too, server and\n"
        "client). A reader whose I/O costs less CPU than the limit's obstore GETs (local pread)\n"
        "can pass it. busy s: core-seconds every process on the machine spent busy during the\n"
        "run (/proc/stat: the servers and the kernel too); cores = busy s / s. machine = the\n"
        "fastest rate the two limits' measured work allows on these cores: the slowest of the\n"
        "two limits and of their busy core-seconds added and spread over all cores (never\n"
        "below shared, which takes each limit to have kept every core busy).\n"
    )
    head = (
        f"{'source':6} {'image/tile':16} {'zarr seq':>8} {'zarr best':>9} {'tstore':>7} "
        f"{'ngio':>6} {'io-lim':>7} {'cpu-lim':>7} {'pipe':>6} {'ngio/zarr':>9} {'ngio/ts':>8} "
        f"{'ngio/lim':>8} {'ngio/pipe':>9} {'shared':>7} {'ngio/shared':>11} {'machine':>7} "
        f"{'ngio/mach':>9}"
    )
    print(head)
    for src in sources:
        for kind, tile in cases:
            case = f"{kind}/{tile}"
            get = results.get
            zarrs = [
                r
                for r in (get((src, case, n)) for n in ("zarr seq", "zarr conc=lo", "zarr conc=hi"))
                if r and "error" not in r
            ]
            zbest = max(zarrs, key=lambda r: r["mbps"]) if zarrs else None
            io, cpu = get((src, case, "io-limit")), get((src, case, "cpu-limit"))
            lims = [r for r in (io, cpu) if r and "error" not in r]
            lim = min(lims, key=lambda r: r["mbps"]) if lims else None
            ngio, pipe = get((src, case, "ngio_async")), get((src, case, "pipe-limit"))
            ts = get((src, case, "tensorstore"))
            shared = machine = None
            if len(lims) == 2:  # both limits measured
                shared = {"mbps": 1 / sum(1 / r["mbps"] for r in lims), "complete": True}
                per_mb = sum(r.get("busy_per_mb", math.nan) for r in lims) / (os.cpu_count() or 1)
                if not math.isnan(per_mb):  # /proc/stat was read
                    slowest = max(per_mb, *(1 / r["mbps"] for r in lims))
                    machine = {"mbps": 1 / slowest, "complete": True}
            print(
                f"{src:6} {case:16} {fmt(get((src, case, 'zarr seq'))):>8} {fmt(zbest):>9} "
                f"{fmt(ts):>7} {fmt(ngio):>6} {fmt(io):>7} {fmt(cpu):>7} {fmt(pipe):>6} "
                f"{ratio(ngio, zbest):>9} {ratio(ngio, ts):>8} {ratio(ngio, lim):>8} "
                f"{ratio(ngio, pipe):>9} {fmt(shared):>7} {ratio(ngio, shared):>11} "
                f"{fmt(machine):>7} {ratio(ngio, machine):>9}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="the 1x2x2048x2048 image")
    parser.add_argument(
        "--sources",
        default="disk,s3,http",
        help=f"comma-separated: {','.join(SOURCES)} (cloud: opt-in, ~4 min more on the full image)",
    )
    parser.add_argument("--contenders", default=",".join(CONTENDERS + LIMITS))
    parser.add_argument("--repeat", type=int, default=2, help="runs per child process (best kept)")
    parser.add_argument(
        "--rounds", type=int, default=2, help="child processes per measurement, round-robin"
    )
    parser.add_argument(
        "--budget", type=float, default=20.0, help="seconds per run before stopping"
    )
    parser.add_argument(
        "--http-server",
        default="auto",
        choices=("auto", "nginx", "aiohttp"),
        help="the latency-injecting HTTP server (auto: nginx with its Lua module if installed)",
    )
    parser.add_argument(
        "--cloud-rate",
        type=float,
        default=CLOUD_RATE,
        help="MB/s each connection of the cloud source gets (per answer's body)",
    )
    parser.add_argument("--no-shard-tiles", action="store_true", help="skip the 4096x4096 row")
    parser.add_argument("--cases", help="only these, e.g. chunked/512,sharded/4096")
    parser.add_argument(
        "--one", nargs=2, metavar=("CONTENDER", "SOURCE_JSON"), help=argparse.SUPPRESS
    )
    parser.add_argument("--shape", help=argparse.SUPPRESS)
    parser.add_argument("--tile", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.one:
        contender, src_json = args.one
        shape = tuple(int(v) for v in args.shape.split(","))
        res = run_one(contender, Source(**json.loads(src_json)), shape, args.tile, args)
        print(json.dumps(res), flush=True)
        # skip interpreter teardown: obstore's runtime sometimes aborts in it, after the answer
        os._exit(0)

    shape = SMALL_SHAPE if args.small else SHAPE
    suffix = "-small" if args.small else ""
    names = {
        "chunked": make_image("read-chunked" + suffix, sharded=False, shape=shape).name,
        "sharded": make_image("read-sharded" + suffix, sharded=True, shape=shape).name,
    }
    cases = [("chunked", 512), ("sharded", 512)]
    if not args.no_shard_tiles:
        cases.append(("sharded", 4096))
    if args.cases:
        chosen = {c.strip() for c in args.cases.split(",")}
        cases = [(k, t) for k, t in cases if f"{k}/{t}" in chosen]
    sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    if unknown := [s for s in sources if s not in SOURCES]:
        raise SystemExit(f"unknown source {unknown[0]!r} ({', '.join(SOURCES)})")
    cloud = f"; cloud {args.cloud_rate:g} MB/s a connection" if "cloud" in sources else ""
    wanted = [c.strip() for c in args.contenders.split(",") if c.strip()]
    nbytes = math.prod(shape) * 2
    print(
        f"image {shape} uint16 = {nbytes / 1e6:.0f} MB decoded; stored: "
        + ", ".join(f"{k} {stored_bytes(DATA / v) / 1e6:.0f} MB" for k, v in names.items())
        + f"; {os.cpu_count()} cores; HTTP latency {LATENCY * 1e3:.0f} ms{cloud}"
        + f"; limits decode with {blosc_decoder()[0]}"
    )
    results: dict[tuple[str, str, str], dict[str, Any]] = {}
    cpu_done: dict[str, dict[str, Any]] = {}  # image -> its cpu-limit (the same bytes everywhere)
    for kind in sources:
        with serving(kind, list(names.values()), args.http_server, args.cloud_rate) as extra:
            for image, tile in cases:
                src = Source(kind=kind, name=names[image], **extra)
                case = f"{image}/{tile}"
                measure_cpu = image not in cpu_done
                # rounds: every contender once per round, so a burst of load elsewhere on the
                # machine does not land on one contender only; the best round is kept
                for rnd in range(args.rounds):
                    for name in wanted:
                        if name == "cpu-limit" and not measure_cpu:
                            continue
                        res = spawn(name, src, shape, tile, args)
                        key = (kind, case, name)
                        old = results.get(key)
                        if old is None or "error" in old or res.get("mbps", 0) > old["mbps"]:
                            results[key] = res
                        print(
                            f"  {kind:5} {case:13} {name:13} round {rnd + 1}: {fmt(res):>7} MB/s",
                            flush=True,
                        )
                if "cpu-limit" in wanted:
                    if measure_cpu:
                        cpu_done[image] = results[(kind, case, "cpu-limit")]
                    results[(kind, case, "cpu-limit")] = cpu_done[image]
    checks: dict[tuple[str, str], set[int]] = {}
    for (_, case, name), res in results.items():
        if res.get("checksum") is not None:
            checks.setdefault((case, name), set()).add(res["checksum"])
    by_case: dict[str, set[int]] = {}
    for (case, _), sums in checks.items():
        by_case.setdefault(case, set()).update(sums)
    bad = [case for case, sums in by_case.items() if len(sums) > 1]
    for case in bad:
        print(f"WARNING: contenders disagree on the tiles of {case} (checksums {by_case[case]})")
    if not bad:
        print("tile checksums: every complete run of every contender agrees, per case")
    report(results, cases, sources)


if __name__ == "__main__":
    main()
