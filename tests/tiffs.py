"""TIFF writers for the conversion tests (tifffile): tiled, stripped, OME-TIFF, resolution tags."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import tifffile

if TYPE_CHECKING:
    from pathlib import Path

    from numpy.typing import NDArray


def ramp(shape: tuple[int, ...], dtype: Any = "uint16") -> NDArray[Any]:
    """Distinct, non-trivial values (a ramp folded into the data type's range)."""
    n = int(np.prod(shape))
    data = (np.arange(n, dtype=np.int64) * 7919) % np.iinfo(np.dtype(dtype)).max
    return data.astype(dtype).reshape(shape)


def write_tiled(path: Path, data: NDArray[Any], tile: tuple[int, int] = (64, 64)) -> Path:
    """A multi-page (one page per leading index) tiled TIFF."""
    tifffile.imwrite(path, data, tile=tile, photometric="minisblack")
    return path


def write_stripped(path: Path, data: NDArray[Any], rowsperstrip: int = 16) -> Path:
    """A multi-page stripped TIFF."""
    tifffile.imwrite(path, data, rowsperstrip=rowsperstrip, photometric="minisblack")
    return path


def write_ome(
    path: Path,
    data: NDArray[Any],
    *,
    axes: str = "CZYX",
    channels: list[str] | None = None,
    colors: list[int] | None = None,
    physical: tuple[float, float, float] = (2.0, 0.5, 0.25),
    unit: str = "µm",
    tile: tuple[int, int] | None = None,
) -> Path:
    """An OME-TIFF with PhysicalSizeZ/Y/X (``physical`` in z, y, x order) and channel names."""
    metadata: dict[str, Any] = {
        "axes": axes,
        "PhysicalSizeZ": physical[0],
        "PhysicalSizeY": physical[1],
        "PhysicalSizeX": physical[2],
        "PhysicalSizeZUnit": unit,
        "PhysicalSizeYUnit": unit,
        "PhysicalSizeXUnit": unit,
    }
    if channels is not None:
        metadata["Channel"] = {"Name": channels}
        if colors is not None:
            metadata["Channel"]["Color"] = colors
    tifffile.imwrite(path, data, metadata=metadata, tile=tile, photometric="minisblack")
    return path


def write_resolution(
    path: Path, data: NDArray[Any], *, per_cm: tuple[float, float], rgb: bool = False
) -> Path:
    """A plain TIFF with XResolution / YResolution (pixels per centimeter, x then y)."""
    tifffile.imwrite(
        path,
        data,
        resolution=per_cm,
        resolutionunit="CENTIMETER",
        photometric="rgb" if rgb else "minisblack",
        metadata=None,
    )
    return path


def write_imagej(
    path: Path, data: NDArray[Any], *, axes: str, spacing: float, pixel: tuple[float, float]
) -> Path:
    """An ImageJ hyperstack: ``spacing`` (z) and ``unit`` in its metadata, y/x in the resolution
    tags (no resolution unit)."""
    tifffile.imwrite(
        path,
        data,
        imagej=True,
        resolution=(1 / pixel[1], 1 / pixel[0]),
        metadata={"spacing": spacing, "unit": "um", "axes": axes},
    )
    return path


def write_big_endian(path: Path, data: NDArray[Any]) -> Path:
    """A big-endian (``MM``) multi-page TIFF."""
    tifffile.imwrite(path, data, byteorder=">", photometric="minisblack")
    return path


def mean2(data: NDArray[Any]) -> NDArray[Any]:
    """A 2x2 mean in the last two axes (edges: a 1-pixel mean), rounded, same dtype."""
    ny, nx = data.shape[-2:]
    pad = [(0, 0)] * (data.ndim - 2) + [(0, ny % 2), (0, nx % 2)]
    a = np.pad(data.astype(np.float64), pad, mode="edge")
    out = (a[..., ::2, ::2] + a[..., 1::2, ::2] + a[..., ::2, 1::2] + a[..., 1::2, 1::2]) / 4
    return np.rint(out).astype(data.dtype)


def write_pyramid(
    path: Path,
    data: NDArray[Any],
    levels: int,
    *,
    ome: bool = True,
    axes: str = "CYX",
    tile: tuple[int, int] = (64, 64),
    pixel: float = 0.5,
) -> list[NDArray[Any]]:
    """A pyramidal TIFF: level 0 then ``levels - 1`` SubIFDs (2x2 means); OME-TIFF with
    ``PhysicalSizeX/Y = pixel`` when ``ome``, else a plain TIFF. Returns every level's data."""
    pyramid = [data]
    for _ in range(levels - 1):
        pyramid.append(mean2(pyramid[-1]))
    metadata: dict[str, Any] | None = None
    if ome:
        metadata = {"axes": axes, "PhysicalSizeX": pixel, "PhysicalSizeY": pixel}
    with tifffile.TiffWriter(path, ome=ome) as tif:
        tif.write(data, subifds=levels - 1, tile=tile, metadata=metadata, photometric="minisblack")
        for level in pyramid[1:]:
            tif.write(level, subfiletype=1, tile=tile, photometric="minisblack", metadata=None)
    return pyramid


OME_NS = "http://www.openmicroscopy.org/Schemas/OME/2016-06"


def write_companion_set(
    root: Path, planes: NDArray[Any], *, master: str = "scan.companion.ome"
) -> list[Path]:
    """A multi-file OME-TIFF of one z plane per file (``scan_z<i>.ome.tif``) whose OME-XML
    is in ``master`` only: a companion file (Bio-Formats' ``.companion.ome``), or the first
    TIFF (``master="scan_z0.ome.tif"``, as Micro-Manager writes them); every other TIFF's
    OME-XML is ``BinaryOnly`` naming it. Returns the TIFFs."""
    import uuid

    names = [f"scan_z{i}.ome.tif" for i in range(len(planes))]
    uuids = [f"urn:uuid:{uuid.uuid4()}" for _ in planes]
    root_uuid = uuids[names.index(master)] if master in names else f"urn:uuid:{uuid.uuid4()}"
    tiff_data = "".join(
        f'<TiffData FirstZ="{i}" IFD="0" PlaneCount="1"><UUID FileName="{n}">{u}</UUID></TiffData>'
        for i, (n, u) in enumerate(zip(names, uuids, strict=True))
    )
    nz, ny, nx = planes.shape
    full = (
        f'<?xml version="1.0" encoding="UTF-8"?><OME xmlns="{OME_NS}" UUID="{root_uuid}">'
        '<Image ID="Image:0" Name="scan"><Pixels ID="Pixels:0" DimensionOrder="XYZCT" '
        f'Type="{planes.dtype}" SizeX="{nx}" SizeY="{ny}" SizeZ="{nz}" SizeC="1" SizeT="1" '
        'PhysicalSizeX="0.5" PhysicalSizeY="0.5" PhysicalSizeZ="3.0">'
        f'<Channel ID="Channel:0:0" Name="dapi" SamplesPerPixel="1"/>{tiff_data}'
        "</Pixels></Image></OME>"
    )
    for name, u, plane in zip(names, uuids, planes, strict=True):
        xml = (
            full
            if name == master
            else (
                f'<?xml version="1.0" encoding="UTF-8"?><OME xmlns="{OME_NS}" UUID="{u}">'
                f'<BinaryOnly MetadataFile="{master}" UUID="{root_uuid}"/></OME>'
            )
        )
        tifffile.imwrite(
            root / name, plane, description=xml, metadata=None, photometric="minisblack"
        )
    if master not in names:
        (root / master).write_text(full)
    return [root / n for n in names]


def write_svs(path: Path, rgb: NDArray[Any], mpp: float = 0.499) -> Path:
    """An Aperio SVS whole-slide image as scanners write it (tiled RGB baseline whose image
    description gives ``MPP``, a stripped thumbnail, a 4x reduced level, label and macro)."""
    head = "Aperio Image Library v12.0.15 \r\n"
    ny, nx = rgb.shape[:2]
    base = f"{head}{nx}x{ny} [0,0 {nx}x{ny}] (64x64) JPEG/RGB Q=70|AppMag = 20|MPP = {mpp}"
    with tifffile.TiffWriter(path) as tif:
        tif.write(rgb, photometric="rgb", tile=(64, 64), description=base, metadata=None)
        tif.write(rgb[::8, ::8], photometric="rgb", description=f"{head}thumbnail", metadata=None)
        reduced = rgb[::4, ::4]
        tif.write(reduced, photometric="rgb", tile=(64, 64), description=head, metadata=None)
        for kind, subfiletype in (("label", 1), ("macro", 9)):
            tif.write(
                rgb[:32, :48],
                photometric="rgb",
                subfiletype=subfiletype,
                description=f"{head}{kind} 48x32",
                metadata=None,
            )
    return path


def write_qptiff(
    path: Path, planes: NDArray[Any], names: list[str], colors: list[str], per_cm: float
) -> Path:
    """A PerkinElmer / Akoya QPTIFF: one tiled page per channel, each page's XML description
    (declared utf-16, as the scanners write it) naming it and its color ("R,G,B"), pixels per
    centimeter in the resolution tags."""
    with tifffile.TiffWriter(path) as tif:
        for plane, name, color in zip(planes, names, colors, strict=True):
            description = (
                '<?xml version="1.0" encoding="utf-16"?><PerkinElmer-QPI-ImageDescription>'
                "<DescriptionVersion>2</DescriptionVersion><ImageType>FullResolution</ImageType>"
                f"<Name>{name}</Name><Color>{color}</Color></PerkinElmer-QPI-ImageDescription>"
            )
            tif.write(
                plane,
                tile=(64, 64),
                photometric="minisblack",
                description=description,
                software="PerkinElmer-QPI",
                resolution=(per_cm, per_cm),
                resolutionunit="CENTIMETER",
                metadata=None,
            )
    return path


def write_lsm(path: Path, stack: NDArray[Any], voxel: tuple[float, float, float]) -> Path:
    """A one-channel Zeiss LSM z-stack: image pages alternating with 4x reduced thumbnails,
    the first holding the ``CZ_LSMINFO`` record (tag 34412) with the voxel size (z, y, x,
    meters)."""
    from tifffile import TIFF

    nz, ny, nx = stack.shape
    record = np.dtype(TIFF.CZ_LSMINFO)
    info = np.zeros((), record)
    info["MagicNumber"], info["StructureSize"] = 67127628, record.itemsize
    info["DimensionX"], info["DimensionY"], info["DimensionZ"] = nx, ny, nz
    info["DimensionChannels"], info["DimensionTime"], info["DataType"] = 1, 1, 2
    info["ThumbnailX"], info["ThumbnailY"] = nx // 4, ny // 4
    info["VoxelSizeZ"], info["VoxelSizeY"], info["VoxelSizeX"] = voxel
    with tifffile.TiffWriter(path) as tif:
        for z, plane in enumerate(stack):
            extratags = [(34412, "B", record.itemsize, info.tobytes(), True)] if z == 0 else []
            tif.write(plane, photometric="minisblack", extratags=extratags, metadata=None)
            thumb = plane[::4, ::4]
            tif.write(thumb, photometric="minisblack", subfiletype=1, metadata=None)
    return path
