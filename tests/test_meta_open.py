"""Opening images whose metadata is odd: what is read, what is refused, what is warned about."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from servers import Faults

import ngio_async
from ngio_async import MetadataError
from ngio_async.images._metadata import ImageMetadata
from ngio_async.meta import MetadataWarning, validate
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from pathlib import Path

    from servers import StaticServer


def small_image(path: Path, version: str) -> Path:
    with ngio_async.create(
        str(path),
        shape=(2, 8, 8),
        dtype="uint8",
        axes="cyx",
        channels=["DAPI", "GFP"],
        ngff_version=version,
    ) as ds:
        ds.write(np.arange(128, dtype=np.uint8).reshape(2, 8, 8))
    return path / (".zattrs" if version == "0.4" else "zarr.json")


def edit_ngff(doc_path: Path, version: str, edit: Any) -> dict[str, Any]:
    doc = json.loads(doc_path.read_text())
    edit(doc["attributes"]["ome"] if version == "0.5" else doc)
    doc_path.write_text(json.dumps(doc))
    attrs: dict[str, Any] = doc["attributes"] if version == "0.5" else doc
    return attrs


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("version", ["0.4", "0.5"])
@pytest.mark.parametrize(
    ("channel", "where"),
    [
        (  # a window value not a number (a CSS-style colour or missing min/max are mended)
            {"label": "DAPI", "color": "0000FF", "window": {"min": 0, "max": 9, "start": "a"}},
            ".channels[0].window.start",
        ),
        # (a channel without window or color is mended: tests/test_open_lenient_peers.py)
        ("DAPI", ".channels[0]"),  # not an object
        (
            {
                "label": "DAPI",
                "color": "0000FF",
                "window": {"min": 0, "max": 9, "start": 0, "end": 9},
                "active": "yes",
            },
            ".channels[0].active",
        ),
    ],
)
def test_an_invalid_omero_block_is_warned_about_not_fatal(
    tmp_path: Path, version: str, channel: Any, where: str
) -> None:
    """omero is transitional display metadata: an image whose omero breaks a rule opens
    (without it) with a warning naming the key; ``validate`` still rejects the document."""
    path = tmp_path / "img.zarr"
    doc_path = small_image(path, version)
    attrs = edit_ngff(doc_path, version, lambda ngff: ngff["omero"].update(channels=[channel]))
    with pytest.raises(MetadataError):
        validate(attrs)
    before = snapshot(path)
    prefix = "$.attributes.ome" if version == "0.5" else "$"
    expected = re.escape(f"at `{prefix}.omero{where}`") + ".*without its 'omero'"
    with pytest.warns(MetadataWarning, match=expected):
        ds = ngio_async.open(path)
    with ds:
        assert ds.metadata.channels == []
        assert int(ds[1, 7, 7]) == 127
    assert snapshot(path) == before  # opening changes nothing


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_errors_outside_omero_still_refuse_the_image(tmp_path: Path, version: str) -> None:
    path = tmp_path / "img.zarr"
    doc_path = small_image(path, version)

    def edit(ngff: dict[str, Any]) -> None:
        ngff["omero"]["channels"][0]["color"] = "blue"
        ngff["multiscales"][0]["axes"][1]["name"] = "x"

    edit_ngff(doc_path, version, edit)
    with pytest.raises(MetadataError, match="duplicate axis name 'x'"):
        ngio_async.open(path)


def image_doc(**multiscale: Any) -> dict[str, Any]:
    """A 0.4 cyx image with two levels (scale 1 and 2 in y/x, a half-pixel translation)."""
    axes = [{"name": "c", "type": "channel"}, {"name": "y", "type": "space"}]
    axes.append({"name": "x", "type": "space"})
    datasets = [
        {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 1]}]},
        {
            "path": "1",
            "coordinateTransformations": [
                {"type": "scale", "scale": [1, 2, 2]},
                {"type": "translation", "translation": [0, 0.5, 0.5]},
            ],
        },
    ]
    body = {"version": "0.4", "axes": axes, "datasets": datasets, **multiscale}
    return {"multiscales": [body]}


def test_multiscale_transformations_apply_after_the_levels() -> None:
    doc = image_doc(
        coordinateTransformations=[
            {"type": "scale", "scale": [1, 2, 3]},
            {"type": "translation", "translation": [0, 10, 20]},
        ]
    )
    cal = ImageMetadata(validate(doc)).spatial_calibration
    assert cal[0].scale == (1, 2, 3) and cal[0].translation == (0, 10, 20)
    assert cal[1].scale == (1, 4, 6) and cal[1].translation == (0, 11, 21.5)


@pytest.mark.filterwarnings("ignore:has . values:ngio_async.meta.MetadataWarning")
@pytest.mark.parametrize("outer", [True, False])
def test_a_04_transformation_of_the_wrong_length_is_an_error_naming_it(outer: bool) -> None:
    """NGFF 0.4 only warns; the calibration cannot use it. The multiscale's own scale was
    ignored without a word, a level's was reported at `$.multiscales.datasets[..]`."""
    if outer:
        doc = image_doc(coordinateTransformations=[{"type": "scale", "scale": [2, 3]}])
        where = "$.multiscales[0].coordinateTransformations[0].scale"
    else:
        doc = image_doc()
        doc["multiscales"][0]["datasets"][1]["coordinateTransformations"][1]["translation"] = [1, 2]
        where = "$.multiscales[0].datasets[1].coordinateTransformations[1].translation"
    with pytest.raises(MetadataError, match=r"has \d values for 3 axes") as info:
        ImageMetadata(validate(doc))
    assert info.value.path == where


