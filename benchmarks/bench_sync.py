"""The blocking API as users call it (dask, a viewer, scripts): ngio_async.open vs zarr-python 3.1
and tensorstore, on the same 1x4x8192x8192 uint16 (czyx) image, chunked and sharded, disk and S3.

Workloads (each contender in a fresh subprocess per image and source, moto S3 in the parent):

- ``dask``: ``da.from_array(level 0, chunks=...).sum().compute()`` with dask's threaded scheduler,
  blocks of the level's (inner) chunks (512x512) and of 2048x2048, on the default number of
  threads (the cores) and on 8; MB/s. zarr-python: ``da.from_zarr`` of ``zarr.open_array``;
  tensorstore: ``da.from_array`` of a thin wrapper whose ``[sel]`` is ``arr[sel].read().result()``;
  ngio_async: ``da.from_array(ngio_async.open(url).levels[0])``.
- ``viewer``: 300 random 256x256 regions of one plane read one after another from one thread
  (napari panning), at level 0 and at level 2 (a fixed seed): median and p95 latency, and GETs per
  read on S3 (counted at the moto server).
- ``script``: ``np.asarray(level0[0, z])``, whole planes one after another: the first plane after
  opening (cold) and the best plane rate of all planes (MB/s).

Every child checks its result against the parent's reference (the dask sums, blake2b digests of
the regions and planes) and reports its peak RSS (``VmHWM``, reset before each workload).

    make bench-sync       # or: .venv/bin/python benchmarks/bench_sync.py [--small]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import DATA, S3, SHAPE, make_image, moto_s3, upload

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

SMALL_SHAPE = (1, 2, 2048, 2048)
CONTENDERS = ("zarr-python", "tensorstore", "ngio_async", "ngio+cache")
CACHE_BYTES = 64 << 20  # tensorstore's cache pool, and ngio+cache's Limits.read_cache_bytes
CACHED_WORK = ("viewer", "script")  # ngio+cache runs these (dask reads every chunk once)
WORKLOADS = ("viewer", "script", "dask")  # in this order: each peak RSS over the last
LEVELS = 3  # the pyramid: level 0 (the read-* image's pixels), 1 and 2 (2x2 means)
REGION = 256
READS = 300
SEED = 7
COUNT_PATH = "/__bench_gets__"
OPENED: list[Any] = []  # the child's open ngio_async datasets (closed after each workload)


# ------------------------------------------------------------------------------------- images
def make_pyramid(name: str, *, sharded: bool, shape: tuple[int, ...]) -> Path:
    """``name``: the read-* image's level 0 (hard links) plus levels 1 and 2 (2x2 means), once."""
    import zarr
    import zarr.codecs

    from ngio_async.meta import Axis, Dataset, Multiscale, OmeMetadata, Scale, to_attrs

    root = DATA / name
    if (root / "zarr.json").exists():
        return root
    base = make_image(
        name.replace("sync-", "read-"), sharded=sharded, shape=shape
    )  # the same level 0 as bench_read.py / bench_stream.py
    for src in (base / "0").rglob("*"):
        dst = root / "0" / src.relative_to(base / "0")
        if src.is_dir():
            dst.mkdir(parents=True, exist_ok=True)
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            if not dst.exists():
                os.link(src, dst)
    prev: Any = zarr.open_array(root / "0", mode="r")
    for lv in range(1, LEVELS):
        lshape = (*shape[:2], shape[2] >> lv, shape[3] >> lv)
        arr = zarr.create_array(
            store=root,
            name=str(lv),
            shape=lshape,
            chunks=(1, 1, 512, 512),
            shards=(1, 1, 4096, 4096) if sharded else None,
            dtype="uint16",
            compressors=zarr.codecs.BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle"),
            dimension_names=list("czyx"),
            overwrite=True,
        )
        for z in range(shape[1]):
            p = np.asarray(prev[0, z]).astype(np.uint32)
            arr[0, z] = ((p[::2, ::2] + p[1::2, ::2] + p[::2, 1::2] + p[1::2, 1::2]) // 4).astype(
                np.uint16
            )
        prev = arr
    axes = [Axis(name="c", type="channel")] + [
        Axis(name=a, type="space", unit="micrometer") for a in "zyx"
    ]
    datasets = [
        Dataset(path=str(lv), coordinate_transformations=[Scale(scale=[1, 1, 0.2 * 2**lv, 0.2 * 2**lv])])
        for lv in range(LEVELS)
    ]  # fmt: skip
    ms = Multiscale(axes=axes, datasets=datasets)
    group = zarr.open_group(root, mode="a", zarr_format=3)
    group.attrs.update(to_attrs(OmeMetadata(version="0.5", multiscales=[ms]), "0.5"))
    return root


