"""Credentials the server refuses mid-job (S3's 403 RequestTimeTooSkewed, a clock drifting
off) are never read as "missing" by the readers that take a 403 for an absent document on a
store that may not list: the plate documents, `info`'s probes, `convert`'s group reads. Each
said "no group" / "no plate" / None before, silently, where every other read raises."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest
from test_review27s_refused_not_absent import _options, skewed

import ngio_async
from ngio_async.cli._info import _array_at, _probe
from ngio_async.convert._groups import _json_or_none
from ngio_async.images._plate_docs import _consolidated_wells, _read_pending
from ngio_async.stores import open_store

if TYPE_CHECKING:
    from servers import S3Server
    from test_stores27_clock_skew import SkewedProxy

__all__ = ["skewed"]  # (the fixture, shared with review27s's tests)


async def test_refused_credentials_are_no_missing_documents(
    s3_server: S3Server, skewed: SkewedProxy
) -> None:
    url = s3_server.fresh_url() + "/img.zarr"
    options = _options(s3_server, skewed)
    async with ngio_async.create_async(
        url, shape=(8, 8), dtype="uint8", axes="yx", chunks=(8, 8), levels=1, **options
    ) as ds:
        await ds.write(np.ones((8, 8), "uint8"))
    async with open_store(url, **options) as store:
        # the clock right: the image's group is there, and "no array" at its root
        assert (await _probe(store, "", None)) is not None
        assert await _array_at(store) is None
        assert await _json_or_none(store, "zarr.json") is not None
        skewed.skewed = True  # (the clock drifts during the job)
        calls = [
            _probe(store, "", None),  # info: was None ("no group there")
            _array_at(store),  # info: was None ("no array")
            _json_or_none(store, "zarr.json"),  # convert: was None
            _read_pending(store, ""),  # a plate's layout: was None ("not a plate")
            _consolidated_wells(store, "", "0.5", ["A/1"]),  # was {} (read each well)
        ]
        for call in calls:
            with pytest.raises(ngio_async.CredentialsRefusedError, match="clock"):
                await call


def test_the_error_is_exported_and_in_the_tree() -> None:
    from ngio_async.stores import CredentialsRefusedError

    assert CredentialsRefusedError is ngio_async.CredentialsRefusedError
    assert issubclass(CredentialsRefusedError, ngio_async.PermissionDeniedError)
    assert "CredentialsRefusedError" in ngio_async.__all__
