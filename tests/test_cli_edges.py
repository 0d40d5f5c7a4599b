"""``ngio-async info|validate|bench`` on odd but real inputs: several multiscales, a URL naming
a group's document, label images of NGFF 0.4 on a remote store, versions not read yet."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from cli_run import run

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

    from servers import StaticServer


@pytest.fixture(autouse=True)
def _no_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NGIO_ASYNC_NO_PROGRESS", "1")


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
    to give instead (a 0.4 level said only "neither zarr.json nor .zattrs exists"). ``info``
    describes the level instead (see ``test_info_of_a_level_names_its_image``)."""
    path = image(tmp_path / "img.zarr", version)
    for command in ("bench",) + (("validate",) if version == "0.4" else ()):
        code, _, err = run([command, str(path / "1")], capsys)
        assert code in (1, 2) and err.count("\n") == 1
        assert "array" in err and f"is it file://{path}?" in err, err


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_info_of_a_level_names_its_image(
    tmp_path: Path,
    version: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``info img.zarr/1`` said "invalid metadata ... is an array ... is it <parent>?" (0.5)
    or "no NGFF metadata found" / "neither zarr.json nor .zattrs" (0.4): it says which level
    of which image it is and what to run, and describes the array; a label image's level
    too, and a level whose path is not its index."""
    path = image(tmp_path / "img.zarr", version, levels=3)
    monkeypatch.chdir(tmp_path)
    code, out, err = run(["info", "img.zarr/1"], capsys)
    assert code == 0, err
    assert "level 1 of the image at img.zarr" in out and "ngio-async info img.zarr`" in out, out
    assert "shape 8x8  uint8" in out and f"zarr v{3 if version == '0.5' else 2}" in out, out
    code, out, _ = run(["info", "--json", str(path / "2")], capsys)
    doc = json.loads(out)
    assert code == 0 and doc["kind"] == "level", doc
    assert doc["level_of"] == {
        "image": str(path),
        "url": f"file://{path}",
        "path": "2",
        "index": 2,
        "ngff_version": version,
    }
    assert doc["array"]["shape"] == [4, 4] and doc["array"]["dtype"] == "uint8"

    with ngio_async.open(str(path), mode="r+") as ds:
        ds.labels.create("cells", dtype="uint16")
    code, out, err = run(["info", "img.zarr/labels/cells/0/"], capsys)
    assert code == 0 and "level 0 of the image at img.zarr/labels/cells" in out, out + err

    edit_ngff(
        path,
        version,
        lambda body: body["multiscales"][0]["datasets"].insert(
            0, {**body["multiscales"][0]["datasets"][0], "path": "full"}
        ),
    )
    (path / "1").rename(path / "full")  # not a valid pyramid any more: only its paths matter
    code, out, err = run(["info", "img.zarr/full"], capsys)
    assert code == 0 and "level 0 of the image at img.zarr (path full)" in out, out + err


def test_info_of_a_level_over_http_names_its_image(
    http_root: Path, http_server: StaticServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Over HTTP (a store that cannot list) the image above a level is found by its URL."""
    image(http_root / "lvl.zarr", "0.5")
    code, out, err = run(["info", "--json", f"{http_server.url}lvl.zarr/1"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["kind"] == "level" and doc["array"]["shape"] == [8, 8], doc
    assert doc["level_of"]["image"] == f"{http_server.url}lvl.zarr", doc
    assert doc["level_of"]["index"] == 1 and doc["array"]["stored_bytes"] is None


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_info_of_a_plain_zarr_array_says_so(
    tmp_path: Path, zarr_format: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """A zarr array outside any image: a plain zarr v2/v3 array of its shape and dtype (v3
    said "is an array ... is it file://<its directory>?", v2 "no NGFF metadata found")."""
    import zarr

    path = tmp_path / "plain.zarr"
    zarr.create_array(
        str(path),
        shape=(10, 20),
        chunks=(5, 5),
        dtype="int16",
        zarr_format=zarr_format,  # type: ignore[arg-type]
    )
    code, out, err = run(["info", str(path)], capsys)
    assert code == 0, err
    assert f"plain zarr v{zarr_format} array" in out and "shape 10x20  int16" in out, out
    assert "chunks 5x5" in out and "of the image" not in out, out
    code, out, _ = run(["info", "--json", "--no-sizes", str(path)], capsys)
    doc = json.loads(out)
    assert code == 0 and doc["kind"] == "array" and "level_of" not in doc
    assert doc["array"]["zarr_format"] == zarr_format and doc["array"]["shape"] == [10, 20]
    assert doc["array"]["stored_bytes"] is None and doc["array"]["objects"] == 8


def test_info_reads_a_04_hierarchy_without_asking_for_05_documents(
    http_root: Path, http_server: StaticServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Over HTTP, the children of a 0.4 group (label images, wells, fields) are read as 0.4:
    no ``zarr.json`` request below the root (each label image and field cost two, each
    well one)."""
    from test_cli import make_plate

    path = http_root / "img.zarr"
    with ngio_async.create(str(path), shape=(8, 8), dtype="uint8", axes="yx", ngff_version="0.4"):
        pass
    with ngio_async.open(str(path), mode="r+") as ds:
        ds.labels.create("cells", dtype="uint8").close()
        ds.labels.create("nuclei", dtype="uint8").close()
    plate = make_plate(http_root, "0.4")
    for url, name in (
        (f"{http_server.url}img.zarr", "img.zarr"),
        (http_server.url + plate.name, plate.name),
    ):
        http_server.reset()
        code, out, err = run(["info", "--json", "--no-sizes", url], capsys)
        assert code == 0, err
        v3 = sorted(r.path for r in http_server.requests if r.path.endswith("/zarr.json"))
        assert v3 == [f"/{name}/zarr.json"], v3
    info = json.loads(out)["plate"]
    assert [w["fields"] for w in info["wells"]] == [["0", "1"], ["0"], ["0"]]
    assert info["first_field"]["labels"][0]["name"] == "cells"


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_validate_reads_each_document_once(
    http_root: Path, http_server: StaticServer, version: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Over HTTP, ``validate`` asks for each group's and array's document once (the labels
    group was probed with two HEADs, then read; a 0.4 child was asked for a zarr.json first)."""
    path = image(http_root / "img.zarr", version, levels=1)
    with ngio_async.open(str(path), mode="r+") as ds:
        ds.labels.create("cells", dtype="uint8").close()
    image(http_root / "bare.zarr", version, levels=1)  # no labels group: both documents miss
    v3 = version == "0.5"
    group, array = ("zarr.json", "zarr.json") if v3 else (".zattrs", ".zarray")
    v2 = [] if v3 else ["zarr.json", ".zgroup"]  # the root's version is not known yet
    expected = {
        "img.zarr": [group, f"0/{array}", f"labels/{group}", f"labels/cells/{group}"]
        + [f"labels/cells/0/{array}"]
        + v2
        + ([] if v3 else ["labels/.zgroup", "labels/cells/.zgroup"]),
        "bare.zarr": [group, f"0/{array}", "labels/zarr.json", "labels/.zattrs", *v2],
    }
    for name, keys in expected.items():
        http_server.reset()
        code, out, err = run(["validate", "--json", f"{http_server.url}{name}"], capsys)
        assert code == 0 and json.loads(out)["valid"], err
        seen = [r.path for r in http_server.requests]
        assert sorted(set(seen)) == sorted(f"/{name}/{k}" for k in keys), (seen, keys)
        assert len(seen) <= len(keys) + 1  # the store confirms its first miss once
        assert {r.method for r in http_server.requests} == {"GET"}  # no HEAD, then GET


@pytest.mark.parametrize("url", ["s3://bucket/img.zarr", "gs://bucket/img.zarr", "az://c/img.zarr"])
def test_missing_credentials_are_explained_in_the_command_lines_words(url: str) -> None:
    """The stores' advice names ``anonymous=True`` and ``access_key_id=``-style keywords; the
    command line says ``--anonymous`` and the environment variables only."""
    from obstore import exceptions as obs_exc

    from ngio_async.cli._common import describe_error
    from ngio_async.stores import open_store

    options: dict[str, Any] = {"account_name": "acct"} if url.startswith("az") else {}
    store = open_store(url, **options)
    fetch = "Generic error: PUT http://169.254.169.254/latest/api/token: status 403"
    with pytest.raises(ngio_async.PermissionDeniedError) as info:  # noqa: SIM117
        with store._map_exceptions("zarr.json"):
            raise obs_exc.GenericError(fetch)
    assert info.value.missing_credentials
    code, message = describe_error(info.value)
    assert code == 2 and message.startswith("permission denied: no credentials for")
    assert "--anonymous" in message and "=" not in message.split("(Generic")[0], message


def test_validate_refuses_a_version_it_does_not_read_rather_than_calling_it_invalid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An NGFF 0.7 image is not invalid: ``validate`` cannot check it (exit 2, one line;
    it printed "INVALID" and exited 1). Inside a 0.5 hierarchy it stays an error. (0.6 is
    read and validated: tests/test_ngff06_read.py.)"""
    attrs = {"ome": {"version": "0.7", "multiscales": []}}
    path = image(tmp_path / "img.zarr", levels=1)
    doc = json.loads((path / "zarr.json").read_text())
    (path / "zarr.json").write_text(json.dumps({**doc, "attributes": attrs}))
    for argv in (["validate", str(path)], ["validate", "--json", str(path)], ["info", str(path)]):
        code, out, err = run(argv, capsys)
        assert (code, out) == (2, ""), (argv, code, out)
        assert err.startswith("ngio-async: error: unsupported: ") and err.count("\n") == 1
        assert f"{path}/zarr.json: NGFF version '0.7" in err

    outer = image(tmp_path / "outer.zarr", levels=1)
    with ngio_async.open(str(outer), mode="r+") as ds:
        ds.labels.create("cells", dtype="uint8").close()
    label = outer / "labels" / "cells" / "zarr.json"
    label.write_text(json.dumps({**json.loads(label.read_text()), "attributes": attrs}))
    code, out, _ = run(["validate", str(outer)], capsys)
    assert code == 1 and "ERROR labels/cells/zarr.json: NGFF version '0.7" in out


def test_validate_leaves_stderr_empty_when_it_is_no_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a terminal, no spinner: it left an empty line on stderr (in CI logs)."""
    monkeypatch.delenv("NGIO_ASYNC_NO_PROGRESS")
    code, out, err = run(["validate", str(image(tmp_path / "img.zarr", levels=1))], capsys)
    assert (code, err) == (0, "") and "valid" in out


@pytest.mark.parametrize("command", ["info", "validate", "bench"])
def test_a_scheme_without_its_colon_is_named(
    tmp_path: Path,
    command: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``s3//bucket/img.zarr`` said "no such directory: <cwd>/s3/bucket/img.zarr"; a local
    directory so named is still read."""
    monkeypatch.chdir(tmp_path)
    code, out, err = run([command, "s3//bucket/img.zarr"], capsys)
    assert (code, out) == (2, "")
    assert err == (
        "ngio-async: error: s3//bucket/img.zarr: no such local path, and not a URL (no ':' "
        "after the scheme): did you mean s3://bucket/img.zarr?\n"
    )
    image(tmp_path / "s3" / "bucket" / "img.zarr", levels=1)
    assert run([command, "s3//bucket/img.zarr"], capsys)[0] == 0


def test_validate_requires_the_zgroup_of_a_04_group(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``.zattrs`` without ``.zgroup`` is no zarr v2 group (zarr-python raises
    GroupNotFoundError, ome-zarr-py finds nothing): invalid (it passed as valid)."""
    path = image(tmp_path / "img.zarr", "0.4", levels=1)
    with ngio_async.open(str(path), mode="r+") as ds:
        ds.labels.create("cells", dtype="uint8").close()
    (path / ".zgroup").unlink()
    (path / "labels" / "cells" / ".zgroup").write_text('{"zarr_format": 3}')
    code, out, _ = run(["validate", str(path)], capsys)
    assert code == 1
    missing = (
        "ERROR .zgroup: missing: a zarr v2 group needs a .zgroup beside its .zattrs "
        "(zarr-python and ome-zarr-py find no group without it)"
    )
    wrong = 'ERROR labels/cells/.zgroup at `$.zarr_format`: a zarr v2 group document is {"zarr_format": 2}'
    assert out.splitlines()[:2] == [missing, wrong]


def test_counts_of_one_are_singular(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``1 level``, ``1 object``, ``1 tile`` (it printed ``1 levels``, ``1 objects``)."""
    path = str(image(tmp_path / "img.zarr", levels=1))
    code, out, _ = run(["info", "--no-sizes", path], capsys)
    assert code == 0 and "  1 level  " in out and "  1 object  " in out
    code, out, _ = run(["bench", path], capsys)
    assert code == 0 and " decoded: 1 tile, " in out
    code, _, err = run(["bench", path, "--level", "1"], capsys)
    assert code == 2 and err.endswith("the image has 1 level\n")


def test_info_describes_a_well_whose_first_field_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As for a plate: the well is described and the field's error shown (it exited 2 with
    only the error)."""
    with ngio_async.create_plate(str(tmp_path / "p.zarr"), rows=["A"], columns=["1"]) as plate:
        plate.add_image("A", "1", field="0", shape=(8, 8), dtype="uint8", axes="yx").close()
    well = tmp_path / "p.zarr" / "A" / "1"
    edit_ngff(well, "0.5", lambda b: b["well"]["images"].insert(0, {"path": "9"}))
    code, out, err = run(["info", "--no-sizes", str(well)], capsys)
    assert code == 0, err
    assert "fields: 9, 0" in out and "first field: 9: no OME-Zarr group at" in out
    code, out, _ = run(["info", "--json", "--no-sizes", str(well)], capsys)
    assert json.loads(out)["well"]["first_field_error"].startswith("9: no OME-Zarr group")


def test_info_describes_a_container_or_labels_group_with_a_broken_member(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A listed series or a label image that is missing its level is shown with its error
    and the others are described (as an image's broken label image is; it exited 2)."""
    import shutil

    from test_validate_bf2raw import container

    path = container(tmp_path, "0.5", ome={"series": ["0", "1"]})
    shutil.rmtree(path / "1" / "0")
    code, out, err = run(["info", "--no-sizes", str(path)], capsys)
    assert code == 0, err
    assert "series 0  NGFF 0.5" in out and "series 1: level '0' of file://" in out

    img = image(tmp_path / "img.zarr", levels=1)
    with ngio_async.open(str(img), mode="r+") as ds:
        ds.labels.create("a", dtype="uint8").close()
        ds.labels.create("b", dtype="uint8").close()
    shutil.rmtree(img / "labels" / "b" / "0")
    code, out, err = run(["info", "--json", "--no-sizes", str(img / "labels")], capsys)
    assert code == 0, err
    a, b = json.loads(out)["labels"]
    assert a["levels"][0]["shape"] == [16, 16] and b["error"].startswith("level '0' of file://")


def test_a_stalled_server_fails_within_the_timeout_given(
    http_root: Path, http_server: StaticServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--timeout`` / ``--retries`` bound the wait for a server that does not answer (it was
    five attempts of 30 s each, with no way to shorten them)."""
    from servers import Faults

    image(http_root / "img.zarr", levels=1)
    for command in ("info", "validate", "bench"):
        http_server.reset()
        http_server.faults = Faults(delay=1.0)  # the server's stop waits for the last answer
        argv = [command, f"{http_server.url}img.zarr", "--timeout", "0.1", "--retries", "1"]
        code, out, err = run(argv, capsys)
        assert (code, out) == (2, "")
        assert err.startswith("ngio-async: error: timed out: ") and "zarr.json" in err, err
        assert http_server.count("GET", "/img.zarr/zarr.json") == 2  # the try and one retry


def test_info_names_a_label_image_as_such(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``info img.zarr/labels/cells`` says ``label image`` (it said ``image``)."""
    path = image(tmp_path / "img.zarr", levels=1)
    with ngio_async.open(str(path), mode="r+") as ds:
        ds.labels.create("cells", dtype="uint8").close()
    code, out, _ = run(["info", "--no-sizes", str(path / "labels" / "cells")], capsys)
    assert code == 0 and out.splitlines()[1].startswith("└── label image  NGFF 0.5"), out


async def test_validate_on_a_store_that_denies_missing_keys(tmp_path: Path) -> None:
    """S3 without s3:ListBucket answers 403 for a missing key: a 0.4 hierarchy (no zarr.json
    anywhere) validates, a missing .zgroup is reported as missing; it failed as "permission
    denied" on the root's zarr.json. A root that cannot be read at all is still the error."""
    from ngio_async.cli._common import describe_error
    from ngio_async.cli._validate import _Walker
    from ngio_async.stores import InstrumentedStore, open_store

    path = image(tmp_path / "img.zarr", "0.4", levels=1)
    with ngio_async.open(str(path), mode="r+") as ds:
        ds.labels.create("cells", dtype="uint8").close()

    def deny_missing(method: str, key: str) -> BaseException | None:
        if (path / key).exists():
            return None
        return ngio_async.PermissionDeniedError(f"access denied (HTTP 403) to {key!r}", key=key)

    async def check(root: Path) -> list[str]:
        store = InstrumentedStore(open_store(str(root)), fail=deny_missing)
        async with store:
            report = await _Walker(store, strict=False, depth=None, on_node=None).run()
        return [p.line() for p in report.problems]

    assert await check(path) == []
    (path / "labels" / ".zgroup").unlink()
    missing = (
        "ERROR labels/.zgroup: missing: a zarr v2 group needs a .zgroup beside its .zattrs "
        "(zarr-python and ome-zarr-py find no group without it)"
    )
    assert await check(path) == [missing]
    (path / "empty").mkdir()
    with pytest.raises(Exception) as info:  # the walker's task group may wrap it
        await check(path / "empty")
    assert describe_error(info.value) == (
        2,
        "permission denied: access denied (HTTP 403) to 'zarr.json'",
    )


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_info_on_a_store_that_denies_missing_keys(
    tmp_path: Path, version: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The series of a container without an ``OME/series`` list are probed up to the first
    missing one: a 403 there (S3 without s3:ListBucket) ends the list (it failed the whole
    command as "permission denied")."""
    from test_validate_bf2raw import container

    from ngio_async.cli import _info
    from ngio_async.stores import InstrumentedStore, open_store

    path = container(tmp_path, version)

    def deny_missing(method: str, key: str) -> BaseException | None:
        if (path / key).exists():
            return None
        return ngio_async.PermissionDeniedError(f"access denied (HTTP 403) to {key!r}", key=key)

    def store(url: str, **options: Any) -> InstrumentedStore:
        return InstrumentedStore(open_store(url, **options), fail=deny_missing)

    monkeypatch.setattr(_info, "open_store", store)
    info = await _info.gather_info(str(path), sizes=False)
    assert [s["path"] for s in info["series"]] == ["0", "1"]


def test_an_existing_node_gets_the_overwrite_hint(tmp_path: Path) -> None:
    """An image where an image is created: ``--overwrite`` replaces it (the API's
    ``pass overwrite=True`` said in the command line's words, or appended)."""
    from ngio_async.cli._common import describe_error

    url = str(image(tmp_path / "img.zarr"))
    with pytest.raises(ngio_async.ExistsError) as info:
        ngio_async.create(url, shape=(4, 4), dtype="uint8", axes="yx")
    assert info.value.kind == "node" and info.value.overwrite_replaces
    code, message = describe_error(info.value)
    assert code == 2 and message.startswith("exists: ") and "overwrite=True" not in message
    assert message.endswith("; use --overwrite to replace it"), message
    bare = ngio_async.ExistsError("labels/a exists", kind="node")
    assert describe_error(bare) == (2, "exists: labels/a exists (use --overwrite)")


def test_a_file_in_the_way_is_named_without_the_overwrite_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file where the destination directory goes: ``--overwrite`` never replaces it, and
    the message says so in the command line's words."""
    src = image(tmp_path / "img.zarr")
    (tmp_path / "afile").write_text("x")
    code, _, err = run(["convert", str(src), str(tmp_path / "afile")], capsys)
    assert code == 2 and "exists: the destination" in err and "is a file" in err, err
    assert "(--overwrite replaces zarr nodes, never other files)" in err, err
    assert "use --overwrite" not in err and "overwrite=True" not in err


async def test_a_parent_array_gets_no_overwrite_hint(tmp_path: Path) -> None:
    """An image created inside a zarr array: ``--overwrite`` does not help (it was told to
    use it; the array is the parent, which overwrite never replaces)."""
    from ngio_async.cli._common import describe_error
    from ngio_async.stores import open_store

    image(tmp_path / "img.zarr")
    async with open_store(str(tmp_path)) as store:
        for overwrite in (False, True):
            with pytest.raises(ngio_async.ExistsError) as info:
                await ngio_async.create_async(
                    store, path="img.zarr/0/sub", shape=(4, 4), dtype="uint8", axes="yx",
                    overwrite=overwrite,
                )  # fmt: skip
            assert info.value.kind == "parent" and not info.value.overwrite_replaces
            code, message = describe_error(info.value)
            assert code == 2 and "is a zarr array" in message and "overwrite" not in message


def test_error_attributes_survive_pickling() -> None:
    """A worker's error (dask, a process pool) reaches the caller with what the hints use."""
    import pickle

    exists = ngio_async.ExistsError("x", url="file:///a", key="k", kind="file")
    back = pickle.loads(pickle.dumps(exists))
    assert (str(back), back.url, back.key, back.kind) == ("x", "file:///a", "k", "file")
    denied = ngio_async.PermissionDeniedError("no keys", url="s3://b", missing_credentials=True)
    back2 = pickle.loads(pickle.dumps(denied))
    assert back2.missing_credentials and back2.url == "s3://b" and str(back2) == "no keys"
