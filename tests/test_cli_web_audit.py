"""``ngio_async.open`` / ``open_async`` ask the format readers as ``convert`` does: a plugin's
reader (registered, or an ``ngio_async.formats`` entry point) opens what it reads."""

from __future__ import annotations

import os
import textwrap
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async
from ngio_async import formats
from ngio_async._errors import NotFoundError, ReadOnlyError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from numpy.typing import NDArray


class NpySource:
    """A ``.npy`` file as an :class:`~ngio_async.formats.ImageSource` (memory-mapped)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._array = np.load(url, mmap_mode="r")
        self.shape: tuple[int, ...] = tuple(self._array.shape)
        self.axes: tuple[str, ...] = {2: ("y", "x"), 3: ("c", "y", "x")}[len(self.shape)]
        self.dtype: np.dtype[Any] = self._array.dtype
        self.scale: tuple[float, ...] = (1.0,) * len(self.shape)
        self.units: tuple[str | None, ...] = (None,) * len(self.shape)
        self.translation: tuple[float, ...] = (0.0,) * len(self.shape)
        self.channels: list[dict[str, Any]] | None = None
        self.name: str | None = "npy"
        self.regions: list[tuple[slice, ...]] = []  # what was read, in order
        self.closed = False

    async def read(self, region: tuple[slice, ...]) -> NDArray[Any]:
        self.regions.append(region)
        return np.array(self._array[region])

    async def aclose(self) -> None:
        self.closed = True


class NpyReader:
    """Reads ``*.npy`` files; remembers the sources it opened."""

    name = "npy"

    def __init__(self) -> None:
        self.opened: list[NpySource] = []

    def can_read(self, url: Any) -> bool:
        return isinstance(url, str | os.PathLike) and os.fspath(url).endswith(".npy")

    async def open(self, url: Any, **options: Any) -> NpySource:
        if options:
            raise TypeError(f"unexpected options {sorted(options)}")
        source = NpySource(os.fspath(url))
        self.opened.append(source)
        return source


@pytest.fixture
def npy(tmp_path: Path) -> tuple[Path, NDArray[np.uint16]]:
    data = np.arange(2 * 30 * 40, dtype=np.uint16).reshape(2, 30, 40)
    path = tmp_path / "img.npy"
    np.save(path, data)
    return path, data


@pytest.fixture
def reader() -> Iterator[NpyReader]:
    found = NpyReader()
    formats.register(found)
    try:
        yield found
    finally:
        formats.unregister(found)


def test_open_goes_through_a_registered_reader(
    npy: tuple[Path, NDArray[np.uint16]], reader: NpyReader
) -> None:
    """``open("img.npy")`` said "no such directory ... (is a file)": the plugin that
    ``convert`` finds for the file (the same reader) now opens it, a read-only dataset reading
    through the plugin's source; closing the dataset closes the source."""
    path, data = npy
    assert formats.find_reader(str(path)) is reader  # what convert uses
    with ngio_async.open(str(path)) as ds:
        assert ds.shape == data.shape and ds.dtype == data.dtype
        assert ds.axes == ("c", "y", "x") and len(ds.levels) == 1
        np.testing.assert_array_equal(
            ds.read(c=1, y=slice(3, 9), x=slice(5, 25)), data[1, 3:9, 5:25]
        )
        np.testing.assert_array_equal(np.asarray(ds), data)
        (source,) = reader.opened
        assert (slice(1, 2), slice(3, 9), slice(5, 25)) in source.regions
        assert not source.closed
    assert source.closed
    with pytest.raises(ReadOnlyError, match=r"read-only.*'r\+'"):
        ngio_async.open(str(path), mode="r+")


async def test_open_async_goes_through_a_registered_reader(
    npy: tuple[Path, NDArray[np.uint16]], reader: NpyReader
) -> None:
    path, data = npy
    async with ngio_async.open_async(path) as ds:
        np.testing.assert_array_equal(await ds.read(y=slice(0, 4)), data[:, :4])
        tiles = [t async for t in ds.tiles(level=0)]
        assert tiles and all(t.data.shape[0] >= 1 for t in tiles)
    assert reader.opened[0].closed


async def test_formats_open_dataset_takes_a_plugins_image_source(
    npy: tuple[Path, NDArray[np.uint16]], reader: NpyReader
) -> None:
    """``formats.open_dataset`` (and ``formats.open``) refused a plugin's ImageSource
    ("gives no Dataset"); it opens as ``open`` opens it."""
    path, data = npy
    ds = await formats.open_dataset(str(path))
    async with ds:
        np.testing.assert_array_equal(await ds.read(c=0, x=slice(2, 7)), data[0, :, 2:7])
    assert reader.opened[0].closed
    with formats.open(str(path)) as sync_ds:
        np.testing.assert_array_equal(np.asarray(sync_ds), data)
    assert reader.opened[1].closed


def test_an_entry_point_reader_is_found_and_a_missing_one_says_what_is_readable(
    npy: tuple[Path, NDArray[np.uint16]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No reader for ``.npy``: the zarr error (not found) names the file and says what is
    readable. Once a distribution with an ``ngio_async.formats`` entry point is on the path,
    the same call opens the file through it (the entry points are listed again when the path
    changes)."""
    path, data = npy
    with pytest.raises(NotFoundError) as info:
        ngio_async.open(str(path))
    message = str(info.value)
    assert str(path) in message and "OME-Zarr" in message and "TIFF" in message, message
    assert "ngio_async.formats" in message, message

    site = tmp_path / "site"
    dist = site / "npy_plugin_h2-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: npy-plugin-h2\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[ngio_async.formats]\nnpy = npy_plugin_h2:Reader\n")
    (site / "npy_plugin_h2.py").write_text(
        textwrap.dedent(
            """
            import numpy as np
            from test_cli_web_audit import NpyReader

            class Reader(NpyReader):
                name = "npy-entry-point"
            """
        )
    )
    monkeypatch.syspath_prepend(str(site))
    assert formats.find_reader(str(path)).name == "npy-entry-point"
    with ngio_async.open(path) as ds:
        np.testing.assert_array_equal(ds.read(), data)
