"""The ``ngio-async`` command line: info, validate, convert, bench (through ``main(argv)``, and
once through ``python -m ngio_async`` in a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pytest
import zarr
from cli_run import run

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server


# ------------------------------------------------------------------------------ fixtures
def make_image(url: str, version: str = "0.5", *, labels: bool = True, **options: Any) -> str:
    """A 2-channel czyx image with a 2-level pyramid and (optionally) a label image."""
    data = np.arange(2 * 1 * 96 * 80, dtype=np.uint16).reshape(2, 1, 96, 80)
    with ngio_async.create(
        url,
        shape=data.shape,
        dtype="uint16",
        axes="czyx",
        channels=["DAPI", "GFP"],
        ngff_version=version,
        chunks=(1, 1, 32, 32),
        levels=2,
        **options,
    ) as ds:
        ds.write(data)
        ds.build_pyramid()
        if labels:
            cells = ds.labels.create("cells", dtype="uint32")
            cells.write(np.ones((1, 16, 16), "uint32"), y=slice(0, 16), x=slice(0, 16))
            cells.close()
    return url


def make_plate(root: Path, version: str = "0.5", *, name: str | None = "demo") -> Path:
    """A 2 x 3 plate with wells A/1 (2 fields), A/3 and B/2 (1 field each), via zarr groups."""
    path = root / "plate.ome.zarr"
    rows, cols = ["A", "B"], ["1", "2", "3"]
    wells = {"A/1": ["0", "1"], "A/3": ["0"], "B/2": ["0"]}
    plate: dict[str, Any] = {
        "rows": [{"name": r} for r in rows],
        "columns": [{"name": c} for c in cols],
        "wells": [
            {"path": w, "rowIndex": rows.index(w[0]), "columnIndex": cols.index(w[2])}
            for w in wells
        ],
        "field_count": 2,
    }
    if name is not None:
        plate["name"] = name
    zarr_format: Literal[2, 3] = 3 if version == "0.5" else 2

    def attrs(key: str, body: dict[str, Any]) -> dict[str, Any]:
        if version == "0.5":
            return {"ome": {"version": "0.5", key: body}}
        return {key: {**body, "version": "0.4"}}

    top = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    top.attrs.update(attrs("plate", plate))
    for well, fields in wells.items():
        row, col = well.split("/")
        group = top.require_group(row).require_group(col)
        group.attrs.update(attrs("well", {"images": [{"path": f} for f in fields]}))
        for field in fields:
            make_image(
                str(path / row / col / field), version, labels=field == "0" and well == "A/1"
            )
    return path


@pytest.fixture(autouse=True)
def _no_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    """Progress bars are exercised explicitly; elsewhere they would only clutter stderr."""
    monkeypatch.setenv("NGIO_ASYNC_NO_PROGRESS", "1")


# ------------------------------------------------------------------------------ info
@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_info_image(tmp_path: Path, capsys: pytest.CaptureFixture[str], version: str) -> None:
    url = make_image(str(tmp_path / "img.ome.zarr"), version)
    code, out, err = run(["info", url], capsys)
    assert code == 0, err
    assert f"NGFF {version}" in out
    assert "level 0: shape 2x1x96x80  chunks 1x1x32x32" in out
    assert "level 1: shape 2x1x48x40" in out
    assert "DAPI" in out and "GFP" in out
    assert "label cells" in out
    assert ("zstd" in out) and ("stored" in out)
    assert ("shards" in out) == (version == "0.5")

    code, out, err = run(["info", "--json", url], capsys)
    assert code == 0, err
    info = json.loads(out)
    assert info["kind"] == "image"
    image = info["image"]
    assert image["ngff_version"] == version
    assert [a["name"] for a in image["axes"]] == ["c", "z", "y", "x"]
    assert [lvl["shape"] for lvl in image["levels"]] == [[2, 1, 96, 80], [2, 1, 48, 40]]
    lvl0 = image["levels"][0]
    assert lvl0["chunks"] == [1, 1, 32, 32]
    assert lvl0["dtype"] == "uint16"
    assert lvl0["decoded_bytes"] == 2 * 96 * 80 * 2
    assert lvl0["stored_bytes"] > 0
    assert lvl0["zarr_format"] == (3 if version == "0.5" else 2)
    assert any("zstd" in c for c in lvl0["codecs"])
    if version == "0.5":
        assert lvl0["shards"] is not None and lvl0["codecs"][0] == "sharding_indexed"
    else:
        assert lvl0["shards"] is None
    assert [c["label"] for c in image["channels"]] == ["DAPI", "GFP"]
    (label,) = image["labels"]
    assert label["name"] == "cells"
    assert label["levels"][0]["shape"] == [1, 96, 80]
    assert label["image_label"] is True

    code, out, _ = run(["info", "--json", "--no-sizes", url], capsys)
    assert code == 0
    assert json.loads(out)["image"]["levels"][0]["stored_bytes"] is None


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_info_plate(tmp_path: Path, capsys: pytest.CaptureFixture[str], version: str) -> None:
    plate = make_plate(tmp_path, version)
    code, out, err = run(["info", str(plate)], capsys)
    assert code == 0, err
    assert "2 rows x 3 columns" in out
    assert "3 wells  4 fields" in out
    assert "A/1: 2 fields" in out
    assert "first field A/1/0" in out
    assert "label cells" in out

    code, out, _ = run(["info", "--json", str(plate)], capsys)
    assert code == 0
    info = json.loads(out)
    assert info["kind"] == "plate"
    p = info["plate"]
    assert (p["rows"], p["columns"], p["name"]) == (["A", "B"], ["1", "2", "3"], "demo")
    assert {w["path"]: w["fields"] for w in p["wells"]} == {
        "A/1": ["0", "1"],
        "A/3": ["0"],
        "B/2": ["0"],
    }
    assert p["fields"] == 4
    assert p["first_field"]["levels"][0]["shape"] == [2, 1, 96, 80]

    # a well on its own
    code, out, _ = run(["info", "--json", str(plate / "A" / "1")], capsys)
    assert code == 0
    assert json.loads(out)["well"]["fields"] == ["0", "1"]


def test_info_s3(
    s3_server: S3Server, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = make_image(s3_server.fresh_url(), "0.5", **s3_server.options())
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_access_key)
    argv = ["info", "--json", url, "--endpoint", s3_server.endpoint, "--region", s3_server.region]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    info = json.loads(out)
    assert info["image"]["levels"][0]["shape"] == [2, 1, 96, 80]
    assert info["image"]["labels"][0]["name"] == "cells"
    assert info["image"]["levels"][0]["stored_bytes"] > 0

    code, _, err = run(["info", url + "-missing", "--endpoint", s3_server.endpoint], capsys)
    assert code == 2
    assert err.startswith("ngio-async: error: not found:") and err.count("\n") == 1


def test_info_plate_with_a_bad_well(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plate = make_plate(tmp_path, "0.5")
    (plate / "A" / "3" / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group"}')
    code, out, err = run(["info", "--no-sizes", str(plate)], capsys)
    assert code == 0, err
    assert "A/3: 0 fields  invalid metadata" in out
    assert "1 wells missing or invalid" in out

    # the first field's label image is broken: shown with its error, the field (its levels,
    # channels) and the rest still described
    (plate / "A" / "1" / "0" / "labels" / "cells" / "zarr.json").write_text("[]")
    code, out, err = run(["info", "--json", "--no-sizes", str(plate)], capsys)
    assert code == 0, err
    info = json.loads(out)["plate"]
    field = info["first_field"]
    assert len(field["levels"]) == 2
    assert [label["name"] for label in field["labels"]] == ["cells"]
    assert "labels/cells/zarr.json" in field["labels"][0]["error"]
    assert info["fields"] == 3

    # the field itself is broken: the plate is still described
    (plate / "A" / "1" / "0" / "zarr.json").write_text("[]")
    code, out, err = run(["info", "--json", "--no-sizes", str(plate)], capsys)
    assert code == 0, err
    info = json.loads(out)["plate"]
    assert "first_field" not in info
    assert info["first_field_error"].startswith("A/1/0: ")


def make_bf2raw(root: Path) -> Path:
    """A bioformats2raw container (NGFF 0.4) with two series and no OME group."""
    path = root / "bf2raw.ome.zarr"
    top = zarr.open_group(str(path), mode="w", zarr_format=2)
    top.attrs["bioformats2raw.layout"] = 3
    for series in ("0", "1"):
        make_image(str(path / series), "0.4", labels=False)
    return path


def test_bioformats2raw(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = make_bf2raw(tmp_path)
    code, out, err = run(["info", "--json", str(path)], capsys)
    assert code == 0, err
    info = json.loads(out)
    assert info["kind"] == "bioformats2raw"
    assert [s["path"] for s in info["series"]] == ["0", "1"]
    code, out, _ = run(["info", str(path)], capsys)
    assert "2 series" in out and "series 1" in out

    code, out, _ = run(["validate", str(path)], capsys)
    assert code == 0, out
    assert "3 groups checked" in out
    (path / "1" / ".zattrs").write_text('{"multiscales": []}')
    code, out, _ = run(["validate", str(path)], capsys)
    assert code == 1
    assert "ERROR 1/.zattrs at `$.multiscales`" in out


def test_bounded_fan_out_never_deadlocks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With one token for the concurrent reads, nested fan-outs (labels, series) still finish."""
    from ngio_async.cli import _info, _validate

    monkeypatch.setattr(_info, "_CONCURRENCY", 1)
    monkeypatch.setattr(_validate, "_CONCURRENCY", 1)
    for path in (make_plate(tmp_path), make_bf2raw(tmp_path)):
        code, out, err = run(["info", "--json", str(path)], capsys)
        assert code == 0, err
        code, out, err = run(["validate", str(path)], capsys)
        assert code == 0, out + err


