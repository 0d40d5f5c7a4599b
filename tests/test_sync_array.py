"""The sync dataset and its levels under numpy's ``__array__`` protocol."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest
from images import Spec, write_image

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path


def test_array_protocol_copies_casts_and_refuses_copy_false(tmp_path: Path) -> None:
    datas = write_image(tmp_path, Spec(version="0.5", shape=(2, 20, 30), chunks=(1, 8, 8)))
    with ngio_async.open(tmp_path) as ds:
        for src, want in ((ds, datas[0]), (ds.levels[1], datas[1])):
            np.testing.assert_array_equal(np.asarray(src), want)
            cast = np.asarray(src, dtype="float32")
            assert cast.dtype == np.float32
            np.testing.assert_array_equal(cast, want.astype("float32"))
            np.testing.assert_array_equal(np.array(src, copy=True), want)
            # numpy 2: copy=False means "never copy"; the pixels must be read into a new array
            with pytest.raises(ValueError, match="copy=False"):
                np.asarray(src, copy=False)
