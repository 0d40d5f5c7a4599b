"""Differential reads: ngio_async against zarr-python 3.1 (and tensorstore) on the same images.

Random arrays are written by zarr-python (zarr v2 and v3: every data type, big-endian, fill values
including NaN, inf and v2's ``null``, missing chunks, partial edge chunks, v2 ``order: "F"`` and
``/`` keys, the v3 transpose codec, sharding with the index at either end, crc32c, the usual
compressors and numcodecs filters), wrapped as NGFF images, and read back through every public
read path: numpy basic indexing (async and the sync shim), ``read(**axes)``, ``tiles()``,
``np.asarray`` and dask, on a local disk and over HTTP (the remote read path). Every result must
equal zarr-python's own read, element for element and dtype for dtype.
"""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING, Any

import numcodecs
import numpy as np
import pytest
import zarr
import zarr.codecs as zc
from hypothesis import HealthCheck, given, settings, strategies as st
from servers import StaticServer

import ngio_async
from ngio_async.meta import Axis, Dataset, Multiscale, OmeMetadata, Scale, to_attrs

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from numpy.typing import NDArray

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

AXES = {2: "yx", 3: "zyx", 4: "czyx", 5: "tczyx"}
TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}
DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]
DTYPES += ["float16", "float32", "float64", "complex64"]

SETTINGS = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)


# ------------------------------------------------------------------------------ cases
@st.composite
def fills(draw: st.DrawFn, dtype: np.dtype[Any], fmt: int) -> Any:
    kind = dtype.kind
    if fmt == 2 and draw(st.integers(0, 4)) == 0:
        return None  # v2 ``fill_value: null``
    if kind == "b":
        return draw(st.booleans())
    if kind in "iu":
        info = np.iinfo(dtype)
        return draw(st.sampled_from([0, int(info.max), int(info.min), 7]))
    if kind == "f":
        return draw(st.sampled_from([0.0, -2.5, math.nan, math.inf, -math.inf]))
    return draw(st.sampled_from([0j, complex(1.5, -2), complex(math.nan, 0)]))


@st.composite
def cases(draw: st.DrawFn, fmt: int, sharded: bool = False) -> dict[str, Any]:
    ndim = draw(st.integers(2, 5))
    side = {2: 13, 3: 7, 4: 5, 5: 4}[ndim]
    shape = tuple(draw(st.lists(st.integers(1, side), min_size=ndim, max_size=ndim)))
    chunks = tuple(draw(st.integers(1, n + 1)) for n in shape)
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    case: dict[str, Any] = {
        "fmt": fmt,
        "shape": shape,
        "chunks": chunks,
        "seed": draw(st.integers(0, 2**31)),
        # a box written (the rest is never stored: missing chunks read as the fill value)
        "written": tuple(
            slice(a, draw(st.integers(a, n)))
            for a, n in ((draw(st.integers(0, n)), n) for n in shape)
        ),
    }
    if fmt == 2:
        if dtype.itemsize > 1 and draw(st.booleans()):
            dtype = dtype.newbyteorder(">")
        case["order"] = draw(st.sampled_from("CF"))
        case["sep"] = draw(st.sampled_from("./"))
        case["compressor"] = draw(
            st.sampled_from(
                [
                    None,
                    numcodecs.Blosc(cname="lz4", clevel=3, shuffle=numcodecs.Blosc.SHUFFLE),
                    numcodecs.Blosc(cname="zstd", clevel=1, shuffle=numcodecs.Blosc.BITSHUFFLE),
                    numcodecs.Zstd(level=1),
                    numcodecs.GZip(level=1),
                    numcodecs.Zlib(level=1),
                    numcodecs.LZ4(),
                ]
            )
        )
        case["filters"] = draw(filters_v2(dtype))
    else:
        case["endian"] = draw(st.sampled_from(["little", "big"]))
        case["transpose"] = (
            tuple(draw(st.permutations(range(ndim)))) if draw(st.booleans()) else None
        )
        pool: list[Any] = [
            zc.BloscCodec(cname="lz4", clevel=3, shuffle="shuffle", typesize=dtype.itemsize),
            zc.ZstdCodec(level=1, checksum=True),
            zc.GzipCodec(level=1),
        ]
        comps = draw(st.lists(st.sampled_from(pool), max_size=1))
        if draw(st.booleans()):
            comps.append(zc.Crc32cCodec())
        case["compressors"] = comps
        if sharded:
            case["shards"] = tuple(c * draw(st.integers(1, 3)) for c in chunks)
            case["index_location"] = draw(st.sampled_from(["start", "end"]))
    case["dtype"] = dtype
    case["fill"] = draw(fills(dtype, fmt))
    if any(isinstance(f, numcodecs.FixedScaleOffset) for f in case.get("filters") or ()):
        case["fill"] = draw(st.sampled_from([0.0, -2.5]))  # integers hold no NaN or inf
    return case


