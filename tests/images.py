"""Build small OME-Zarr images with zarr-python for tests, and copy them onto other stores."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import anyio
import numcodecs
import numpy as np
import zarr
import zarr.codecs

from ngio_async.meta import (
    Axis,
    Channel,
    Dataset,
    Multiscale,
    OmeMetadata,
    Omero,
    Scale,
    Window,
    to_attrs,
)

if TYPE_CHECKING:
    from pathlib import Path

    from ngio_async.stores import AsyncStore

AXES = {2: "yx", 3: "zyx", 4: "czyx", 5: "tczyx"}
TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}


@dataclass
class Spec:
    """One test image: version, level-0 shape, chunks, shards, dtype, compressor, levels."""

    version: str = "0.5"
    shape: tuple[int, ...] = (2, 64, 64)
    chunks: tuple[int, ...] = (1, 16, 16)
    shards: tuple[int, ...] | None = None
    dtype: str = "uint16"
    compressor: str | None = "zstd"
    levels: int = 2
    fill_value: Any = 0
    written: tuple[slice, ...] | None = None  # only this region holds data; the rest is fill
    channels: tuple[str, ...] = ()
    seed: int = 0

    @property
    def axes(self) -> str:
        if len(self.shape) == 3 and self.channels:
            return "cyx"
        return AXES[len(self.shape)]


def _compressors(spec: Spec) -> Any:
    c = spec.compressor
    if spec.version == "0.4":
        return {
            None: None,
            "zstd": numcodecs.Zstd(level=1),
            "gzip": numcodecs.GZip(level=1),
            "zlib": numcodecs.Zlib(level=1),
            "blosc": numcodecs.Blosc(cname="lz4", clevel=3, shuffle=numcodecs.Blosc.SHUFFLE),
            "lz4": numcodecs.LZ4(),
        }[c]
    return {
        None: None,
        "zstd": zarr.codecs.ZstdCodec(level=1),
        "gzip": zarr.codecs.GzipCodec(level=1),
        "blosc": zarr.codecs.BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle"),
    }[c]


def level_shapes(spec: Spec) -> list[tuple[int, ...]]:
    out = []
    for i in range(spec.levels):
        f = 2**i
        out.append(
            tuple(
                n if a in "tc" else max(1, -(-n // f))
                for a, n in zip(spec.axes, spec.shape, strict=True)
            )
        )
    return out


def random_data(
    spec: Spec, shape: tuple[int, ...], rng: np.random.Generator
) -> np.ndarray[Any, Any]:
    dt = np.dtype(spec.dtype)
    if dt.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return rng.integers(
            max(info.min, -1000), min(info.max, 1000), size=shape, endpoint=True
        ).astype(dt)
    if dt.kind == "c":
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dt)
    return rng.standard_normal(shape).astype(dt)


def write_image(root: Path, spec: Spec) -> list[np.ndarray[Any, Any]]:
    """Write ``spec`` at ``root`` with zarr-python; return each level's full contents."""
    rng = np.random.default_rng(spec.seed)
    zarr_format: Literal[2, 3] = 3 if spec.version == "0.5" else 2
    datas = []
    for i, shape in enumerate(level_shapes(spec)):
        chunks = tuple(min(c, n) for c, n in zip(spec.chunks, shape, strict=True))
        shards = None
        if spec.shards is not None:
            shards = tuple(
                max(c, min(s, -(-n // c) * c)) // c * c
                for s, c, n in zip(spec.shards, chunks, shape, strict=True)
            )
        kwargs: dict[str, Any] = {}
        if zarr_format == 3:
            kwargs["dimension_names"] = list(spec.axes)
            if shards is not None:
                kwargs["shards"] = shards
        comp = _compressors(spec)
        arr = zarr.create_array(
            store=root,
            name=str(i),
            shape=shape,
            chunks=chunks,
            dtype=spec.dtype,
            zarr_format=zarr_format,
            compressors=comp if comp is not None else None,
            fill_value=spec.fill_value,
            **kwargs,
        )
        data = random_data(spec, shape, rng)
        full = np.full(shape, spec.fill_value, dtype=spec.dtype)
        region = (
            spec.written
            if (spec.written is not None and i == 0)
            else tuple(slice(None) for _ in shape)
        )
        full[region] = data[region]
        arr[region] = data[region]
        datas.append(full)
    axes = [
        Axis(name=a, type=TYPES[a], unit="micrometer" if TYPES[a] == "space" else None)
        for a in spec.axes
    ]
    datasets = [
        Dataset(
            path=str(i),
            coordinate_transformations=[
                Scale(scale=[1.0 if a in "tc" else 0.5 * 2**i for a in spec.axes])
            ],
        )
        for i in range(spec.levels)
    ]
    omero = None
    if spec.channels:
        omero = Omero(
            channels=[
                Channel(label=c, color="FF0000", window=Window(min=0, max=255, start=0, end=255))
                for c in spec.channels
            ]
        )
    meta = OmeMetadata(
        version=spec.version, multiscales=[Multiscale(axes=axes, datasets=datasets)], omero=omero
    )
    group = zarr.open_group(root, mode="a", zarr_format=zarr_format)
    group.attrs.update(to_attrs(meta, spec.version))
    return datas


async def upload(src: Path, store: AsyncStore, prefix: str = "") -> int:
    """Copy every file under ``src`` to ``store`` (keys relative to ``src``), 16 at a time
    (one at a time, the round trips of an image's few hundred objects to moto took seconds);
    return the count."""
    files = sorted(p for p in src.rglob("*") if p.is_file())  # noqa: ASYNC240 - test setup
    limit = anyio.CapacityLimiter(16)

    async def put(path: Path) -> None:
        async with limit:
            key = path.relative_to(src).as_posix()
            await store.put(f"{prefix}{key}", await anyio.Path(path).read_bytes())

    async with anyio.create_task_group() as tg:
        for path in files:
            tg.start_soon(put, path)
    return len(files)
