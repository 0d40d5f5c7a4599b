"""``ngio-async info|validate|bench`` on odd but real inputs: several multiscales, a URL naming
a group's document, label images of NGFF 0.4 on a remote store, versions not read yet."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async
from ngio_async.cli import main

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture(autouse=True)
def _no_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NGIO_ASYNC_NO_PROGRESS", "1")


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def image(path: Path, version: str = "0.5", levels: int = 2) -> Path:
    with ngio_async.create(
        str(path), shape=(16, 16), dtype="uint8", axes="yx", ngff_version=version, levels=levels
    ) as ds:
        ds.write(np.ones((16, 16), "uint8"), pyramid=True)
    return path


def edit_ngff(path: Path, version: str, edit: Any) -> None:
    """Apply ``edit`` to the NGFF body of the group at ``path`` (0.5 ``ome``, 0.4 ``.zattrs``)."""
    name = "zarr.json" if version == "0.5" else ".zattrs"
    doc = json.loads((path / name).read_text())
    edit(doc["attributes"]["ome"] if version == "0.5" else doc)
    (path / name).write_text(json.dumps(doc))


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_validate_checks_the_levels_of_every_multiscale(
    tmp_path: Path, version: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second multiscale (readers may pick one by name) naming a missing level, or levels
    in the wrong order, is invalid (only the first one's levels were read)."""
    path = image(tmp_path / "img.zarr", version)

    def second(body: dict[str, Any], datasets: list[str]) -> None:
        extra = json.loads(json.dumps(body["multiscales"][0]))
        extra["name"] = "other"
        extra["datasets"] = [{**extra["datasets"][0], "path": p} for p in datasets]
        body["multiscales"] = [body["multiscales"][0], extra]

    assert run(["validate", str(path)], capsys)[0] == 0
    edit_ngff(path, version, lambda b: second(b, ["1", "9"]))
    code, out, _ = run(["validate", str(path)], capsys)
    assert code == 1
    level = "9/zarr.json" if version == "0.5" else "9/.zarray"
    assert f"ERROR {level}: level '9' of file://{path} is missing" in out

    edit_ngff(path, version, lambda b: second(b, ["1", "0"]))
    code, out, _ = run(["validate", "--json", str(path)], capsys)
    (error,) = json.loads(out)["errors"]
    assert code == 1 and error["path"].endswith("multiscales[1].datasets")
    assert "level '0' (16, 16) is larger than level '1' (8, 8)" in error["message"]

    edit_ngff(path, version, lambda b: second(b, ["0", "1"]))  # the same levels: fine
    assert run(["validate", str(path)], capsys)[0] == 0


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_a_url_of_the_groups_document_means_the_group(
    tmp_path: Path, version: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``info`` and ``validate`` take ``.../img.zarr/zarr.json`` (pasted from a browser) as
    ``open`` and ``bench`` do (they said "no such directory ... (is a file)")."""
    path = image(tmp_path / "img.zarr", version)
    doc = str(path / ("zarr.json" if version == "0.5" else ".zattrs"))
    code, out, err = run(["info", "--json", "--no-sizes", doc], capsys)
    assert code == 0, err
    assert json.loads(out)["image"]["levels"][0]["shape"] == [16, 16]
    code, out, err = run(["validate", doc], capsys)
    assert code == 0, err
    assert out.startswith(f"file://{path}: valid")


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_a_level_given_for_its_image_names_the_image(
    tmp_path: Path, version: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A zarr array given where an image goes: the message names the array and the group
    to give instead (a 0.4 level said only "neither zarr.json nor .zattrs exists")."""
    path = image(tmp_path / "img.zarr", version)
    for command in ("info", "bench"):
        code, _, err = run([command, str(path / "1")], capsys)
        assert code in (1, 2) and err.count("\n") == 1
        assert "array" in err and f"is it file://{path}?" in err, err
