"""Write small OME-Zarr images with ngio and ome-zarr-py, and read them back with their own readers.

Test helpers for ``test_interop_read.py`` / ``test_interop_write.py``. Every writer takes a tmp
path and returns a :class:`Written` record of what it wrote (the values and metadata the readers
must report). ngio and ome-zarr are imported lazily, inside the functions: ome-zarr warns
(``DeprecationWarning``) on import, and pytest turns warnings into errors outside the test
modules' ``filterwarnings`` marks.

Versions checked: ngio 1.1.3, ome-zarr 0.18.0, zarr 3.1.6.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import numpy as np

if TYPE_CHECKING:
    from pathlib import Path

    from numpy.typing import NDArray

AXES = ("c", "z", "y", "x")
LABEL_AXES = ("z", "y", "x")
SHAPE = (2, 3, 64, 80)
CHANNELS = ["DAPI", "GFP"]
PIXEL_SIZE = 0.5  # micrometer, y and x
Z_SPACING = 2.0  # micrometer
UNIT: Final = "micrometer"
NLEVELS = 3
#: level ``i`` has y/x pixel size ``PIXEL_SIZE * 2**i``; z and c are not downsampled
SCALES = [(1.0, Z_SPACING, PIXEL_SIZE * 2**i, PIXEL_SIZE * 2**i) for i in range(NLEVELS)]
LEVEL_SHAPES = [(2, 3, 64 // 2**i, 80 // 2**i) for i in range(NLEVELS)]

#: warnings the writers / readers emit with the versions above (filtered per test module)
WARNING_FILTERS = [
    # ome-zarr 0.18: ``writer.py`` builds a deprecated ``Scaler()`` default at import time. (We
    # pass ``scaler=None`` to write_labels, which avoids its "'scaler' argument is deprecated"
    # warning, and ``consolidation_mode="dask"`` to ngio, which avoids ngio 1.1's
    # ``NgioFutureWarning: Pyramid consolidation still builds every level through dask``.)
    "ignore:Call to deprecated class Scaler:DeprecationWarning",
]


def image_data(seed: int = 0) -> NDArray[np.uint16]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 4000, size=SHAPE, dtype=np.uint16)


def label_data() -> NDArray[np.uint32]:
    lab = np.zeros(SHAPE[1:], dtype=np.uint32)
    lab[:, 10:30, 10:41] = 1
    lab[1:, 40:61, 50:75] = 7
    lab[2, 0:5, 0:80] = 70000  # beyond uint16
    return lab


@dataclass
class Written:
    """What a writer wrote: where, with which metadata, and the level-0 pixels."""

    writer: str
    version: str
    path: Path
    image: NDArray[Any]
    level_paths: list[str]
    channels: list[str] = field(default_factory=lambda: list(CHANNELS))
    labels: dict[str, NDArray[Any]] = field(default_factory=dict)
    label_level_paths: dict[str, list[str]] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.writer}-{self.version}"


# ---------------------------------------------------------------------------------- ngio
def write_ngio(
    path: Path,
    version: str,
    *,
    chunks: tuple[int, ...] = (1, 1, 32, 32),
    shards: tuple[int, ...] | None = None,
    dimension_separator: str = "/",
) -> Written:
    """czyx uint16 (3 levels, y/x halved per level) plus the label image ``cells`` (uint32)."""
    import ngio

    data = image_data()
    container = ngio.create_ome_zarr_from_array(
        str(path),
        data,
        pixelsize=PIXEL_SIZE,
        z_spacing=Z_SPACING,
        levels=NLEVELS,
        axes_names="".join(AXES),
        channels_meta=CHANNELS,
        space_unit=UNIT,
        ngff_version=version,  # type: ignore[arg-type]
        chunks=chunks,
        shards=shards,
        dimension_separator=dimension_separator,  # type: ignore[arg-type]
        consolidation_mode="dask",
        overwrite=True,
    )
    label = container.derive_label("cells", dtype="uint32", chunks=chunks, shards=shards)
    label.set_array(label_data())
    label.consolidate(mode="dask")
    return Written(
        writer="ngio",
        version=version,
        path=path,
        image=data,
        level_paths=list(container.level_paths),
        labels={"cells": label_data()},
        label_level_paths={"cells": list(container.level_paths)},
    )


def read_ngio(path: Path, label: str | None = None) -> list[NDArray[Any]]:
    """Every level, as ngio reads it (the image, or label image ``label``)."""
    import ngio

    container = ngio.open_ome_zarr_container(str(path), mode="r")
    out = []
    for p in container.level_paths:
        img = container.get_image(path=p) if label is None else container.get_label(label, path=p)
        out.append(np.asarray(img.get_as_numpy()))
    return out


def ngio_pixel_sizes(path: Path, label: str | None = None) -> list[dict[str, float]]:
    """Per level: ngio's pixel size per space axis (``z``, ``y``, ``x``)."""
    import ngio

    container = ngio.open_ome_zarr_container(str(path), mode="r")
    out = []
    for p in container.level_paths:
        img = container.get_image(path=p) if label is None else container.get_label(label, path=p)
        ps = img.pixel_size
        out.append({"z": float(ps.z), "y": float(ps.y), "x": float(ps.x)})
    return out


