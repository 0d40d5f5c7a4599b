"""Label images as users meet them: odd names, reads of other tools' labels, edge cases."""

from __future__ import annotations

import json
import warnings
from typing import TYPE_CHECKING, Any, Literal

import anyio
import numpy as np
import pytest
import zarr
from zarr_nodes import zarr_array, zarr_group, zarr_read

import ngio_async
from ngio_async import ExistsError
from ngio_async.meta import validate
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("version", ["0.4", "0.5"])
@pytest.mark.parametrize(
    "name",
    [
        ".zattrs",
        ".zgroup",
        ".zarray",
        ".zmetadata",
        "zarr.json",
        "__x",
        "a\\..",
        "a\x00b",
        "a\nb",
        " ",
        " cells",
        "cells ",
    ],
)
async def test_names_that_break_the_hierarchy_are_refused(
    tmp_path: Path, version: Literal["0.4", "0.5"], name: str
) -> None:
    # '.zattrs' became the directory labels/.zattrs/ (0.4: the listing could never be written
    # again), 'zarr.json' failed half-way, control characters failed as StoreError
    async with ngio_async.create_async(
        tmp_path, shape=(16, 16), dtype="uint8", levels=1, ngff_version=version
    ) as ds:
        await (await ds.labels.create("cells")).aclose()
        with pytest.raises(ValueError, match="invalid label name"):
            await ds.labels.create(name)
        assert await ds.labels.names() == ["cells"]
        assert sorted(p.name for p in (tmp_path / "labels").iterdir()) == sorted(
            ["cells", ".zgroup", ".zattrs"] if version == "0.4" else ["cells", "zarr.json"]
        )
        await (await ds.labels.create("my cells")).aclose()  # inner spaces are fine
        assert await ds.labels.names() == ["cells", "my cells"]


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_a_listed_path_below_labels_opens(
    tmp_path: Path, version: Literal["0.4", "0.5"]
) -> None:
    # the listing holds paths to label images below `labels` (ome-zarr-py and ngio open
    # 'sub/cells'); names() listed it and open() refused it as an invalid name
    async with ngio_async.create_async(
        tmp_path, shape=(16, 16), dtype="uint8", levels=1, ngff_version=version
    ) as ds:
        await (await ds.labels.create("cells")).write_at(..., 4)
    (tmp_path / "labels" / "sub").mkdir()
    (tmp_path / "labels" / "cells").rename(tmp_path / "labels" / "sub" / "cells")
    group, listing = (".zgroup", ".zattrs") if version == "0.4" else ("zarr.json", "zarr.json")
    doc = {"zarr_format": 2} if version == "0.4" else {"zarr_format": 3, "node_type": "group"}
    (tmp_path / "labels" / "sub" / group).write_text(json.dumps(doc))
    doc = json.loads((tmp_path / "labels" / listing).read_text())
    (doc if version == "0.4" else doc["attributes"]["ome"])["labels"] = ["sub/cells"]
    (tmp_path / "labels" / listing).write_text(json.dumps(doc))
    with ngio_async.open(tmp_path) as ds:
        assert ds.labels.names() == ["sub/cells"]
        with ds.labels["sub/cells"] as label:
            assert int(label[...].max()) == 4
        for bad in ("sub/../cells", "sub//cells", "/sub/cells", "sub/cells/"):
            with pytest.raises(ValueError, match="invalid label name"):
                ds.labels.open(bad)


