"""How a pickled blocking dataset or plate opens again: its ``(kind, url, options)``, the
options only creating takes, its metadata digest, and what refuses pickling."""

from __future__ import annotations

import hashlib
import inspect
import os
import threading
import weakref
from collections import OrderedDict
from typing import Any
from urllib.parse import urlsplit

import msgspec

from .images import Dataset, Plate, create_async, create_plate_async

_Reopen = tuple[str, Any, dict[str, Any]]
"""``(kind, url, options)``: ``kind`` "zarr" (``open`` options), "any" (any format) or "plate"
(``open_plate`` options)."""


_CREATE_ONLY = frozenset(inspect.signature(create_async).parameters) - {"url", "limits", "path"}


_CREATE_ONLY |= {"tables"}  # create_like's


def _label_reopen(parent: _Reopen | None, root: str, mode: str) -> _Reopen | None:
    """How to reopen a label image: the image's URL and options, the label's own path in that
    store (``<image>/labels/<name>``; inside a bioformats2raw container, under its series)."""
    if parent is None or parent[0] != "zarr":
        return None
    kind, url, options = parent
    return (kind, url, {**options, "path": root, "mode": mode})


def _absolute(url: Any) -> Any:
    """``url`` with a local path made absolute (``~`` expanded); URLs and stores unchanged."""
    if isinstance(url, os.PathLike) or (
        isinstance(url, str) and url.strip() and len(urlsplit(url).scheme) <= 1
    ):
        return os.path.abspath(os.path.expanduser(os.fspath(url)))
    return url


def _refuse_memory(obj: object, url: Any) -> None:
    """A ``memory://`` image cannot be pickled: opened again, it would be a new, empty store."""
    if isinstance(url, str) and urlsplit(url).scheme.lower() == "memory":
        raise TypeError(
            f"{obj!r} cannot be pickled: a memory:// store lives in this process only (a copy "
            "opened again would find a new, empty store); write it to a path or an object store"
        )


class _Pending:
    """An unpickled :class:`SyncDataset` not used yet: how to open it, and whether it was
    closed first."""

    __slots__ = ("closed", "lock", "origin", "spec", "state")

    def __init__(self, spec: _Reopen, state: str | None, origin: str | None) -> None:
        self.spec, self.state, self.origin = spec, state, origin
        self.lock = threading.Lock()  # held while the copy is opened
        self.closed = False


#: a token per opening of a dataset with a read cache (see :func:`_state`)
_openings: weakref.WeakKeyDictionary[Dataset, str] = weakref.WeakKeyDictionary()


def _state(dataset: Dataset) -> str | None:
    """A digest of the metadata ``dataset`` holds now (NGFF and every level's array): unpickled
    copies share an opened dataset only while the original's metadata is the same.

    A dataset with a read cache (``Limits.read_cache_bytes``) adds its own opening: its copies
    keep chunks as first read, so an image opened again (to see later writes) is opened again
    in the workers too, not given their cache of the earlier opening.
    """
    try:
        encoded = msgspec.json.encode([dataset.metadata.ome, [lvl.meta for lvl in dataset.levels]])
    except (AttributeError, TypeError, msgspec.EncodeError):  # metadata of another kind
        # (not msgspec structs): the copies are opened anew
        return None
    digest = hashlib.blake2b(encoded, digest_size=16).hexdigest()
    if getattr(dataset, "read_cache", None) is None:
        return digest
    return f"{digest}/{_openings.setdefault(dataset, os.urandom(8).hex())}"


class _Superseded:
    """The keys of the shared openings a newer opening of their image superseded in this
    process (the last ``size``): one asked for again (a task of an older graph) is opened
    again but supersedes nothing, or the two openings would close each other in turn."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._keys: OrderedDict[bytes, None] = OrderedDict()

    def add(self, key: bytes) -> None:
        self._keys[key] = None
        self._keys.move_to_end(key)
        while len(self._keys) > self.size:
            self._keys.popitem(last=False)

    def seen(self, key: bytes) -> bool:
        return key in self._keys


def _store_options(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k not in ("path", "mode")}


_CREATE_PLATE_LIKE_ONLY = frozenset(
    {"name", "ngff_version", "keep_acquisitions", "wells", "overwrite", "limits"}
)


def _plate_state(plate: Plate) -> str | None:
    """A digest of ``plate``'s metadata now (see :func:`_state`)."""
    try:
        encoded = msgspec.json.encode(plate.metadata)
    except (AttributeError, TypeError, msgspec.EncodeError):
        return None
    return hashlib.blake2b(encoded, digest_size=16).hexdigest()


_CREATE_PLATE_ONLY = frozenset(inspect.signature(create_plate_async).parameters) - {
    "url",
    "limits",
}
