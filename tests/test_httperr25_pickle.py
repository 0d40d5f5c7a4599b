"""The internal HTTP status error travels as the cause of the store error it became (dask and
tblib pickle the chain): it pickles with its status, reason and Retry-After (its __init__
takes a reason, so the default Exception pickling could not rebuild it)."""

from __future__ import annotations

import pickle

from ngio_async.stores._http import _HTTPStatusError


def test_the_status_error_pickles_with_its_fields() -> None:
    error = _HTTPStatusError(503, "Service Unavailable", "7")
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is _HTTPStatusError
    assert (back.status, back.reason, back.retry_after) == (503, "Service Unavailable", 7.0)
    assert str(back) == str(error) == "HTTP 503 Service Unavailable"
