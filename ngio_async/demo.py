"""``make demo``: stream a multi-level OME-Zarr image from a local S3 server with ``async for``.

Starts moto's S3 server on 127.0.0.1, writes a generated 3-level NGFF 0.5 image to it, opens it
with ``open_async``, streams every tile of level 0 with a progress bar and prints the
throughput; then reads a region with the blocking API. Run as ``python -m ngio_async.demo``
(needs the ``demo`` extra: ``pip install ngio_async[demo]``).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import anyio
import numpy as np
import zarr
import zarr.codecs

from ._prefetch import start_deferred
from .meta import Axis, Channel, Dataset, Multiscale, OmeMetadata, Omero, Scale, Window, to_attrs

if TYPE_CHECKING:
    from collections.abc import Iterator

SHAPE = (2, 8, 2048, 2048)  # c, z, y, x: 128 MiB of uint16
LEVELS = 3


@dataclass
class LocalS3:
    """A running S3 server on 127.0.0.1 and the ``open_store`` options that reach it."""

    endpoint: str
    bucket: str
    options: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def local_s3(bucket: str = "demo") -> Iterator[LocalS3]:
    """moto's S3 server on a free loopback port with one bucket (stopped on exit)."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        with urllib.request.urlopen(
            urllib.request.Request(f"{endpoint}/{bucket}", method="PUT"), timeout=30
        ):
            pass
        yield LocalS3(
            endpoint,
            bucket,
            {
                "endpoint": endpoint,
                "access_key_id": "demo",
                "secret_access_key": "demo",
                "region": "us-east-1",
            },
        )
    finally:
        server.stop()


def image_metadata(version: str, levels: int = LEVELS) -> OmeMetadata:
    """NGFF metadata of a czyx pyramid with two channels."""
    axes = [Axis(name="c", type="channel")] + [
        Axis(name=n, type="space", unit="micrometer") for n in "zyx"
    ]
    datasets = [
        Dataset(
            path=str(i),
            coordinate_transformations=[Scale(scale=[1.0, 1.0, 0.5 * 2**i, 0.5 * 2**i])],
        )
        for i in range(levels)
    ]
    channels = [
        Channel(label=name, color=color, window=Window(min=0, max=65535, start=0, end=3000))
        for name, color in (("DAPI", "0000FF"), ("GFP", "00FF00"))
    ]
    return OmeMetadata(
        version=version,
        multiscales=[Multiscale(name="demo", axes=axes, datasets=datasets)],
        omero=Omero(channels=channels),
    )


def write_image(
    root: Path, shape: tuple[int, ...] = SHAPE, version: str = "0.5", levels: int = LEVELS
) -> None:
    """Write a synthetic pyramid with zarr-python (arrays first, then the group metadata)."""
    zarr_format: Literal[2, 3] = 3 if version == "0.5" else 2
    rng = np.random.default_rng(0)
    y = np.linspace(0, 12 * np.pi, shape[2], dtype=np.float32)[:, None]
    x = np.linspace(0, 12 * np.pi, shape[3], dtype=np.float32)[None, :]
    data = np.empty(shape, dtype=np.uint16)
    for c in range(shape[0]):
        for z in range(shape[1]):
            plane = 1500 + 1000 * np.sin(y + z + c) * np.cos(x)
            data[c, z] = plane + rng.poisson(40, size=plane.shape)
    for i in range(levels):
        level = data[:, :, :: 2**i, :: 2**i]
        chunks = (1, 1, min(512, level.shape[2]), min(512, level.shape[3]))
        kwargs: dict[str, Any] = {}
        if zarr_format == 3:
            kwargs = {"dimension_names": list("czyx"), "shards": (1, 1, *level.shape[2:])}
        arr = zarr.create_array(
            store=root,
            name=str(i),
            shape=level.shape,
            chunks=chunks,
            dtype=level.dtype,
            zarr_format=zarr_format,
            compressors=zarr.codecs.BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")
            if zarr_format == 3
            else None,
            **kwargs,
        )
        arr[...] = level
    group = zarr.open_group(root, zarr_format=zarr_format, mode="a")
    group.attrs.update(to_attrs(image_metadata(version, levels), version))


async def upload(root: Path, url: str, **options: Any) -> int:
    """Copy a local folder to a store URL, concurrently; returns the bytes written."""
    from .stores import open_store

    files = {
        p.relative_to(root).as_posix(): p
        for p in sorted(root.rglob("*"))  # noqa: ASYNC240 - a demo's setup
        if p.is_file()
    }
    total = 0
    async with open_store(url, **options) as store, anyio.create_task_group() as tg:
        for key, path in files.items():
            data = await anyio.Path(path).read_bytes()
            total += len(data)
            start_deferred(tg, store.put, key, data)
    return total


def put_demo_image(
    s3: LocalS3, name: str = "image.ome.zarr", shape: tuple[int, ...] = SHAPE
) -> str:
    """Write the demo image to the local S3 server; return its ``s3://`` URL."""
    url = f"s3://{s3.bucket}/{name}"
    with tempfile.TemporaryDirectory(prefix="ngio-async-demo-") as tmp:
        write_image(Path(tmp), shape)
        anyio.run(lambda: upload(Path(tmp), url, **s3.options), backend="asyncio")
    return url


async def stream_from_s3(url: str, options: dict[str, Any]) -> None:
    """The main job: open, describe, and stream level 0 tile by tile."""
    from . import open_async
    from .progress import rich_progress

    async with open_async(url, **options) as ds:
        print(ds)
        for i, lvl in enumerate(ds.levels):
            cal = ds.metadata.spatial_calibration[i]
            print(
                f"  level {i}: shape {lvl.shape}  chunks {lvl.chunks}  shards {lvl.shards}"
                f"  pixel {cal['x'].scale} {cal['x'].unit}"
            )
        print(f"  channels: {[c.label for c in ds.metadata.channels]}")
        level = ds.levels[0]
        tiles = ds.tiles(level=0, ordered=False)
        tile_bytes = level.nbytes // len(tiles)
        total = 0
        start = time.perf_counter()
        with rich_progress("streaming level 0", nbytes_per_item=tile_bytes) as progress:
            tiles = ds.tiles(level=0, ordered=False, progress=progress)
            async for tile in tiles:
                total += tile.data.nbytes
        elapsed = time.perf_counter() - start
        print(
            f"streamed {len(tiles)} tiles, {total / 1e6:.0f} MB decoded in {elapsed:.2f} s: "
            f"{total / 1e6 / elapsed:.0f} MB/s from S3 (moto on 127.0.0.1)"
        )


def main() -> None:
    from . import open as open_sync

    with local_s3() as s3:
        print(f"local S3 server at {s3.endpoint}; writing a {SHAPE} uint16 pyramid ...")
        url = put_demo_image(s3)
        anyio.run(stream_from_s3, url, s3.options, backend="asyncio")
        with open_sync(url, **s3.options) as ds:
            region = ds.read(level=0, c="GFP", z=3, y=slice(1000, 1256), x=slice(1000, 1256))
            print(
                f"blocking read of a GFP region: {region.shape} {region.dtype}, "
                f"mean {region.mean():.1f}"
            )


if __name__ == "__main__":
    main()