def regions(shape: tuple[int, ...], level: int) -> list[tuple[int, int]]:
    """The viewer's region corners at ``level`` (fixed seed, not aligned to chunks)."""
    h, w = shape[2] >> level, shape[3] >> level
    rng = np.random.default_rng(SEED + level)
    ys = rng.integers(0, h - REGION + 1, READS)
    xs = rng.integers(0, w - REGION + 1, READS)
    return [(int(y), int(x)) for y, x in zip(ys, xs, strict=True)]


def digest(parts: Iterable[np.ndarray[Any, Any]]) -> str:
    """blake2b of the parts' bytes, in order (each hashed as it comes: none kept)."""
    h = hashlib.blake2b(digest_size=16)
    for p in parts:
        h.update(np.ascontiguousarray(p).data)
    return h.hexdigest()


def reference(root: Path, shape: tuple[int, ...]) -> dict[str, Any]:
    """What every contender must get: the sum, the viewer digests, the plane digests."""
    import zarr

    lv0: Any = zarr.open_array(root / "0", mode="r")
    planes = [np.asarray(lv0[0, z]) for z in range(shape[1])]
    ref: dict[str, Any] = {
        "sum": int(sum(int(p.sum(dtype=np.uint64)) for p in planes)),
        "planes": digest(planes),
    }
    for lv in (0, 2):
        arr: Any = zarr.open_array(root / str(lv), mode="r")
        ref[f"viewer{lv}"] = digest(
            [np.asarray(arr[0, 0, y : y + REGION, x : x + REGION]) for y, x in regions(shape, lv)]
        )
    return ref


# ------------------------------------------------------------------------------ S3 with counts
@contextlib.contextmanager
def counted_moto() -> Iterator[S3]:
    """moto's S3 server on 127.0.0.1 with one bucket; ``GET COUNT_PATH`` answers the number of
    GET requests it served so far (the children read it before and after a workload)."""
    lock = threading.Lock()
    gets = [0]

    def wrap(inner: Any) -> Any:
        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            if environ.get("PATH_INFO") == COUNT_PATH:
                start_response("200 OK", [("Content-Type", "text/plain")])
                return [str(gets[0]).encode()]
            if environ.get("REQUEST_METHOD") == "GET":
                with lock:
                    gets[0] += 1
            return inner(environ, start_response)

        return app

    with moto_s3(wrap) as s3:
        yield s3


def s3_gets(s3: S3 | None) -> int:
    if s3 is None:
        return 0
    with urllib.request.urlopen(s3.endpoint + COUNT_PATH, timeout=30) as resp:
        return int(resp.read())


# --------------------------------------------------------------------------------- contenders
class TsArray:
    """tensorstore as a dask-friendly array-like: ``[sel]`` reads and waits."""

    def __init__(self, arr: Any) -> None:
        self._arr = arr
        self.shape = tuple(arr.shape)
        self.dtype = np.dtype(arr.dtype.numpy_dtype)
        self.ndim = len(self.shape)

    def __getitem__(self, sel: Any) -> np.ndarray[Any, Any]:
        return self._arr[sel].read().result()  # type: ignore[no-any-return]


