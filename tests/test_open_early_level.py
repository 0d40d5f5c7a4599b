"""Opening a remote image asks for its first level's metadata along with the group's document
when the store opened an image before (its first level's name and version are the guess: one
round trip fewer for a plate's fields, an image's labels); the first image a store opens is
read with 1 + levels GETs (0.5), nothing guessed, nothing in vain."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import anyio
import numpy as np
import pytest

import ngio_async
from ngio_async.images._open import join
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server


def _gets(store: InstrumentedStore) -> dict[str, int]:
    return {key: n for (method, key), n in store.calls.items() if method == "get"}


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_the_first_level_is_read_with_the_group_once_the_store_knows_it(
    tmp_path: Path, version: str
) -> None:
    for name in ("a.zarr", "b.zarr"):
        url = str(tmp_path / name)
        with ngio_async.create(
            url, shape=(8, 8), dtype="uint8", axes="yx", levels=1, ngff_version=version
        ) as ds:
            ds.write(np.arange(64, dtype="uint8").reshape(8, 8))
    store = InstrumentedStore(open_store(str(tmp_path)), latency=0.05)  # remote-like
    group = "zarr.json" if version == "0.5" else ".zattrs"
    level = "0/zarr.json" if version == "0.5" else "0/.zarray"
    async with store:
        async with ngio_async.open_async(store, path="a.zarr") as ds:
            assert int((await ds.read())[7, 7]) == 63
        first = _gets(store)
        assert first[f"a.zarr/{group}"] == 1 and first[f"a.zarr/{level}"] == 1
        assert "a.zarr/0/zarr.json" not in first or version == "0.5"  # no guess in vain
        store.reset()
        async with ngio_async.open_async(store, path="b.zarr") as ds:
            assert int((await ds.read())[7, 7]) == 63
        gets = _gets(store)
    assert gets[f"b.zarr/{group}"] == 1 and gets[f"b.zarr/{level}"] == 1
    assert "b.zarr/0/zarr.json" not in gets or version == "0.5"  # the guess took the version
    assert store.peak_in_flight >= 2  # group and level documents in flight together


async def test_a_level_not_named_0_opens_without_a_request_in_vain(tmp_path: Path) -> None:
    url = tmp_path / "img.zarr"
    with ngio_async.create(str(url), shape=(8, 8), dtype="uint8", axes="yx", levels=1) as ds:
        ds.write(np.full((8, 8), 5, dtype="uint8"))
    (url / "0").rename(url / "s0")
    doc = json.loads((url / "zarr.json").read_text())
    doc["attributes"]["ome"]["multiscales"][0]["datasets"][0]["path"] = "s0"
    (url / "zarr.json").write_text(json.dumps(doc))
    store = InstrumentedStore(open_store(str(url)), latency=0.01)  # remote-like
    async with store, ngio_async.open_async(store) as ds:
        assert (await ds.read() == 5).all()
    assert _gets(store) == {"zarr.json": 1, "s0/zarr.json": 1, "s0/c/0/0": 1}


@pytest.mark.filterwarnings("ignore:Call to deprecated class Scaler:DeprecationWarning")
async def test_an_ome_zarr_py_05_image_opens_with_1_plus_levels_gets_from_s3(
    tmp_path: Path, s3_server: S3Server
) -> None:
    """ome-zarr-py 0.18 names its levels ``s0``, ``s1``, ...: the group's document and one
    document per level, nothing else (a guess of ``0/zarr.json`` was one GET more)."""
    import zarr
    from ome_zarr.format import FormatV05  # type: ignore[import-untyped]
    from ome_zarr.writer import write_image  # type: ignore[import-untyped]

    data = np.arange(2 * 32 * 48, dtype="uint16").reshape(2, 32, 48)
    group = zarr.open_group(str(tmp_path / "img.zarr"), mode="w", zarr_format=3)
    write_image(data, group, scale_factors=(2, 4), axes="cyx", fmt=FormatV05())
    base = s3_server.fresh_url()
    async with open_store(base, **s3_server.options()) as dst:
        for path in sorted((tmp_path / "img.zarr").rglob("*")):
            if path.is_file():
                await dst.put(str(path.relative_to(tmp_path)), path.read_bytes())
    store = InstrumentedStore(open_store(base, **s3_server.options()))
    async with store, ngio_async.open_async(store, path="img.zarr") as ds:
        gets = _gets(store)
        assert np.array_equal(await ds.read(), data)
    assert [lvl.path for lvl in ds.levels] == ["img.zarr/s0", "img.zarr/s1", "img.zarr/s2"]
    assert gets == {join("img.zarr", p, "zarr.json"): 1 for p in ("", "s0", "s1", "s2")}, gets


async def test_a_missing_image_is_a_plain_not_found(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    store = InstrumentedStore(open_store(str(tmp_path / "empty")))
    async with store:
        with pytest.raises(ngio_async.NotFoundError):  # not an exception group
            await ngio_async.open_async(store)
        assert store.in_flight == 0


async def test_a_group_read_takes_the_early_answer(tmp_path: Path) -> None:
    """A bioformats2raw container's first image has its group document at ``0/zarr.json``
    (0.5), the first level's guess of a store that opened an image with a level ``0``:
    ``read_group_metadata(..., early=)`` takes that answer instead of asking again."""
    from test_validate_bf2raw import container

    from ngio_async.images._open import EarlyGet, first_level_key, read_group_metadata

    path = container(tmp_path, "0.5")
    store = InstrumentedStore(open_store(str(path)), latency=0.01)
    async with store:
        async with ngio_async.open_async(store, path="0"):  # now the store knows the layout
            pass
        store.reset()
        async with anyio.create_task_group() as tg:
            early = EarlyGet(store, first_level_key("", None))
            tg.start_soon(early.run)
            meta = await read_group_metadata(store, "0", early=early)
    assert meta.multiscales is not None
    assert _gets(store) == {"0/zarr.json": 1}


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_a_container_opens_its_first_image_with_the_early_answer(
    tmp_path: Path, version: str
) -> None:
    """Opening a bioformats2raw container reads series 0's group document once (a store that
    opened an image before asks for ``0/zarr.json`` early: that answer is taken)."""
    from test_validate_bf2raw import container

    path = container(tmp_path, version)
    store = InstrumentedStore(open_store(str(path)), latency=0.01)
    async with store, ngio_async.open_async(store) as ds:
        assert ds.shape
    gets = _gets(store)
    assert gets["0/zarr.json"] == 1, gets


def _rename_levels(root: Path, version: str) -> None:
    """Name the levels of the image (and its label images) at ``root`` ``s0``, ``s1``, ..."""
    for group in [root, *(p for p in (root / "labels").glob("*") if p.is_dir())]:
        doc_path = group / ("zarr.json" if version == "0.5" else ".zattrs")
        doc = json.loads(doc_path.read_text())
        ms = (doc["attributes"]["ome"] if version == "0.5" else doc).get("multiscales")
        if not ms:
            continue
        for d in ms[0]["datasets"]:
            (group / d["path"]).rename(group / f"s{d['path']}")
            d["path"] = f"s{d['path']}"
        doc_path.write_text(json.dumps(doc))


def _image_with_label(url: str, version: str, **options: object) -> None:
    with ngio_async.create(
        url, shape=(16, 16), dtype="uint8", axes="yx", levels=2, ngff_version=version, **options
    ) as ds:
        ds.write(np.full((16, 16), 3, dtype="uint8"))
        ds.labels.create("cells").close()


@pytest.mark.parametrize("version", ["0.5", "0.4"])
@pytest.mark.parametrize("named", ["0", "s0"])
async def test_a_label_opens_in_one_request_per_document_over_http(
    tmp_path: Path, version: str, named: str
) -> None:
    """Over HTTP (requests counted by the server), a label image opens with its group
    document and its levels' documents, nothing else: the first level's guess follows the
    image's level names (``s0``: it asked for ``0/zarr.json`` in vain), and a 0.4 label is
    read as 0.4 (no ``zarr.json`` asked for; each of those misses cost two requests)."""
    from servers import StaticServer

    root = tmp_path / "www"
    root.mkdir()
    _image_with_label(str(root / "img.zarr"), version)
    if named == "s0":
        _rename_levels(root / "img.zarr", version)
    server = StaticServer(root).start()
    try:
        async with ngio_async.open_async(server.url + "img.zarr") as ds:
            image = {r.path for r in server.requests}
            server.reset()
            async with ds.labels.open("cells") as label:
                assert label.shape == (16, 16)
            doc = ".zarray" if version == "0.4" else "zarr.json"
            group = ".zattrs" if version == "0.4" else "zarr.json"
            levels = [f"/img.zarr/labels/cells/{p}/{doc}" for p in (named, named[:-1] + "1")]
            seen = [r.path for r in server.requests]
            assert sorted(seen) == sorted([f"/img.zarr/labels/cells/{group}", *levels]), seen
    finally:
        server.stop()
    if version == "0.5" and named == "0":  # the image itself: one request per document
        assert image == {"/img.zarr/zarr.json", "/img.zarr/0/zarr.json", "/img.zarr/1/zarr.json"}


@pytest.mark.parametrize("named", ["0", "s0"])
async def test_images_of_one_s3_store_guess_the_level_names_seen(
    tmp_path: Path, s3_server: S3Server, named: str
) -> None:
    """Two images opened from one S3 store: the second's first-level guess is the first's
    level name; with 0-named levels nothing is asked twice and nothing in vain."""
    local = tmp_path / "src"
    local.mkdir()
    for name in ("a.zarr", "b.zarr"):
        _image_with_label(str(local / name), "0.5")
        if named == "s0":
            _rename_levels(local / name, "0.5")
    base = s3_server.fresh_url()
    async with open_store(base, **s3_server.options()) as dst:
        for path in sorted(local.rglob("*")):
            if path.is_file():
                await dst.put(str(path.relative_to(local)), path.read_bytes())
    store = InstrumentedStore(open_store(base, **s3_server.options()))
    async with store:
        async with ngio_async.open_async(store, path="a.zarr"):
            first = _gets(store)
        store.reset()
        async with ngio_async.open_async(store, path="b.zarr") as ds:
            assert ds.levels[0].path == f"b.zarr/{named}"
    assert _gets(store) == {
        join("b.zarr", p, "zarr.json"): 1 for p in ("", named, named[:-1] + "1")
    }
    # the first open of the store: nothing guessed, nothing asked in vain
    assert first == {join("a.zarr", p, "zarr.json"): 1 for p in ("", named, named[:-1] + "1")}
