"""Folders of inputs on object stores, as cloud users convert them: ``ngio-async convert
s3://bucket/scans/ out/`` failed with "no OME-Zarr group" (a remote folder was never listed);
now its TIFFs and OME-Zarr directories, and those of its folders, convert into the same folders
under the output, local or on a store, as a local folder's do. A prefix holding no image, an
empty prefix, a bucket that does not exist and an HTTP folder (a server lists none) are one
clear error each."""

from __future__ import annotations

import io
import uuid
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest
import tifffile
from cli_run import run
from servers import AZURITE_ACCOUNT
from tiffs import write_companion_set

import ngio_async
from ngio_async import PermissionDeniedError
from ngio_async.stores import open_store

if TYPE_CHECKING:
    from pathlib import Path

    from servers import AzuriteServer, S3Server, StaticServer


def _plane(k: int) -> np.ndarray[Any, Any]:
    return (np.arange(16 * 20).reshape(16, 20) + k).astype(np.uint16)


def _tiff(k: int, **options: Any) -> bytes:
    buf = io.BytesIO()
    tifffile.imwrite(buf, _plane(k), **options)
    return buf.getvalue()


def upload(url: str, files: dict[str, bytes], options: dict[str, Any]) -> None:
    """Put ``files`` (key -> bytes) under ``url``."""

    async def put() -> None:
        async with open_store(url, **options) as store:
            for key, data in files.items():
                await store.put(key, data)

    anyio.run(put)


def scans(url: str, options: dict[str, Any]) -> None:
    """``url``: a.tif, b.ome.tif, notes.txt, day1/c.tif, day1/x.ome.zarr (an OME-Zarr
    directory), .hidden/d.tif."""
    upload(
        url,
        {
            "a.tif": _tiff(1),
            "b.ome.tif": _tiff(2, ome=True),
            "notes.txt": b"not an image",
            "day1/c.tif": _tiff(3),
            ".hidden/d.tif": _tiff(4),
        },
        options,
    )
    upload(url, {"day1/src.tif": _tiff(5)}, options)
    ngio_async.convert_sync(
        f"{url}/day1/src.tif", f"{url}/day1/x.ome.zarr", src_options=options, dst_options=options
    )
    anyio.run(_delete, url, "day1/src.tif", options)


async def _delete(url: str, key: str, options: dict[str, Any]) -> None:
    async with open_store(url, **options) as store:
        await store.delete(key)


def _s3_env(monkeypatch: pytest.MonkeyPatch, s3: S3Server) -> list[str]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.secret_access_key)
    return ["--endpoint", s3.endpoint, "--region", s3.region]


