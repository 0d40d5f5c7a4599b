"""``is_2d``, ``is_3d``, ``is_time_series``, ``is_2d_time_series``, ``is_3d_time_series``,
``is_multi_channels`` and ``has_axis`` on images and label images, async and blocking, as ngio
1.1.3 gives them for the same images: a ``z`` (``t``, ``c``) of size 1 counts as none."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]

FACTS = (
    "is_2d",
    "is_3d",
    "is_time_series",
    "is_2d_time_series",
    "is_3d_time_series",
    "is_multi_channels",
)
NAMES = ("t", "c", "z", "y", "x", "q")

# axes and level-0 shape: no z, z of size 1 and more, one channel and more, a time series
CASES = [
    ("yx", (8, 8)),
    ("zyx", (1, 8, 8)),
    ("zyx", (3, 8, 8)),
    ("czyx", (1, 2, 8, 8)),
    ("cyx", (2, 8, 8)),
    ("tczyx", (2, 3, 1, 8, 8)),
    ("tzyx", (2, 4, 8, 8)),
    ("tyx", (1, 8, 8)),
]


def _facts(obj: Any) -> dict[str, Any]:
    out = {k: getattr(obj, k) for k in FACTS}
    out |= {f"has_{a}": obj.has_axis(a) for a in NAMES}
    return out


@pytest.mark.parametrize(("axes", "shape"), CASES, ids=[f"{a}{s}" for a, s in CASES])
async def test_axis_facts_equal_ngios(tmp_path: Path, axes: str, shape: tuple[int, ...]) -> None:
    import ngio

    path = tmp_path / "img.zarr"
    c: Any = ngio.create_empty_ome_zarr(
        str(path), shape=shape, pixelsize=0.5, levels=2, axes_names=axes
    )
    c.derive_label("nuclei")
    c = ngio.open_ome_zarr_container(str(path))
    want, want_label = _facts(c.get_image()), _facts(c.get_label("nuclei"))
    assert {k: getattr(c, k) for k in FACTS} == {k: want[k] for k in FACTS}  # its level 0's
    async with ngio_async.open_async(path) as ds:
        assert _facts(ds) == want
        assert _facts(await ds.labels.open("nuclei")) == want_label
    with ngio_async.open(path) as sds:
        assert _facts(sds) == want
        assert _facts(sds.labels["nuclei"]) == want_label


def test_an_image_written_here_reads_as_ngio_reads_it(tmp_path: Path) -> None:
    """A time series of 3-D stacks of 2 channels, created here: every fact true but 2-D."""
    import ngio

    path = tmp_path / "img.zarr"
    with ngio_async.create(
        path, shape=(2, 2, 3, 8, 8), dtype="uint8", axes="tczyx", levels=1
    ) as ds:
        got = _facts(ds)
    assert got == _facts(ngio.open_ome_zarr_container(str(path)).get_image())
    assert got["is_3d_time_series"] and got["is_multi_channels"] and not got["is_2d"]
    assert got["has_t"] and not got["has_q"]
