"""``ngio-async serve``: name defaults, argument errors, and a real server in a subprocess."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from typing import TYPE_CHECKING

import pytest
from images import Spec, write_image

from ngio_async import create_plate
from ngio_async.cli import main
from ngio_async.cli._serve import default_names

if TYPE_CHECKING:
    from pathlib import Path


def test_default_names() -> None:
    urls = [
        "/data/a.zarr",
        "/other/a.zarr/",
        "s3://bucket/x/b.ome.zarr",
        "http://user:secret@host/c.zarr?x=1",
        "s3://bucket",
        "a.zarr",
    ]
    assert default_names(urls) == [
        "a.zarr",
        "a.zarr-2",
        "b.ome.zarr",
        "c.zarr",
        "bucket",
        "a.zarr-3",
    ]


def test_default_name_of_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = tmp_path / "plate 1.zarr"
    image.mkdir()
    monkeypatch.chdir(image)
    assert default_names([".", "./", f"file://{image.as_posix().replace(' ', '%20')}"]) == [
        "plate 1.zarr",
        "plate 1.zarr-2",
        "plate 1.zarr-3",
    ]


def test_name_count_must_match(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "a.zarr", "b.zarr", "--name", "x"]) == 2
    assert "--name gave 1 names for 2 URLs" in capsys.readouterr().err
    assert main(["serve", "a.zarr", "b.zarr", "--name", "x", "--name", "x"]) == 2
    assert "unique" in capsys.readouterr().err
    assert main(["serve", "a.zarr", "b.zarr", "--name", "x", "y", "z"]) == 2
    assert "--name gave 3 names for 2 URLs" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["4097", "100000000", "0"])
def test_tile_size_is_bounded(
    tmp_path: Path, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--tile-size`` is 1 to 4096 (``ngio_async.web.MAX_TILE_SIZE``): a huge one made every
    tile request read a region of its square. Refused before anything is opened."""
    from ngio_async.cli._common import MAX_TILE_SIZE
    from ngio_async.web import MAX_TILE_SIZE as WEB_MAX

    assert MAX_TILE_SIZE == WEB_MAX == 4096
    code = main(["serve", str(tmp_path / "missing.zarr"), "--port", "0", "--tile-size", value])
    err = capsys.readouterr().err
    assert code == 2
    assert "argument --tile-size" in err and value in err and "not found" not in err, err
    if value != "0":
        assert "from 1 to 4096" in err, err


def test_open_failure_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", str(tmp_path / "missing.zarr"), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ngio-async: error: not found")
    assert "Traceback" not in err and err.count("\n") == 1


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_serve_subprocess(tmp_path: Path, sig: signal.Signals) -> None:
    write_image(tmp_path / "img.zarr", Spec(shape=(2, 64, 64), chunks=(1, 32, 32)))
    code = "import sys; from ngio_async.cli.main import main; sys.exit(main(sys.argv[1:]))"
    argv = [sys.executable, "-c", code, "serve", str(tmp_path / "img.zarr"), "--port", "0"]
    argv += ["--name", "demo", "--max-region-pixels", "100"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = None
        for line in proc.stdout:
            if line.startswith("serving"):
                url = line.split(" at ")[1].strip()
                break
        assert url is not None and url.startswith("http://127.0.0.1:"), proc.stderr
        with urllib.request.urlopen(f"{url}api/datasets", timeout=10) as resp:
            doc = json.load(resp)
        assert [d["name"] for d in doc["datasets"]] == ["demo"]
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"{url}api/datasets/demo/region.npy", timeout=10)
        assert info.value.code == 413
        info.value.close()
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode in (0, 130), err
    assert "Traceback" not in err


def test_serve_plate_subprocess(tmp_path: Path) -> None:
    with create_plate(tmp_path / "hcs.zarr", rows=["A"], columns=["1", "2"]) as plate:
        for column in ("1", "2"):
            plate.add_image("A", column, field="0", shape=(32, 32), dtype="uint8").close()
    code = "import sys; from ngio_async.cli.main import main; sys.exit(main(sys.argv[1:]))"
    argv = [sys.executable, "-c", code, "serve", str(tmp_path / "hcs.zarr"), "--port", "0"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = next((line for line in proc.stdout if line.startswith("serving")), "")
        assert line.startswith("serving 2 dataset(s) (hcs.zarr: a plate of 2 fields) at "), line
        url = line.split(" at ")[1].strip()
        with urllib.request.urlopen(f"{url}api/datasets", timeout=10) as resp:
            doc = json.load(resp)
        assert [d["name"] for d in doc["datasets"]] == ["hcs.zarr/A/1/0", "hcs.zarr/A/2/0"]
        with urllib.request.urlopen(f"{url}api/datasets/hcs.zarr/A/2/0", timeout=10) as resp:
            assert json.load(resp)["plate"] == {
                "name": "hcs.zarr",
                "well": "A/2",
                "field": "0",
                "acquisition": None,
            }
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err


def test_max_open_fields_reaches_the_server(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ngio_async.cli import _serve

    seen: dict[str, object] = {}

    async def fake_serve(datasets: object, host: str, port: int, **kw: object) -> None:
        seen.update(kw)  # where serve_urls would open the datasets and listen

    monkeypatch.setattr(_serve, "serve_urls", fake_serve)
    assert main(["serve", "p.zarr", "--max-open-fields", "3", "--port", "0"]) == 0
    assert seen["max_open_fields"] == 3
    assert main(["serve", "p.zarr", "--max-open-fields", "0"]) == 2
    assert "--max-open-fields" in capsys.readouterr().err


def test_serve_container_subprocess(tmp_path: Path) -> None:
    """A bioformats2raw container: its images are counted and named at start-up (none opened)."""
    from test_validate_bf2raw import container

    path = container(tmp_path, "0.5", ("0", "1"), ome={"series": ["0", "1"]})
    code = "import sys; from ngio_async.cli.main import main; sys.exit(main(sys.argv[1:]))"
    argv = [sys.executable, "-c", code, "serve", str(path), "--port", "0", "--name", "slide"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = next((line for line in proc.stdout if line.startswith("serving")), "")
        assert line.startswith("serving 2 dataset(s) (slide: a container of 2 images) at "), line
        url = line.split(" at ")[1].strip()
        with urllib.request.urlopen(f"{url}api/datasets/slide/1", timeout=10) as resp:
            assert json.load(resp)["container"] == {"name": "slide", "path": "1"}
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
