"""``create_like`` arguments as users pass them: a wrong ``src`` or ``axes`` is refused naming
it (they raised ``AttributeError`` / "'int' object is not iterable"), a blocking dataset works
with ``create_like_async`` too, and ``None`` for ``shape``, ``dtype`` or ``ngff_version`` keeps
the source's (as ``numpy.zeros_like``; ``dtype=None`` made a float64 image)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def source(tmp_path: Path) -> str:
    url = str(tmp_path / "src.ome.zarr")
    with ngio_async.create(
        url, shape=(2, 40, 48), dtype="uint16", axes="cyx", levels=2, ngff_version="0.4",
        channels=["DAPI", "GFP"],
    ):  # fmt: skip
        pass
    return url


@pytest.mark.parametrize("src", [np.zeros((4, 4)), None, 5])
def test_a_src_that_is_no_dataset_is_refused_naming_it(tmp_path: Path, src: Any) -> None:
    with pytest.raises(TypeError, match=r"create_like: src must be an open dataset, got"):
        ngio_async.create_like_async(src, str(tmp_path / "copy.zarr"))
    assert not (tmp_path / "copy.zarr").exists()


def test_axes_of_the_wrong_type_are_refused_naming_them(source: str, tmp_path: Path) -> None:
    with ngio_async.open(source) as ds, pytest.raises(TypeError, match=r"^axes must be"):
        ngio_async.create_like(ds, str(tmp_path / "copy.zarr"), axes=5)
    assert not (tmp_path / "copy.zarr").exists()


def test_none_keeps_the_sources_shape_dtype_and_version(source: str, tmp_path: Path) -> None:
    dst = str(tmp_path / "copy.zarr")
    with (
        ngio_async.open(source) as ds,
        ngio_async.create_like(ds, dst, shape=None, dtype=None, ngff_version=None) as copy,
    ):
        assert (copy.shape, copy.dtype, copy.metadata.ngff_version) == (
            (2, 40, 48),
            np.dtype("uint16"),
            "0.4",
        )
        assert [c.label for c in copy.metadata.channels] == ["DAPI", "GFP"]


async def test_create_like_async_takes_a_blocking_dataset(source: str, tmp_path: Path) -> None:
    dst = str(tmp_path / "copy.zarr")
    with ngio_async.open(source) as ds:
        async with ngio_async.create_like_async(ds, dst, levels=1) as copy:
            await copy.write(np.full((2, 40, 48), 3, "uint16"))
            assert (copy.shape, copy.metadata.ngff_version) == ((2, 40, 48), "0.4")
    with ngio_async.open(dst) as back:
        assert int(back[1, 39, 47]) == 3


@pytest.mark.parametrize(("typo", "meant"), [("chunk", "chunks"), ("fillvalue", "fill_value")])
def test_a_misspelled_argument_is_named_with_the_one_meant(
    source: str, tmp_path: Path, typo: str, meant: str
) -> None:
    """It went to the store as an option: "unknown options for memory://: ['chunk']"."""
    named = rf"argument '{typo}'.*did you mean '{meant}'"
    with ngio_async.open(source) as ds, pytest.raises(TypeError, match=named):
        ngio_async.create_like(ds, "memory://", **{typo: 1})
    with pytest.raises(TypeError, match=named):
        ngio_async.create(str(tmp_path / "new.zarr"), shape=(4, 4), dtype="uint8", **{typo: 1})
    assert not (tmp_path / "new.zarr").exists()
