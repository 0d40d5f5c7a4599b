"""Images and plates as peer tools write them (iohub, writers of 0.4 plates, omero blocks
without some keys): they open with a MetadataWarning naming the JSON path, while
``validate`` still reports the rule they break; opening changes nothing on disk."""

from __future__ import annotations

import json
import warnings
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pytest
import zarr

import ngio_async
from ngio_async import MetadataError
from ngio_async.meta import MetadataWarning, validate

if TYPE_CHECKING:
    from pathlib import Path

AXES = [
    {"name": "C", "type": "channel"},
    {"name": "Y", "type": "space"},
    {"name": "X", "type": "space"},
]


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def write_image(group: Any, attrs: dict[str, Any], version: str = "0.4") -> None:
    """Level ``0`` (2 channels of 8 x 8, channel c filled with c + 1) and ``attrs`` (the NGFF
    keys: 0.4 at the top level, 0.5 inside ``ome``)."""
    data = np.stack([np.full((8, 8), c + 1, "uint16") for c in range(2)])
    group.create_array("0", data=data)
    group.attrs.put(attrs if version == "0.4" else {"ome": {"version": "0.5", **attrs}})


def open_mended(path: Path, version: str, match: str) -> tuple[Any, dict[str, bytes]]:
    """The image at ``path`` (``validate`` refuses its document) opened with a
    ``MetadataWarning`` matching ``match``, and its files before the opening."""
    doc = json.loads((path / (".zattrs" if version == "0.4" else "zarr.json")).read_text())
    with pytest.raises(MetadataError):
        validate(doc)  # still reported as invalid
    before = snapshot(path)
    with pytest.warns(MetadataWarning, match=match):
        ds = ngio_async.open(path)
    return ds, before


def iohub_multiscale(**extra: Any) -> dict[str, Any]:
    return {
        "version": "0.4",
        "axes": AXES,
        "coordinateTransformations": [{"type": "identity"}],
        "datasets": [
            {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 0.5, 0.5]}]}
        ],
        **extra,
    }


# ---------------------------------------------------------------- F1: identity transforms
@pytest.mark.parametrize("version", ["0.4", "0.5"])
@pytest.mark.parametrize("where", ["multiscale", "dataset", "both"])
def test_identity_transformations_are_read_without_them(
    tmp_path: Path, version: str, where: str
) -> None:
    """iohub writes ``[{"type": "identity"}]`` at the multiscale level (NGFF allows only scale
    and translation there): the image was refused ("Invalid value 'identity'")."""
    path = tmp_path / "ioh.zarr"
    ms = iohub_multiscale()
    if version == "0.5":
        del ms["version"]
    if where != "multiscale":
        ms["datasets"][0]["coordinateTransformations"].append({"type": "identity"})
    if where == "dataset":
        del ms["coordinateTransformations"]
    g = zarr.open_group(path, mode="w", zarr_format=2 if version == "0.4" else 3)
    write_image(g, {"multiscales": [ms]}, version)
    doc = json.loads((path / (".zattrs" if version == "0.4" else "zarr.json")).read_text())
    with pytest.raises(MetadataError, match="identity"):
        validate(doc)  # still reported as invalid
    before = snapshot(path)
    at = "$.multiscales[0]" if version == "0.4" else "$.attributes.ome.multiscales[0]"
    at += ".coordinateTransformations" if where != "dataset" else ".datasets[0]"
    with pytest.warns(
        MetadataWarning, match=r"identity.*at `" + at.replace("$", r"\$").replace("[", r"\[")
    ):
        ds = ngio_async.open(path)
    with ds:
        assert ds.levels[0].scale == (1.0, 0.5, 0.5)
        assert ds.metadata.multiscale.coordinate_transformations is None
        assert int(ds.read(C=1)[3, 3]) == 2
    assert snapshot(path) == before  # opening changed nothing


def test_a_level_whose_only_transformation_is_identity_reads_as_scale_1(tmp_path: Path) -> None:
    path = tmp_path / "ioh.zarr"
    ms = iohub_multiscale()
    ms["datasets"][0]["coordinateTransformations"] = [{"type": "identity"}]
    write_image(zarr.open_group(path, mode="w", zarr_format=2), {"multiscales": [ms]})
    with pytest.warns(MetadataWarning, match="2 'identity' transformations left out"):
        ds = ngio_async.open(path)
    with ds:
        assert ds.levels[0].scale == (1.0, 1.0, 1.0)