@st.composite
def filters_v2(draw: st.DrawFn, dtype: np.dtype[Any]) -> list[Any] | None:
    choice = draw(st.integers(0, 3))
    if choice == 1 and dtype.kind in "iu":
        return [numcodecs.Delta(dtype=dtype.str)]
    if choice == 2 and dtype.kind == "f" and dtype.itemsize >= 4:
        return [numcodecs.FixedScaleOffset(offset=1, scale=100, dtype=dtype.str, astype="<i8")]
    if choice == 3 and dtype.kind == "f" and dtype.itemsize == 8:
        return [numcodecs.AsType(encode_dtype="<f4", decode_dtype=dtype.str)]
    return None


def random_data(case: dict[str, Any]) -> NDArray[Any]:
    rng = np.random.default_rng(case["seed"])
    dtype: np.dtype[Any] = case["dtype"]
    shape: tuple[int, ...] = case["shape"]
    if dtype.kind == "b":
        return rng.random(shape) > 0.5
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(
            info.min, info.max, size=shape, endpoint=True, dtype=dtype.newbyteorder("=")
        )
    values = rng.normal(size=shape) * 50
    if dtype.kind == "c":
        values = values + 1j * rng.normal(size=shape)
    if case.get("filters"):
        values = np.round(values, 2)  # what FixedScaleOffset / AsType keep exactly
    return values.astype(dtype)


def write_case(root: Path, case: dict[str, Any], writer: str = "zarr") -> NDArray[Any]:
    """Write ``case`` as a one-level NGFF image; return zarr-python's read.

    ``writer="tensorstore"``: zarr-python writes the metadata, tensorstore the chunks.
    """
    fmt, shape, dtype = case["fmt"], case["shape"], case["dtype"]
    axes = AXES[len(shape)]
    kw: dict[str, Any] = {
        "store": root,
        "name": "0",
        "shape": shape,
        "dtype": dtype,
        "fill_value": case["fill"],
        "zarr_format": fmt,
    }
    if fmt == 2:
        kw.update(
            chunks=case["chunks"],
            order=case["order"],
            compressors=case["compressor"],
            filters=case["filters"],
            chunk_key_encoding={"name": "v2", "separator": case["sep"]},
        )
    else:
        kw["dimension_names"] = list(axes)
        inner: list[Any] = []
        if case["transpose"] is not None:
            inner.append(zc.TransposeCodec(order=case["transpose"]))
        serializer = zc.BytesCodec(endian=case["endian"])
        if "shards" in case:
            kw.update(
                chunks=case["shards"],
                serializer=zc.ShardingCodec(
                    chunk_shape=case["chunks"],
                    codecs=[*inner, serializer, *case["compressors"]],
                    index_location=case["index_location"],
                ),
                compressors=None,
                filters=None,
            )
        else:
            kw.update(
                chunks=case["chunks"],
                filters=inner or None,
                serializer=serializer,
                compressors=case["compressors"] or None,
            )
    arr = zarr.create_array(**kw)
    written = case["written"]
    if all(s.stop > s.start for s in written):
        if writer == "tensorstore":
            ts_open(root, case)[written].write(random_data(case)[written]).result()
        else:
            arr[written] = random_data(case)[written]
    version = "0.5" if fmt == 3 else "0.4"
    multiscale = Multiscale(
        axes=[Axis(name=a, type=TYPES[a]) for a in axes],
        datasets=[Dataset(path="0", coordinate_transformations=[Scale(scale=[1.0] * len(axes))])],
    )
    group = zarr.open_group(root, mode="a", zarr_format=fmt)
    group.attrs.update(to_attrs(OmeMetadata(version=version, multiscales=[multiscale]), version))
    return np.asarray(zarr.open_array(root / "0", mode="r")[...])


