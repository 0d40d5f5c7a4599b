"""``stream()``'s ``threads`` and ``window`` (audit of issue 4): a bad value is refused at the
call, naming the parameter and the value; numpy integers work."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from images import Spec, write_image

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio
SPEC = Spec(version="0.5", shape=(2, 70, 53), chunks=(1, 16, 16), shards=(1, 32, 32), levels=1)


@pytest.fixture
def image(tmp_path: Path) -> tuple[Path, np.ndarray[Any, Any]]:
    return tmp_path, write_image(tmp_path, SPEC)[0]


async def test_stream_errors_name_the_parameter_and_value(
    image: tuple[Path, np.ndarray[Any, Any]],
) -> None:
    root, _ = image
    async with ngio_async.open_async(root) as ds:
        # was: "threads and window must be >= 1" (which, and what value?), a TypeError from
        # "<" for window="4", and window=2.5 or True taken
        bad: list[tuple[dict[str, Any], str, str]] = [
            ({"threads": 0}, "threads", "0"),
            ({"window": 0}, "window", "0"),
            ({"window": -3}, "window", "-3"),
            ({"window": "4"}, "window", "'4'"),
            ({"window": 2.5}, "window", "2.5"),
            ({"window": True}, "window", "True"),
            ({"threads": 1.5}, "threads", "1.5"),
        ]
        for kw, name, shown in bad:
            with pytest.raises(
                ValueError, match=rf"^{name} must be a positive integer, got {shown}"
            ):
                ngio_async.stream(ds.tiles(), np.mean, **kw)
        # numpy integers are fine
        sizes: dict[str, Any] = {"threads": np.int64(2), "window": np.int32(3)}
        results = await ngio_async.stream(ds.tiles(), np.max, **sizes)
        assert results is not None and len(results) == len(ds.tiles())


async def test_a_func_that_is_not_callable_is_refused_at_the_call(
    image: tuple[Path, np.ndarray[Any, Any]],
) -> None:
    root, _ = image
    async with ngio_async.open_async(root) as ds:
        # was: accepted, then "'NoneType' object is not callable" from a worker thread
        for func in (None, 5, "mean"):
            with pytest.raises(TypeError, match=rf"func must be a callable .*got {func!r}"):
                ngio_async.stream(ds.tiles(), func)  # type: ignore[arg-type]
