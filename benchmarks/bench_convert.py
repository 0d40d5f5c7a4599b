"""Convert a tiled TIFF to sharded OME-Zarr 0.5 with a 4-level pyramid: ngio_async vs its peers.

The source is a 4-channel 8192x8192 uint16 OME-TIFF (``CYX``, 0.2 µm pixels), 512x512 tiles,
**uncompressed** by default (``--tiff-compression zlib`` for a zlib-compressed one), written
once into ``benchmarks/_data`` with tifffile from ``_common.synthetic_plane`` (smooth blobs plus
shot noise). Every contender writes NGFF 0.5 (zarr v3), 512x512 chunks in 4096x4096 shards,
zstd (level 0, as ngio_async's ``"zstd"``), and 4 levels (8192 -> 1024) on local disk:

- ``ngio_async``: ``ngio_async.convert.convert`` (its pyramid: 2x2 mean, computed from level
  0's tiles as they are written);
- ``ngio_async cli``: ``ngio-async convert`` (``ngio_async.cli.main``) with the same options;
- ``ngff-zarr``: ``tiff_file_to_ngff_images`` (its CLI's OME-TIFF path;
  ``cli_input_to_ngff_image`` would name the ``CYX`` axes ``zyx``) + ``to_multiscales``
  (``--ngff-method``, default ``itkwasm_bin_shrink``, a bin mean) +
  ``to_ngff_zarr(version="0.5", chunks_per_shard=8)``;
- ``ome-zarr``: ome-zarr-py 0.18 ``write_image`` of a dask array over tifffile's zarr view
  (``method=local_mean``, ``storage_options`` chunks + shards, default format 0.5).

Each contender runs in its own child process (``--one``): the child reports its conversion
wall time (imports excluded) and its peak RSS (``VmHWM``; ``extra`` is the peak minus the RSS
before the conversion, imports done); the parent also polls the child's RSS with psutil. Each
output is then checked once: NGFF version, level count, sharding, and level 0 equal to the
TIFF on sampled regions (corners and random 300x300 windows in every channel). ``--repeat N``
runs N interleaved rounds and keeps each contender's best time; ``--profile a,b`` runs those
contenders under py-spy (every thread) and prints where their samples go.

    .venv/bin/python benchmarks/bench_convert.py [--quick] [--repeat N] [--json]
        [--contenders a,b] [--profile ngio_async] [--keep] [--tiff-compression zlib]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import DATA, synthetic_plane

FULL = (4, 8192, 8192)
QUICK = (4, 2048, 2048)
TILE = 512
CHUNKS = (1, 512, 512)
SHARDS = (1, 4096, 4096)
LEVELS = 4
PIXEL = 0.2
CONTENDERS = ("ngio_async", "ngio_async cli", "ngff-zarr", "ome-zarr")
BASELINE = "ngio_async"
OUT = DATA / "convert-out"


# ------------------------------------------------------------------------------ the TIFF
def make_tiff(shape: tuple[int, int, int], compression: str) -> Path:
    """Write the source OME-TIFF once (one ``synthetic_plane`` per channel); reuse it after."""
    import tifffile

    path = DATA / f"convert-{'x'.join(map(str, shape))}-{compression}.ome.tif"
    if path.exists():
        return path
    DATA.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    data = np.empty(shape, dtype=np.uint16)
    for c in range(shape[0]):
        data[c] = synthetic_plane(c, shape[1:])
    tifffile.imwrite(
        tmp,
        data,
        tile=(TILE, TILE),
        compression=None if compression == "none" else compression,
        photometric="minisblack",
        metadata={
            "axes": "CYX",
            "PhysicalSizeX": PIXEL,
            "PhysicalSizeY": PIXEL,
            "PhysicalSizeXUnit": "µm",
            "PhysicalSizeYUnit": "µm",
            "Channel": {"Name": ["DAPI", "GFP", "RFP", "Cy5"][: shape[0]]},
        },
        ome=True,
    )
    tmp.rename(path)
    return path


# ------------------------------------------------------------------------------ contenders
def run_ngio_async(src: Path, dst: Path, _: argparse.Namespace) -> None:
    import anyio

    from ngio_async.convert import convert

    async def main() -> None:
        await convert(
            src,
            dst,
            ngff_version="0.5",
            chunks=CHUNKS,
            shards=SHARDS,
            compressor="zstd",
            levels=LEVELS,
            overwrite=True,
        )

    anyio.run(main)


def run_ngio_async_cli(src: Path, dst: Path, _: argparse.Namespace) -> None:
    from ngio_async.cli import main

    argv = ["convert", str(src), str(dst), "--ngff-version", "0.5", "--levels", str(LEVELS)]
    argv += ["--chunks", ",".join(map(str, CHUNKS)), "--shards", ",".join(map(str, SHARDS))]
    argv += ["--compressor", "zstd", "--overwrite", "--quiet"]
    code = main(argv)
    if code:
        raise SystemExit(f"ngio-async convert exited with {code}")


def run_ngff_zarr(src: Path, dst: Path, args: argparse.Namespace) -> None:
    import zarr.codecs
    from ngff_zarr import Methods, to_multiscales, to_ngff_zarr
    from ngff_zarr.tiff_to_ngff_image import tiff_file_to_ngff_images

    # the OME-aware TIFF path of its CLI (cli_input_to_ngff_image names a 3-d array "zyx")
    [(_, image)] = tiff_file_to_ngff_images(src, series=0)
    ms = to_multiscales(
        image,
        scale_factors=[2**i for i in range(1, LEVELS)],
        method=Methods(args.ngff_method),
        chunks={"c": 1, "y": CHUNKS[1], "x": CHUNKS[2]},
    )
    to_ngff_zarr(
        str(dst),
        ms,
        version="0.5",
        chunks_per_shard={"c": 1, "y": SHARDS[1] // CHUNKS[1], "x": SHARDS[2] // CHUNKS[2]},
        compressors=[zarr.codecs.ZstdCodec(level=0)],
    )


def run_ome_zarr(src: Path, dst: Path, _: argparse.Namespace) -> None:
    import dask.array as da
    import tifffile
    import zarr
    import zarr.codecs
    from ome_zarr.scale import Methods
    from ome_zarr.writer import write_image

    with tifffile.TiffFile(src) as tif:
        store = tif.series[0].aszarr(level=0)
        arr = zarr.open_array(store, mode="r")
        data = da.from_array(arr, chunks=(1, SHARDS[1], SHARDS[2]))
        group = zarr.open_group(str(dst), mode="w", zarr_format=3)
        write_image(
            data,
            group,
            scale_factors=[2**i for i in range(1, LEVELS)],
            method=Methods.LOCAL_MEAN,
            axes="cyx",
            scale={"y": PIXEL, "x": PIXEL},
            axes_units={"y": "micrometer", "x": "micrometer"},
            storage_options={
                "chunks": CHUNKS,
                "shards": SHARDS,
                "compressors": zarr.codecs.ZstdCodec(level=0),
            },
        )
        store.close()


RUNNERS = {
    "ngio_async": run_ngio_async,
    "ngio_async cli": run_ngio_async_cli,
    "ngff-zarr": run_ngff_zarr,
    "ome-zarr": run_ome_zarr,
}


IMPORTS = {  # imported before the clock starts (and before ``before_mb``)
    "ngio_async": ("anyio", "ngio_async.convert", "tifffile", "zarr"),
    "ngio_async cli": ("ngio_async.cli", "ngio_async.convert", "tifffile", "zarr"),
    "ngff-zarr": ("ngff_zarr", "ngff_zarr.tiff_to_ngff_image", "zarr.codecs", "dask.array"),
    "ome-zarr": ("ome_zarr.writer", "ome_zarr.scale", "dask.array", "tifffile", "zarr"),
}


def rss_mb(field: str = "VmRSS") -> float:
    """This process's RSS (``VmRSS``) or peak RSS (``VmHWM``: unlike ``ru_maxrss``, not
    inherited from the parent across fork + exec), in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def one(args: argparse.Namespace) -> None:
    """Child process: import the contender, then time one conversion; print JSON."""
    runner = RUNNERS[args.one]
    src, dst = Path(args.src), Path(args.dst)
    shutil.rmtree(dst, ignore_errors=True)
    import importlib

    for module in IMPORTS[args.one]:
        importlib.import_module(module)
    before = rss_mb()
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    error = None
    try:
        runner(src, dst, args)
    except Exception as exc:  # noqa: BLE001 - reported in the table ("cannot")
        error = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    peak = rss_mb("VmHWM")
    out = {"seconds": seconds, "cpu": cpu, "peak_mb": peak, "before_mb": before, "error": error}
    print("RESULT " + json.dumps(out), flush=True)


