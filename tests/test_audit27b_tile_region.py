"""``ds.tiles(region=...)`` with a slice bound that is no integer (audit of issue 4): Python's
bare "'float' object cannot be interpreted as an integer" came out, naming neither
``region`` nor the axis (the named-axis selections, ``x=slice(0, 5.0)``, name theirs)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from images import Spec, write_image

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

SPEC = Spec(version="0.5", shape=(2, 24, 20), chunks=(1, 8, 8), levels=1)


@pytest.mark.anyio
@pytest.mark.parametrize("bound", [5.0, np.float64(5), "5", 1j])
async def test_a_region_bound_that_is_no_int_is_named(tmp_path: Path, bound: Any) -> None:
    write_image(tmp_path, SPEC)
    async with ngio_async.open_async(tmp_path) as ds:
        with pytest.raises(TypeError, match=r"region\[2\] \('x'\).*ints or None"):
            ds.tiles(region=(slice(None), slice(0, 8), slice(None, bound)))
        with pytest.raises(TypeError, match=r"region\[1\] \('y'\).*ints or None"):
            ds.tiles(region=(slice(None), slice(bound, 8), slice(None)))
        # numpy integers are ints: taken
        region = (slice(None), slice(np.int64(2), np.uint8(9)), slice(None, np.int32(5)))
        tiles = [tile async for tile in ds.tiles(region=region)]
        assert {(t.region[1].start, t.region[2].stop) for t in tiles} <= {(2, 5), (8, 5)}
        assert len(tiles) == 4
    with ngio_async.open(tmp_path) as blocking, pytest.raises(TypeError, match=r"region\[2\]"):
        blocking.tiles(region=(slice(None), slice(None), slice(0, bound)))
