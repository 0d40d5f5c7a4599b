"""write(..., merge=...) errors name what they are about, before any write: ngio's merge
functions f(existing, patch, ctx) are refused naming the missing ctx (it failed inside the
call with "missing 1 required positional argument"); data that does not fit the selection
names both shapes, the level and the image (numpy's broadcast error named none)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio


async def test_merge_errors_name_the_function_and_the_selection(tmp_path: Path) -> None:
    url = tmp_path / "img.zarr"
    async with ngio_async.create_async(url, shape=(2, 8, 8), dtype="uint16", axes="cyx") as ds:
        await ds.write(np.full((2, 8, 8), 3, np.uint16))

        def ngio_style(existing: Any, patch: Any, ctx: Any) -> Any:
            return existing + patch

        with pytest.raises(TypeError, match=r"'ngio_style' is called as f\(stored, patch\)"):
            await ds.write(np.ones((8, 8)), c=0, merge=ngio_style)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=r"shape \(5,\) .* shape \(8, 8\) of level '0' of"):
            await ds.write(np.ones(5), c=1, merge="max")
        await ds.write(np.full((8, 8), 5, np.uint16), c=0, merge=np.maximum)  # a ufunc: fine
        await ds.write(np.full((8, 8), 1, np.uint16), c=1, merge=lambda a, b, k=2: a + b * k)
        assert (await ds.read(c=0) == 5).all()
        assert (await ds.read(c=1) == 5).all()
