"""``convert`` keeps what the source said: an OME-Zarr 0.4 -> 0.5 -> 0.4 trip gives back the
same documents (JSON types included: compared as text), array-level attributes go along, and
a label image converted on its own does not keep a link to an image that is not there."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
from cli_run import run

import ngio_async
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

LEVEL_ATTRS = {"acquired": "2026-01-01", "gain": 2.0, "offset": 0, "_ARRAY_DIMENSIONS": ["y", "x"]}


def text(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True)


def read(path: Path) -> Any:
    return json.loads(path.read_text())


def make_04(path: Path) -> None:
    """A 2-level yx 0.4 image with a label image; integer scale, translation and window
    values, ``omero.version``, and each level's own ``.zattrs``."""
    data = np.arange(48 * 40, dtype=np.uint16).reshape(48, 40)
    with ngio_async.create(
        path, shape=data.shape, dtype="uint16", axes="yx", levels=2, ngff_version="0.4"
    ) as ds:
        ds.write(data, pyramid=True)
        with ds.labels.create("cells", dtype="uint16") as label:
            label.write((data % 3).astype("uint16"))
    doc = read(path / ".zattrs")
    ms = doc["multiscales"][0]
    ms["datasets"][0]["coordinateTransformations"] = [
        {"type": "scale", "scale": [2, 0.5]},
        {"type": "translation", "translation": [0, 10]},
    ]
    ms["coordinateTransformations"] = [{"type": "scale", "scale": [1, 1.0]}]
    ms["type"], ms["metadata"] = "gaussian", {"sigma": 2, "order": 0}
    doc["omero"] = {
        "version": "0.4",
        "id": 1,
        "channels": [
            {
                "color": "FF00FF",
                "label": "ch",
                "window": {"min": 0, "max": 65535, "start": 0, "end": 4000},
            }
        ],
    }
    (path / ".zattrs").write_text(json.dumps(doc))
    for level in ("0", "1", "labels/cells/0"):
        (path / level / ".zattrs").write_text(json.dumps({**LEVEL_ATTRS, "level": level}))


def test_04_05_04_gives_back_the_source_documents(tmp_path: Path) -> None:
    src, mid, back = tmp_path / "src.zarr", tmp_path / "mid.zarr", tmp_path / "back.zarr"
    make_04(src)
    ngio_async.convert_sync(src, mid, ngff_version="0.5", chunks=(16, 16))
    ome = read(mid / "zarr.json")["attributes"]["ome"]
    assert "version" not in ome["omero"]  # moved to ome.version
    assert text(ome["omero"]["channels"][0]["window"]) == text(
        {"min": 0, "max": 65535, "start": 0, "end": 4000}
    )
    ngio_async.convert_sync(mid, back, ngff_version="0.4")
    for doc in (".zattrs", "labels/.zattrs", "labels/cells/.zattrs"):
        assert text(read(back / doc)) == text(read(src / doc)), doc


