"""ds.tables: listing, reading, writing, overwriting and deleting tables; errors that name the
table and the key; a failed write leaves no listed table; S3; the sync shim; ROIs as world
ranges for ds.read_world."""

from __future__ import annotations

import errno
import json
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pytest

import ngio_async
from ngio_async import (
    ExistsError,
    MetadataError,
    NotFoundError,
    ReadOnlyError,
    UnsupportedError,
)
from ngio_async.stores import InstrumentedStore, open_store
from ngio_async.tables import Roi

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server

pytestmark = pytest.mark.anyio

ROIS = [
    Roi.box("FOV_1", x=(0.0, 8.0), y=(0.0, 4.0), z=(0.0, 2.0)),
    Roi.box("FOV_2", x=(8.0, 16.0), y=(2.0, 6.0), z=(1.0, 2.0)),
]


async def _image(where: Any, version: Literal["0.4", "0.5"] = "0.5", **options: Any) -> None:
    data = np.arange(2 * 2 * 16 * 32, dtype=np.uint16).reshape(2, 2, 16, 32)
    async with ngio_async.create_async(
        where, shape=data.shape, dtype="uint16", axes="czyx", scale=(1.0, 1.0, 0.5, 0.5),
        levels=1, ngff_version=version, **options,
    ) as ds:  # fmt: skip
        await ds.write(data)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_write_read_overwrite_delete(tmp_path: Path, version: Literal["0.4", "0.5"]) -> None:
    path = tmp_path / "img.zarr"
    await _image(path, version)
    async with ngio_async.open_async(path, mode="r+") as ds:
        assert await ds.tables.names() == []
        await ds.tables.write_rois("FOV_ROI_table", ROIS)
        feats: dict[str, Any] = {
            "area": np.array([3.5, 4.0, 1.0], np.float32),
            "kind": ["a", "b", "a"],
        }
        await ds.tables.write_features("feat", feats, labels=[1, 2, 5], label="cells")
        assert await ds.tables.names() == ["FOV_ROI_table", "feat"]
        assert await ds.tables.names(type="feature_table") == ["feat"]
        t = await ds.tables.read("feat")
        assert t.type == "feature_table" and t.region == "../labels/cells"
        assert list(t.index) == [1, 2, 5] and t.index_key == "label"
        assert t["area"].dtype == np.float32 and list(t["kind"]) == ["a", "b", "a"]
        frame = t.to_pandas()
        assert list(frame.columns) == ["area", "kind"] and frame.index.name == "label"
        assert await ds.tables.rois("FOV_ROI_table") == ROIS
        with pytest.raises(ValueError, match="'feat' is a feature_table"):
            await ds.tables.rois("feat")

        with pytest.raises(ExistsError, match="'feat'"):
            await ds.tables.write("feat", {"x": [1.0]})
        await ds.tables.write("feat", {"x": [1.0]}, overwrite=True)
        assert await ds.tables.names() == ["FOV_ROI_table", "feat"]
        t = await ds.tables.read("feat")
        assert t.type == "generic_table" and list(t.columns) == ["x"] and list(t.index) == ["0"]

        await ds.tables.delete("feat")
        assert await ds.tables.names() == ["FOV_ROI_table"]
        assert not [p for p in (path / "tables" / "feat").rglob("*") if p.is_file()]
        with pytest.raises(NotFoundError, match=r"no table 'feat'.*FOV_ROI_table"):
            await ds.tables.read("feat")
        await ds.tables.delete("feat", missing_ok=True)
    async with ngio_async.open_async(path) as ds:
        with pytest.raises(ReadOnlyError):
            await ds.tables.write_rois("more", ROIS)


async def test_masking_rois_and_copy_between_images(tmp_path: Path) -> None:
    await _image(tmp_path / "a.zarr", "0.4")
    await _image(tmp_path / "b.zarr", "0.5")
    masks = [
        Roi.box("x", x=(1.0, 2.0), y=(0.0, 3.0), label=4),
        Roi.box("y", x=(0, 1), y=(0, 1), label=9),
    ]
    async with ngio_async.open_async(tmp_path / "a.zarr", mode="r+") as a:
        await a.tables.write_rois("nuclei_ROI_table", masks, label="nuclei")
        src = await a.tables.read("nuclei_ROI_table")
    assert src.type == "masking_roi_table" and src.region == "../labels/nuclei"
    assert [(r.name, r.label) for r in src.rois()] == [("4", 4), ("9", 9)]
    assert src.rois()[0].ranges["x"] == (1.0, 2.0)
    async with ngio_async.open_async(tmp_path / "b.zarr", mode="r+") as b:
        await b.tables.write("copy", src)  # v2 -> v3: type, region, index as they were
        copy = await b.tables.read("copy")
    assert copy.type == src.type and copy.region == src.region and copy.instance_key == "label"
    assert list(copy.index) == [4, 9] and copy.rois() == src.rois()


