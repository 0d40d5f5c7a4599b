"""Differential tests of the write path: writes and pyramids equal the same steps on numpy.

Images are created (NGFF 0.4 and 0.5, chunked and sharded, many dtypes and axes orders), written
region by region, and compared with a numpy model; pyramids (``write(pyramid=True)``,
``build_pyramid``) with :func:`~ngio_async.engine.pyramid.downsample` of the whole level.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Literal

import anyio
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import ngio_async
from ngio_async.engine.pyramid import downsample

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

pytestmark = pytest.mark.anyio


def examples(n: int) -> settings:
    return settings(max_examples=n, deadline=None, suppress_health_check=list(HealthCheck))


# ------------------------------------------------------------------------- pyramid kernels
@examples(40)
@given(
    dtype=st.sampled_from(["float32", "float64", "complex128"]),
    shape=st.tuples(st.integers(1, 3), st.integers(1, 40), st.integers(1, 40)),
    factors=st.tuples(st.just(1), st.integers(1, 4), st.integers(1, 4)),
    tile=st.tuples(st.integers(1, 3), st.integers(1, 9), st.integers(1, 9)),
    seed=st.integers(0, 2**16),
)
def test_float_means_of_tiles_stitch_exactly(
    dtype: str,
    shape: tuple[int, ...],
    factors: tuple[int, ...],
    tile: tuple[int, ...],
    seed: int,
) -> None:
    """A tile's float means are those of the whole level, bit for bit (numpy's sum over
    several axes adds in an order that depends on the block's shape: build_pyramid's tiles
    differed from a whole-level reduction, and from write(pyramid=True), in the last bit)."""
    rng = np.random.default_rng(seed)
    block = (rng.normal(size=shape) * 100).astype(dtype)
    if dtype == "complex128":
        block = block + 1j * rng.normal(size=shape)
    whole = downsample(block, factors, "mean")
    for index in np.ndindex(*(-(-n // t) for n, t in zip(whole.shape, tile, strict=True))):
        target = tuple(
            slice(i * t, min((i + 1) * t, n))
            for i, t, n in zip(index, tile, whole.shape, strict=True)
        )
        source = tuple(
            slice(s.start * f, min(s.stop * f, n))
            for s, f, n in zip(target, factors, shape, strict=True)
        )
        got = downsample(block[source], factors, "mean")
        assert np.array_equal(got, whole[target]), (index, got - whole[target])


async def test_float_pyramid_equals_the_whole_level_reduced(tmp_path: Path) -> None:
    data = np.random.default_rng(0).normal(size=(67, 85)) * 100
    async with ngio_async.create_async(
        tmp_path / "img",
        shape=data.shape,
        dtype="float64",
        axes="yx",
        chunks=(9, 9),
        shards=False,
        levels=2,
        downscale=3,
    ) as ds:
        await ds.write(data)
        await ds.build_pyramid()
        np.testing.assert_array_equal(await ds.levels[1][...], downsample(data, (3, 3), "mean"))
        await ds.write(data, pyramid=True)
        np.testing.assert_array_equal(await ds.levels[1][...], downsample(data, (3, 3), "mean"))


# ------------------------------------------------------------------------- casts
@pytest.mark.parametrize(
    ("dtype", "data"),
    [
        ("int32", np.array([2.0**31, 0], dtype="float32")),  # was stored as -2**31
        ("int64", np.array([2.0**63, 0])),  # was stored as -2**63
        ("uint64", np.array([2.0**64, 0])),  # was stored as 0
        ("float32", np.array([1e40, 0])),  # was stored as inf
        ("float32", 1e40),
        ("float32", [0.0, -1e39]),
        ("float32", np.array([np.inf, 1e40, np.nan])),  # an overflow behind inf and NaN
        ("float16", np.array([70000, 0])),
    ],
)
async def test_casts_that_would_make_values_up_are_refused(
    tmp_path: Path, dtype: str, data: Any
) -> None:
    async with ngio_async.create_async(
        tmp_path / "img", shape=(1, 2), dtype=dtype, axes="yx", levels=1
    ) as ds:
        with pytest.raises(ValueError, match=f"do not fit a {dtype} level"):
            await ds.write(data)
        assert not (await ds.read()).any()  # nothing was written


@pytest.mark.parametrize(
    ("dtype", "data", "want"),
    [
        ("uint8", np.array([255.5, -0.5]), [255, 0]),  # truncated, as numpy and Python numbers
        ("uint8", [255.5, -0.5], [255, 0]),
        ("int32", np.array([2147483520.0, -(2.0**31)], dtype="float32"), [2147483520, -(2**31)]),
        ("int64", np.array([2.0**63 - 1024, -(2.0**63)]), [2**63 - 1024, -(2**63)]),
        ("float32", np.array([3.4e38, np.nan, -np.inf]), [3.4e38, np.nan, -np.inf]),
        ("float32", np.array([np.nan, np.nan]), [np.nan, np.nan]),
        ("float16", np.array([65504, -3], dtype="int32"), [65504, -3]),
    ],
)
async def test_casts_of_values_the_level_holds_are_accepted(
    tmp_path: Path, dtype: str, data: Any, want: list[Any]
) -> None:
    async with ngio_async.create_async(
        tmp_path / "img", shape=(1, len(want)), dtype=dtype, axes="yx", levels=1
    ) as ds:
        await ds.write(data)
        np.testing.assert_array_equal(await ds.read(), np.array([want], dtype=dtype))


# ------------------------------------------------------------------------- create_like
@pytest.mark.parametrize(("src_version", "dst_version"), [("0.4", "0.5"), ("0.5", "0.4")])
async def test_create_like_keeps_fill_value_and_compressor_across_versions(
    tmp_path: Path, src_version: str, dst_version: str
) -> None:
    """The empty copy reads like the empty source (its fill value was left at 0) and is
    compressed the same way (gzip became zstd); zarr-python sees both."""
    import zarr

    async with (
        ngio_async.create_async(
            tmp_path / "src.zarr",
            shape=(2, 40, 30),
            dtype="float32",
            axes="cyx",
            chunks=(1, 16, 16),
            levels=2,
            fill_value=float("nan"),
            compressor="gzip",
            ngff_version=src_version,  # type: ignore[arg-type]
        ) as src,
        ngio_async.create_like_async(src, tmp_path / "dst.zarr", ngff_version=dst_version) as dst,
    ):
        assert dst.metadata.ngff_version == dst_version
        assert np.isnan(await dst.read()).all()
        await dst.write_at((0, slice(0, 16), slice(0, 16)), 1.0)
    for i in range(2):
        arr = zarr.open_array(str(tmp_path / "dst.zarr" / str(i)), mode="r")
        assert np.isnan(arr.fill_value)
        assert "gzip" in str(arr.metadata.to_dict()).lower()
    assert np.isnan(zarr.open_array(str(tmp_path / "dst.zarr" / "0"))[1]).all()


async def test_create_like_overrides_that_change_the_copied_layout(tmp_path: Path) -> None:
    """Overriding shape, axes, chunks or dtype leaves out what they make wrong, instead of
    refusing an argument the caller never gave (the source's channels for another channel
    count, its shards for other chunks, its fill value for another dtype)."""
    async with ngio_async.create_async(
        tmp_path / "src.zarr",
        shape=(2, 100, 90),
        dtype="uint16",
        axes="cyx",
        channels=["A", "B"],
        levels=2,
        fill_value=70,
        chunks=(1, 16, 16),
        shards=(1, 64, 64),
    ) as src:
        async with ngio_async.create_like_async(src, tmp_path / "c3", shape=(3, 100, 90)) as c3:
            assert c3.shape == (3, 100, 90)
            assert c3.metadata.ome.omero is None
        async with ngio_async.create_like_async(src, tmp_path / "zyx", axes="zyx") as zyx:
            assert zyx.axes == ("z", "y", "x")
            assert zyx.metadata.ome.omero is None
        async with ngio_async.create_like_async(src, tmp_path / "ch", chunks=(1, 50, 50)) as ch:
            assert ch.levels[0].chunks == (1, 50, 50)
        async with ngio_async.create_like_async(src, tmp_path / "kept", chunks=(1, 32, 32)) as kept:
            assert kept.levels[0].shards == (1, 64, 64)  # still whole multiples: kept
        async with ngio_async.create_like_async(src, tmp_path / "u8", dtype="int8") as u8:
            assert int(u8.levels[0].fill_value) == 70
        async with ngio_async.create_like_async(src, tmp_path / "b", dtype="bool") as b:
            assert not (await b.read()).any()  # 70 is no bool: the default


# ------------------------------------------------------------------------- writes vs numpy
DTYPES = ["uint8", "uint16", "uint32", "uint64", "int8", "int32", "int64", "float32", "float64"]
AXES = ["yx", "zyx", "cyx", "tyx", "czyx", "tczyx"]


@st.composite
def images(draw: st.DrawFn) -> dict[str, Any]:
    version = draw(st.sampled_from(["0.5", "0.4"]))
    axes = draw(st.sampled_from(AXES))
    shape = tuple(draw(st.integers(1, 3 if a in "tcz" else 30)) for a in axes)
    chunks = tuple(draw(st.integers(1, 2 if a in "tcz" else 12)) for a in axes)
    shards: Any = False
    if version == "0.5" and draw(st.booleans()):
        shards = tuple(c * draw(st.integers(1, 3)) for c in chunks)
    dtype = draw(st.sampled_from([*DTYPES, "bool"]))
    fill = draw(st.sampled_from([None, 1]))
    return {
        "shape": shape,
        "axes": axes,
        "chunks": chunks,
        "shards": shards,
        "dtype": dtype,
        "fill_value": fill if fill is None or dtype != "bool" else True,
        "ngff_version": version,
        "levels": 1,
    }


def random_values(rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if np.dtype(dtype).kind == "f":
        return rng.normal(size=shape).astype(dtype)
    return rng.integers(0, 3, shape).astype(dtype)  # many fill values: objects are deleted too


def peers_read(path: Path, version: str, level: int = 0) -> dict[str, np.ndarray]:
    """Level ``level`` as zarr-python and tensorstore read it."""
    import tensorstore as ts
    import zarr

    where = str(path / str(level))
    driver = "zarr3" if version == "0.5" else "zarr"
    spec = {"driver": driver, "kvstore": {"driver": "file", "path": where}}
    return {
        "zarr-python": np.asarray(zarr.open_array(where, mode="r")[...]),
        "tensorstore": ts.open(spec).result().read().result(),
    }


@examples(25)
@given(layout=images(), data=st.data())
async def test_region_writes_read_the_same_by_every_reader(
    tmp_path_factory: pytest.TempPathFactory, layout: dict[str, Any], data: st.DataObject
) -> None:
    """Writes of random regions (whole, partial chunks and shards, single pixels) in random
    order, by write_at, by axis name and through writer(), equal numpy's; zarr-python and
    tensorstore read the same pixels, the never written ones as the fill value."""
    path = tmp_path_factory.mktemp("diff") / "img.ome.zarr"
    shape, dtype, axes = layout["shape"], layout["dtype"], layout["axes"]
    fill = layout["fill_value"]
    model = np.full(shape, 0 if fill is None else fill, dtype=dtype)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    async with ngio_async.create_async(path, **layout) as ds:
        for _ in range(data.draw(st.integers(1, 5))):
            region = tuple(
                slice(a, data.draw(st.integers(a + 1, n)))
                for n in shape
                for a in [data.draw(st.integers(0, n - 1))]
            )
            values = random_values(rng, model[region].shape, dtype)
            how = data.draw(st.sampled_from(["write_at", "write", "writer"]))
            if how == "write_at":
                await ds.write_at(region, values)
            elif how == "write":
                await ds.write(values, **dict(zip(axes, region, strict=True)))
            else:
                async with ds.writer() as w:
                    await w.write((region, values))
            model[region] = values
        np.testing.assert_array_equal(await ds.read(), model)
    for reader, got in peers_read(path, layout["ngff_version"]).items():
        assert got.dtype == model.dtype, reader
        np.testing.assert_array_equal(got, model, err_msg=reader)


async def test_many_tasks_writing_distinct_regions_of_one_shard(tmp_path: Path) -> None:
    """Single pixels, rows and blocks of one shard written from many tasks at once: nothing
    is lost (per-key locks), and zarr-python and tensorstore read the result."""
    path = tmp_path / "img.ome.zarr"
    model = np.zeros((2, 24, 24), "uint16")
    regions = [(0, slice(y, y + 1), slice(x, x + 1)) for y in range(0, 24, 5) for x in range(24)]
    regions += [(1, slice(y, y + 3), slice(0, 24)) for y in range(0, 24, 3)]
    async with ngio_async.create_async(
        path,
        shape=model.shape,
        dtype="uint16",
        axes="cyx",
        chunks=(1, 8, 8),
        shards=(1, 24, 24),
        levels=1,
    ) as ds:
        async with anyio.create_task_group() as tg:
            for k, region in enumerate(regions):
                model[region] = k + 1
                tg.start_soon(ds.write_at, region, k + 1)
        np.testing.assert_array_equal(await ds.read(), model)
    for reader, got in peers_read(path, "0.5").items():
        np.testing.assert_array_equal(got, model, err_msg=reader)


# ------------------------------------------------------------------------- pyramids vs numpy
async def test_added_levels_continue_each_of_y_and_x_like_the_last_pair(tmp_path: Path) -> None:
    """A pyramid whose last pair halves y and divides x by 3 (written by another tool) grows
    by 2 in y and 3 in x (both were divided by 3)."""
    import zarr

    group = zarr.open_group(str(tmp_path), mode="w", zarr_format=3)
    datasets = []
    for i, (shape, scale) in enumerate([((48, 54), [0.5, 0.5]), ((24, 18), [1.0, 1.5])]):
        group.create_array(str(i), shape=shape, chunks=(16, 16), dtype="uint16")
        datasets.append(
            {"path": str(i), "coordinateTransformations": [{"type": "scale", "scale": scale}]}
        )
    axes = [{"name": a, "type": "space"} for a in "yx"]
    multiscale: dict[str, Any] = {"axes": axes, "datasets": datasets}
    group.attrs["ome"] = {"version": "0.5", "multiscales": [multiscale]}
    data = np.random.default_rng(0).integers(0, 100, (48, 54)).astype("uint16")
    async with ngio_async.open_async(tmp_path, mode="r+") as ds:
        await ds.write(data)
        await ds.build_pyramid(levels=3)
        assert [lvl.shape for lvl in ds.levels] == [(48, 54), (24, 18), (12, 6)]
        assert ds.levels[2].scale == (2.0, 4.5)
        want = downsample(downsample(data, (2, 3), "mean"), (2, 3), "mean")
        np.testing.assert_array_equal(await ds.levels[2][...], want)


def model_pyramid(
    level0: np.ndarray, shapes: Sequence[tuple[int, ...]], factors: tuple[int, ...], method: Any
) -> list[np.ndarray]:
    out = [level0]
    for shape in shapes[1:]:
        out.append(downsample(out[-1], factors, method)[tuple(slice(0, n) for n in shape)])
    return out


@examples(20)
@given(
    version=st.sampled_from(["0.5", "0.4"]),
    method=st.sampled_from(["mean", "nearest", "mode"]),
    dtype=st.sampled_from(["uint8", "int16", "uint64", "float32", "bool"]),
    shape=st.tuples(st.integers(1, 2), st.integers(1, 40), st.integers(1, 40)),
    downscale=st.sampled_from([2, 3, 4]),
    chunk=st.integers(2, 9),
    sharded=st.booleans(),
    how=st.sampled_from(["write", "writer", "build_pyramid"]),
    data=st.data(),
)
async def test_pyramids_equal_numpy_whichever_way_they_are_built(
    tmp_path_factory: pytest.TempPathFactory,
    version: str,
    method: str,
    dtype: str,
    shape: tuple[int, int, int],
    downscale: int,
    chunk: int,
    sharded: bool,
    how: str,
    data: st.DataObject,
) -> None:
    """Non-aligned writes in any order with write(pyramid=...), writer(pyramid=...) or a
    build_pyramid after them give every level as numpy's reduction of the one above."""
    if method == "mean" and dtype == "bool":
        method = "nearest"
    path = tmp_path_factory.mktemp("pyr") / "img.ome.zarr"
    shards: tuple[int, ...] | Literal[False] = False
    if sharded and version == "0.5":
        shards = (1, 2 * chunk, 3 * chunk)
    model = np.zeros(shape, dtype)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    levels = 1  # up to 3 levels, as long as the image shrinks
    yx: tuple[int, ...] = shape[1:]
    while levels < 3 and (smaller := tuple(-(-n // downscale) for n in yx)) != yx:
        levels, yx = levels + 1, smaller
    async with ngio_async.create_async(
        path,
        shape=shape,
        dtype=dtype,
        axes="cyx",
        chunks=(1, chunk, chunk),
        shards=shards,
        levels=levels,
        downscale=downscale,
        ngff_version=version,  # type: ignore[arg-type]
    ) as ds:
        pyramid: Any = method if how != "build_pyramid" else False
        async with ds.writer(pyramid=pyramid) as w:
            for _ in range(data.draw(st.integers(1, 4))):
                region = (
                    slice(None),
                    *(
                        slice(a, data.draw(st.integers(a + 1, n)))
                        for n in shape[1:]
                        for a in [data.draw(st.integers(0, n - 1))]
                    ),
                )
                values = random_values(rng, model[region].shape, dtype)
                model[region] = values
                if how == "write":
                    await ds.write_at(region, values, pyramid=pyramid)
                else:
                    await w.write((region, values))
        if how == "build_pyramid":
            await ds.build_pyramid(method=method)  # type: ignore[arg-type]
        shapes = [lvl.shape for lvl in ds.levels]
        want = model_pyramid(model, shapes, (1, downscale, downscale), method)
        for i, lvl in enumerate(ds.levels):
            np.testing.assert_array_equal(await lvl[...], want[i], err_msg=f"level {i}")
    for i in range(levels):
        for reader, got in peers_read(path, version, i).items():
            np.testing.assert_array_equal(got, want[i], err_msg=f"{reader}, level {i}")


# ------------------------------------------------------------------------- peer tools
#: ome-zarr-models validates the images named on the command line, in a fresh interpreter
#: (importing ngio makes it refuse v2 arrays)
VALIDATE = (
    "import sys, zarr\n"
    "from ome_zarr_models.v0{}.image import Image\n"
    "for p in sys.argv[1:]:\n"
    "    Image.from_zarr(zarr.open_group(p, mode='r'))\n"
)
PEER_IMAGES = [  # (axes, shape, dtype, fill value)
    ("yx", (37, 41), "uint64", None),
    ("zyx", (3, 33, 20), "int8", -128),
    ("cyx", (2, 40, 40), "float32", float("nan")),
    ("tczyx", (2, 2, 3, 30, 30), "bool", None),
    ("tyx", (2, 30, 29), "int64", None),
]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_ngio_ome_zarr_py_and_ome_zarr_models_accept_what_is_written(
    tmp_path: Path, version: str
) -> None:
    """Images of several axes orders and dtypes, half written with pyramid=True (the rest
    never written: the fill value), read the same in ngio and ome-zarr-py, every level;
    ome-zarr-models validates them."""
    ngio = pytest.importorskip("ngio")
    reader = pytest.importorskip("ome_zarr.reader")
    io = pytest.importorskip("ome_zarr.io")
    written = []
    for k, (axes, shape, dtype, fill) in enumerate(PEER_IMAGES):
        path = tmp_path / f"img{k}.ome.zarr"
        channels = [f"ch{i}" for i in range(shape[axes.index("c")])] if "c" in axes else None
        async with ngio_async.create_async(
            path,
            shape=shape,
            dtype=dtype,
            axes=axes,
            channels=channels,
            levels=3,
            fill_value=fill,
            ngff_version=version,  # type: ignore[arg-type]
        ) as ds:
            values = random_values(np.random.default_rng(k), shape, dtype)
            half = (*(slice(None),) * (len(shape) - 1), slice(shape[-1] // 2, None))
            await ds.write_at(half, values[half], pyramid="nearest")
            levels = [await lvl[...] for lvl in ds.levels]
        written.append((path, levels))
    for path, levels in written:
        container = ngio.open_ome_zarr_container(str(path), mode="r")
        for i, p in enumerate(container.level_paths):
            got = np.asarray(container.get_image(path=p).get_as_numpy())
            np.testing.assert_array_equal(got, levels[i], err_msg=f"ngio {path.name} {i}")
        node = next(iter(reader.Reader(io.parse_url(str(path)))()))
        assert len(node.data) == len(levels)
        for i, level in enumerate(node.data):
            got = np.asarray(level)
            np.testing.assert_array_equal(got, levels[i], err_msg=f"ome-zarr {path.name} {i}")
    pytest.importorskip("ome_zarr_models")
    paths = [str(p) for p, _ in written]
    code = VALIDATE.format(version[-1])
    done = await anyio.run_process([sys.executable, "-c", code, *paths], check=False)
    assert done.returncode == 0, done.stderr.decode()[-2000:]


@pytest.mark.parametrize("pyramid", [False, "mean"])
async def test_overlapping_writes_through_a_writer_end_as_written_last(
    tmp_path: Path, pyramid: Any
) -> None:
    """Clear the level, then patch it: the patches win (the clearing write, its objects
    written a window at a time, overtook them and wrote its pixels last)."""
    model = np.full((1, 40, 40), 2, "uint8")
    async with ngio_async.create_async(
        tmp_path / "img",
        shape=model.shape,
        dtype="uint8",
        axes="cyx",
        chunks=(1, 8, 8),
        shards=False,
        levels=2,
    ) as ds:
        async with ds.writer(pyramid=pyramid) as w:
            await w.write(((slice(None), slice(0, 40), slice(0, 40)), 2))
            for k, (y, x) in enumerate([(0, 0), (5, 30), (36, 2), (17, 17)]):
                region = (slice(None), slice(y, y + 3), slice(x, x + 9))
                model[region] = 10 * k
                await w.write((region, 10 * k))
            await w.write(((slice(None), slice(16, 19), slice(16, 19)), 99))
        model[:, 16:19, 16:19] = 99
        np.testing.assert_array_equal(await ds.read(), model)
        if pyramid:
            want = downsample(model, (1, 2, 2), "mean")
            np.testing.assert_array_equal(await ds.levels[1][...], want)


@pytest.mark.parametrize("how", ["write", "build_pyramid"])
async def test_a_pyramid_downscaled_in_z_by_another_tool_is_kept_up_to_date(
    tmp_path: Path, how: str
) -> None:
    """Levels that halve z too (written by zarr-python here) are rebuilt with z halved."""
    import zarr

    group = zarr.open_group(str(tmp_path), mode="w", zarr_format=3)
    shapes = [(9, 40, 40), (5, 20, 20), (3, 10, 10)]
    for i, shape in enumerate(shapes):
        group.create_array(str(i), shape=shape, chunks=(1, 16, 16), dtype="uint16")
    datasets = [
        {"path": str(i), "coordinateTransformations": [{"type": "scale", "scale": [2.0**i] * 3}]}
        for i in range(3)
    ]
    axes = [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"]
    multiscale: dict[str, Any] = {"axes": axes, "datasets": datasets}
    group.attrs["ome"] = {"version": "0.5", "multiscales": [multiscale]}
    model = np.random.default_rng(0).integers(0, 1000, shapes[0]).astype("uint16")
    async with ngio_async.open_async(tmp_path, mode="r+") as ds:
        region = (slice(3, 6), slice(5, 17), slice(0, 40))
        if how == "write":
            await ds.write(model, pyramid=True)
            model[region] = 7
            await ds.write_at(region, 7, pyramid=True)  # not aligned to the 2x2x2 windows
        else:
            model[region] = 7
            await ds.write(model)
            await ds.build_pyramid()
        want = model_pyramid(model, shapes, (2, 2, 2), "mean")
        for i, lvl in enumerate(ds.levels):
            np.testing.assert_array_equal(await lvl[...], want[i], err_msg=f"level {i}")


@pytest.mark.parametrize(("first", "second"), [("0.5", "0.4"), ("0.4", "0.5"), ("0.5", "0.5")])
async def test_overwrite_by_an_image_of_another_shape_leaves_nothing_of_the_old(
    tmp_path: Path, first: str, second: str
) -> None:
    """Peers read the new image only: its shape, its pixels, its fill value where it is not
    written (never an old chunk), and only its levels."""
    path = tmp_path / "img.ome.zarr"
    async with ngio_async.create_async(
        path,
        shape=(3, 120, 100),
        dtype="uint16",
        axes="cyx",
        levels=3,
        chunks=(1, 16, 16),
        ngff_version=first,  # type: ignore[arg-type]
    ) as ds:
        await ds.write(np.full((3, 120, 100), 9, "uint16"), pyramid=True)
    model = np.full((2, 50, 70), 4, "uint8")
    async with ngio_async.create_async(
        path,
        shape=model.shape,
        dtype="uint8",
        axes="cyx",
        levels=2,
        chunks=(1, 32, 32),
        fill_value=4,
        ngff_version=second,  # type: ignore[arg-type]
        overwrite=True,
    ) as ds:
        await ds.write_at((0, slice(0, 20), slice(0, 20)), 1, pyramid=True)
        model[0, :20, :20] = 1
    assert not (path / "2").exists() or not any((path / "2").iterdir())
    for i, want in enumerate(model_pyramid(model, [(2, 50, 70), (2, 25, 35)], (1, 2, 2), "mean")):
        for reader, got in peers_read(path, second, i).items():
            assert got.shape == want.shape, reader
            np.testing.assert_array_equal(got, want, err_msg=f"{reader}, level {i}")


async def test_python_ints_beyond_64_bits(tmp_path: Path) -> None:
    """As numpy assigns them: into a float level as floats (they were refused as 'data of dtype
    object'), into an integer level refused naming the value."""
    async with ngio_async.create_async(
        tmp_path / "f", shape=(1, 2), dtype="float64", axes="yx", levels=1
    ) as ds:
        await ds.write([2**70, 1])
        np.testing.assert_array_equal(await ds.read(), [[2.0**70, 1.0]])
        with pytest.raises(ValueError, match="is not a float64 value"):
            await ds.write(2**1100)
    async with ngio_async.create_async(
        tmp_path / "u", shape=(1, 2), dtype="uint64", axes="yx", levels=1
    ) as ds:
        with pytest.raises(ValueError, match="is not a uint64 value"):
            await ds.write(2**64)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_create_like_keeps_the_translations_of_each_level(
    tmp_path: Path, version: str
) -> None:
    """ome-zarr-py centres each level (translations 0, 0.25, 0.75 um): the copy places its
    levels where the source's are (every level took level 0's translation), unless the
    override changes the levels."""
    pytest.importorskip("ome_zarr")
    from interop_writers import write_ome_zarr

    write_ome_zarr(tmp_path / "src", version)
    async with ngio_async.open_async(tmp_path / "src") as src:
        moved = [lvl.translation for lvl in src.levels]
        assert len(set(moved)) == len(moved)  # the levels are translated apart
        async with ngio_async.create_like_async(src, tmp_path / "like") as like:
            assert [lvl.translation for lvl in like.levels] == moved
            assert [lvl.scale for lvl in like.levels] == [lvl.scale for lvl in src.levels]
        async with ngio_async.create_like_async(src, tmp_path / "two", levels=2) as two:
            assert [lvl.translation for lvl in two.levels] == [moved[0]] * 2
    done = await anyio.run_process(
        [sys.executable, "-c", VALIDATE.format(version[-1]), str(tmp_path / "like")], check=False
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
async def test_create_like_keeps_level_shapes_of_floor_pyramids(tmp_path: Path) -> None:
    """ome-zarr-py's levels of an odd-sized image are floor(n / 2): the copy has the same
    shapes (they were ceil: 31x23 for 30x22, so the source's levels did not fit it), and its
    pyramid is built like ome-zarr-py shapes it."""
    import zarr

    writer = pytest.importorskip("ome_zarr.writer")
    fmt = pytest.importorskip("ome_zarr.format")
    data = np.random.default_rng(0).integers(0, 100, (1, 61, 45)).astype("uint16")
    group = zarr.open_group(str(tmp_path / "src"), mode="w", zarr_format=3)
    writer.write_image(data, group, axes="cyx", fmt=fmt.FormatV05())
    async with ngio_async.open_async(tmp_path / "src") as src:
        shapes = [lvl.shape for lvl in src.levels]
        assert shapes[1] == (1, 30, 22)
        async with ngio_async.create_like_async(src, tmp_path / "like") as like:
            assert [lvl.shape for lvl in like.levels] == shapes
            for i, lvl in enumerate(src.levels):
                await like.write(await lvl[...], level=i)  # level by level: each fits
            await like.write(data, pyramid=True)
            want = model_pyramid(data, shapes, (1, 2, 2), "mean")
            for i, lvl in enumerate(like.levels):
                np.testing.assert_array_equal(await lvl[...], want[i], err_msg=f"level {i}")
        async with ngio_async.create_like_async(src, tmp_path / "big", shape=(1, 81, 81)) as big:
            assert big.levels[1].shape == (1, 41, 41)  # a new shape: levels as create makes them
