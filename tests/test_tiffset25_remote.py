"""Multi-file OME-TIFFs on a server or a bucket were copied whole to a temporary directory
before a plane was read (a multi-terabyte set filled the disk, and nothing was written before
its last byte arrived). Now each file is read by ranged reads, opened when a plane of it is
first needed: nothing is written outside the output, each file's bytes are fetched about once,
at most ``members`` files are held open, and a cancelled read holds nothing."""

from __future__ import annotations

import re
import tempfile
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest
import tifffile
from aiohttp import web
from servers import Faults, StaticServer

import ngio_async
from ngio_async import NotFoundError
from ngio_async.convert import is_complete
from ngio_async.convert._tiffremote import PREFIX
from ngio_async.convert._tiffremoteset import RemoteSetSource, open_remote_set
from ngio_async.stores import open_store

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server

NS = "http://www.openmicroscopy.org/Schemas/OME/2016-06"


def _images(count: int = 1, c: int = 2, z: int = 3, yx: int = 512) -> list[np.ndarray[Any, Any]]:
    """Noise (deflate cannot shrink it: the byte counts mean something), (c, z, y, x)."""
    rng = np.random.default_rng(25)
    return [rng.integers(0, 60000, (c, z, yx, yx), dtype=np.uint16) for _ in range(count)]


def write_set(
    root: Path,
    images: list[np.ndarray[Any, Any]],
    *,
    per_file: int = 2,
    companion: bool = True,
    tile: tuple[int, int] | None = (128, 128),
    compression: str | None = "zlib",
    subifds: int = 0,
    counted: bool = True,
    **extra: Any,
) -> list[str]:
    """A multi-file OME-TIFF: the planes of each image (c, z, y, x) ``per_file`` to a TIFF
    (``TiffData`` ``IFD`` / ``PlaneCount`` with ``UUID FileName``); its OME-XML in
    ``set.companion.ome`` (the TIFFs ``BinaryOnly``), or whole in every TIFF (its own
    UUID the root's); not ``counted``: ``TiffData`` with no ``IFD`` nor ``PlaneCount`` (all the
    file's pages). Returns the file names, the companion first."""
    files: list[tuple[str, str, list[np.ndarray[Any, Any]]]] = []  # name, uuid, planes
    pixels = []
    for i, image in enumerate(images):
        c, z, y, x = image.shape
        stack = image.reshape(c * z, y, x)
        datas = []
        for k in range(0, c * z, per_file):
            name, u = f"s{i}_{k // per_file}.ome.tif", f"urn:uuid:{uuid.uuid4()}"
            files.append((name, u, list(stack[k : k + per_file])))
            count = f' IFD="0" PlaneCount="{len(stack[k : k + per_file])}"' if counted else ""
            datas.append(
                f'<TiffData FirstC="{k // z}" FirstZ="{k % z}"{count}>'
                f'<UUID FileName="{name}">{u}</UUID></TiffData>'
            )
        channels = "".join(f'<Channel ID="Channel:{i}:{j}" SamplesPerPixel="1"/>' for j in range(c))
        pixels.append(
            f'<Image ID="Image:{i}" Name="pos{i}"><Pixels ID="Pixels:{i}" DimensionOrder="XYZCT" '
            f'Type="uint16" SizeX="{x}" SizeY="{y}" SizeZ="{z}" SizeC="{c}" SizeT="1" '
            f'PhysicalSizeX="0.5" PhysicalSizeY="0.5">{channels}{"".join(datas)}</Pixels></Image>'
        )
    root_uuid = f"urn:uuid:{uuid.uuid4()}"
    full = f'<?xml version="1.0" encoding="UTF-8"?><OME xmlns="{NS}" UUID="{root_uuid}">'
    full += "".join(pixels) + "</OME>"
    for name, u, planes in files:
        if companion:
            xml = (
                f'<?xml version="1.0" encoding="UTF-8"?><OME xmlns="{NS}" UUID="{u}">'
                f'<BinaryOnly MetadataFile="set.companion.ome" UUID="{root_uuid}"/></OME>'
            )
        else:
            xml = re.sub(r'UUID="urn:uuid:[^"]+"', f'UUID="{u}"', full, count=1)
        with tifffile.TiffWriter(root / name) as tif:
            for n, plane in enumerate(planes):
                kw: dict[str, Any] = {"tile": tile, "compression": compression, **extra}
                tif.write(
                    plane,
                    description=xml if n == 0 else None,
                    metadata=None,
                    photometric="minisblack",
                    subifds=subifds or None,
                    **kw,
                )
                level = plane
                for _ in range(subifds):
                    level = level[::2, ::2]
                    tif.write(level, subfiletype=1, metadata=None, photometric="minisblack", **kw)
    names = [n for n, _, _ in files]
    if companion:
        (root / "set.companion.ome").write_text(full)
        names.insert(0, "set.companion.ome")
    return names