def opener(contender: str, root: Path, s3: S3 | None) -> Callable[[int], Any]:
    """A function opening level ``n`` as an array-like whose ``[sel]`` returns numpy."""
    name = root.name
    if contender.startswith("ngio"):
        import ngio_async

        url = str(root) if s3 is None else f"s3://{s3.bucket}/{name}"
        options: dict[str, Any] = {} if s3 is None else s3.options()
        if contender == "ngio+cache":
            options["limits"] = ngio_async.Limits(read_cache_bytes=CACHE_BYTES)
        ds = ngio_async.open(url, **options)
        OPENED.append(ds)
        return lambda n: ds.levels[n]
    if contender == "tensorstore":
        import tensorstore as ts

        def ts_open(n: int) -> Any:
            if s3 is None:
                kv: dict[str, Any] = {"driver": "file", "path": f"{root}/{n}/"}
            else:
                kv = {"driver": "s3", "bucket": s3.bucket, "path": f"{name}/{n}/",
                      "endpoint": s3.endpoint, "aws_region": s3.region}  # fmt: skip
            # a cache pool as bench_stream.py gives it: a shard index is read once, not per read
            spec = {"driver": "zarr3", "kvstore": kv, "context": {"cache_pool": {"total_bytes_limit": CACHE_BYTES}}}  # fmt: skip
            return TsArray(ts.open(spec, read=True).result())

        return ts_open
    import zarr
    import zarr.storage

    if s3 is None:
        store: Any = zarr.storage.LocalStore(root, read_only=True)
    else:
        from obstore.store import S3Store

        store = zarr.storage.ObjectStore(
            S3Store(s3.bucket, prefix=name, endpoint=s3.endpoint, region=s3.region,
                    access_key_id=s3.key, secret_access_key=s3.secret,
                    client_options={"allow_http": True}),
            read_only=True,
        )  # fmt: skip
    return lambda n: zarr.open_array(store=store, path=str(n), mode="r")


# ---------------------------------------------------------------------------------- workloads
def reset_peak() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # restarts VmHWM at the current RSS


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")  # pragma: no cover - not Linux


def run_dask(
    contender: str,
    lv0: Any,
    ref: dict[str, Any],
    repeat: int,
    blocks: tuple[int, ...] = (512, 2048),
) -> dict[str, Any]:
    import dask.array as da

    nbytes = int(np.prod(lv0.shape)) * 2
    out: dict[str, Any] = {}
    for block in blocks:
        chunks = (1, 1, block, block)
        if contender == "zarr-python":
            arr = da.from_zarr(lv0, chunks=chunks)  # type: ignore[no-untyped-call]
        else:
            arr = da.from_array(lv0, chunks=chunks, asarray=True)  # type: ignore[no-untyped-call]
        for threads in (None, 8):
            # warm-up (untimed): the thread pool, the connections, the first-use imports
            arr[0, 0, :block].sum().compute(scheduler="threads", num_workers=threads)
            best = float("inf")
            for _ in range(repeat):
                t0 = time.perf_counter()
                got = int(
                    arr.sum(dtype=np.uint64).compute(scheduler="threads", num_workers=threads)
                )
                best = min(best, time.perf_counter() - t0)
                if got != ref["sum"]:
                    raise RuntimeError(f"dask sum {got} != {ref['sum']}")
            out[f"{block}/{threads or os.cpu_count()}t"] = nbytes / best / 1e6
    return out


def run_viewer(open_level: Callable[[int], Any], s3: S3 | None, ref: dict[str, Any], shape: tuple[int, ...]) -> dict[str, Any]:  # fmt: skip
    out: dict[str, Any] = {}
    for lv in (0, 2):
        arr = open_level(lv)
        parts, lat = [], []
        g0 = s3_gets(s3)
        for y, x in regions(shape, lv):
            t0 = time.perf_counter()
            parts.append(np.asarray(arr[0, 0, y : y + REGION, x : x + REGION]))
            lat.append(time.perf_counter() - t0)
        gets = s3_gets(s3) - g0
        if digest(parts) != ref[f"viewer{lv}"]:
            raise RuntimeError(f"viewer reads of level {lv} differ from the reference")
        out[f"L{lv}"] = {
            "median_ms": float(np.median(lat)) * 1e3,
            "p95_ms": float(np.percentile(lat, 95)) * 1e3,
            "gets": gets / READS if s3 is not None else None,
        }
    return out


