"""``method="ngio"`` gives ngio's *label* pyramid pixels (nearest): an intensity image refuses
it (ngio's image pyramid is a linear zoom, ``"mean"`` at factors of 2) before anything is
written, in build_pyramid, write(pyramid=), writers and stream(pyramid=)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio
DATA = np.arange(32 * 32, dtype=np.uint16).reshape(32, 32)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


async def test_ngio_method_is_refused_on_an_image(tmp_path: Path) -> None:
    url = tmp_path / "a.zarr"
    async with ngio_async.create_async(
        url, shape=DATA.shape, dtype="uint16", axes="yx", chunks=(16, 16), levels=2
    ) as ds:
        await ds.write(DATA, pyramid=True)
        before = _files(url)
        with pytest.raises(ValueError, match=r"method='ngio'.*no label image.*'mean'"):
            await ds.build_pyramid(method="ngio")
        with pytest.raises(ValueError, match=r"pyramid='ngio'.*no label image"):
            await ds.write(DATA + 1, pyramid="ngio")
        with pytest.raises(ValueError, match=r"pyramid='ngio'.*no label image"):
            async with ds.writer(pyramid="ngio") as w:
                await w.write(((slice(0, 16), slice(0, 16)), DATA[:16, :16]))
        with pytest.raises(ValueError, match=r"stream\(\): pyramid='ngio'.*no label image"):
            ngio_async.stream(ds.tiles(), lambda a: a, out=ds, pyramid="ngio")
        assert _files(url) == before
        # a label image of it takes it
        lab = await ds.labels.create("n", dtype="uint16")
        await lab.write((DATA % 7).astype("uint16"), pyramid="ngio")
        np.testing.assert_array_equal(await lab.read(level=1), (DATA % 7)[1::2, 1::2])
        await lab.aclose()