def test_array_attributes_go_along(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A v2 level's ``.zattrs`` was dropped (0.4 -> 0.5 and 0.4 -> 0.4), and a v3 level's
    ``attributes`` too in a 0.4 output. xarray's ``_ARRAY_DIMENSIONS`` is no v3 attribute: a
    v3 array has ``dimension_names``."""
    src = tmp_path / "src.zarr"
    make_04(src)
    copy, as05, again = tmp_path / "copy.zarr", tmp_path / "as05.zarr", tmp_path / "again.zarr"
    ngio_async.convert_sync(src, copy, chunks=(8, 8))
    for level in ("0", "1", "labels/cells/0"):
        assert read(copy / level / ".zattrs") == {**LEVEL_ATTRS, "level": level}
    assert not (copy / "labels/cells/1/.zattrs").exists()  # none in the source: none written
    ngio_async.convert_sync(src, as05, ngff_version="0.5")
    v3 = {k: v for k, v in LEVEL_ATTRS.items() if k != "_ARRAY_DIMENSIONS"}
    meta = read(as05 / "1" / "zarr.json")
    assert text(meta["attributes"]) == text({**v3, "level": "1"})
    assert meta["dimension_names"] == ["y", "x"]
    assert read(as05 / "labels/cells/0/zarr.json")["attributes"]["level"] == "labels/cells/0"
    code, _, err = run(
        ["convert", "--quiet", str(as05), str(again), "--ngff-version", "0.4"], capsys
    )
    assert code == 0, err
    assert text(read(again / "1" / ".zattrs")) == text({**v3, "level": "1"})
    with ngio_async.open(again) as ds, ngio_async.open(src) as orig:
        np.testing.assert_array_equal(ds[...], orig[...])


def test_a_label_image_converted_alone_drops_a_dangling_source_link(tmp_path: Path) -> None:
    src = tmp_path / "src.zarr"
    make_04(src)
    doc = read(src / "labels/cells/.zattrs")
    assert doc["image-label"]["source"] == {"image": "../../"}
    alone = tmp_path / "alone.zarr"
    ngio_async.convert_sync(src / "labels" / "cells", alone)
    label = read(alone / ".zattrs")["image-label"]
    assert "source" not in label  # '../../' of alone.zarr is no image
    assert text(label) == text({k: v for k, v in doc["image-label"].items() if k != "source"})
    # with its image, and onto the label image of another image, the link stays
    whole = tmp_path / "whole.zarr"
    ngio_async.convert_sync(src, whole, ngff_version="0.5")
    attrs = read(whole / "labels/cells/zarr.json")["attributes"]["ome"]["image-label"]
    assert attrs["source"] == {"image": "../../"}
    ngio_async.convert_sync(
        src / "labels" / "cells", whole / "labels" / "cells", ngff_version="0.5", overwrite=True
    )
    attrs = read(whole / "labels/cells/zarr.json")["attributes"]["ome"]["image-label"]
    assert attrs["source"] == {"image": "../../"}


def test_a_source_link_with_other_keys_keeps_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "src.zarr"
    make_04(src)
    doc = read(src / "labels/cells/.zattrs")
    doc["image-label"]["source"]["vendor"] = {"id": 7}
    (src / "labels/cells/.zattrs").write_text(json.dumps(doc))
    alone = tmp_path / "alone.zarr"
    code, _, err = run(["convert", "--quiet", str(src / "labels" / "cells"), str(alone)], capsys)
    assert code == 0, err
    assert read(alone / ".zattrs")["image-label"]["source"] == {"vendor": {"id": 7}}


def test_a_plate_04_05_04_keeps_every_document(tmp_path: Path) -> None:
    """Plate, well and field documents come back as they were (acquisitions, field_count,
    name, unknown keys); a row group's own attributes were dropped (written as a bare group)."""
    src = tmp_path / "plate.zarr"
    with ngio_async.create_plate(src, rows=["A", "B"], columns=["1", "2"], ngff_version="0.4") as p:
        for row, column in (("A", "1"), ("B", "2")):
            with p.add_image(row, column, field="0", shape=(8, 8), dtype="uint8", axes="yx") as f:
                f.write(np.full((8, 8), 3, "uint8"))
    doc = read(src / ".zattrs")
    doc["plate"].update(field_count=1, name="screen", vendor={"a": 1})
    doc["plate"]["acquisitions"] = [{"id": 0, "name": "run", "starttime": 1700000000, "x": 1}]
    (src / ".zattrs").write_text(json.dumps({**doc, "tool": "t"}))
    well = read(src / "A/1/.zattrs")
    well["well"]["images"][0].update(acquisition=0, x=2)
    (src / "A/1/.zattrs").write_text(json.dumps({**well, "wellkey": 4}))
    (src / "A/.zattrs").write_text(json.dumps({"row": "A", "n": 1}))
    mid, back = tmp_path / "mid.zarr", tmp_path / "back.zarr"
    ngio_async.convert_sync(src, mid, ngff_version="0.5")
    assert read(mid / "A/zarr.json")["attributes"] == {"row": "A", "n": 1}
    ngio_async.convert_sync(mid, back, ngff_version="0.4")
    for doc_key in (".zattrs", "A/.zattrs", "A/1/.zattrs", "B/2/.zattrs", "A/1/0/.zattrs"):
        assert text(read(back / doc_key)) == text(read(src / doc_key)), doc_key
    assert not (back / "B/.zattrs").exists()


def test_v3_attributes_are_kept_whole_between_v3_arrays(tmp_path: Path) -> None:
    """Only a v2 array's ``_ARRAY_DIMENSIONS`` stays out of v3 attributes (``dimension_names``
    says it); a v3 level that carries it keeps it, as it keeps everything else."""
    src, out = tmp_path / "src.zarr", tmp_path / "out.zarr"
    with ngio_async.create(src, shape=(16, 16), dtype="uint8", axes="yx") as ds:
        ds.write(np.ones((16, 16), "uint8"))
    meta = read(src / "0" / "zarr.json")
    meta["attributes"] = dict(LEVEL_ATTRS)
    (src / "0" / "zarr.json").write_text(json.dumps(meta))
    ngio_async.convert_sync(src, out, chunks=(8, 8))
    assert text(read(out / "0" / "zarr.json")["attributes"]) == text(LEVEL_ATTRS)


async def test_attributes_read_where_missing_keys_are_denied(tmp_path: Path) -> None:
    """S3 answers 403 for a missing key to a reader without list permission: a level without
    ``.zattrs`` must not fail the conversion (documents only here: a chunk never written,
    all fill value, is another matter)."""
    src = tmp_path / "src.zarr"
    make_04(src)

    def fail(method: str, key: str) -> Exception | None:
        document = key.rsplit("/", 1)[-1] in (".zattrs", ".zgroup", ".zarray", "zarr.json")
        if method == "get" and document and not (src / key).exists():
            return ngio_async.PermissionDeniedError(f"access denied (HTTP 403) to {key!r}")
        return None

    store = InstrumentedStore(open_store(str(src)), fail=fail)
    try:
        await ngio_async.convert(store, tmp_path / "out.zarr", ngff_version="0.5")
    finally:
        await store.aclose()
    assert read(tmp_path / "out.zarr/0/zarr.json")["attributes"]["level"] == "0"
    assert read(tmp_path / "out.zarr/labels/cells/1/zarr.json")["attributes"] == {}
    assert any(k.endswith("labels/cells/1/.zattrs") for _, k in store.calls)