# ------------------------------------------------------------------------------ verification
def _level_paths(dst: Path) -> tuple[str, list[str]]:
    doc = json.loads((dst / "zarr.json").read_text())
    ome = doc["attributes"]["ome"]
    return ome["version"], [d["path"] for d in ome["multiscales"][0]["datasets"]]


def verify(src: Path, dst: Path, shape: tuple[int, ...]) -> dict[str, Any]:
    """Check version, levels, sharding, and level 0 == the TIFF on sampled regions."""
    import tifffile
    import zarr

    version, paths = _level_paths(dst)
    level0 = zarr.open_array(dst / paths[0], mode="r")
    meta = json.loads((dst / paths[0] / "zarr.json").read_text())
    codecs = [c["name"] for c in meta.get("codecs", [])]
    sharded = codecs[:1] == ["sharding_indexed"]
    shard_shape = meta["chunk_grid"]["configuration"]["chunk_shape"] if sharded else None
    rng = np.random.default_rng(7)
    _, ny, nx = shape
    w = 300
    windows = [(0, 0), (ny - w, nx - w), (0, nx - w), (ny - w, 0)]
    windows += [(int(rng.integers(0, ny - w)), int(rng.integers(0, nx - w))) for _ in range(6)]
    equal = True
    with tifffile.TiffFile(src) as tif:
        store = tif.series[0].aszarr(level=0)
        ref = zarr.open_array(store, mode="r")
        for c in range(shape[0]):
            for y, x in windows:
                a = np.asarray(ref[c, y : y + w, x : x + w])
                b = np.asarray(level0[c, y : y + w, x : x + w])
                equal &= bool(np.array_equal(a, b))
        store.close()
    shapes = [list(zarr.open_array(dst / p, mode="r").shape) for p in paths]
    return {
        "version": version,
        "levels": len(paths),
        "shapes": shapes,
        "level0_shape": list(level0.shape),
        "sharded": sharded,
        "shards": shard_shape,
        "level0_equal": equal and tuple(level0.shape) == tuple(shape),
    }


