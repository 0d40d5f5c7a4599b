"""review27s: the store layer's own errors (outside ``_errors``, which test_errors_pickle
covers) pickle unchanged, as dask sends a worker's error back to the client."""

from __future__ import annotations

import pickle

import pytest

import ngio_async
from ngio_async.stores import CredentialsRefusedError
from ngio_async.stores._base import ForbiddenError


@pytest.mark.parametrize("cls", [CredentialsRefusedError, ForbiddenError])
def test_store_errors_round_trip(cls: type[ngio_async.PermissionDeniedError]) -> None:
    err = cls("access denied to '0/zarr.json'", url="s3://b/img.zarr", key="0/zarr.json")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls and str(back) == str(err)
    assert (back.url, back.key, back.missing_credentials) == (
        "s3://b/img.zarr",
        "0/zarr.json",
        False,
    )
    assert isinstance(
        back, ngio_async.PermissionDeniedError | PermissionError
    )  # (an ordinary except PermissionError catches it)
