"""The stand-ins that replace chained errors quoting secrets (dd69ba8) pickle: tblib
(installed by dask.distributed) pickles an error with its chain, and a stand-in's type, made
at run time, could not be found by its name (PicklingError "not the same object as
aiohttp.client_exceptions.TooManyRedirects"). They pickle as the type they stand for."""

from __future__ import annotations

import copy
import pickle
from typing import Literal

import pytest
from tblib import pickling_support  # type: ignore[import-untyped]
from test_stores26_traceback_secrets import FAST, Presigner, presigner

from ngio_async import NgioError
from ngio_async.stores import open_store

__all__ = ["presigner"]


@pytest.mark.parametrize("backend", ["aiohttp", "obstore"])
async def test_a_scrubbed_error_pickles_with_its_chain(
    presigner: Presigner, backend: Literal["aiohttp", "obstore"]
) -> None:
    url = f"{presigner.url}?sig=SIGNATURE3"
    async with open_store(url, limits=FAST, backend=backend) as store:
        with pytest.raises(NgioError) as info:
            await store.get("loop/a")
    err = info.value
    cause = err.__cause__
    assert cause is not None
    kind = type(cause).__mro__[1]  # the type it stands for
    assert type(cause).__name__ == kind.__name__
    pickling_support.install(err)  # as dask.distributed does: the chain is pickled too
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is type(err) and str(back) == str(err)
    assert isinstance(back.__cause__, kind), type(back.__cause__)
    assert str(back.__cause__) == str(cause) and "SIGNATURE3" not in str(back.__cause__)
    assert isinstance(copy.deepcopy(cause), kind)
