"""A batch's output names come from the path of each input URL: a signed URL's query string
(``a.ome.tif?sig=...``) made ``a.ome.ome.zarr`` and ``img.ome.zarr/?v=2`` made
``?v=2.ome.zarr``; a ``file://`` URL's percent-escapes stayed in the name."""

from __future__ import annotations

import pytest

from ngio_async.convert import output_name


@pytest.mark.parametrize(
    ("src", "name"),
    [
        ("https://h/x/a.ome.tif?sig=abc&se=1", "a.ome.zarr"),
        ("https://h/x/b.tif?X-Amz-Signature=1", "b.ome.zarr"),
        ("http://h/img.ome.zarr/?v=2", "img.ome.zarr"),
        ("https://h/c.ome.tiff#part", "c.ome.zarr"),
        ("https://h/d%20e.tif", "d e.ome.zarr"),
        ("file:///data/my%20scan.ome.tif", "my scan.ome.zarr"),
        ("s3://bucket/f.ome.tif", "f.ome.zarr"),
        ("/data/g.OME.TIF", "g.ome.zarr"),
        ("/data/plate.zarr/", "plate.ome.zarr"),
        ("relative/h.tiff", "h.ome.zarr"),
    ],
)
def test_output_names(src: str, name: str) -> None:
    assert output_name(src) == name