def _zarrs(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.ome.zarr"))


EXPECTED = ["a.ome.zarr", "b.ome.zarr", "day1/c.ome.zarr", "day1/x.ome.zarr"]


def test_an_s3_folder_converts_into_a_local_folder(
    tmp_path: Path,
    s3_server: S3Server,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    src = s3_server.fresh_url() + "/scans"
    scans(src, s3_server.options())
    out = tmp_path / "out"
    opts = _s3_env(monkeypatch, s3_server)
    code, stdout, err = run(["convert", src + "/", str(out), *opts], capsys)
    assert code == 0, err  # was: "no OME-Zarr group"
    assert _zarrs(out) == EXPECTED
    assert stdout.count("wrote ") == 4, stdout
    assert f"ngio-async: note: no reader for 1 file, left out: {src}/notes.txt" in err
    with ngio_async.open(out / "day1" / "c.ome.zarr") as ds:
        np.testing.assert_array_equal(ds[...], _plane(3))
    with ngio_async.open(out / "day1" / "x.ome.zarr") as ds:
        np.testing.assert_array_equal(ds[...], _plane(5))
    # without the trailing slash, and run again: every output complete, skipped
    code, stdout, err = run(["convert", src, str(out), *opts], capsys)
    assert code == 0, err
    assert stdout.count("skipped ") == 4, stdout


def test_an_s3_folder_converts_to_s3_and_again_with_overwrite(
    s3_server: S3Server, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    base = s3_server.fresh_url()
    src, dst = f"{base}/scans", f"{base}/out"
    scans(src, s3_server.options())
    opts = _s3_env(monkeypatch, s3_server)
    code, stdout, err = run(["convert", src, dst, *opts], capsys)
    assert code == 0, err
    assert sorted(line.split()[1].removeprefix(dst + "/") for line in stdout.splitlines()) == [
        f"{n}," for n in EXPECTED
    ]
    with ngio_async.open(f"{dst}/b.ome.zarr", **s3_server.options()) as ds:
        np.testing.assert_array_equal(ds[...], _plane(2))
    code, stdout, err = run(["convert", "--overwrite", src, dst, *opts], capsys)
    assert code == 0, err
    assert stdout.count("wrote ") == 4 and "skipped" not in stdout, stdout


def test_an_output_inside_the_folder_is_no_input_on_a_rerun(
    s3_server: S3Server, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    src = s3_server.fresh_url()
    upload(src, {"a.tif": _tiff(1), "day1/c.tif": _tiff(3)}, s3_server.options())
    opts = _s3_env(monkeypatch, s3_server)
    for _ in range(2):
        code, stdout, err = run(["convert", src, f"{src}/converted", *opts], capsys)
        assert code == 0, err
        assert len(stdout.splitlines()) == 2, stdout  # not converted/a.ome.zarr as an input
    assert "skipped" in stdout


def test_an_interrupted_folder_conversion_is_redone(
    s3_server: S3Server, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    base = s3_server.fresh_url()
    src, dst = f"{base}/scans", f"{base}/out"
    options = s3_server.options()
    upload(src, {"a.tif": _tiff(1), "b.tif": _tiff(2)}, options)
    ngio_async.convert_sync(
        f"{src}/a.tif", f"{dst}/a.ome.zarr", src_options=options, dst_options=options
    )

    def stop(done: int, total: int) -> None:
        raise RuntimeError("the machine went down")

    with pytest.raises(RuntimeError, match="went down"):  # cut short after its first tile
        ngio_async.convert_sync(
            f"{src}/b.tif",
            f"{dst}/b.ome.zarr",
            src_options=options,
            dst_options=options,
            progress=stop,
            chunks=(4, 4),
        )
    assert not anyio.run(_complete, f"{dst}/b.ome.zarr", options)
    opts = _s3_env(monkeypatch, s3_server)
    code, stdout, err = run(["convert", src, dst, *opts], capsys)
    assert code == 0, err
    assert f"skipped {dst}/a.ome.zarr" in stdout
    assert f"wrote {dst}/b.ome.zarr" in stdout
    with ngio_async.open(f"{dst}/b.ome.zarr", **options) as ds:
        np.testing.assert_array_equal(ds[...], _plane(2))


async def _complete(url: str, options: dict[str, Any]) -> bool:
    from ngio_async.convert import is_complete

    return await is_complete(url, **options)


def test_credentials_as_options_in_the_api(s3_server: S3Server, tmp_path: Path) -> None:
    src = s3_server.fresh_url()
    upload(src, {"a.tif": _tiff(1), "sub/b.tif": _tiff(2)}, s3_server.options())
    results = ngio_async.convert_many_sync(src, tmp_path / "out", src_options=s3_server.options())
    assert sorted(results) == [f"{src}/a.tif", f"{src}/sub/b.tif"]
    assert _zarrs(tmp_path / "out") == ["a.ome.zarr", "sub/b.ome.zarr"]
    with ngio_async.open(tmp_path / "out" / "sub" / "b.ome.zarr") as ds:
        np.testing.assert_array_equal(ds[...], _plane(2))


def test_a_missing_bucket_and_an_empty_prefix(
    tmp_path: Path,
    s3_server: S3Server,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    src = s3_server.fresh_url()
    upload(src, {"a.tif": _tiff(1)}, s3_server.options())
    opts = _s3_env(monkeypatch, s3_server)
    missing = f"s3://no-such-bucket-{src[-6:]}/scans/"
    code, _, err = run(["convert", missing, str(tmp_path / "o"), *opts], capsys)
    assert code == 2, err
    assert err.count("\n") == 1 and "not found" in err and "no-such-bucket" in err, err
    assert not (tmp_path / "o").exists()
    code, _stdout, err = run(["convert", src + "/nothing/", str(tmp_path / "o"), *opts], capsys)
    assert code == 2, err
    assert "nothing there" in err and "/nothing/" in err, err


def test_a_prefix_holding_no_image(
    tmp_path: Path,
    s3_server: S3Server,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    src = s3_server.fresh_url()
    upload(src, {"notes.txt": b"x", "sub/table.csv": b"a,b\n"}, s3_server.options())
    opts = _s3_env(monkeypatch, s3_server)
    code, _stdout, err = run(["convert", src, str(tmp_path / "o"), *opts], capsys)
    assert code == 2, err
    assert err == (
        f"ngio-async: error: {src} holds no image to convert (no TIFF, no OME-Zarr directory)\n"
    )
    assert not (tmp_path / "o").exists()
    results = ngio_async.convert_many_sync(
        [src, f"{src}/notes.txt"], tmp_path / "o", src_options=s3_server.options()
    )
    assert isinstance(results[src], ValueError)


def test_an_http_folder_asks_for_its_files(
    tmp_path: Path,
    http_root: Path,
    http_server: StaticServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (http_root / "scans").mkdir()
    (http_root / "scans" / "a.tif").write_bytes(_tiff(1))
    url = f"{http_server.url}scans/"
    code, _, err = run(["convert", url, str(tmp_path / "o")], capsys)
    assert code == 2, err
    assert "an HTTP server cannot list a folder: name its files" in err, err
    assert err.count("\n") == 1
    code, _stdout, err = run(["convert", url + "a.tif", str(tmp_path / "o")], capsys)
    assert code == 0, err  # its file, named, converts
    assert (tmp_path / "o" / "zarr.json").exists()


def test_an_azure_folder_converts(azurite: AzuriteServer, tmp_path: Path) -> None:
    src = azurite.fresh_url()
    options = azurite.options()
    upload(src, {"a.tif": _tiff(1), "x/b.tif": _tiff(2), "x/readme.md": b"#"}, options)
    results = ngio_async.convert_many_sync(src, tmp_path / "out", src_options=options)
    assert sorted(results) == [f"{src}/a.tif", f"{src}/x/b.tif"], results
    assert _zarrs(tmp_path / "out") == ["a.ome.zarr", "x/b.ome.zarr"]
    dst = azurite.fresh_url()
    again = ngio_async.convert_many_sync(src, dst, src_options=options, dst_options=options)
    assert sorted(str(getattr(r, "dst", r)) for r in again.values()) == [
        f"{dst}/a.ome.zarr",
        f"{dst}/x/b.ome.zarr",
    ]
    with ngio_async.open(f"{dst}/x/b.ome.zarr", **options) as ds:
        np.testing.assert_array_equal(ds[...], _plane(2))


def test_a_memory_url_destination_is_refused_a_memory_store_taken(tmp_path: Path) -> None:
    (tmp_path / "a.tif").write_bytes(_tiff(1))
    for call in (ngio_async.convert_sync, ngio_async.convert_many_sync):
        with pytest.raises(ValueError, match=r"memory://out is a memory:// URL: .* would be lost"):
            call(tmp_path / "a.tif", "memory://out")
    store = open_store("memory://")  # a store object: its output is kept, and opens
    ngio_async.convert_sync(tmp_path / "a.tif", store)
    with ngio_async.open(store) as ds:
        np.testing.assert_array_equal(ds[...], _plane(1))


def test_a_read_only_destination_fails_once_before_the_inputs_are_read(
    azurite: AzuriteServer, tmp_path: Path
) -> None:
    for i in range(4):
        (tmp_path / f"a{i}.tif").write_bytes(_tiff(i))
    endpoint = f"{azurite.endpoint}/{AZURITE_ACCOUNT}"
    sas = azurite.container_sas("rl")  # read and list only
    read_only = {"account_name": AZURITE_ACCOUNT, "endpoint": endpoint, "sas_key": sas}
    dst = azurite.fresh_url()
    results = ngio_async.convert_many_sync(tmp_path, dst, dst_options=read_only, concurrency=1)
    errors = list(results.values())
    assert all(isinstance(e, PermissionDeniedError) for e in errors), errors
    assert "access denied to 'zarr.json'" in str(errors[0]) and "403" in str(errors[0])
    for later in errors[1:]:  # not read: refused at once, naming the first refusal
        assert str(later).startswith(f"not converted: writing to {dst} was refused (access")


def test_an_http_destination_is_refused_before_reading(
    tmp_path: Path, http_server: StaticServer, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.tif").write_bytes(_tiff(1))
    for dst in (f"{http_server.url}out.zarr", f"{http_server.url}out/"):
        code, out, err = run(["convert", str(tmp_path / "a.tif"), dst], capsys)
        assert code == 2 and not out, err
        assert err == (
            f"ngio-async: error: unsupported: the destination {dst} is an http(s):// URL, and "
            "HTTP stores are read-only: write to a path or an object store (s3://, gs://, az://)\n"
        )
    assert http_server.count() == 0  # nothing asked of the server


def test_a_missing_destination_bucket_fails_once(
    s3_server: S3Server,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for i in range(3):
        (tmp_path / f"a{i}.tif").write_bytes(_tiff(i))
    opts = _s3_env(monkeypatch, s3_server)
    dst = f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/out"
    code, out, err = run(["convert", str(tmp_path), dst, *opts], capsys)
    assert code == 2 and not out, err
    assert err.count("\n") == 1, err  # was: one error per input, each after reading it
    assert "not found: the bucket (or container) of " in err and "does not exist" in err


def test_an_earlier_conversion_beside_its_tiff_on_s3_is_no_input(
    s3_server: S3Server, tmp_path: Path
) -> None:
    src, options = s3_server.fresh_url(), s3_server.options()
    upload(src, {"a.tif": _tiff(1), "b.tif": _tiff(2)}, options)
    ngio_async.convert_sync(  # converted where it lies, earlier
        f"{src}/a.tif", f"{src}/a.ome.zarr", src_options=options, dst_options=options
    )
    results = ngio_async.convert_many_sync(src, tmp_path / "out", src_options=options)
    assert sorted(results) == [f"{src}/a.tif", f"{src}/b.tif"], results  # was: refused,
    # "'.../a.ome.zarr', '.../a.tif' would all be written to out/a.ome.zarr"
    assert _zarrs(tmp_path / "out") == ["a.ome.zarr", "b.ome.zarr"]


def test_a_pattern_on_s3_names_the_way(
    s3_server: S3Server,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    src = s3_server.fresh_url()
    upload(src, {"a.tif": _tiff(1)}, s3_server.options())
    opts = _s3_env(monkeypatch, s3_server)
    code, _, err = run(["convert", f"{src}/*.tif", str(tmp_path / "o"), *opts], capsys)
    assert code == 2
    assert "expanded for local paths only: list the URLs, or name their folder" in err, err
    code, out, err = run(["convert", f"{src}/", str(tmp_path / "o"), *opts], capsys)
    assert code == 0 and out.startswith(f"wrote {tmp_path / 'o' / 'a.ome.zarr'}"), err


def test_the_store_from_aws_variables_alone(
    s3_server: S3Server,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    src = s3_server.fresh_url()
    upload(src, {"a.tif": _tiff(1), "d/b.tif": _tiff(2)}, s3_server.options())
    _s3_env(monkeypatch, s3_server)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    monkeypatch.setenv("AWS_ALLOW_HTTP", "true")
    monkeypatch.setenv("AWS_REGION", s3_server.region)
    code, out, err = run(["convert", src, f"{src}-out"], capsys)  # no store options
    assert code == 0, err
    assert out.count("wrote ") == 2, out
    with ngio_async.open(f"{src}-out/d/b.ome.zarr", **s3_server.options()) as ds:
        np.testing.assert_array_equal(ds[...], _plane(2))


def test_a_companion_set_in_an_s3_folder_is_one_input(s3_server: S3Server, tmp_path: Path) -> None:
    local = tmp_path / "set"
    local.mkdir()
    write_companion_set(local, np.stack([_plane(2)] * 3))  # scan.companion.ome + 3 TIFFs
    files = {f"acq/{p.name}": p.read_bytes() for p in local.iterdir()}
    src, options = s3_server.fresh_url(), s3_server.options()
    upload(src, {"a.tif": _tiff(1), **files}, options)
    results = ngio_async.convert_many_sync(src, tmp_path / "out", src_options=options)
    # was: four errors, one per file of the set; the set converts (tests/test_remote2_sets.py)
    assert sorted(results) == [f"{src}/a.tif", f"{src}/acq/scan.companion.ome"], results
    assert _zarrs(tmp_path / "out") == ["a.ome.zarr", "acq/scan.ome.zarr"]
