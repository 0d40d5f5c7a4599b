"""The requests an open makes, on a loopback HTTP server (as the server saw them) and on S3
(moto, counted by the store): GETs only (no HEAD before a GET, no listing), each document
once; NGFF 0.5 with consolidated metadata (zarr-python's ``consolidate_metadata``) reads its
levels from the group's ``zarr.json`` (it read each level's ``zarr.json`` again)."""

from __future__ import annotations

import json
import warnings
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pytest
import zarr
from images import upload

import ngio_async
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server, StaticServer


def _image(path: Path, version: Literal["0.4", "0.5"], *, labels: bool, consolidated: bool) -> None:
    with ngio_async.create(
        path, shape=(2, 32, 32), dtype="uint8", axes="cyx", levels=2, ngff_version=version
    ) as ds:
        ds.write(np.arange(2 * 32 * 32, dtype="uint8").reshape(2, 32, 32), pyramid=True)
        if labels:
            ds.labels.create("cells", dtype="uint8").close()
    if consolidated:
        with warnings.catch_warnings():  # zarr: v3 consolidated metadata is no spec yet
            warnings.simplefilter("ignore")
            zarr.consolidate_metadata(str(path), zarr_format=2 if version == "0.4" else 3)


def _expected(version: str, labels: bool, consolidated: bool) -> list[str]:
    """The documents an open (and, with ``labels``, its label image's open) reads."""
    if version == "0.4":
        keys = ["zarr.json", ".zattrs", "0/.zarray", "1/.zarray"]  # .zmetadata is not read
        if labels:
            keys += ["labels/.zattrs", "labels/cells/.zattrs"]
            keys += ["labels/cells/0/.zarray", "labels/cells/1/.zarray"]
        return sorted(keys)
    keys = ["zarr.json"] if consolidated else ["zarr.json", "0/zarr.json", "1/zarr.json"]
    if labels:  # zarr-python consolidates at the root only: the label image reads its own
        keys += ["labels/zarr.json", "labels/cells/zarr.json"]
        keys += ["labels/cells/0/zarr.json", "labels/cells/1/zarr.json"]
    return sorted(keys)


_CASES = [
    ("0.4", False, False),
    ("0.4", True, True),
    ("0.5", False, False),
    ("0.5", False, True),
    ("0.5", True, False),
    ("0.5", True, True),
]


@pytest.mark.parametrize(("version", "labels", "consolidated"), _CASES)
def test_an_open_over_http_reads_each_document_once(
    http_server: StaticServer,
    http_root: Path,
    version: Literal["0.4", "0.5"],
    labels: bool,
    consolidated: bool,
) -> None:
    _image(http_root / "img.zarr", version, labels=labels, consolidated=consolidated)
    http_server.reset()
    with ngio_async.open(http_server.url + "img.zarr") as ds:
        assert ds.shape == (2, 32, 32) and [lvl.shape for lvl in ds.levels][1] == (2, 16, 16)
        if labels:
            assert ds.labels.names() == ["cells"]
            assert ds.labels["cells"].shape == (32, 32)
    seen = [(r.method, r.path.split("/img.zarr/", 1)[1]) for r in http_server.requests]
    assert {method for method, _ in seen} == {"GET"}  # no HEAD, no listing
    assert sorted(key for _, key in seen) == _expected(version, labels, consolidated)


@pytest.mark.parametrize(("version", "labels", "consolidated"), _CASES)
async def test_an_open_on_s3_reads_each_document_once(
    s3_server: S3Server,
    tmp_path: Path,
    version: Literal["0.4", "0.5"],
    labels: bool,
    consolidated: bool,
) -> None:
    _image(tmp_path / "img.zarr", version, labels=labels, consolidated=consolidated)
    url, options = s3_server.fresh_url() + "/img.zarr", s3_server.options()
    async with open_store(url, **options) as plain:
        await upload(tmp_path / "img.zarr", plain)
    store = InstrumentedStore(open_store(url, **options))
    try:
        for _ in range(2):  # opened again: a first level guessed early costs nothing more
            store.reset()
            async with ngio_async.open_async(store) as ds:
                assert ds.shape == (2, 32, 32)
                if labels:
                    assert await ds.labels.names() == ["cells"]
                    async with await ds.labels.open("cells") as cells:
                        assert cells.shape == (32, 32)
            assert set(store.method_counts) == {"get"}
            assert sorted(key for _, key in store.calls.elements()) == _expected(
                version, labels, consolidated
            )
    finally:
        await store.aclose()