def ts_supported(case: dict[str, Any]) -> bool:
    """Whether tensorstore reads the case (its zarr v2 driver has no lz4 and no filters)."""
    if case["fmt"] == 3:
        return True
    return not case["filters"] and not isinstance(case["compressor"], numcodecs.LZ4)


def ts_open(path: Path, case: dict[str, Any]) -> Any:
    """The array at ``path/0``, opened with tensorstore."""
    ts = pytest.importorskip("tensorstore")
    driver = "zarr3" if case["fmt"] == 3 else "zarr"
    spec = {"driver": driver, "kvstore": {"driver": "file", "path": str(path / "0")}}
    return ts.open(spec, open=True, read=True, write=True).result()


def tensorstore_read(path: Path, case: dict[str, Any]) -> NDArray[Any]:
    return np.asarray(ts_open(path, case).read().result())


def assert_same(got: Any, want: NDArray[Any]) -> None:
    """Same shape, same dtype (byte order aside), same elements (NaN equals NaN)."""
    got = np.asarray(got)
    assert got.shape == want.shape
    assert got.dtype.newbyteorder("=") == want.dtype.newbyteorder("=")
    np.testing.assert_array_equal(got, want)


# ------------------------------------------------------------------------------ selections
@st.composite
def basic_indices(draw: st.DrawFn, shape: tuple[int, ...]) -> Any:
    """numpy basic indexing: ints (negative too), slices (any step, out of range, empty),
    ``...`` and ``None`` anywhere."""
    items: list[Any] = []
    for n in shape:
        if draw(st.integers(0, 3)) == 0:
            items.append(draw(st.integers(-n, n - 1)))
        else:
            bound = st.none() | st.integers(-n - 3, n + 3)
            step = draw(st.none() | st.sampled_from([1, 2, 3, 5, -1, -2, -3]))
            items.append(slice(draw(bound), draw(bound), step))
    if draw(st.booleans()):  # an Ellipsis stands for some of the trailing/leading axes
        at = draw(st.integers(0, len(items)))
        width = draw(st.integers(0, len(items) - at))
        items[at : at + width] = [Ellipsis]
    for _ in range(draw(st.integers(0, 2))):
        items.insert(draw(st.integers(0, len(items))), None)
    if len(items) == 1 and draw(st.booleans()):
        return items[0]
    return tuple(items)


@st.composite
def tile_params(draw: st.DrawFn, shape: tuple[int, ...]) -> dict[str, Any]:
    tile = tuple(draw(st.none() | st.integers(1, n + 1)) for n in shape)
    region = []
    for n in shape:
        a = draw(st.integers(0, n))
        region.append(slice(a, draw(st.integers(a, n))))
    return {
        "shape": tile,
        "region": tuple(region) if draw(st.booleans()) else None,
        "overlap": draw(
            st.integers(0, 2)
            | st.lists(st.integers(0, 2), min_size=len(shape), max_size=len(shape))
        ),
        "ordered": draw(st.booleans()),
        "prefetch": draw(st.none() | st.integers(1, 4)),
    }


def check_tiles(tiles: Iterator[Any], ref: NDArray[Any], params: dict[str, Any]) -> None:
    """Each tile's data is the level at its region; the cores tile the region exactly once."""
    base = params["region"] or tuple(slice(0, n) for n in ref.shape)
    seen = np.zeros(ref.shape, dtype=np.int32)
    for tile in tiles:
        assert_same(tile.data, ref[tile.region])
        assert_same(tile.core_data, ref[tile.core])
        for c, r, b, t in zip(tile.core, tile.region, base, params["shape"], strict=True):
            assert r.start <= c.start <= c.stop <= r.stop
            if t is None:  # the whole extent
                assert (c.start, c.stop) == (b.start, b.stop)
            else:  # aligned to multiples of the tile size, clipped to the region
                assert c.start == b.start or c.start % t == 0
                assert c.stop == b.stop or c.stop % t == 0
                assert c.stop - c.start <= t
        seen[tile.core] += 1
    inside = np.zeros(ref.shape, dtype=bool)
    inside[base] = True
    assert (seen[inside] == 1).all()
    assert (seen[~inside] == 0).all()