def test_other_transformation_errors_still_refuse_the_image(tmp_path: Path) -> None:
    path = tmp_path / "img.zarr"
    ms = iohub_multiscale(coordinateTransformations=[{"type": "affine"}])
    write_image(zarr.open_group(path, mode="w", zarr_format=2), {"multiscales": [ms]})
    with pytest.raises(MetadataError, match="affine"):
        ngio_async.open(path)


# ---------------------------------------------------------------- F4 + F1: an iohub plate
def write_plate(
    path: Path, wells: list[dict[str, Any]], version: str = "0.4", field: Any = None
) -> None:
    """A plate of rows A, B and columns 1, 2 (``wells`` as given), each well with field 0."""
    fmt: Literal[2, 3] = 2 if version == "0.4" else 3
    plate: dict[str, Any] = {
        "rows": [{"name": "A"}, {"name": "B"}],
        "columns": [{"name": "1"}, {"name": "2"}],
        "wells": wells,
    }
    root = zarr.open_group(path, mode="w", zarr_format=fmt)
    v = {"version": "0.4"} if version == "0.4" else {}
    root.attrs.put(
        {"plate": {**plate, **v}}
        if version == "0.4"
        else {"ome": {"version": "0.5", "plate": plate}}
    )
    for w in wells:
        well = zarr.open_group(path / w["path"], mode="w", zarr_format=fmt)
        body: dict[str, Any] = {"images": [{"path": "0"}], **v}
        well.attrs.put(
            {"well": body} if version == "0.4" else {"ome": {"version": "0.5", "well": body}}
        )
        ms = field or {"axes": AXES, "datasets": [
            {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 1]}]}
        ]}  # fmt: skip
        write_image(zarr.open_group(path / w["path"] / "0", mode="w", zarr_format=fmt),
                    {"multiscales": [{**ms, **v}]}, version)  # fmt: skip


def test_an_iohub_plate_field_opens_through_the_plate(tmp_path: Path) -> None:
    path = tmp_path / "plate.zarr"
    write_plate(path, [{"path": "A/1", "rowIndex": 0, "columnIndex": 0}], field=iohub_multiscale())
    before = snapshot(path)
    with ngio_async.open_plate(path) as plate:
        with pytest.warns(MetadataWarning, match="'identity' transformation left out"):
            fov = plate.image("A", "1", field=0)
        with fov:
            assert int(fov.read(C=0)[0, 0]) == 1
    assert snapshot(path) == before


@pytest.mark.parametrize("index", ["rowIndex", "columnIndex", "both"])
def test_04_well_indices_out_of_range_are_read_from_the_path(tmp_path: Path, index: str) -> None:
    """1-based (or otherwise wrong) indices of a 0.4 plate: ome-zarr-py and ngio open it by
    the well paths; it was refused ("1 is out of range of 'rows'")."""
    path = tmp_path / "plate.zarr"
    wells: list[dict[str, Any]] = [
        {"path": "A/1", "rowIndex": 0, "columnIndex": 0},
        {"path": "B/2", "rowIndex": 1, "columnIndex": 1},
    ]
    for w in wells:  # 1-based
        if index in ("rowIndex", "both"):
            w["rowIndex"] += 1
        if index in ("columnIndex", "both"):
            w["columnIndex"] += 1
    write_plate(path, wells)
    with pytest.raises(MetadataError, match="out of range"):
        validate(json.loads((path / ".zattrs").read_text()))  # still reported
    before = snapshot(path)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", MetadataWarning)
        plate = ngio_async.open_plate(path)
    messages = [str(w.message) for w in seen if issubclass(w.category, MetadataWarning)]
    assert any("out of range" in m and "at `$.plate.wells[1]" in m for m in messages), messages
    assert any("'B/2' read at its path" in m for m in messages), messages
    assert any("at `$.plate.wells[0].path`" in m for m in messages), messages
    with plate:
        assert plate.wells == ["A/1", "B/2"]
        # B/2's indices (2 of 2 rows or columns) come from its path; A/1's are in range: they
        # are kept and disagree with its path (a warning, as before; the path decides)
        assert [(w.row_index, w.column_index) for w in plate.metadata.wells] == [
            (wells[0]["rowIndex"], wells[0]["columnIndex"]),
            (1, 1),
        ]
        with plate.image("B", "2", field=0) as fov:
            assert int(fov.read(C=1)[0, 0]) == 2
    assert snapshot(path) == before