def _edit(path: Path, edit: Any) -> None:
    doc = json.loads(path.read_text())
    edit(doc["consolidated_metadata"]["metadata"])
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize("stale", ["missing", "not-an-array", "wrong-rank"])
async def test_consolidated_levels_that_do_not_fit_leave_it_to_the_documents(
    tmp_path: Path, stale: str
) -> None:
    """A copy without a level, with a broken entry, or one that does not fit the multiscale:
    the levels' own documents are read (and decide), as before."""
    path = tmp_path / "img.zarr"
    _image(path, "0.5", labels=False, consolidated=True)

    def broken(entries: dict[str, Any]) -> None:
        if stale == "missing":
            del entries["1"]
        elif stale == "not-an-array":
            entries["1"] = {"node_type": "array", "shape": "no"}
        else:
            entries["1"]["shape"] = [16, 16]
            entries["1"]["dimension_names"] = ["y", "x"]

    _edit(path / "zarr.json", broken)
    store = InstrumentedStore(open_store(path))
    async with ngio_async.open_async(store) as ds:
        assert [lvl.shape for lvl in ds.levels] == [(2, 32, 32), (2, 16, 16)]
        np.testing.assert_array_equal(
            await ds.read(level=0), np.arange(2 * 32 * 32, dtype="uint8").reshape(2, 32, 32)
        )
    reads = {key for method, key in store.calls if method == "get" and "/c/" not in key}
    assert reads == {"zarr.json", "0/zarr.json", "1/zarr.json"}
    await store.aclose()


async def test_an_image_opened_from_consolidated_metadata_writes_as_its_documents_say(
    tmp_path: Path,
) -> None:
    path = tmp_path / "img.zarr"
    _image(path, "0.5", labels=False, consolidated=True)
    new = np.full((2, 32, 32), 9, "uint8")
    async with ngio_async.open_async(path, mode="r+") as ds:
        await ds.write(new, pyramid=True)
    for level, expected in (("0", new), ("1", new[:, ::2, ::2])):
        array = zarr.open_array(str(path / level), mode="r")
        np.testing.assert_array_equal(array[...], expected)


async def test_levels_added_after_consolidation_open_from_the_updated_copy(tmp_path: Path) -> None:
    """This library's writes keep the copy up to date: levels built later open with their
    shapes from it, with no level document read."""
    path = tmp_path / "img.zarr"
    _image(path, "0.5", labels=False, consolidated=True)
    async with ngio_async.open_async(path, mode="r+") as ds:
        await ds.build_pyramid(levels=4)
    store = InstrumentedStore(open_store(path))
    async with ngio_async.open_async(store) as ds:
        assert [lvl.shape[-1] for lvl in ds.levels] == [32, 16, 8, 4]
        assert [key for _, key in store.calls] == ["zarr.json"]
        stored = zarr.open_array(str(path / "3"), mode="r")[...]
        np.testing.assert_array_equal(await ds.read(level=3), stored)
    await store.aclose()


def test_an_open_for_writing_reads_the_levels_own_documents(tmp_path: Path) -> None:
    """Another tool resized level 0 without consolidating again: a read-only open trusts the
    consolidated copy (as zarr-python does), an ``r+`` open reads the level's own document, so
    a write is never sized by a stale shape."""
    path = tmp_path / "img.ome.zarr"
    _image(path, "0.5", labels=False, consolidated=True)
    zarr.open_array(str(path / "0"), mode="r+").resize((2, 48, 32))  # not consolidated again
    with ngio_async.open(path) as ds:
        assert ds.levels[0].shape == (2, 32, 32)  # the consolidated copy
    with ngio_async.open(path, mode="r+") as ds:
        assert ds.levels[0].shape == (2, 48, 32)  # the level's own zarr.json