def _fetched(server: StaticServer, path: str, size: int) -> int:
    """Bytes the server sent of ``path`` (ranged GETs: their ranges; others: the file)."""
    total = 0
    for r in server.requests:
        if r.path != path or r.method != "GET":
            continue
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", r.range or "")
        total += size if m is None else min(int(m[2]) + 1 if m[2] else size, size) - int(m[1])
    return total


def _arrays(path: Path) -> list[np.ndarray[Any, Any]]:
    with ngio_async.open(path) as ds:
        return [lvl[...] for lvl in ds.levels]


@pytest.fixture
def no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh temporary directory, watched; creating a directory in it fails."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))

    def refuse(*args: Any, **kwargs: Any) -> str:
        raise AssertionError("a temporary directory was made")

    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    return root


def test_a_companion_set_over_http_converts_by_ranges(
    http_server: StaticServer, http_root: Path, tmp_path: Path, no_temp: Path
) -> None:
    names = write_set(http_root, _images(), subifds=1)
    local, remote = tmp_path / "local.ome.zarr", tmp_path / "remote.ome.zarr"
    ngio_async.convert_sync(http_root / "set.companion.ome", local)
    http_server.reset()
    ngio_async.convert_sync(http_server.url + "s0_1.ome.tif", remote)  # any file: the set
    for a, b in zip(_arrays(local), _arrays(remote), strict=True):
        np.testing.assert_array_equal(a, b)
    with ngio_async.open(remote) as ds:
        assert ds.axes == ("c", "z", "y", "x")
        assert ds.metadata.spatial_calibration[0].scale[-1] == 0.5
    assert list(no_temp.iterdir()) == []
    total = 0
    for name in names[1:]:
        size = (http_root / name).stat().st_size
        got = _fetched(http_server, "/" + name, size)
        assert got <= size + PREFIX, (name, got, size)  # a header, then each byte once
        total += got
    sizes = sum((http_root / n).stat().st_size for n in names[1:])
    assert sizes // 2 < total <= sizes + len(names) * PREFIX


def test_a_set_on_s3_converts_every_position_and_one(
    s3_server: S3Server, tmp_path: Path, no_temp: Path
) -> None:
    """Two positions, each in files of its own, every TIFF holding the whole OME-XML;
    uncompressed strips. Named by a file of the second position."""
    folder = tmp_path / "set"
    folder.mkdir()
    images = _images(2, c=1, z=2, yx=96)
    names = write_set(folder, images, per_file=1, companion=False, tile=None, compression=None)
    url = s3_server.fresh_url()

    async def put() -> None:
        async with open_store(url, **s3_server.options()) as store:
            for name in names:
                await store.put(name, (folder / name).read_bytes())

    anyio.run(put)
    opts = s3_server.options()
    for series in (0, 1):
        out = tmp_path / f"s{series}.ome.zarr"
        ngio_async.convert_sync(f"{url}/s1_0.ome.tif", out, src_options={**opts, "series": series})
        with ngio_async.open(out) as ds:
            np.testing.assert_array_equal(np.squeeze(ds[...]), images[series][0])
    both = tmp_path / "both.zarr"
    ngio_async.convert_sync(f"{url}/s0_0.ome.tif", both, src_options=opts)
    local = tmp_path / "local.zarr"
    ngio_async.convert_sync(folder / "s0_0.ome.tif", local)
    for i in (0, 1):
        for a, b in zip(_arrays(local / str(i)), _arrays(both / str(i)), strict=True):
            np.testing.assert_array_equal(a, b)
    assert list(no_temp.iterdir()) == []


def test_a_missing_file_is_named_before_anything_is_written(
    http_server: StaticServer, http_root: Path, tmp_path: Path, no_temp: Path
) -> None:
    write_set(http_root, _images(c=1, yx=64))
    (http_root / "s0_1.ome.tif").unlink()
    out = tmp_path / "out.ome.zarr"
    with pytest.raises(NotFoundError, match=r"names s0_1\.ome\.tif, not found beside it"):
        ngio_async.convert_sync(http_server.url + "set.companion.ome", out)
    assert not out.exists()
    assert list(no_temp.iterdir()) == []


def _regions(source: RemoteSetSource) -> list[tuple[slice, ...]]:
    c, z = source.shape[0], source.shape[1]
    return [
        (slice(i, i + 1), slice(j, j + 1), slice(None), slice(None))
        for i in range(c)
        for j in range(z)
    ]