def stored_mb(root: Path) -> float:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 2**20


# ------------------------------------------------------------------------------ parent
def measure(name: str, src: Path, args: argparse.Namespace) -> dict[str, Any]:
    import psutil

    dst = OUT / name.replace(" ", "-")
    cmd_child = [sys.executable, __file__, "--one", name, "--src", str(src), "--dst", str(dst)]
    cmd_child += ["--ngff-method", args.ngff_method]
    cmd = cmd_child
    profile = OUT / f"{name.replace(' ', '-')}.pyspy.txt"
    if name in args.profile:  # py-spy samples every thread (cProfile sees the main one only)
        spy = Path(sys.executable).parent / "py-spy"
        cmd = [str(spy), "record", "-f", "raw", "-r", "50", "--threads", "-o", str(profile)]
        cmd += ["--", *cmd_child]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)
    polled = 0.0
    while proc.poll() is None:
        with contextlib.suppress(psutil.Error):
            polled = max(polled, ps.memory_info().rss / 2**20)
        time.sleep(0.05)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    line = next((ln for ln in stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        tail = " ".join(stderr.strip().splitlines()[-1:])[:200]
        return {"contender": name, "error": f"exit {proc.returncode}: {tail}"}
    res: dict[str, Any] = {"contender": name, **json.loads(line[len("RESULT ") :])}
    res["process_seconds"] = wall
    res["polled_peak_mb"] = polled
    if res["error"] is None and not args.skip_verify.get(name):
        args.skip_verify[name] = True
        try:
            res["verify"] = verify(src, dst, args.shape)
            res["stored_mb"] = stored_mb(dst)
        except Exception as exc:  # noqa: BLE001 - reported in the table
            res["error"] = f"verify: {type(exc).__name__}: {exc}"
    if not args.keep:
        shutil.rmtree(dst, ignore_errors=True)
    if name in args.profile and profile.exists():
        res["profile"] = summarize_profile(profile)
    return res


def _generic(frame: str) -> bool:
    """Frames on every worker thread's stack (they would top the inclusive list)."""
    return frame.startswith(("Thread._bootstrap", "Thread.run", "WorkerThread.run", "_worker ("))


def summarize_profile(path: Path, top: int = 12) -> dict[str, list[tuple[str, float]]]:
    """Share of the busy samples (all threads) per leaf function and per function on the stack
    (inclusive), from py-spy's raw output."""
    leaf: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        frames = [
            f.split(":")[0] + ")"
            for f in stack.split(";")
            if " (" in f and not f.startswith(("thread (", "process ")) and not _generic(f)
        ]
        if not frames:
            continue
        total += n
        leaf[frames[-1]] = leaf.get(frames[-1], 0) + n
        for f in set(frames):
            inclusive[f] = inclusive.get(f, 0) + n

    def best(counts: dict[str, int]) -> list[tuple[str, float]]:
        ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
        return [(f, round(100 * n / max(total, 1), 1)) for f, n in ranked]

    return {"leaf": best(leaf), "inclusive": best(inclusive)}


def print_table(rows: list[dict[str, Any]], nbytes: int) -> None:
    base = next((r for r in rows if r["contender"] == BASELINE and not r.get("error")), None)
    head = (
        f"{'contender':16} {'s':>7} {'MB/s':>6} {'CPU s':>6} {'peak RSS':>9} {'extra':>7}"
        f" {'stored':>7} {'NGFF':>5} {'lv':>3} {'shards':>15} {'L0 ==':>6} {'time vs ngio_async':>19}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        if r.get("error"):
            print(f"{r['contender']:16} cannot: {r['error']}")
            continue
        v = r["verify"]
        ratio = r["seconds"] / base["seconds"] if base else float("nan")
        shards = "x".join(map(str, v["shards"])) if v["shards"] else "none"
        print(
            f"{r['contender']:16} {r['seconds']:7.2f} {nbytes / r['seconds'] / 1e6:6.0f}"
            f" {r['cpu']:6.1f} {r['peak_mb']:8.0f}M {r['peak_mb'] - r['before_mb']:6.0f}M"
            f" {r['stored_mb']:6.0f}M {v['version']:>5} {v['levels']:3d} {shards:>15}"
            f" {'yes' if v['level0_equal'] else 'NO':>6} {ratio:18.2f}x"
        )
    print(
        "s: conversion wall time (imports excluded; the best of --repeat rounds); MB/s: decoded"
        " input pixels / s; CPU s: all threads of the child; peak RSS: the child's VmHWM (the"
        " largest of the rounds), extra = peak - RSS before the conversion; L0 ==: level 0"
        " equals the TIFF on sampled windows; time vs ngio_async:"
        " contender's s / ngio_async's (above 1 = slower)"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help=f"{QUICK} instead of {FULL}")
    p.add_argument("--contenders", default=",".join(CONTENDERS))
    p.add_argument("--tiff-compression", default="none", choices=("none", "zlib"))
    p.add_argument("--ngff-method", default="itkwasm_bin_shrink", help="ngff-zarr Methods value")
    p.add_argument("--repeat", type=int, default=1, help="rounds; the table shows the best time")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--keep", action="store_true", help="keep the outputs in _data/convert-out")
    p.add_argument(
        "--profile",
        default="",
        metavar="A,B",
        help="py-spy these contenders (all threads); prints where their time goes",
    )
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--src", help=argparse.SUPPRESS)
    p.add_argument("--dst", help=argparse.SUPPRESS)
    args = p.parse_args()
    args.profile = [c.strip() for c in args.profile.split(",") if c.strip()]
    if args.one:
        one(args)
        return
    shape = QUICK if args.quick else FULL
    args.shape = shape
    args.skip_verify = {}
    src = make_tiff(shape, args.tiff_compression)
    OUT.mkdir(parents=True, exist_ok=True)
    nbytes = int(np.prod(shape)) * 2
    names = [n.strip() for n in args.contenders.split(",") if n.strip()]
    for name in names:
        if name not in RUNNERS:
            raise SystemExit(f"unknown contender {name!r}: {', '.join(CONTENDERS)}")
    best: dict[str, dict[str, Any]] = {}
    for round_ in range(args.repeat):  # rounds interleave the contenders (a busy machine)
        for name in names:
            res = measure(name, src, args)
            res["runs"] = [res.get("seconds")]
            old = best.get(name)
            if old is not None:
                res["runs"] = old["runs"] + res["runs"]
                res["peak_mb"] = max(res.get("peak_mb", 0), old.get("peak_mb", 0))
                for key in ("verify", "stored_mb", "profile"):
                    if key in old:
                        res[key] = old[key]
                if res.get("error") or old["seconds"] <= res["seconds"]:
                    res = {**old, "runs": res["runs"], "peak_mb": res["peak_mb"]}
            best[name] = res
            if not args.json:
                print(f"  round {round_ + 1}: {name} done", file=sys.stderr)
    rows = [best[n] for n in names]
    if args.json:
        print(json.dumps({"shape": shape, "tiff": src.name, "rows": rows}, indent=2))
    else:
        print(f"source {src.name}: {shape} uint16, {nbytes / 2**20:.0f} MiB, tiles {TILE}x{TILE}")
        print_table(rows, nbytes)
        for r in rows:
            if "profile" in r:
                print(f"\nwhere {r['contender']}'s busy samples go (% of all threads' samples):")
                for kind in ("leaf", "inclusive"):
                    print(f"  {kind}:")
                    for func, pct in r["profile"][kind]:
                        print(f"    {pct:5.1f}%  {func}")


if __name__ == "__main__":
    main()