# ------------------------------------------------------------------------------ validate
def test_validate_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = make_image(str(tmp_path / "img.ome.zarr"), "0.4")
    code, out, err = run(["validate", image], capsys)
    assert code == 0, out + err
    assert "valid: 3 groups checked, 0 errors, 0 warnings" in out  # image, labels, cells

    plate = make_plate(tmp_path, "0.5")
    code, out, err = run(["validate", str(plate)], capsys)
    assert code == 0, out + err
    # plate + 3 wells + 4 fields + labels group + 1 label image
    assert "valid: 10 groups checked, 0 errors, 0 warnings" in out

    code, out, _ = run(["validate", "--quiet", str(plate)], capsys)
    assert (code, out) == (0, "")


def test_validate_corrupt_well(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plate = make_plate(tmp_path, "0.5")
    key = plate / "A" / "3" / "zarr.json"
    doc = json.loads(key.read_text())
    doc["attributes"]["ome"]["well"]["images"] = []  # minLength 1
    key.write_text(json.dumps(doc))
    # and a level whose dimension_names contradict the axes (a cross-node rule)
    level = plate / "B" / "2" / "0" / "1" / "zarr.json"
    doc = json.loads(level.read_text())
    doc["dimension_names"] = ["c", "z", "x", "y"]
    level.write_text(json.dumps(doc))

    code, out, err = run(["validate", str(plate)], capsys)
    assert code == 1, out + err
    assert "ERROR A/3/zarr.json at `$.attributes.ome.well.images`" in out
    assert "ERROR B/2/0/1" in out and "dimension_names" in out
    assert "INVALID" in out and "2 errors" in out

    code, out, _ = run(["validate", "--json", str(plate)], capsys)
    assert code == 1
    report = json.loads(out)
    assert report["valid"] is False
    assert {(e["key"], e["path"]) for e in report["errors"]} >= {
        ("A/3/zarr.json", "$.attributes.ome.well.images")
    }

    # --depth 0: the plate's own metadata only
    code, out, _ = run(["validate", "--depth", "0", str(plate)], capsys)
    assert code == 0, out
    assert "1 groups checked" in out


def test_validate_missing_well_and_04(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plate = make_plate(tmp_path, "0.4")
    for name in (".zattrs", ".zgroup"):
        (plate / "B" / "2" / name).unlink()
    zattrs = plate / "A" / "1" / "0" / ".zattrs"
    doc = json.loads(zattrs.read_text())
    doc["multiscales"][0]["axes"][2]["name"] = "x"  # duplicate axis name
    zattrs.write_text(json.dumps(doc))
    code, out, _ = run(["validate", str(plate)], capsys)
    assert code == 1
    assert "ERROR B/2: missing well" in out
    assert "ERROR A/1/0/.zattrs at `$.multiscales[0].axes[3].name`" in out or (
        "ERROR A/1/0/.zattrs at `$.multiscales[0].axes" in out
    )


def test_warnings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """SHOULD-level findings are warnings: printed, not failing; ``--quiet`` hides them."""
    url = make_image(str(tmp_path / "img.ome.zarr"), "0.4", labels=False)
    zattrs = tmp_path / "img.ome.zarr" / ".zattrs"
    doc = json.loads(zattrs.read_text())
    doc["multiscales"][0]["axes"][3]["unit"] = "furlong"
    zattrs.write_text(json.dumps(doc))
    code, out, _ = run(["validate", url], capsys)
    assert code == 0
    assert "WARNING .zattrs at `$.multiscales[0].axes[3].unit`" not in out  # path is in the text
    assert "WARNING .zattrs: unit 'furlong'" in out and "1 warnings" in out
    code, out, err = run(["info", url], capsys)
    assert code == 0 and "furlong" in out
    assert err.startswith("ngio-async: warning: unit 'furlong'")
    code, out, err = run(["info", "-q", url], capsys)
    assert (code, err) == (0, "")


def test_validate_strict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plate = make_plate(tmp_path, "0.5", name=None)
    code, out, _ = run(["validate", "--depth", "0", str(plate)], capsys)
    assert code == 0
    code, out, _ = run(["validate", "--strict", "--depth", "0", str(plate)], capsys)
    assert code == 1
    assert "ERROR zarr.json at `$.attributes.ome.plate.name`" in out
    assert "strict profile" in out and "(strict)" in out


# ------------------------------------------------------------------------------ errors
def test_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "nope.ome.zarr")
    for argv in (["info", missing], ["validate", missing], ["bench", missing]):
        code, out, err = run(argv, capsys)
        assert code == 2, argv
        assert out == ""
        assert err.startswith("ngio-async: error: not found:"), err
        assert err.count("\n") == 1 and "Traceback" not in err

    (tmp_path / "empty").mkdir()
    code, _, err = run(["validate", str(tmp_path / "empty")], capsys)
    assert code == 2 and "no OME-Zarr group" in err

    plate = make_plate(tmp_path)
    code, _, err = run(["bench", str(plate)], capsys)
    assert code == 2 and err.startswith("ngio-async: error: unsupported:")

    code, _, err = run(["info", "ftp://host/x"], capsys)
    assert code == 2 and err.startswith("ngio-async: error: unsupported:")

    code, _, err = run([], capsys)  # usage error: argparse
    assert code == 2 and "ngio-async: error:" in err
    code, _, err = run(["validate", "x", "--depth", "-1"], capsys)
    assert code == 2

    code, out, _ = run(["--version"], capsys)
    assert code == 0 and out.strip() == f"ngio-async {ngio_async.__version__}"


def test_invalid_metadata_in_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = make_image(str(tmp_path / "img.ome.zarr"), "0.5", labels=False)
    (tmp_path / "img.ome.zarr" / "zarr.json").write_text("{not json")
    code, _, err = run(["info", url], capsys)
    assert code == 1
    assert err.startswith("ngio-async: error: invalid metadata:") and err.count("\n") == 1


# ------------------------------------------------------------------------------ bench
def test_bench(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = make_image(str(tmp_path / "img.ome.zarr"), "0.5", labels=False)
    code, out, err = run(["bench", url, "--quiet"], capsys)
    assert code == 0, err
    assert " MB/s decoded: " in out and " tiles, " in out and " s (level 0" in out
    assert err == ""

    code, out, _ = run(["bench", url, "--level", "1", "--prefetch", "2", "--json"], capsys)
    assert code == 0
    result = json.loads(out)
    assert result["decoded_bytes"] == 2 * 48 * 40 * 2
    assert result["tiles"] >= 1 and result["mb_per_s"] > 0

    monkeypatch.delenv("NGIO_ASYNC_NO_PROGRESS")  # the progress bar goes to stderr
    code, out, err = run(["bench", url], capsys)
    assert code == 0 and "MB/s" in out
    assert "level 0" in err

    code, _, err = run(["bench", url, "--level", "5"], capsys)
    assert code == 2 and "the image has 2 levels" in err


# ------------------------------------------------------------------------------ convert
def test_convert_wiring(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The options reach ``ngio_async.convert`` / ``convert_many`` as the API documents them."""
    calls: list[tuple[Any, Any, dict[str, Any]]] = []

    async def fake_convert(src: Any, dst: Any, **options: Any) -> Any:
        calls.append((src, dst, options))
        return SimpleNamespace(dst=dst, ngff_version="0.5", shape=(2, 64, 64), levels=3)

    async def fake_many(srcs: Any, dst_dir: Any, **options: Any) -> dict[str, Any]:
        calls.append((srcs, dst_dir, options))
        return {
            srcs[0]: SimpleNamespace(dst=f"{dst_dir}/a.ome.zarr", skipped=True),
            srcs[1]: ngio_async.NotFoundError("no such file: b.tif"),
        }

    monkeypatch.setattr(ngio_async, "convert", fake_convert, raising=False)
    monkeypatch.setattr(ngio_async, "convert_many", fake_many, raising=False)
    argv = ["convert", "in.tif", "out.ome.zarr", "--ngff-version", "0.5", "--chunks", "1,64,64"]
    argv += ["--shards", "none", "--compressor", "none", "--levels", "3", "--overwrite"]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    assert out == "wrote out.ome.zarr, NGFF 0.5, shape 2x64x64, 3 levels\n"
    src, dst, options = calls.pop()
    assert (src, dst) == ("in.tif", "out.ome.zarr")
    assert options == {
        "ngff_version": "0.5",
        "chunks": (1, 64, 64),
        "shards": False,
        "compressor": False,
        "levels": 3,
        "overwrite": True,
    }
    code, out, err = run(["convert", "x.tif", "out", "--shards", "1x128x128", "-q"], capsys)
    assert (code, out) == (0, "")
    assert calls.pop()[2]["shards"] == (1, 128, 128)

    code, out, err = run(["convert", "a.tif", "b.tif", "outdir", "--compressor", "zstd"], capsys)
    assert code == 2
    srcs, dst_dir, options = calls.pop()
    assert (srcs, dst_dir, options["compressor"]) == (["a.tif", "b.tif"], "outdir", "zstd")
    assert out == "skipped outdir/a.ome.zarr (complete already)\n"
    assert err == "ngio-async: error: b.tif: not found: no such file: b.tif\n"

    code, _, err = run(["convert", "a.tif", "out", "--chunks", "1,x"], capsys)
    assert code == 2 and "invalid shape" in err
    code, _, err = run(["convert", "a.tif"], capsys)
    assert code == 2 and "the following arguments are required: DST" in err
    code, _, err = run(["convert", "in.tif", "--levels", "2", "out.ome.zarr", "-q"], capsys)
    assert code == 0, err  # options between SRC and DST ('unrecognized arguments: out...')
    src, dst, options = calls.pop()
    assert (src, dst, options["levels"]) == ("in.tif", "out.ome.zarr", 2)


def test_convert_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_image(str(tmp_path / "src.ome.zarr"), "0.4")
    dst = str(tmp_path / "dst.ome.zarr")
    argv = ["convert", src, dst, "--ngff-version", "0.5", "--chunks", "1,1,16,16"]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    assert out.startswith("wrote ")
    with ngio_async.open(dst) as ds:
        assert ds.metadata.ngff_version == "0.5"
        assert ds.levels[0].chunks == (1, 1, 16, 16)
        assert ds.labels.names() == ["cells"]
    code, _, err = run(["convert", src, dst], capsys)
    assert code == 2 and err.startswith("ngio-async: error: exists:")
    code, out, _ = run(["validate", dst], capsys)
    assert code == 0, out


def test_convert_store_options(
    tmp_path: Path,
    s3_server: S3Server,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--endpoint / --region (as for info, validate, bench) reach the s3:// SRC and DST."""
    url = make_image(s3_server.fresh_url() + "/img.ome.zarr", "0.5", **s3_server.options())
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_access_key)
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ALLOW_HTTP"):
        monkeypatch.delenv(name, raising=False)
    store = ["--endpoint", s3_server.endpoint, "--region", s3_server.region]
    local = str(tmp_path / "local.ome.zarr")
    code, out, err = run(["convert", url, local, "--ngff-version", "0.4", *store], capsys)
    assert code == 0, err
    assert out.startswith(f"wrote {local}, NGFF 0.4")
    with ngio_async.open(local) as ds, ngio_async.open(url, **s3_server.options()) as orig:
        np.testing.assert_array_equal(np.asarray(ds), np.asarray(orig))
        assert ds.labels.names() == ["cells"]
    back = s3_server.fresh_url() + "/back.ome.zarr"
    code, out, err = run(["convert", local, back, "--ngff-version", "0.5", "-q", *store], capsys)
    assert (code, out) == (0, ""), err
    with ngio_async.open(back, **s3_server.options()) as ds:
        assert ds.metadata.ngff_version == "0.5"
        assert ds.shape == (2, 1, 96, 80)

    code, _, err = run(["convert", local, str(tmp_path / "y.zarr"), *store], capsys)
    assert code == 2
    assert "are for s3://, gs:// or az:// URLs, and no SRC or DST is one" in err
    code, _, err = run(["convert", url, local, str(tmp_path / "many"), *store], capsys)
    assert code == 2 and "apply to every SRC" in err


def test_convert_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_image(str(tmp_path / "src.ome.zarr"), "0.5")
    dst = tmp_path / "dst.ome.zarr"
    code, out, err = run(["convert", src, str(dst), "--chunks", "2,1,1,64,64"], capsys)
    assert (code, out) == (2, "")
    assert err.startswith(
        "ngio-async: error: chunks (2, 1, 1, 64, 64) has 5 values: expected 4 or fewer positive "
        "integers (one per axis ['c', 'z', 'y', 'x']"
    )
    code, _, err = run(["convert", src, str(dst), "--shards", "2,1,1,64,64"], capsys)
    assert code == 2 and "shards (2, 1, 1, 64, 64) has 5 values: expected 4 or fewer" in err
    assert not dst.exists()  # nothing left behind

    with ngio_async.open(src) as ds:
        before = np.asarray(ds)
    code, _, err = run(["convert", src, f"file://{src}/", "--overwrite"], capsys)
    assert code == 2 and "is the source" in err and err.count("\n") == 1
    with ngio_async.open(src) as ds:
        np.testing.assert_array_equal(np.asarray(ds), before)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["convert", "a.zarr", "b.zarr", "--levels", "-2"], "expected an integer >= 1, got -2"),
        (["convert", "a.zarr", "b.zarr", "--levels", "0"], "expected an integer >= 1, got 0"),
        (["convert", "a.zarr", "b.zarr", "--levels", "x"], "expected an integer, got 'x'"),
        (["bench", "a.zarr", "--prefetch", "-3"], "expected an integer >= 1, got -3"),
    ],
)
def test_positive_options_name_their_minimum(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(argv, capsys)
    assert (code, out) == (2, "")
    assert err.splitlines()[-1].endswith(message)


# ------------------------------------------------------------------------------ subprocess
def test_python_m(tmp_path: Path) -> None:
    url = make_image(str(tmp_path / "img.ome.zarr"), "0.5")
    env = {**os.environ, "NGIO_ASYNC_NO_PROGRESS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "ngio_async", "info", "--json", url],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["image"]["labels"][0]["name"] == "cells"

    proc = subprocess.run(
        [sys.executable, "-m", "ngio_async", "validate", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith("ngio-async: error: not found:")
    assert proc.stderr.count("\n") == 1


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_failed_requests_exit_with_the_commands_status() -> None:
    """After failed S3 requests the process exits 2, never with obstore's SIGABRT (134), which
    interpreter finalization used to trigger in about 1 run of 4."""
    port = _closed_port()
    cmd = [sys.executable, "-m", "ngio_async", "info", "s3://bucket/x.zarr"]
    cmd += ["--endpoint", f"http://127.0.0.1:{port}", "--anonymous"]
    env = {**os.environ, "NGIO_ASYNC_NO_PROGRESS": "1"}
    # six processes at once: each spends most of its life importing and in retry backoff
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(6)
    ]
    for proc in procs:
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 2, (proc.returncode, stderr[-500:])
        assert stderr.startswith("ngio-async: error: ")
        assert "zarr.json" in stderr


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_validate_a_label_image_with_fewer_levels_than_its_image(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], version: str
) -> None:
    image = make_image(str(tmp_path / "img.ome.zarr"), version)
    attrs_key = "labels/cells/" + (".zattrs" if version == "0.4" else "zarr.json")
    doc = json.loads((tmp_path / "img.ome.zarr" / attrs_key).read_text())
    ome = doc if version == "0.4" else doc["attributes"]["ome"]
    datasets = ome["multiscales"][0]["datasets"]
    assert len(datasets) > 1
    del datasets[-1]  # the label image loses its last level; the image keeps all of them
    (tmp_path / "img.ome.zarr" / attrs_key).write_text(json.dumps(doc))
    code, out, err = run(["validate", image], capsys)
    assert code == 1, out + err
    assert f"ERROR {attrs_key} at `" in out and "one level per image level" in out


def test_validate_paths_point_into_the_file_they_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = make_image(str(tmp_path / "img.ome.zarr"), "0.5")
    root = tmp_path / "img.ome.zarr"
    doc = json.loads((root / "zarr.json").read_text())
    doc["attributes"]["ome"]["version"] = "0.9"
    (root / "zarr.json").write_text(json.dumps(doc))
    code, out, _ = run(["validate", image], capsys)
    assert code == 1
    assert "ERROR zarr.json at `$.attributes.ome.version`: unknown NGFF version '0.9'" in out
    doc["attributes"]["ome"]["version"] = "0.5"
    (root / "zarr.json").write_text(json.dumps(doc))
    (root / "0" / "zarr.json").write_text("[1, 2]")  # a level's array metadata is no object
    code, out, _ = run(["validate", image], capsys)
    assert code == 1
    assert "ERROR 0/zarr.json at `$`" in out


def test_validate_a_hierarchy_mixing_ngff_versions_is_invalid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = make_image(str(tmp_path / "img.ome.zarr"), "0.5")
    # the label image's group rewritten as NGFF 0.4 (.zattrs) below a 0.5 image
    label = tmp_path / "img.ome.zarr" / "labels" / "cells"
    ome = json.loads((label / "zarr.json").read_text())["attributes"]["ome"]
    del ome["version"]
    for ms in ome["multiscales"]:
        ms["version"] = "0.4"
    ome["image-label"]["version"] = "0.4"
    (label / "zarr.json").unlink()
    (label / ".zgroup").write_text('{"zarr_format": 2}')
    (label / ".zattrs").write_text(json.dumps(ome))
    code, out, _ = run(["validate", image], capsys)
    assert code == 1
    assert "ERROR labels/cells/.zattrs" in out and "differs from its parent" in out


def test_a_tiff_is_benched_and_named_as_a_tiff_by_info_and_validate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import tifffile

    tif = tmp_path / "cells.tif"
    tifffile.imwrite(
        tif, np.arange(3 * 40 * 50, dtype=np.uint16).reshape(3, 40, 50), photometric="minisblack"
    )
    code, out, err = run(["bench", "--json", "--quiet", str(tif)], capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["decoded_bytes"] == 3 * 40 * 50 * 2 and report["level"] == 0
    for command in ("info", "validate"):
        code, out, err = run([command, str(tif)], capsys)
        assert code == 2 and "is a TIFF file" in err and "convert" in err, err


def test_convert_a_missing_or_undecodable_tiff(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import tifffile

    dst = tmp_path / "out.ome.zarr"
    code, out, err = run(["convert", str(tmp_path / "nope.tif"), str(dst)], capsys)
    assert (code, out) == (2, "")  # not found: no "cannot decode" (invalid data, exit 1)
    assert err == f"ngio-async: error: not found: no such TIFF file: {tmp_path}/nope.tif\n"
    odd = tmp_path / "odd.tif"
    tifffile.imwrite(odd, np.ones((20, 30), "uint16"), photometric="minisblack")
    with tifffile.TiffFile(odd, mode="r+") as tif:
        page = tif.pages[0]
        assert isinstance(page, tifffile.TiffPage)
        page.tags["Compression"].overwrite(60000)
    code, out, err = run(["convert", str(odd), str(dst)], capsys)
    assert (code, out) == (2, "")
    assert err.startswith("ngio-async: error: unsupported: cannot decode") and "odd.tif" in err
    assert not dst.exists()


def test_info_piped_is_one_line_per_level(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = make_image(str(tmp_path / "img.ome.zarr"), "0.5", labels=False)
    with ngio_async.open(url, mode="r+") as ds:
        ds.labels.create("nuclei-segmentation-v2", dtype="uint32").close()
    code, out, _ = run(["info", url], capsys)
    assert code == 0
    levels = [line for line in out.splitlines() if "level " in line and "shape" in line]
    assert len(levels) == 4  # 2 image levels, 2 label levels; none wrapped onto a next line
    assert max(len(line) for line in levels) > 200
    assert all(line.rstrip().endswith("B") for line in levels)  # "... stored 1.2 KiB"


def test_convert_expands_a_quoted_glob_and_names_compressors_in_any_case(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[Any, Any, dict[str, Any]]] = []

    async def fake_many(srcs: Any, dst_dir: Any, **options: Any) -> dict[str, Any]:
        calls.append((srcs, dst_dir, options))
        return {s: SimpleNamespace(dst=f"{dst_dir}/x.ome.zarr", skipped=True) for s in srcs}

    monkeypatch.setattr(ngio_async, "convert_many", fake_many)
    for name in ("b.tif", "a.tif", "c.png"):
        (tmp_path / name).write_bytes(b"")
    # a pattern no shell expanded (quoted, or Windows): its matches, into the directory DST,
    # even when one file matches
    for pattern, found in (("*.tif", ["a.tif", "b.tif"]), ("b*.tif", ["b.tif"])):
        code, _, err = run(["convert", str(tmp_path / pattern), "out", "-q"], capsys)
        assert code == 0, err
        srcs, dst, _ = calls.pop()
        assert (srcs, dst) == ([str(tmp_path / f) for f in found], "out")
    code, out, err = run(["convert", str(tmp_path / "*.jpg"), "out"], capsys)
    assert (code, out, calls) == (2, "", [])
    assert err == f"ngio-async: error: not found: no file or directory matches '{tmp_path}/*.jpg'\n"

    code, _, err = run(["convert", "a.tif", "b.tif", "out", "--compressor", "ZSTD"], capsys)
    assert code == 0 and calls.pop()[2]["compressor"] == "zstd"
    code, out, err = run(["convert", "a.tif", "b.tif", "out", "--compressor", "lz4"], capsys)
    assert (code, out, calls) == (2, "", [])
    assert err == "ngio-async: error: --compressor 'lz4': expected zstd, blosc-zstd, gzip or none\n"


def test_convert_onto_an_existing_image_says_use_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_image(str(tmp_path / "src.ome.zarr"), "0.5", labels=False)
    dst = make_image(str(tmp_path / "dst.ome.zarr"), "0.5", labels=False)
    code, out, err = run(["convert", src, dst], capsys)
    assert (code, out) == (2, "")
    assert err.startswith("ngio-async: error: exists: ") and "use --overwrite" in err
    assert "overwrite=True" not in err and err.count("overwrite") == 1  # one advice, the CLI's


@pytest.mark.parametrize(("version", "zarr_format"), [("0.4", 3), ("0.5", 2)])
def test_validate_names_a_level_in_the_wrong_zarr_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], version: str, zarr_format: Literal[2, 3]
) -> None:
    """0.4 metadata over zarr v3 arrays (zarr-python 3's default format) was 'level missing'."""
    path = tmp_path / "img.zarr"
    group = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    group.create_array("0", shape=(16, 16), dtype="uint8", chunks=(16, 16))
    ms: dict[str, Any] = {
        "axes": [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
        "datasets": [
            {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1]}]}
        ],
    }
    if version == "0.4":
        group.attrs.update({"multiscales": [{**ms, "version": "0.4"}]})
    else:
        group.attrs.update({"ome": {"version": "0.5", "multiscales": [ms]}})
    code, out, _ = run(["validate", str(path)], capsys)
    assert code == 1
    found, needed = ("zarr.json", ".zarray") if version == "0.4" else (".zarray", "zarr.json")
    assert out.splitlines()[0] == (
        f"ERROR 0/{found}: level '0' is a zarr v{zarr_format} array: NGFF {version} needs "
        f"zarr v{5 - zarr_format} ({needed})"
    )


@pytest.mark.parametrize("command", ["info", "validate", "bench"])
def test_store_options_on_a_local_path_name_the_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    url = make_image(str(tmp_path / "img.ome.zarr"), "0.5", labels=False)
    code, out, err = run([command, url, "--region", "eu-west-1", "--allow-http"], capsys)
    assert (code, out) == (2, "")  # the API's names ('region', 'allow_http') were printed
    assert err == (
        f"ngio-async: error: --region, --allow-http: for s3://, gs:// or az:// URLs, and {url} "
        "is none\n"
    )


def test_convert_one_src_into_an_existing_directory_keeps_what_it_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``convert scan.tif out/ --overwrite`` deleted everything in out/ (earlier conversions,
    other files) and wrote the image as out/ itself; it goes inside, as out/scan.ome.zarr."""
    import tifffile

    data = np.arange(2 * 40 * 30, dtype="uint16").reshape(2, 40, 30)
    tifffile.imwrite(tmp_path / "scan.tif", data, photometric="minisblack")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    earlier = make_image(str(out / "earlier.ome.zarr"), "0.5", labels=False)
    for extra in ([], ["--overwrite"]):
        code, stdout, err = run(["convert", str(tmp_path / "scan.tif"), f"{out}/", *extra], capsys)
        assert code == 0, err
        assert stdout.startswith(f"wrote {out}/scan.ome.zarr, NGFF 0.5")
    assert (out / "notes.txt").read_text() == "keep me"
    with ngio_async.open(earlier) as ds:
        assert ds.shape == (2, 1, 96, 80)
    with ngio_async.open(str(out / "scan.ome.zarr")) as ds:
        np.testing.assert_array_equal(np.asarray(ds), data)
    assert not (out / "zarr.json").exists()


def test_info_describes_an_image_whose_label_image_is_broken(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing level of a label image made ``info`` of the whole image fail (exit 2)."""
    url = make_image(str(tmp_path / "img.ome.zarr"), "0.5")
    import shutil

    shutil.rmtree(tmp_path / "img.ome.zarr" / "labels" / "cells" / "1")
    code, out, err = run(["info", "--no-sizes", url], capsys)
    assert code == 0, err
    assert "level 1: shape 2x1x48x40" in out  # the image is described
    lines = [line for line in out.splitlines() if "label cells" in line]
    assert len(lines) == 1 and "labels/cells/1/zarr.json does not exist" in lines[0]


def test_an_unknown_option_is_reported_under_its_commands_usage(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(["bench", "a.zarr", "--levle", "2"], capsys)
    assert (code, out) == (2, "")
    assert err.startswith("usage: ngio-async bench ")  # was the top-level usage
    assert err.splitlines()[-1] == "ngio-async bench: error: unrecognized arguments: --levle 2"


def test_info_names_numcodecs_and_checksum_codecs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from zarr.codecs import numcodecs as znc

    root = tmp_path / "img.zarr"
    axes = [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
    scale = [{"type": "scale", "scale": [1.0, 1.0]}]
    ms: dict[str, Any] = {
        "axes": axes,
        "datasets": [{"path": "0", "coordinateTransformations": scale}],
    }
    zarr.open_group(root, mode="w", attributes={"ome": {"version": "0.5", "multiscales": [ms]}})
    with warnings.catch_warnings():  # numcodecs.* codecs are not in the zarr v3 spec
        warnings.simplefilter("ignore")
        arr = zarr.create_array(
            zarr.storage.LocalStore(root / "0"),
            shape=(8, 8),
            chunks=(4, 4),
            dtype="u2",
            filters=[znc.Delta(dtype="u2")],
            compressors=[znc.Zlib(level=1), zarr.codecs.Crc32cCodec()],
        )
        arr[...] = 1
    code, out, err = run(["info", str(root)], capsys)
    assert code == 0, err
    assert "numcodecs.delta" in out and "numcodecs.zlib" in out and "crc32c" in out