async def test_rois_select_pixels_with_read_world(tmp_path: Path) -> None:
    """An ROI's ranges, in micrometres, read the pixels of its box (0.5 um pixels)."""
    path = tmp_path / "img.zarr"
    await _image(path)
    async with ngio_async.open_async(path, mode="r+") as ds:
        await ds.tables.write_rois("FOV_ROI_table", ROIS)
        whole = await ds.read()
        for roi in await ds.tables.rois("FOV_ROI_table"):
            got = await ds.read_world(
                0, unit="micrometer", origin="image", system=None, axes_order=None, **roi.ranges
            )
            (z0, z1), (y0, y1), (x0, x1) = (roi.ranges[a] for a in "zyx")
            want = whole[:, int(z0) : int(z1), int(y0 * 2) : int(y1 * 2), int(x0 * 2) : int(x1 * 2)]
            np.testing.assert_array_equal(got, want)


def _put_json(path: Path, doc: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))


async def test_bad_tables_name_the_table_and_key(tmp_path: Path) -> None:
    path = tmp_path / "img.zarr"
    await _image(path)
    async with ngio_async.open_async(path, mode="r+") as ds:
        await ds.tables.write("no_x", {"y_micrometer": [1.0]}, type="generic_table")
        await ds.tables.write("feats", {"a": [1.0]})
    tables = path / "tables"
    # a ROI table without its x columns, a table with an unknown backend, a listed ghost
    doc = json.loads((tables / "no_x" / "zarr.json").read_text())
    doc["attributes"]["type"] = "roi_table"
    _put_json(tables / "no_x" / "zarr.json", doc)
    doc = json.loads((tables / "feats" / "zarr.json").read_text())
    doc["attributes"]["backend"] = "feather"
    _put_json(tables / "feats" / "zarr.json", doc)
    listing = json.loads((tables / "zarr.json").read_text())
    listing["attributes"]["tables"].append("ghost")
    _put_json(tables / "zarr.json", listing)
    async with ngio_async.open_async(path) as ds:
        with pytest.raises(MetadataError, match=r"'no_x'.*'x_micrometer'"):
            await ds.tables.read("no_x")
        with pytest.raises(UnsupportedError, match=r"'feats'.*unknown backend 'feather'"):
            await ds.tables.read("feats")
        with pytest.raises(NotFoundError, match=r"'ghost' is listed.*tables/ghost is missing"):
            await ds.tables.read("ghost")
        with pytest.raises(ValueError, match="invalid table name"):
            await ds.tables.read("../x")
    doc = json.loads((tables / "feats" / "zarr.json").read_text())
    doc["attributes"] |= {"backend": "anndata", "type": "foo_table"}
    _put_json(tables / "feats" / "zarr.json", doc)
    async with ngio_async.open_async(path) as ds:  # an unknown type reads as columns
        foo = await ds.tables.read("feats")
        assert foo.type == "foo_table" and foo["a"].tolist() == [1.0]
        with pytest.raises(ValueError, match="table 'feats' is a foo_table, not an ROI table"):
            await ds.tables.rois("feats")
    (tables / "no_x" / "obs" / "zarr.json").unlink()
    async with ngio_async.open_async(path, mode="r+") as ds:
        with pytest.raises(MetadataError, match=r"'no_x' has no obs group"):
            await ds.tables.read("no_x")
        with pytest.raises(ValueError, match=r"'bad'.*'b' has 2 rows"):
            await ds.tables.write("bad", {"a": [1.0], "b": [1.0, 2.0]})
        with pytest.raises(UnsupportedError, match=r"'bad'.*'feather' backend"):
            await ds.tables.write("bad", {"a": [1.0]}, backend="feather")
    listing["attributes"]["tables"] = "no_x"
    _put_json(tables / "zarr.json", listing)
    async with ngio_async.open_async(path) as ds:
        with pytest.raises(MetadataError, match="'tables' is not a list"):
            await ds.tables.names()


class NthPut:
    """Count the puts below ``tables/t/`` and ``tables/``'s listing; fail the ``n``-th with
    ENOSPC (fault injection; ``n=0``: none)."""

    def __init__(self, n: int) -> None:
        self.n, self.seen = n, 0

    def __call__(self, method: str, key: str) -> BaseException | None:
        if method != "put" or not key.startswith("tables/"):
            return None
        self.seen += 1
        return OSError(errno.ENOSPC, "No space left on device") if self.seen == self.n else None