def test_files_open_when_needed_and_stay_bounded(
    http_server: StaticServer, http_root: Path
) -> None:
    images = _images(c=2, z=3, yx=64)
    write_set(http_root, images, per_file=2)  # 3 files

    async def main() -> None:
        source = await open_remote_set(http_server.url + "set.companion.ome", members=1)
        assert isinstance(source, RemoteSetSource)
        async with source:
            assert source.open_files == 0  # none but the lead read at open
            for region in _regions(source):
                got = await source.read(region)
                np.testing.assert_array_equal(got, images[0][region])
            assert source.peak_open == 1  # the lead, and one other at a time
            assert source.opened == 2  # each file but the lead opened once (read in order)
        assert source.open_files == 0

    anyio.run(main)


def test_a_cancelled_read_holds_nothing(http_server: StaticServer, http_root: Path) -> None:
    write_set(http_root, _images(c=2, z=3, yx=64), per_file=2)

    async def main() -> None:
        source = await open_remote_set(http_server.url + "set.companion.ome")
        assert isinstance(source, RemoteSetSource)
        async with source:
            await source.read(_regions(source)[0])  # the lead's bytes fetched, and s0_0
            http_server.faults.delay = 30.0  # every later request hangs
            async with anyio.create_task_group() as tg:
                for region in _regions(source):
                    tg.start_soon(source.read, region)
                while http_server.in_flight == 0:  # noqa: ASYNC110 - polls the server
                    await anyio.sleep(0.01)
                tg.cancel_scope.cancel()
            assert source.pinned_bytes == 0
        assert source.open_files == 0

    anyio.run(main)


@pytest.mark.parametrize(
    ("compression", "tile"), [("zlib", None), ("lzw", None), ("zstd", (32, 32)), (None, (32, 32))]
)
def test_regions_read_as_the_local_set_reads_them(
    http_server: StaticServer,
    http_root: Path,
    compression: str | None,
    tile: tuple[int, int] | None,
) -> None:
    """Deflate strips (a share of each fetched, the rest on a miss), strips decoded whole,
    tiles decoded by tifffile, uncompressed tiles; regions across files and planes."""
    images = _images(c=2, z=2, yx=80)
    write_set(http_root, images, per_file=1, compression=compression, tile=tile)
    from ngio_async.convert._tiff import TiffSource

    local = TiffSource(http_root / "set.companion.ome")
    regions = [
        (slice(None), slice(None), slice(None), slice(None)),
        (slice(0, 2), slice(1, 2), slice(3, 41), slice(50, 77)),
        (slice(1, 2), slice(0, 2), slice(70, 80), slice(0, 9)),
    ]

    async def main() -> None:
        source = await open_remote_set(http_server.url + "s0_2.ome.tif")
        async with source, local:
            assert source.shape == local.shape == (2, 2, 80, 80)
            for region in regions:
                got = await source.read(region)
                np.testing.assert_array_equal(got, local.read_sync(region))
                np.testing.assert_array_equal(got, images[0][region])

    anyio.run(main)


def test_a_plane_stored_as_one_lzw_strip_is_fetched_once(
    http_server: StaticServer, http_root: Path, tmp_path: Path
) -> None:
    """Its shards each need the strip from its start: it is kept for the next ones (each
    shard fetched it anew: 4 times the file)."""
    images = _images(c=1, z=2, yx=512)
    names = write_set(http_root, images, per_file=1, tile=None, compression="lzw", rowsperstrip=512)
    out = tmp_path / "out.ome.zarr"
    ngio_async.convert_sync(
        http_server.url + "set.companion.ome", out, chunks=(1, 128, 128), shards=(1, 256, 256)
    )
    with ngio_async.open(out) as ds:
        np.testing.assert_array_equal(ds[...], images[0][0])
    for name in names[1:]:
        size = (http_root / name).stat().st_size
        assert _fetched(http_server, "/" + name, size) <= size + PREFIX


def test_tiff_data_naming_all_of_a_file_s_pages(
    http_server: StaticServer, http_root: Path, tmp_path: Path
) -> None:
    """``TiffData`` with no ``IFD`` nor ``PlaneCount`` take all the pages of the file they
    name: those files' IFDs are counted at open (tifffile refuses them when it cannot open
    the file)."""
    images = _images(c=2, z=3, yx=48)
    write_set(http_root, images, per_file=2, counted=False, companion=False)
    local, remote = tmp_path / "local.ome.zarr", tmp_path / "remote.ome.zarr"
    ngio_async.convert_sync(http_root / "s0_1.ome.tif", local)
    ngio_async.convert_sync(http_server.url + "s0_1.ome.tif", remote)
    for a, b in zip(_arrays(local), _arrays(remote), strict=True):
        np.testing.assert_array_equal(a, b)
    with ngio_async.open(remote) as ds:
        np.testing.assert_array_equal(ds[...], images[0])


