"""``convert`` of bioformats2raw containers (NGFF 0.4 / 0.5, with or without an ``OME/series``
listing): every image into a container of the target version, or one chosen ``series``; the
CLI's ``--series``; destinations that are regular files."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from test_validate_bf2raw import IMAGE_XML, OME_XML, container

import ngio_async
from ngio_async import ExistsError
from ngio_async.cli import main
from ngio_async.cli._validate import validate_hierarchy
from ngio_async.convert import is_complete

if TYPE_CHECKING:
    from pathlib import Path

XML = OME_XML.format(IMAGE_XML.format(i=0, data="") + IMAGE_XML.format(i=1, data="")).encode()


def make(tmp_path: Path, version: str, names: tuple[str, ...] = ("0", "1"), **kw: Any) -> Path:
    """A container of 8x8 uint8 images ``names`` (image ``i`` filled with ``i + 1``; a label
    ``cells`` on the last one) and ``OME/METADATA.ome.xml``."""
    path = container(tmp_path, version, names, **kw)
    (path / "OME").mkdir(exist_ok=True)
    (path / "OME" / "METADATA.ome.xml").write_bytes(XML)
    for i, name in enumerate(names):
        with ngio_async.open(str(path / name), mode="r+") as ds:
            ds.write(np.full((8, 8), i + 1, dtype="uint8"))
    with ngio_async.open(str(path / names[-1]), mode="r+") as ds:
        ds.labels.create("cells", dtype="uint16").write(np.full((8, 8), 7, dtype="uint16"))
    return path


def ome_attrs(path: Path, version: str) -> dict[str, Any]:
    if version == "0.5":
        return dict(json.loads((path / "zarr.json").read_text())["attributes"]["ome"])
    return dict(json.loads((path / ".zattrs").read_text()))


@pytest.mark.parametrize(("source", "target"), [("0.4", "0.5"), ("0.5", "0.4")])
@pytest.mark.parametrize("listed", [True, False])
async def test_every_series_of_a_container_converts(
    tmp_path: Path, source: str, target: str, listed: bool
) -> None:
    # only series 0 was written, as a plain image: series 1 and the OME group were dropped
    src = make(tmp_path, source, ome={"series": ["0", "1"]} if listed else {})
    dst = tmp_path / "out.ome.zarr"
    result = await ngio_async.convert(src, dst, ngff_version=target)  # type: ignore[arg-type]
    assert (result.series, result.ngff_version, result.labels) == (("0", "1"), target, ("cells",))
    for i in range(2):
        async with ngio_async.open_async(dst / str(i)) as ds:
            assert ds.metadata.ngff_version == target
            assert (await ds.read() == i + 1).all()
    async with ngio_async.open_async(dst / "1") as ds, await ds.labels.open("cells") as label:
        assert (await label.read() == 7).all()
    assert (dst / "OME" / "METADATA.ome.xml").read_bytes() == XML
    assert ome_attrs(dst, target)["bioformats2raw.layout"] == 3
    assert ome_attrs(dst / "OME", target)["series"] == ["0", "1"]
    assert [p.line() for p in (await validate_hierarchy(str(dst))).problems] == []
    assert await is_complete(dst)


async def test_named_series_keep_their_paths_and_order(tmp_path: Path) -> None:
    src = make(tmp_path, "0.5", ("b", "a"), ome={"series": ["b", "a"]}, top={"note": 1})
    dst = tmp_path / "out.ome.zarr"
    result = await ngio_async.convert(src, dst, ngff_version="0.4")
    assert result.series == ("b", "a")
    assert ome_attrs(dst / "OME", "0.4")["series"] == ["b", "a"]
    assert ome_attrs(dst, "0.4") == {"bioformats2raw.layout": 3, "note": 1}
    async with ngio_async.open_async(dst) as ds:  # the first listed series
        assert (await ds.read() == 1).all()


async def test_an_interrupted_container_conversion_looks_incomplete(tmp_path: Path) -> None:
    """The container group is written last: a failure in the last series leaves none (a plain
    group marked unfinished), and running the conversion again replaces what it left."""
    src = make(tmp_path, "0.5")
    chunk = src / "1" / "0" / "c" / "0" / "0"
    good = chunk.read_bytes()
    chunk.write_bytes(b"not zstd")
    dst = tmp_path / "out.ome.zarr"
    with pytest.raises(ngio_async.CodecError):
        await ngio_async.convert(src, dst)
    assert (dst / "0" / "zarr.json").exists()
    assert "ome" not in json.loads((dst / "zarr.json").read_text())["attributes"]
    assert not await is_complete(dst)
    chunk.write_bytes(good)
    result = await ngio_async.convert(src, dst)  # no overwrite needed
    assert result.series == ("0", "1")
    assert ome_attrs(dst, "0.5")["bioformats2raw.layout"] == 3
    async with ngio_async.open_async(dst / "1") as ds:
        assert (await ds.read() == 2).all()


async def test_a_chosen_series_converts_as_an_image(tmp_path: Path) -> None:
    src = make(tmp_path, "0.4", ome={})
    dst = tmp_path / "one.ome.zarr"
    result = await ngio_async.convert(src, dst, src_options={"series": 1})
    assert (result.series, result.labels, result.ngff_version) == ((), ("cells",), "0.4")
    async with ngio_async.open_async(dst) as ds:
        assert ds.root == "" and (await ds.read() == 2).all()
    assert not (dst / "OME").exists()
    with pytest.raises(ValueError, match=r"series=2: .* has 2 series \(0 to 1\)"):
        await ngio_async.convert(src, tmp_path / "bad.zarr", src_options={"series": 2})
    assert not (tmp_path / "bad.zarr").exists()
    # an image of its own is its only series
    await ngio_async.convert(dst, tmp_path / "same.zarr", src_options={"series": 0})
    with pytest.raises(ValueError, match="an image, not a bioformats2raw container"):
        await ngio_async.convert(dst, tmp_path / "bad.zarr", src_options={"series": 1})


async def test_a_skipped_container_lists_its_series(tmp_path: Path) -> None:
    src = make(tmp_path, "0.5", ome={"series": ["0", "1"]})
    first = (await ngio_async.convert_many([src], tmp_path / "out"))[str(src)]
    again = (await ngio_async.convert_many([src], tmp_path / "out"))[str(src)]
    assert isinstance(first, ngio_async.ConvertResult)
    assert isinstance(again, ngio_async.ConvertResult)
    assert again.skipped and again.series == first.series == ("0", "1")


def test_cli_series(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make(tmp_path, "0.5")
    assert main(["convert", "--help"]) == 0
    assert "--series N" in capsys.readouterr().out
    assert main(["convert", "--series", "1", str(src), str(tmp_path / "one.zarr")]) == 0
    with ngio_async.open(str(tmp_path / "one.zarr")) as ds:
        assert ds.shape == (8, 8) and (ds.read() == 2).all()
    assert not (tmp_path / "one.zarr" / "OME").exists()
    assert main(["convert", str(src), str(tmp_path / "all.zarr")]) == 0
    assert "2 series" in capsys.readouterr().out
    assert main(["convert", "--series", "2", str(src), str(tmp_path / "bad.zarr")]) == 2
    err = capsys.readouterr().err
    assert "--series 2: " in err and "series=" not in err  # the command line's words


async def test_a_destination_that_is_a_file_is_refused(tmp_path: Path) -> None:
    # the store said "StoreError ... File exists (os error 17)"
    src = tmp_path / "img.zarr"
    ngio_async.create(str(src), shape=(8, 8), dtype="uint8", axes="yx").close()
    afile = tmp_path / "notes.txt"
    afile.write_text("keep me")
    for dst, overwrite in [(afile, False), (afile, True), (afile / "x.zarr", False)]:
        with pytest.raises(ExistsError, match=f"{afile}.* not a directory"):
            await ngio_async.convert(src, dst, overwrite=overwrite)
    with pytest.raises(ExistsError, match="is a file"):
        await ngio_async.convert_many([src], afile)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "img.ome.zarr").write_text("keep me too")
    (error,) = (await ngio_async.convert_many([src], tmp_path / "out")).values()
    assert isinstance(error, ExistsError) and "is a file" in str(error)
    assert afile.read_text() == "keep me"
    assert (tmp_path / "out" / "img.ome.zarr").read_text() == "keep me too"


def test_cli_refuses_a_destination_that_is_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "img.zarr"
    ngio_async.create(str(src), shape=(8, 8), dtype="uint8", axes="yx").close()
    (tmp_path / "notes.txt").write_text("keep me")
    assert main(["convert", str(src), str(tmp_path / "notes.txt")]) == 2
    err = capsys.readouterr().err
    assert "exists: the destination" in err and "is a file" in err and "File exists" not in err
