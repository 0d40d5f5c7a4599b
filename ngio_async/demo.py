"""``make demo``: write a small synthetic OME-Zarr (0.5 and 0.4) and print its validated metadata.

Run as ``python -m ngio_async.demo [DIR]`` (a temporary folder by default).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Literal

import anyio
import numpy as np
import zarr
import zarr.api.asynchronous as zasync

from .meta import (
    Axis,
    Channel,
    Dataset,
    Multiscale,
    OmeMetadata,
    Omero,
    Scale,
    Window,
    decode_attrs,
    decode_zarr_json,
    encode_attrs,
    to_attrs,
)

SHAPE = (2, 8, 512, 512)  # c, z, y, x
LEVELS = 3


def image_metadata(version: str) -> OmeMetadata:
    """NGFF metadata of a 3-level czyx pyramid with two channels."""
    axes = [Axis(name="c", type="channel")] + [
        Axis(name=n, type="space", unit="micrometer") for n in "zyx"
    ]
    datasets = [
        Dataset(
            path=str(i),
            coordinate_transformations=[Scale(scale=[1.0, 1.0, 0.5 * 2**i, 0.5 * 2**i])],
        )
        for i in range(LEVELS)
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


async def write_image(root: Path, version: str) -> None:
    """Write the pyramid with zarr-python's async API, arrays first, then the group metadata."""
    zarr_format: Literal[2, 3] = 3 if version == "0.5" else 2
    store = zarr.storage.LocalStore(root)
    rng = np.random.default_rng(0)
    data = rng.integers(0, 4000, size=SHAPE, dtype=np.uint16)
    for i in range(LEVELS):
        level = data[:, :, :: 2**i, :: 2**i]
        kwargs: dict[str, object] = {"dimension_names": list("czyx")} if zarr_format == 3 else {}
        arr = await zasync.create_array(
            store,
            name=str(i),
            shape=level.shape,
            chunks=(1, 1, 256, 256),
            dtype=level.dtype,
            zarr_format=zarr_format,
            **kwargs,  # type: ignore[arg-type]
        )
        await arr.setitem(Ellipsis, level)
    group = await zasync.open_group(store, zarr_format=zarr_format, mode="a")
    await group.update_attributes(to_attrs(image_metadata(version), version))


async def main(out: Path) -> None:
    for version in ("0.5", "0.4"):
        root = out / f"demo-{version}.ome.zarr"
        await write_image(root, version)
        if version == "0.5":
            meta = decode_zarr_json((root / "zarr.json").read_bytes())
        else:
            meta = decode_attrs((root / ".zattrs").read_bytes())
        ms = meta.multiscales
        assert ms is not None and meta.omero is not None
        print(f"NGFF {meta.version} image at {root}")
        print(f"  axes:     {', '.join(f'{a.name} ({a.type})' for a in ms[0].axes)}")
        for ds in ms[0].datasets:
            print(f"  level {ds.path}:  scale {ds.scale}")
        print(f"  channels: {', '.join(str(c.label) for c in meta.omero.channels)}")
        print(f"  validated metadata: {encode_attrs(meta).decode()}\n")


def run() -> None:
    if len(sys.argv) > 1:
        out = Path(sys.argv[1])
        out.mkdir(parents=True, exist_ok=True)
        anyio.run(main, out, backend="asyncio")
        return
    with tempfile.TemporaryDirectory(prefix="ngio-async-demo-") as tmp:
        anyio.run(main, Path(tmp), backend="asyncio")


if __name__ == "__main__":
    run()