@pytest.mark.parametrize(
    ("planar", "compression"), [("contig", "jpeg"), ("separate", "lzw"), ("separate", "zlib")]
)
def test_rgb_sets_read_as_the_local_set_reads_them(
    http_server: StaticServer, http_root: Path, planar: str, compression: str
) -> None:
    """RGB planes, interleaved in JPEG tiles or in planes of their own (LZW tiles, deflate
    strips). The local set's JPEG tiles did not read either: the keyframe's file was closed."""
    from ngio_async.convert._tiff import TiffSource

    rng = np.random.default_rng(3)
    shape = (2, 3, 64, 72) if planar == "separate" else (2, 64, 72, 3)
    data = rng.integers(0, 255, shape, dtype=np.uint8)
    uuids = [f"urn:uuid:{uuid.uuid4()}" for _ in range(2)]
    tiff_data = "".join(
        f'<TiffData FirstZ="{i}" IFD="0" PlaneCount="1"><UUID FileName="f{i}.ome.tif">{u}'
        "</UUID></TiffData>"
        for i, u in enumerate(uuids)
    )
    (http_root / "s.companion.ome").write_text(
        f'<?xml version="1.0"?><OME xmlns="{NS}" UUID="urn:uuid:{uuid.uuid4()}"><Image '
        'ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="uint8" SizeX="72" '
        'SizeY="64" SizeZ="2" SizeC="3" SizeT="1"><Channel ID="Channel:0:0" SamplesPerPixel="3"/>'
        f"{tiff_data}</Pixels></Image></OME>"
    )
    for i, u in enumerate(uuids):
        tifffile.imwrite(
            http_root / f"f{i}.ome.tif",
            data[i],
            description=f'<?xml version="1.0"?><OME xmlns="{NS}" UUID="{u}"><BinaryOnly '
            'MetadataFile="s.companion.ome" UUID="x"/></OME>',
            metadata=None,
            photometric="rgb",
            planarconfig=planar,
            compression=compression,
            tile=None if compression == "zlib" else (32, 32),
        )
    local = TiffSource(http_root / "s.companion.ome")
    whole = (slice(None),) * 4
    regions = [whole, (slice(0, 2), slice(1, 2), slice(5, 40), slice(7, 60))]

    async def main() -> None:
        source = await open_remote_set(http_server.url + "f1.ome.tif")
        async with source, local:
            assert source.shape == local.shape == (3, 2, 64, 72)
            for region in regions:
                np.testing.assert_array_equal(await source.read(region), local.read_sync(region))
            if compression != "jpeg":
                stored = data if planar == "separate" else data.transpose(0, 3, 1, 2)
                np.testing.assert_array_equal(await source.read(whole), stored.swapaxes(0, 1))

    anyio.run(main)


@dataclass
class _HangingServer(StaticServer):
    """Its GETs of ``hang`` (a path) wait until it stops (fault injection)."""

    hang: str = ""

    async def _answer(self, request: web.Request, path: str, faults: Faults) -> web.StreamResponse:
        if request.method == "GET" and path == self.hang:
            assert self._stopping is not None
            await self._stopping.wait()
            return web.Response(status=503, text="stopping")
        return await super()._answer(request, path, faults)


def test_a_cancelled_conversion_is_redone_by_a_rerun(
    http_root: Path, tmp_path: Path, no_temp: Path
) -> None:
    """Cancelled while a file of the set is being read (the others read): its output is
    left unfinished, and a rerun (no overwrite) redoes it."""
    images = _images(c=1, z=4, yx=64)
    write_set(http_root, images, per_file=1)
    server = _HangingServer(http_root, hang="/s0_3.ome.tif").start()
    try:
        url, out = server.url + "set.companion.ome", tmp_path / "out.ome.zarr"

        def hung() -> bool:  # a GET of s0_3 asked for: it hangs (the set opened, being read)
            return any(r.path == server.hang and r.method == "GET" for r in server.requests)

        async def cancelled() -> None:
            async with anyio.create_task_group() as tg:
                tg.start_soon(ngio_async.convert, url, out)
                while not hung():  # noqa: ASYNC110 - polls the server
                    await anyio.sleep(0.005)
                tg.cancel_scope.cancel()
            assert not await is_complete(out)

        anyio.run(cancelled)
        server.hang = ""
        ngio_async.convert_sync(url, out)  # no overwrite: what the cancelled one left is redone
        with ngio_async.open(out) as ds:
            np.testing.assert_array_equal(ds[...], images[0][0])
        assert list(no_temp.iterdir()) == []
    finally:
        server.stop()