async def test_a_broken_listing_names_its_json_path(tmp_path: Path) -> None:
    async with ngio_async.create_async(tmp_path, shape=(16, 16), dtype="uint8", levels=1) as ds:
        (tmp_path / "labels").mkdir()
        doc = {"zarr_format": 3, "node_type": "group", "attributes": {"ome": {"labels": "a"}}}
        (tmp_path / "labels" / "zarr.json").write_text(json.dumps(doc))
        with pytest.raises(ngio_async.MetadataError) as err:
            await ds.labels.create("cells")
        assert err.value.path == "$.attributes.ome.labels"
        assert str(tmp_path) in str(err.value)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_two_datasets_creating_one_label_never_mix_it(
    tmp_path: Path, version: Literal["0.4", "0.5"]
) -> None:
    # two dataset objects (or processes) creating one name at once both passed the existence
    # check and both wrote every level: both 'succeeded' and the levels mixed their dtypes
    store = InstrumentedStore(open_store(tmp_path, mkdir=True))
    await (
        await ngio_async.create_async(
            store, shape=(1, 32, 32), dtype="uint8", axes="cyx", levels=2, ngff_version=version
        )
    ).aclose()
    first = "labels/seg/0/" + (".zarray" if version == "0.4" else "zarr.json")
    arrived = {"n": 0}
    both = anyio.Event()
    inner_put = store._put_once

    async def put(key: str, data: Any, *, if_absent: bool) -> bool:
        if key == first:  # both creates get here before either writes: the race made certain
            arrived["n"] += 1
            if arrived["n"] == 2:
                both.set()
            with anyio.move_on_after(5):
                await both.wait()
        return await inner_put(key, data, if_absent=if_absent)

    store._put_once = put  # type: ignore[method-assign]
    a = await ngio_async.open_async(store, mode="r+")
    b = await ngio_async.open_async(store, mode="r+")
    outcome: dict[str, Any] = {}

    async def create(ds: Any, dtype: str) -> None:
        try:
            await (await ds.labels.create("seg", dtype=dtype)).aclose()
            outcome[dtype] = "created"
        except ExistsError:
            outcome[dtype] = "refused"

    async with anyio.create_task_group() as tg:
        tg.start_soon(create, a, "uint8")
        tg.start_soon(create, b, "uint32")
    assert sorted(outcome.values()) == ["created", "refused"]
    winner = next(d for d, o in outcome.items() if o == "created")
    label = await a.labels.open("seg")
    assert [str(lvl.dtype) for lvl in label.levels] == [winner, winner]
    assert await a.labels.names() == ["seg"]
    for ds in (label, a, b):
        await ds.aclose()


async def test_colors_in_0_to_1_floats_are_refused(tmp_path: Path) -> None:
    # napari's colors are floats 0..1: (1.0, 0.0, 0.0, 1.0) was written as rgba [1, 0, 0, 1]
    # (near-black, near-transparent) while (1.0, 0.5, 0.0, 1.0) was refused
    async with ngio_async.create_async(tmp_path, shape=(16, 16), dtype="uint8", levels=1) as ds:
        for colors in (
            {1: (1.0, 0.0, 0.0, 1.0)},
            [{"label-value": 1, "rgba": np.array([0.0, 1.0, 0.0, 1.0])}],
        ):
            with pytest.raises(ngio_async.MetadataError, match=r"0\.\.255") as err:
                await ds.labels.create("cells", colors=colors)  # type: ignore[arg-type]
            assert err.value.path.endswith("colors[0].rgba")
        assert await ds.labels.names() == []
        cells = await ds.labels.create("cells", colors={1: (255.0, 0, 0, 255)})  # type: ignore[dict-item]  # unambiguous
        image_label = cells.metadata.ome.image_label
        assert image_label is not None and image_label.colors is not None
        assert image_label.colors[0].rgba == [255, 0, 0, 255]
        await cells.aclose()


@pytest.mark.filterwarnings(
    "ignore:Consolidated metadata is currently not part:zarr.errors.ZarrUserWarning"
)
@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_the_listing_in_consolidated_metadata_follows(
    tmp_path: Path, version: Literal["0.4", "0.5"]
) -> None:
    # the `labels` listing never reached the consolidated metadata (ngff-zarr and
    # zarr.consolidate_metadata write it), nor did the first label's own documents (written
    # before the labels group existed): zarr-python, which trusts the copy, saw no labels
    fmt: Literal[2, 3] = 2 if version == "0.4" else 3
    async with ngio_async.create_async(
        tmp_path, shape=(16, 16), dtype="uint8", levels=2, ngff_version=version
    ) as ds:
        await ds.write_at(..., 1)
    zarr.consolidate_metadata(str(tmp_path), zarr_format=fmt)
    async with ngio_async.open_async(tmp_path, mode="r+") as ds:
        await (await ds.labels.create("a")).write_at(..., 7)
        group = zarr.open_group(str(tmp_path), mode="r")  # the copy, as zarr-python reads
        attrs: dict[str, Any] = dict(group["labels"].attrs)
        assert (attrs if version == "0.4" else attrs["ome"])["labels"] == ["a"]
        assert int(zarr_read(group, "labels/a/1", (0, 0))) == 0  # level 1 not built, but listed
        assert int(zarr_read(group, "labels/a/0", (0, 0))) == 7
        await (await ds.labels.create("b")).aclose()
        await (await ds.labels.create("a", dtype="uint16", overwrite=True)).aclose()
    group = zarr.open_group(str(tmp_path), mode="r")
    attrs = dict(group["labels"].attrs)
    assert (attrs if version == "0.4" else attrs["ome"])["labels"] == ["a", "b"]
    assert zarr_array(group, "labels/a/1").dtype == np.dtype("uint16")
    assert zarr_array(group, "labels/b/0").shape == (16, 16)