def test_04_well_index_out_of_range_naming_no_listed_row_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "plate.zarr"
    write_plate(path, [{"path": "A/1", "rowIndex": 0, "columnIndex": 0}])
    attrs = json.loads((path / ".zattrs").read_text())
    attrs["plate"]["wells"] = [{"path": "C/1", "rowIndex": 2, "columnIndex": 0}]
    (path / ".zattrs").write_text(json.dumps(attrs))
    with pytest.raises(MetadataError, match="2 is out of range of 'rows'"):
        ngio_async.open_plate(path)


def test_05_well_indices_out_of_range_are_still_refused(tmp_path: Path) -> None:
    path = tmp_path / "plate.zarr"
    write_plate(path, [{"path": "B/2", "rowIndex": 2, "columnIndex": 1}], version="0.5")
    with pytest.raises(MetadataError, match="2 is out of range of 'rows'"):
        ngio_async.open_plate(path)


# ---------------------------------------------------------------- F2: omero keys missing
@pytest.mark.parametrize("version", ["0.4", "0.5"])
@pytest.mark.parametrize("missing", ["window", "color", "both"])
def test_omero_channels_missing_color_or_window_keep_their_labels(
    tmp_path: Path, version: str, missing: str
) -> None:
    """One channel without ``window`` (or ``color``) dropped every channel's label: the
    block was left out, and ``read(c="GFP")`` was a KeyError."""
    window = {"min": 0, "max": 100, "start": 0, "end": 50}
    channels: list[dict[str, Any]] = [
        {"label": "DAPI", "color": "0000FF", "window": window},
        {"label": "GFP", "color": "00FF00", "window": window},
    ]
    for key in ("window", "color") if missing == "both" else (missing,):
        for c in channels:
            del c[key]
    path = tmp_path / "img.zarr"
    g = zarr.open_group(path, mode="w", zarr_format=2 if version == "0.4" else 3)
    ms = iohub_multiscale()
    del ms["coordinateTransformations"]
    if version == "0.5":
        del ms["version"]
    write_image(g, {"multiscales": [ms], "omero": {"channels": channels}}, version)
    ds, before = open_mended(path, version, r"omero\.channels\[0\]`.*labels are kept")
    with ds:
        channels_read = ds.metadata.channels
        assert [c.label for c in channels_read] == ["DAPI", "GFP"]
        colors = ["FFFFFF"] * 2 if missing != "window" else ["0000FF", "00FF00"]
        assert [c.color for c in channels_read] == colors
        windows = [None] * 2 if missing != "color" else [(0.0, 50.0)] * 2  # None: no window
        assert [c.window for c in channels_read] == windows
        assert int(ds.read(C="GFP")[0, 0]) == 2
    assert snapshot(path) == before


def test_a_channel_without_a_label_stays_unlabelled(tmp_path: Path) -> None:
    path = tmp_path / "img.zarr"
    channels = [{"color": "0000FF"}, {"label": "GFP", "color": "00FF00"}]
    ms = iohub_multiscale()
    del ms["coordinateTransformations"]
    write_image(
        zarr.open_group(path, mode="w", zarr_format=2),
        {"multiscales": [ms], "omero": {"channels": channels}},
    )
    with pytest.warns(MetadataWarning, match="channel 0, 1 without a window"):
        ds = ngio_async.open(path)
    with ds:
        assert [c.label for c in ds.metadata.channels] == [None, "GFP"]
        assert int(ds.read(C="GFP")[0, 0]) == 2
        assert int(ds.read(C=0)[0, 0]) == 1


def test_a_channel_that_is_no_object_still_drops_the_block(tmp_path: Path) -> None:
    path = tmp_path / "img.zarr"
    ms = iohub_multiscale()
    del ms["coordinateTransformations"]
    write_image(
        zarr.open_group(path, mode="w", zarr_format=2),
        {"multiscales": [ms], "omero": {"channels": ["DAPI", {"label": "GFP"}]}},
    )
    with pytest.warns(MetadataWarning, match="without its 'omero'"):
        ds = ngio_async.open(path)
    with ds:
        assert ds.metadata.channels == []