def ngio_channels(path: Path) -> list[str]:
    import ngio

    return list(ngio.open_ome_zarr_container(str(path), mode="r").channel_labels)


def ngio_labels(path: Path) -> list[str]:
    import ngio

    return list(ngio.open_ome_zarr_container(str(path), mode="r").list_labels())


# ---------------------------------------------------------------------------------- ome-zarr
def _ome_zarr_format(version: str) -> Any:
    from ome_zarr.format import FormatV04, FormatV05  # type: ignore[import-untyped]

    return {"0.4": FormatV04, "0.5": FormatV05}[version]()


OME_ZARR_VERSIONS = ["0.4", "0.5"]


def write_ome_zarr(
    path: Path, version: str, *, chunks: tuple[int, ...] = (1, 1, 32, 32)
) -> Written:
    """The same image with ome-zarr-py's ``write_image`` and ``write_labels`` (nearest for labels)."""
    import zarr
    from ome_zarr.writer import write_image, write_labels  # type: ignore[import-untyped]

    fmt = _ome_zarr_format(version)
    data = image_data()
    group = zarr.open_group(str(path), mode="w", zarr_format=fmt.zarr_format)
    factors = tuple(2**i for i in range(1, NLEVELS))
    units = dict.fromkeys(("z", "y", "x"), UNIT)
    window = {"min": 0, "max": 65535, "start": 0, "end": 4000}
    write_image(
        data,
        group,
        scale_factors=factors,
        axes="".join(AXES),
        fmt=fmt,
        scale={"c": 1.0, "z": Z_SPACING, "y": PIXEL_SIZE, "x": PIXEL_SIZE},
        axes_units=units,
        storage_options={"chunks": chunks},
        omero={
            "channels": [
                {"label": "DAPI", "color": "0000FF", "window": window},
                {"label": "GFP", "color": "00FF00", "window": window},
            ]
        },
    )
    lab = label_data()
    write_labels(
        lab,
        group,
        name="cells",
        scaler=None,
        scale_factors=factors,
        axes="".join(LABEL_AXES),
        fmt=fmt,
        scale={"z": Z_SPACING, "y": PIXEL_SIZE, "x": PIXEL_SIZE},
        axes_units=units,
        storage_options={"chunks": chunks[1:]},
        label_metadata={"colors": [{"label-value": 1, "rgba": [255, 0, 0, 255]}]},
    )
    paths = [f"s{i}" for i in range(NLEVELS)]
    return Written(
        writer="ome-zarr",
        version=version,
        path=path,
        image=data,
        level_paths=paths,
        labels={"cells": lab},
        label_level_paths={"cells": paths},
    )


def _ome_zarr_nodes(path: Path) -> list[Any]:
    from ome_zarr.io import parse_url  # type: ignore[import-untyped]
    from ome_zarr.reader import Reader  # type: ignore[import-untyped]

    location = parse_url(str(path))
    assert location is not None, f"ome-zarr cannot open {path}"
    return list(Reader(location)())


def _ome_zarr_node(path: Path, label: str | None) -> Any:
    want = str(path) if label is None else f"{path}/labels/{label}"
    for node in _ome_zarr_nodes(path):
        if str(node.zarr).rstrip("/").removesuffix(" [zgroup]") == want:
            return node
        if str(node.zarr.path).rstrip("/") == want:
            return node
    raise KeyError(f"ome-zarr found no node {want}")


def read_ome_zarr(path: Path, label: str | None = None) -> list[NDArray[Any]]:
    """Every level, as ome-zarr-py's ``Reader`` reads it."""
    return [np.asarray(d) for d in _ome_zarr_node(path, label).data]


def ome_zarr_metadata(path: Path, label: str | None = None) -> dict[str, Any]:
    """The node metadata ome-zarr-py's reader derives (axes, channel_names, transforms)."""
    return dict(_ome_zarr_node(path, label).metadata)


def ome_zarr_pixel_sizes(path: Path, label: str | None = None) -> list[dict[str, float]]:
    meta = ome_zarr_metadata(path, label)
    names = [a["name"] for a in meta["axes"]]
    out = []
    for transforms in meta["coordinateTransformations"]:
        scale = next(t["scale"] for t in transforms if t["type"] == "scale")
        out.append({n: float(s) for n, s in zip(names, scale, strict=True) if n in "zyx"})
    return out


# ---------------------------------------------------------------------------------- zarr-python
def read_zarr(path: Path, level_paths: list[str], sub: str = "") -> list[NDArray[Any]]:
    """Every level, with zarr-python directly."""
    import zarr
    from zarr_nodes import zarr_read

    group = zarr.open_group(str(path / sub) if sub else str(path), mode="r")
    return [zarr_read(group, p) for p in level_paths]