@pytest.mark.filterwarnings("ignore::UserWarning:zarr", "ignore::FutureWarning")
@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_a_label_of_an_ngff_zarr_image_reads_in_zarr_python(
    tmp_path: Path, version: Literal["0.4", "0.5"]
) -> None:
    # ngff-zarr's levels are 'scale0/image' below a group 'scale0', and it consolidates: the
    # label's levels had no 'scale0' group, so the consolidated copy left them out (0.4) or
    # named them without their parent (0.5: zarr-python could not open the image at all)
    nz = pytest.importorskip("ngff_zarr")
    image = nz.to_ngff_image(np.zeros((2, 32, 32), "uint8"), dims=["c", "y", "x"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nz.to_ngff_zarr(str(tmp_path), nz.to_multiscales(image, scale_factors=[2]), version=version)
    async with ngio_async.open_async(tmp_path, mode="r+") as ds:
        assert [d.path for d in ds.metadata.multiscale.datasets] == ["scale0/image", "scale1/image"]
        seg = await ds.labels.create("seg", dtype="uint16")
        await seg.write_at(..., 5, pyramid=True)
        await seg.aclose()
    group = zarr.open_group(str(tmp_path), mode="r")
    attrs: dict[str, Any] = dict(group["labels"].attrs)
    assert (attrs if version == "0.4" else attrs["ome"])["labels"] == ["seg"]
    np.testing.assert_array_equal(zarr_read(group, "labels/seg/scale1/image"), np.full((16, 16), 5))
    assert "scale1" in zarr_group(group, "labels/seg")


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_a_created_label_meets_the_strict_profile(
    tmp_path: Path, version: Literal["0.4", "0.5"]
) -> None:
    # images carry the multiscale SHOULD fields (name, type, metadata); labels had type and
    # metadata cleared: `validate --strict` refused every label image created here
    async with ngio_async.create_async(
        tmp_path, shape=(2, 16, 16), dtype="uint8", axes="cyx", levels=2, ngff_version=version
    ) as ds:
        await (await ds.labels.create("cells", colors={1: (255, 0, 0, 255)})).aclose()
    name = ".zattrs" if version == "0.4" else "zarr.json"
    doc = json.loads((tmp_path / "labels" / "cells" / name).read_text())
    attrs = doc if version == "0.4" else doc["attributes"]
    validate(attrs, strict=True)
    multiscale = (attrs if version == "0.4" else attrs["ome"])["multiscales"][0]
    assert (multiscale["name"], multiscale["type"]) == ("cells", "mode")  # how labels downsample


async def test_a_label_create_rereads_the_image_quietly_and_hides_no_other_warning(
    tmp_path: Path,
) -> None:
    """``labels.create`` reads the image's document again (another process may have changed
    it) without repeating the warnings of its open (an invalid ``omero`` block), and without
    hiding another task's warnings meanwhile (a filter set across its GET did)."""
    from ngio_async.meta import MetadataWarning
    from ngio_async.stores import Buffer, ByteRequest

    url = tmp_path / "img.zarr"
    ngio_async.create(str(url), shape=(8, 8), dtype="uint8", axes="yx", levels=1).close()
    doc = json.loads((url / "zarr.json").read_text())
    doc["attributes"]["ome"]["omero"] = {"channels": [{"color": "nothex"}]}
    (url / "zarr.json").write_text(json.dumps(doc))
    asked, go = anyio.Event(), anyio.Event()

    class Paused(InstrumentedStore):
        async def _get_once(self, key: str, byte_range: ByteRequest | None) -> Buffer | None:
            if key == "zarr.json" and self.paused:
                asked.set()
                await go.wait()
            return await super()._get_once(key, byte_range)

        paused = False

    async def other_task() -> None:
        await asked.wait()
        warnings.warn("another task's", MetadataWarning, stacklevel=1)
        go.set()

    store = Paused(open_store(str(url)))
    with pytest.warns(MetadataWarning, match="omero"):
        ds = await ngio_async.open_async(store, mode="r+")
    store.paused = True
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        async with anyio.create_task_group() as tg:
            tg.start_soon(other_task)
            await (await ds.labels.create("cells")).aclose()
    await ds.aclose()
    assert [str(w.message) for w in seen] == ["another task's"]