# ---------------------------------------------------------------- F6: appended pyramid levels
def write_pyramid(path: Path, shapes: list[tuple[int, int]], data: np.ndarray[Any, Any]) -> None:
    """A 0.5 yx image of levels ``shapes`` (scale 2**i), level 0 holding ``data``."""
    root = zarr.open_group(path, mode="w", zarr_format=3)
    datasets: list[Any] = []
    for i, shape in enumerate(shapes):
        array = root.create_array(str(i), shape=shape, chunks=(16, 16), dtype=data.dtype)
        if i == 0:
            array[...] = data
        scale = [float(2**i)] * 2
        datasets.append(
            {"path": str(i), "coordinateTransformations": [{"type": "scale", "scale": scale}]}
        )
    axes = [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
    root.attrs.put(
        {"ome": {"version": "0.5", "multiscales": [{"axes": axes, "datasets": datasets}]}}
    )


@pytest.mark.parametrize(
    ("shapes", "appended"),
    [
        pytest.param([(45, 35), (22, 17)], [(11, 8), (5, 4)], id="floor (ome-zarr-py)"),
        pytest.param([(45, 35), (23, 18)], [(12, 9), (6, 5)], id="ceil"),
        pytest.param([(44, 34), (22, 17)], [(11, 9), (6, 5)], id="either: ceil"),
    ],
)
async def test_appended_levels_follow_the_rounding_of_the_existing_ones(
    tmp_path: Path, shapes: list[tuple[int, int]], appended: list[tuple[int, int]]
) -> None:
    """An ome-zarr-py pyramid (floor(n / 2)) went on with ceil-shaped levels: (22, 17) gave
    (11, 9), where its own levels continue with (11, 8)."""
    data = np.random.default_rng(3).integers(0, 1000, shapes[0], dtype=np.uint16)
    write_pyramid(tmp_path / "img.zarr", shapes, data)
    async with ngio_async.open_async(tmp_path / "img.zarr", mode="r+") as ds:
        await ds.build_pyramid(levels=4)
        assert [lvl.shape for lvl in ds.levels] == [*shapes, *appended]
        if shapes[1] == (22, 17):  # whole 2x2 windows of the level above (floor: none partial)
            above = await ds.levels[1].read(tuple(slice(0, n) for n in shapes[1]))
            got = await ds.levels[2].read((slice(0, 11), slice(0, 8)))
            want = above[:22, :16].reshape(11, 2, 8, 2).astype(float).mean(axis=(1, 3))
            np.testing.assert_allclose(got, want, atol=1)


# ---------------------------------------------------------------- axes without a type
@pytest.mark.parametrize("version", ["0.4", "0.5"])
@pytest.mark.parametrize("form", ["no type", "names"])
def test_axes_without_a_type_are_typed_by_their_names(
    tmp_path: Path, version: str, form: str
) -> None:
    """Axes written as ``{"name": "y"}`` (the JSON schema lets them pass; ome-zarr-py reads
    them) or as bare names (NGFF 0.3) were refused ("expected 2 or 3 axes of type 'space',
    got 0"): they open typed by their names, with a warning; ``validate`` still refuses."""
    axes: list[Any] = (
        [{"name": "c"}, {"name": "y", "unit": "micrometer"}, {"name": "x"}]
        if form == "no type"
        else ["c", "y", "x"]
    )
    ms: dict[str, Any] = {
        "axes": axes,
        "datasets": [
            {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 0.5, 0.5]}]}
        ],
    }
    if version == "0.4":
        ms["version"] = "0.4"
    path = tmp_path / "img.zarr"
    g = zarr.open_group(path, mode="w", zarr_format=2 if version == "0.4" else 3)
    write_image(g, {"multiscales": [ms]}, version)
    ds, before = open_mended(path, version, "axes without a type read by their names")
    with ds:
        got = [(a.name, a.type) for a in ds.metadata.multiscale.axes]
        assert got == [("c", "channel"), ("y", "space"), ("x", "space")]
        assert ds.metadata.multiscale.axes[1].unit == ("micrometer" if form == "no type" else None)
        assert int(ds.read(c=1)[0, 0]) == 2  # (an int selection drops the axis)
    assert snapshot(path) == before


def test_axes_with_unknown_names_and_no_type_are_still_refused(tmp_path: Path) -> None:
    ms: dict[str, Any] = {
        "version": "0.4",
        "axes": [{"name": "p"}, {"name": "q"}],
        "datasets": [
            {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1]}]}
        ],
    }
    path = tmp_path / "img.zarr"
    g = zarr.open_group(path, mode="w", zarr_format=2)
    g.create_array("0", data=np.zeros((4, 4), "uint16"))
    g.attrs.put({"multiscales": [ms]})
    with pytest.raises(MetadataError, match="axes"):
        ngio_async.open(path)