def named_axes(
    draw: Callable[[st.SearchStrategy[Any]], Any], axes: str, shape: tuple[int, ...]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for a, n in zip(axes, shape, strict=True):
        kind = draw(st.integers(0, 3))
        if kind == 1:
            out[a] = draw(st.integers(-n, n - 1))
        elif kind == 2:
            out[a] = slice(
                draw(st.none() | st.integers(-n, n)), None, draw(st.sampled_from([1, 2, -1]))
            )
        elif kind == 3 and a == axes[0]:
            out[a] = draw(st.lists(st.integers(-n, n - 1), max_size=3))
    return out


def numpy_named(ref: NDArray[Any], axes: str, sel: dict[str, Any]) -> NDArray[Any]:
    """What ``read(**sel)`` means, in numpy."""
    index: list[Any] = [slice(None)] * ref.ndim
    for i, a in enumerate(axes):
        if a in sel:
            index[i] = sel[a]
    out: NDArray[Any] = ref[tuple(index)]
    return out


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StaticServer]:
    root = tmp_path_factory.mktemp("diffwww")
    srv = StaticServer(root).start()
    try:
        yield srv
    finally:
        srv.stop()


_counter = iter(range(sys.maxsize))


def new_root(server: StaticServer) -> tuple[Path, str]:
    name = f"img{next(_counter)}.ome.zarr"
    return server.root / name, f"{server.url}{name}"


def check_everything(
    path: Path, url: str, case: dict[str, Any], data: st.DataObject, writer: str = "zarr"
) -> None:
    shape = case["shape"]
    axes = AXES[len(shape)]
    index = data.draw(basic_indices(shape), label="index")
    sel = named_axes(data.draw, axes, shape)
    tiles = data.draw(tile_params(shape), label="tiles")
    dask_chunks = tuple(data.draw(st.integers(1, n + 1)) for n in shape)
    ref = write_case(path, case, writer)
    if ts_supported(case):  # the peer readers agree with each other first
        assert_same(tensorstore_read(path, case), ref)
    for where in (path, url):
        with ngio_async.open(where) as ds:
            assert ds.dtype.newbyteorder("=") == ref.dtype.newbyteorder("=")
            assert_same(ds[...], ref)
            assert_same(ds[index], ref[index])
            assert_same(ds.read(**sel), numpy_named(ref, axes, sel))
            with ds.tiles(**tiles) as it:
                check_tiles(it, ref, tiles)
            if where == path:
                import dask.array as da

                assert_same(np.asarray(ds), ref)
                lazy = da.from_array(ds, chunks=dask_chunks)  # type: ignore[no-untyped-call]
                assert_same(lazy.compute(), ref)
                # dask's own slicing differs from numpy's at times (``[-7::-1]`` of 5 elements)
                want = da.from_array(  # type: ignore[no-untyped-call]
                    ref, chunks=dask_chunks
                )[index].compute()
                assert_same(lazy[index].compute(), want)


# ------------------------------------------------------------------------------ tests
@SETTINGS
@given(case=cases(fmt=2), data=st.data())
def test_v2_reads_as_zarr_python(
    server: StaticServer, case: dict[str, Any], data: st.DataObject
) -> None:
    check_everything(*new_root(server), case, data)


@SETTINGS
@given(case=cases(fmt=3), data=st.data())
def test_v3_reads_as_zarr_python(
    server: StaticServer, case: dict[str, Any], data: st.DataObject
) -> None:
    check_everything(*new_root(server), case, data)


@SETTINGS
@given(case=cases(fmt=3, sharded=True), data=st.data())
def test_v3_sharded_reads_as_zarr_python(
    server: StaticServer, case: dict[str, Any], data: st.DataObject
) -> None:
    check_everything(*new_root(server), case, data)


@SETTINGS
@given(
    case=st.one_of(cases(fmt=2), cases(fmt=3), cases(fmt=3, sharded=True)).filter(ts_supported),
    data=st.data(),
)
def test_tensorstore_written_reads_as_zarr_python_and_tensorstore(
    server: StaticServer, case: dict[str, Any], data: st.DataObject
) -> None:
    """tensorstore's chunks and shards (its own layout of inner chunks and indexes)."""
    check_everything(*new_root(server), case, data, writer="tensorstore")