def run_script(open_level: Callable[[int], Any], ref: dict[str, Any], shape: tuple[int, ...]) -> dict[str, Any]:  # fmt: skip
    lv0 = open_level(0)
    plane = shape[2] * shape[3] * 2
    times: list[float] = []

    def planes() -> Iterator[np.ndarray[Any, Any]]:
        for z in range(shape[1]):
            t0 = time.perf_counter()
            arr = np.asarray(lv0[0, z])
            times.append(time.perf_counter() - t0)
            yield arr  # hashed, then dropped: one plane in memory at a time

    if digest(planes()) != ref["planes"]:
        raise RuntimeError("planes differ from the reference")
    return {"first": plane / times[0] / 1e6, "best": plane / min(times) / 1e6}


def run_one(job: dict[str, Any]) -> dict[str, Any]:
    """In the child: each workload on a newly opened image (peak RSS restarted before each)."""
    s3 = None if job["s3"] is None else S3(**job["s3"])
    root, ref, shape = Path(job["root"]), job["ref"], tuple(job["shape"])
    contender = job["contender"]
    __import__({"zarr-python": "zarr", "tensorstore": "tensorstore"}.get(contender, "ngio_async"))
    out: dict[str, Any] = {}
    for work in job["workloads"]:
        reset_peak()
        open_level = opener(contender, root, s3)  # each workload opens anew: no cache carried
        if work == "dask":
            blocks = tuple(job.get("blocks", (512, 2048)))
            res = run_dask(contender, open_level(0), ref, job["repeat"], blocks)
        elif work == "viewer":
            res = run_viewer(open_level, s3, ref, shape)
        else:
            res = run_script(open_level, ref, shape)
        out[work] = {"result": res, "rss_mb": peak_rss_mb()}
        while OPENED:
            OPENED.pop().close()
    return out


def spawn(job: dict[str, Any]) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--one", json.dumps(job)]
    env = dict(os.environ, PYTHONHASHSEED="0")
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=900, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        err = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        return {"error": err[:200]}
    return json.loads(lines[-1])  # type: ignore[no-any-return]