def test_a_transformation_stored_in_a_binary_file_is_warned_about() -> None:
    """Such vectors are not read: identity, said (it was taken as identity silently)."""
    doc = image_doc(coordinateTransformations=[{"type": "scale", "path": "scale.bin"}])
    with pytest.warns(MetadataWarning, match="stored in a binary file") as record:
        cal = ImageMetadata(validate(doc)).spatial_calibration
    assert len(record) == 1  # once for the multiscale, not once per level
    assert "`$.multiscales[0].coordinateTransformations[0].scale`" in str(record[0].message)
    assert cal[1].scale == (1, 2, 2)


def test_a_channel_label_shared_by_two_channels_selects_nothing() -> None:
    """It selected the first of them, without a word."""
    doc = image_doc()
    window = {"min": 0, "max": 255, "start": 0, "end": 255}
    doc["omero"] = {
        "channels": [
            {"label": "DAPI", "color": "0000FF", "window": window},
            {"label": "DAPI", "color": "00FF00", "window": window},
            {"label": "GFP", "color": "00FF00", "window": window},
        ]
    }
    meta = ImageMetadata(validate(doc))
    assert meta.channel_index("GFP") == 2
    with pytest.raises(KeyError, match=r"'DAPI' is ambiguous: channels \[0, 1\]"):
        meta.channel_index("DAPI")
    with pytest.raises(KeyError, match="no channel labelled 'RFP'"):
        meta.channel_index("RFP")


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_level_errors_name_the_array_document_and_its_field(tmp_path: Path, version: str) -> None:
    """They named the image group and `$` (the rule broken is in a level's array metadata)."""
    path = tmp_path / "img.zarr"
    with ngio_async.create(
        str(path), shape=(2, 16, 16), dtype="uint8", axes="cyx", ngff_version=version, levels=2
    ):
        pass
    key = path / "1" / (".zarray" if version == "0.4" else "zarr.json")
    original = json.loads(key.read_text())
    doc = json.loads(key.read_text())
    if version == "0.4":
        doc.update(shape=[8, 8], chunks=doc["chunks"][1:])
    else:
        doc.update(shape=[8, 8], dimension_names=["y", "x"])
        grid = doc["chunk_grid"]["configuration"]
        grid["chunk_shape"] = grid["chunk_shape"][1:]
    key.write_text(json.dumps(doc))
    with pytest.raises(MetadataError, match="level '1' has 2 dimensions") as info:
        ngio_async.open(path)
    assert str(info.value).startswith(key.as_uri())
    assert info.value.path == "$.shape"
    if version == "0.5":
        key.write_text(json.dumps({**original, "dimension_names": ["c", "x", "y"]}))
        with pytest.raises(MetadataError, match="has dimension_names") as info:
            ngio_async.open(path)
        assert str(info.value).startswith(key.as_uri())
        assert info.value.path == "$.dimension_names"


def test_a_missing_tiff_is_a_missing_file_not_a_missing_zarr_directory(tmp_path: Path) -> None:
    """open('scan.ome.tif') of a file that is not there said 'no such directory'."""
    for url in (tmp_path / "scan.ome.tif", (tmp_path / "scan.TIFF").as_uri()):
        with pytest.raises(ngio_async.NotFoundError, match="no such TIFF file"):
            ngio_async.open(url)
    zarr_named_tif = tmp_path / "odd.tif"  # a directory: OME-Zarr, whatever its name
    small_image(zarr_named_tif, "0.5")
    with ngio_async.open(zarr_named_tif) as ds:
        assert ds.shape == (2, 8, 8)


@pytest.mark.parametrize("path", ["../secret.zarr/0", "/0", "a/../../b", "", ".", "a//b"])
def test_a_dataset_path_must_stay_inside_the_group(tmp_path: Path, path: str) -> None:
    """Such paths reached the store layer: a bare ValueError ('invalid store key'), or a level
    looked up elsewhere ('/0' was read as '0')."""
    doc = image_doc()
    doc["multiscales"][0]["datasets"][1]["path"] = path
    with pytest.raises(MetadataError, match="is not a path inside the group") as info:
        validate(doc)
    assert info.value.path == "$.multiscales[0].datasets[1].path"
    doc_path = small_image(tmp_path / "img.zarr", "0.5")
    edit_ngff(doc_path, "0.5", lambda ngff: ngff["multiscales"][0]["datasets"][0].update(path=path))
    with pytest.raises(MetadataError, match=r"datasets\[0\]\.path"):
        ngio_async.open(tmp_path / "img.zarr")