@pytest.mark.parametrize("n", [1, 12, -1])  # the first put, one in between, the listing's
async def test_failed_write_lists_nothing_and_a_retry_succeeds(tmp_path: Path, n: int) -> None:
    await _image(tmp_path / "count.zarr")
    count = NthPut(0)
    async with ngio_async.open_async(
        InstrumentedStore(open_store(tmp_path / "count.zarr"), fail=count), mode="r+"
    ) as ds:
        await ds.tables.write_rois("t", ROIS)
    path = tmp_path / "img.zarr"
    await _image(path)
    async with ngio_async.open_async(path, mode="r+") as ds:
        await ds.tables.write_rois("kept", ROIS)
    fail = NthPut(count.seen if n == -1 else n)
    async with ngio_async.open_async(
        InstrumentedStore(open_store(path), fail=fail), mode="r+"
    ) as ds:
        with pytest.raises(OSError, match="No space"):
            await ds.tables.write_rois("t", ROIS)
        assert await ds.tables.names() == ["kept"]
        assert not [p for p in (path / "tables" / "t").rglob("*") if p.is_file()]  # removed
        await ds.tables.write_rois("t", ROIS)  # a retry succeeds
        assert await ds.tables.names() == ["kept", "t"]
        assert await ds.tables.rois("t") == ROIS


async def test_tables_on_s3(s3_server: S3Server) -> None:
    url = s3_server.fresh_url() + "/img.zarr"
    await _image(url, **s3_server.options())
    async with ngio_async.open_async(url, mode="r+", **s3_server.options()) as ds:
        await ds.tables.write_rois("FOV_ROI_table", ROIS)
        await ds.tables.write_features("f", {"a": [0.5, 1.5], "s": ["u", "v"]}, labels=[1, 2])
    async with ngio_async.open_async(url, **s3_server.options()) as ds:
        assert await ds.tables.names() == ["FOV_ROI_table", "f"]
        assert await ds.tables.rois("FOV_ROI_table") == ROIS
        t = await ds.tables.read("f")
        assert list(t["s"]) == ["u", "v"] and list(t.index) == [1, 2]


def test_sync_tables(tmp_path: Path) -> None:
    import anyio

    path = tmp_path / "img.zarr"
    anyio.run(_image, path)
    with ngio_async.open(path, mode="r+") as ds:
        ds.tables.write_rois("FOV_ROI_table", ROIS)
        ds.tables.write("g", {"v": [1, 2, 3]}, index=["a", "b", "c"], index_key="name")
        assert list(ds.tables) == ["FOV_ROI_table", "g"]
        assert ds.tables.rois("FOV_ROI_table") == ROIS
        g = ds.tables.read("g")
        assert list(g.index) == ["a", "b", "c"] and g.index_key == "name"
        assert g["v"].tolist() == [1, 2, 3]
        ds.tables.delete("g")
        assert ds.tables.names() == ["FOV_ROI_table"]


@pytest.mark.filterwarnings("ignore:Consolidated metadata is currently not part:UserWarning")
@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_consolidated_metadata_and_concurrent_writers(
    tmp_path: Path, version: Literal["0.4", "0.5"]
) -> None:
    """Tables written at once by two dataset objects are all listed, and the consolidated
    metadata zarr-python trusts (above the image) has them, without a deleted one."""
    import anyio
    import zarr

    path = tmp_path / "img.zarr"
    await _image(path, version)
    fmt: Literal[2, 3] = 2 if version == "0.4" else 3
    zarr.consolidate_metadata(str(path), zarr_format=fmt)
    async with (
        ngio_async.open_async(path, mode="r+") as a,
        ngio_async.open_async(path, mode="r+") as b,
    ):
        async with anyio.create_task_group() as tg:
            for i in range(4):
                tg.start_soon((a if i % 2 else b).tables.write_rois, f"t{i}", ROIS)
        await a.tables.delete("t0")
        assert sorted(await b.tables.names()) == ["t1", "t2", "t3"]
    group = zarr.open_consolidated(str(path), zarr_format=fmt)
    tables: Any = group["tables"]
    assert sorted(tables.attrs["tables"]) == ["t1", "t2", "t3"]
    assert sorted(tables.group_keys()) == ["t1", "t2", "t3"]
    assert tables["t3"].attrs["type"] == "roi_table"


async def test_large_table_decodes_in_workers(tmp_path: Path) -> None:
    """A table whose arrays exceed the inline limit (random floats: 400 KB) reads the same."""
    path = tmp_path / "img.zarr"
    await _image(path)
    rng = np.random.default_rng(1)
    area = rng.random(50_000)
    names = np.array([f"c{i}" for i in range(50_000)], dtype=object)
    async with ngio_async.open_async(path, mode="r+") as ds:
        await ds.tables.write_features("big", {"area": area, "n": names}, labels=np.arange(50_000))
        t = await ds.tables.read("big")
    np.testing.assert_array_equal(t["area"], area)
    assert t["n"][49_999] == "c49999" and t.index[-1] == 49_999