# -------------------------------------------------------------------------------------- table
def print_tables(rows: list[tuple[str, str, dict[str, Any]]]) -> None:
    """One table per workload; ratios to zarr-python of the same source."""

    def ratio(src: str, work: str, key: Callable[[dict[str, Any]], float], mine: float, higher: bool) -> str:  # fmt: skip
        base = [key(r[work]["result"]) for s, c, r in rows if s == src and c == "zarr-python" and work in r]  # fmt: skip
        if not base or not mine:
            return "    -"
        return f"{(mine / base[0] if higher else base[0] / mine):5.2f}x"

    if any("dask" in r for _, _, r in rows):
        print("\ndask: MB/s of .sum().compute() (threaded), blocks/threads; ratio of the best to zarr-python's best")  # fmt: skip
        keys = list(
            dict.fromkeys(k for _, _, r in rows if "dask" in r for k in r["dask"]["result"])
        )
        print(f"{'source':17} {'contender':12} " + " ".join(f"{k:>9}" for k in keys) + f" {'RSS MB':>7} {'best vs zarr':>12}")  # fmt: skip
        for src, c, r in rows:
            if "dask" not in r:
                continue
            d = r["dask"]["result"]
            best = max(d.values())
            rt = ratio(src, "dask", lambda x: max(x.values()), best, True)
            print(f"{src:17} {c:12} " + " ".join(f"{d[k]:9.0f}" for k in keys) + f" {r['dask']['rss_mb']:7.0f} {rt:>12}")  # fmt: skip
    if any("viewer" in r for _, _, r in rows):
        print(f"\nviewer: {READS} random {REGION}x{REGION} reads of one plane, one thread: latency ms (median, p95), GETs per read; ratio of medians (zarr / this)")  # fmt: skip
        print(f"{'source':17} {'contender':12} {'L0 med':>7} {'L0 p95':>7} {'L0 GET':>6} {'L2 med':>7} {'L2 p95':>7} {'L2 GET':>6} {'RSS MB':>7} {'L0 vs':>6} {'L2 vs':>6}")  # fmt: skip
        for src, c, r in rows:
            if "viewer" not in r:
                continue
            v = r["viewer"]["result"]
            cells = []
            for lv in ("L0", "L2"):
                g = v[lv]["gets"]
                cells += [f"{v[lv]['median_ms']:7.2f}", f"{v[lv]['p95_ms']:7.2f}", f"{g:6.2f}" if g is not None else "     -"]  # fmt: skip
            r0 = ratio(src, "viewer", lambda x: x["L0"]["median_ms"], v["L0"]["median_ms"], False)
            r2 = ratio(src, "viewer", lambda x: x["L2"]["median_ms"], v["L2"]["median_ms"], False)
            print(f"{src:17} {c:12} " + " ".join(cells) + f" {r['viewer']['rss_mb']:7.0f} {r0:>6} {r2:>6}")  # fmt: skip
    if any("script" in r for _, _, r in rows):
        print("\nscript: np.asarray(level0[0, z]) whole planes one after another: MB/s of the first (cold) and of the best")  # fmt: skip
        print(f"{'source':17} {'contender':12} {'first':>7} {'best':>7} {'RSS MB':>7} {'best vs zarr':>12}")  # fmt: skip
        for src, c, r in rows:
            if "script" not in r:
                continue
            s = r["script"]["result"]
            rt = ratio(src, "script", lambda x: x["best"], s["best"], True)
            print(f"{src:17} {c:12} {s['first']:7.0f} {s['best']:7.0f} {r['script']['rss_mb']:7.0f} {rt:>12}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a 1x2x2048x2048 image")
    parser.add_argument("--repeat", type=int, default=1, help="timed dask runs per setting")
    parser.add_argument("--sources", default="disk,s3", help="comma-separated: disk, s3")
    parser.add_argument("--layouts", default="chunked,sharded")
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument(
        "--blocks", default="512,2048", help="dask block sizes (y = x), e.g. 256,512,2048"
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(json.loads(args.one))), flush=True)
        return

    t_start = time.perf_counter()
    shape = SMALL_SHAPE if args.small else SHAPE
    suffix = "-small" if args.small else ""
    layouts = [s.strip() for s in args.layouts.split(",")]
    images = {k: make_pyramid(f"sync-{k}{suffix}", sharded=k == "sharded", shape=shape) for k in layouts}  # fmt: skip
    ref = reference(next(iter(images.values())), shape)
    print(f"image {shape} uint16, {LEVELS} levels; dask over level 0 = {np.prod(shape) * 2 / 1e6:.0f} MB")  # fmt: skip
    contenders = [c.strip() for c in args.contenders.split(",")]
    workloads = [w.strip() for w in args.workloads.split(",")]
    sources = [s.strip() for s in args.sources.split(",")]
    rows: list[tuple[str, str, dict[str, Any]]] = []
    with counted_moto() as s3:
        if "s3" in sources:
            for root in images.values():
                upload(root, root.name, s3)
        for where in sources:
            for kind, root in images.items():
                src = f"{where} {kind}"
                for c in contenders:
                    work = [w for w in workloads if c != "ngio+cache" or w in CACHED_WORK]
                    if not work:
                        continue
                    job = {"contender": c, "root": str(root), "s3": None if where == "disk" else s3.__dict__,
                           "ref": ref, "shape": shape, "workloads": work, "repeat": args.repeat,
                           "blocks": [int(b) for b in args.blocks.split(",")]}  # fmt: skip
                    res = spawn(job)
                    if "error" in res:
                        print(f"  {src}: {c} failed: {res['error']}", flush=True)
                        continue
                    rows.append((src, c, res))
                    print(f"  {src:15} {c:12} done", flush=True)
    print_tables(rows)
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