def test_labels_and_series_entries_stay_inside_the_group() -> None:
    with pytest.raises(MetadataError, match="not a path inside") as info:
        validate({"ome": {"version": "0.5", "labels": ["cells", "../../other/labels/x"]}})
    assert info.value.path == "$.ome.labels[1]"
    with pytest.raises(MetadataError, match="not a path inside") as info:
        validate({"series": ["0", "/1"]})
    assert info.value.path == "$.series[1]"
    assert validate({"series": ["0", "a/1"]}).series == ["0", "a/1"]


@pytest.mark.filterwarnings("ignore:has 2 values:ngio_async.meta.MetadataWarning")
async def test_a_04_short_scale_refuses_opening_but_stays_a_warning_in_validation(
    tmp_path: Path,
) -> None:
    """Opening cannot calibrate the levels (an error naming the JSON path); the hierarchy
    validator keeps NGFF 0.4's warning (no error for the levels)."""
    from ngio_async.cli._validate import validate_hierarchy

    doc_path = small_image(tmp_path / "img.zarr", "0.4")
    edit_ngff(
        doc_path,
        "0.4",
        lambda ngff: ngff["multiscales"][0].update(
            coordinateTransformations=[{"type": "scale", "scale": [2, 3]}]
        ),
    )
    with pytest.raises(MetadataError, match="has 2 values for 3 axes") as info:
        await ngio_async.open_async(tmp_path / "img.zarr")
    assert info.value.path == "$.multiscales[0].coordinateTransformations[0].scale"
    report = await validate_hierarchy(str(tmp_path / "img.zarr"))
    assert report.errors == []


def test_a_04_image_opens_where_a_missing_zarr_json_is_denied(
    http_root: Path, http_server: StaticServer
) -> None:
    """S3 answers 403 for a missing key when the reader may not list the bucket: the zarr.json
    probe of a 0.4 image was fatal (PermissionDeniedError)."""
    small_image(http_root / "img.zarr", "0.4")
    url = http_server.url + "img.zarr"
    one = ngio_async.Limits(max_requests=1)  # requests in order: the group's probe goes first
    http_server.faults = Faults(status=403, status_times=1)  # the zarr.json probe
    with ngio_async.open(url, limits=one) as ds:
        assert int(ds[1, 7, 7]) == 127
    group = [r.path for r in http_server.requests if not r.path.startswith("/img.zarr/0/")]
    assert group[:2] == ["/img.zarr/zarr.json", "/img.zarr/.zattrs"]
    # both group documents denied (and the first level's, asked for along with them): said so
    http_server.faults = Faults(status=403, status_times=3)
    with pytest.raises(ngio_async.PermissionDeniedError, match=r"zarr\.json"):
        ngio_async.open(url, limits=one)


def test_the_url_of_a_group_document_opens_its_group(
    tmp_path: Path, http_root: Path, http_server: StaticServer
) -> None:
    """A URL copied from a browser ('.../img.zarr/zarr.json') was 'no such directory'."""
    small_image(tmp_path / "a.zarr", "0.5")
    small_image(http_root / "b.zarr", "0.4")
    urls = [
        str(tmp_path / "a.zarr" / "zarr.json"),
        (tmp_path / "a.zarr" / "zarr.json").as_uri(),
        http_server.url + "b.zarr/.zattrs",
    ]
    for url in urls:
        with ngio_async.open(url) as ds:
            assert ds.shape == (2, 8, 8) and not ds.url.endswith(("zarr.json", ".zattrs"))


def test_04_keys_in_a_zarr_json_are_pointed_at(tmp_path: Path) -> None:
    """A zarr v3 group with 0.4-style attributes (no 'ome') said only 'no ome attributes'."""
    doc_path = small_image(tmp_path / "img.zarr", "0.5")
    doc = json.loads(doc_path.read_text())
    doc["attributes"] = {k: v for k, v in doc["attributes"]["ome"].items() if k != "version"}
    doc_path.write_text(json.dumps(doc))
    with pytest.raises(MetadataError, match="it holds 'multiscales' outside 'ome'") as info:
        ngio_async.open(tmp_path / "img.zarr")
    assert info.value.path == "$.attributes"


async def test_labels_of_a_04_image_where_missing_keys_are_denied(tmp_path: Path) -> None:
    """On a store answering 403 for missing keys, names() of an image without labels raised
    PermissionDeniedError (both documents of the labels group are 'denied')."""
    root = tmp_path / "img.zarr"
    small_image(root, "0.4")

    def fail(method: str, key: str) -> Exception | None:
        if method == "get" and not (root / key).exists():
            return ngio_async.PermissionDeniedError(f"access denied (HTTP 403) to {key!r}")
        return None

    store = InstrumentedStore(open_store(str(root)), fail=fail)
    async with await ngio_async.open_async(store) as ds:
        assert await ds.labels.names() == []
        assert int((await ds.read(c=1))[7, 7]) == 127
    await store.aclose()
