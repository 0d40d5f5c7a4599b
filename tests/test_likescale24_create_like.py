"""``create_like`` keeps a source's own level scales: ome-zarr-py 0.18 writes exact ones for
odd sizes (81 -> 40 pixels: 81 / 40 times level 0's, not 2), and a copy with ``scale * 2**i``
put its lower levels elsewhere in the world (level 1 of an 81-pixel image at 0.5 ended at
40.26 um against the source's 40.76). Overrides that change the levels (``shape=``,
``downscale=``, ``scale=``, ``levels=``) rebuild the scales as ``create`` does."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from interop_writers import WARNING_FILTERS

import ngio_async
from ngio_async.images._create_plan import plan_image

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [
    *(pytest.mark.filterwarnings(f) for f in WARNING_FILTERS),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]


def _write_odd(path: Path, version: str) -> None:
    """An ome-zarr-py 0.18 image of 81 x 45 pixels (3 levels, exact scales, centred levels)
    with a label image ``cells`` of the same size."""
    zarr = pytest.importorskip("zarr")
    writer = pytest.importorskip("ome_zarr.writer")
    fmt = pytest.importorskip("ome_zarr.format")
    f = fmt.FormatV04() if version == "0.4" else fmt.FormatV05()
    group = zarr.open_group(str(path), mode="w", zarr_format=2 if version == "0.4" else 3)
    data = np.zeros((81, 45), "uint16")
    writer.write_image(
        data, group, axes="yx", fmt=f, scale={"y": 0.5, "x": 0.25}, scale_factors=(2, 4)
    )
    writer.write_labels(
        data.astype("uint32"),
        group,
        name="cells",
        axes="yx",
        fmt=f,
        scaler=None,
        scale={"y": 0.5, "x": 0.25},
        scale_factors=(2, 4),
    )


def _geometry(ds: Any) -> list[tuple[tuple[float, ...], tuple[float, ...], tuple[int, ...]]]:
    return [
        (c.scale, c.translation, lvl.shape)
        for c, lvl in zip(ds.metadata.spatial_calibration, ds.levels, strict=True)
    ]


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_copies_keep_every_levels_scale_and_translation(tmp_path: Path, version: str) -> None:
    _write_odd(tmp_path / "src.zarr", version)
    with ngio_async.open(tmp_path / "src.zarr") as src:
        want = _geometry(src)
        assert want[1][0] == (0.5 * 81 / 40, 0.25 * 45 / 22)  # the exact scales of the source
        with ngio_async.create_like(src, tmp_path / "copy.zarr") as copy:
            assert copy.metadata.ngff_version == version
            assert _geometry(copy) == want
            for i in range(len(src.levels)):
                assert copy.world_extent(i) == src.world_extent(i)
        label = src.labels["cells"]
        lwant = _geometry(label)
        assert lwant[1][0] != lwant[0][0]  # (exact too)
        with ngio_async.create_like(label, tmp_path / "lab.zarr") as lab:
            assert lab.metadata.ome.image_label is not None  # a label image
            assert _geometry(lab) == lwant
        with ngio_async.create_like(label, tmp_path / "src.zarr" / "labels" / "more") as more:
            assert _geometry(more) == lwant  # a copy listed by the image
        with ngio_async.open(tmp_path / "src.zarr", mode="r+") as again:
            assert "more" in again.labels
            assert _geometry(again.labels.create("new")) == lwant  # (labels.create: the image's)
    with ngio_async.open(tmp_path / "copy.zarr") as copy:
        assert _geometry(copy) == want  # as stored


def test_a_new_translation_keeps_the_levels_scales(tmp_path: Path) -> None:
    """``translation=``: one translation for every level, as create writes it; the levels'
    shapes stay, and their scales with them (each level covers level 0's extent)."""
    _write_odd(tmp_path / "src.zarr", "0.5")
    with ngio_async.open(tmp_path / "src.zarr") as src:
        scales = [c.scale for c in src.metadata.spatial_calibration]
        with ngio_async.create_like(src, tmp_path / "t.zarr", translation={"y": 3.0}) as copy:
            cal = copy.metadata.spatial_calibration
            assert [c.scale for c in cal] == scales
            assert [c.translation for c in cal] == [(3.0, 0.0)] * 3
            assert copy.world_extent(1)["y"] == copy.world_extent(0)["y"] == (3.0, 43.5)


@pytest.mark.parametrize(
    ("override", "shape0", "scale0", "step"),
    [
        ({"shape": (100, 50)}, (100, 50), (0.5, 0.25), 2),
        ({"downscale": 3}, (81, 45), (0.5, 0.25), 3),
        ({"levels": 2}, (81, 45), (0.5, 0.25), 2),
    ],
)
def test_overrides_rebuild_the_scales_as_create_does(
    tmp_path: Path,
    override: dict[str, Any],
    shape0: tuple[int, ...],
    scale0: tuple[float, ...],
    step: int,
) -> None:
    _write_odd(tmp_path / "src.zarr", "0.5")
    with (
        ngio_async.open(tmp_path / "src.zarr") as src,
        ngio_async.create_like(src, tmp_path / "o.zarr", **override) as copy,
    ):
        assert copy.shape == shape0
        for i, c in enumerate(copy.metadata.spatial_calibration):
            assert c.scale == (scale0[0] * step**i, scale0[1] * step**i), f"level {i}"


def test_other_axes_keep_their_own_scales_per_level(tmp_path: Path) -> None:
    """A source whose level 1 has other z and t scales (a writer that downsampled z too, and
    noted another t step): the copy has them, level by level."""
    with ngio_async.create(
        tmp_path / "src.zarr", shape=(2, 4, 9, 9), dtype="uint8", axes="tzyx", levels=2
    ):
        pass
    doc_path = tmp_path / "src.zarr" / "zarr.json"
    doc = json.loads(doc_path.read_text())
    datasets = doc["attributes"]["ome"]["multiscales"][0]["datasets"]
    datasets[1]["coordinateTransformations"][0]["scale"] = [1.5, 3.0, 1.8, 1.8]
    doc_path.write_text(json.dumps(doc))
    with ngio_async.open(tmp_path / "src.zarr") as src:
        want = _geometry(src)
        assert want[1][0] == (1.5, 3.0, 1.8, 1.8)
        with ngio_async.create_like(src, tmp_path / "copy.zarr") as copy:
            assert _geometry(copy) == want


@pytest.mark.parametrize(
    ("level_scales", "message"),
    [
        ([(0.5, 0.5)], "level_scales: 1 scales for 2 levels"),
        ([(0.5, 0.5), (1.0,)], r"level_scales\[1\] needs 2 values"),
        ([(0.5, 0.5), (1.0, 0.0)], r"level_scales\[1\]\['x'\]"),
        ([(0.5, 0.5), (1.0, float("nan"))], r"level_scales\[1\]\['x'\]"),
        ([(0.5, 1.0), (1.0, 1.0)], r"level_scales\[0\] \[0.5, 1.0\] is not the scale"),
    ],
)
def test_level_scales_are_checked_naming_the_field(level_scales: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plan_image(shape=(8, 8), dtype="uint8", scale=0.5, levels=2, level_scales=level_scales)
