"""Every error of the library pickles unchanged (dask and multiprocessing send a worker's
error back to the client by pickling it)."""

from __future__ import annotations

import pickle

import pytest

import ngio_async
from ngio_async import _errors

ERRORS = [
    cls
    for cls in vars(_errors).values()
    if isinstance(cls, type) and issubclass(cls, _errors.NgioError)
]


def test_metadata_error_keeps_its_message_rule_and_path() -> None:
    err = pickle.loads(pickle.dumps(ngio_async.MetadataError("bad", "$.a")))
    assert str(err) == "bad - at `$.a`"  # was "bad - at `$.a` - at `$`"
    assert (err.rule, err.path) == ("bad", "$.a")


@pytest.mark.parametrize("cls", ERRORS, ids=lambda c: c.__name__)
def test_every_error_round_trips(cls: type[Exception]) -> None:
    try:
        err = cls("msg", url="s3://b/x", key="0/zarr.json")  # type: ignore[call-arg]
    except TypeError:
        err = cls("msg")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls and str(back) == str(err)
    for attr in ("url", "key", "path", "rule"):
        assert getattr(back, attr, None) == getattr(err, attr, None)
