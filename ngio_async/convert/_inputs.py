"""A batch's inputs: a local folder's or a remote prefix's convertible files (skipping the
output folder and the files of multi-file sets)."""

from __future__ import annotations

import glob as globmod
import os
import posixpath
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from .._errors import NotFoundError, UnsupportedError
from ..images._root_checks import _local_directory
from ._formats import OmeZarrReader, find_reader
from ._jobs import _name
from ._locations import _inside, _is_http, _same_file, _url_location

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from ..stores import AsyncStore

_NODE_FILES = ("zarr.json", ".zattrs", ".zgroup", ".zarray")


def _local_dir(url: Any) -> str | None:
    """The local directory of a path or ``file://`` URL (as ``open_store`` resolves it);
    ``None`` for other URLs and objects."""
    return _local_directory(url) if isinstance(url, str | os.PathLike) else None


def folder_path(src: Any) -> str | None:
    """The local path of ``src`` when it is a folder of inputs: an existing local directory
    that is no zarr node (none of ``zarr.json``, ``.zattrs``, ``.zgroup``, ``.zarray``) and is
    not named ``*.zarr``; else ``None`` (an OME-Zarr image, plate or container is one input)."""
    path = _local_dir(src)
    if path is None or not os.path.isdir(path) or path.rstrip("/").lower().endswith(".zarr"):
        return None
    if any(os.path.lexists(os.path.join(path, name)) for name in _NODE_FILES):
        return None
    return path


def folder_inputs(path: str, dst_dir: Any = None, left_out: list[str] | None = None) -> list[str]:
    """The images of a folder of inputs and of the folders in it, sorted: files a reader other
    than OME-Zarr's takes (TIFFs, a plugin's formats) and OME-Zarr directories (hidden entries
    and links to folders skipped; so is ``dst_dir``, the batch's output directory, when it lies
    in the folder: a re-run would take it for an input). ``left_out`` (a list): gets the files
    no reader takes.

    :raises ValueError: the folder holds none."""
    from ._formats import readers

    others = [r for r in readers() if not isinstance(r, OmeZarrReader)]
    left: list[str] = []
    out = _folder_walk(path, others, _local_dir(dst_dir), left)
    if left_out is not None:
        left_out.extend(left)
    if not out:
        raise ValueError(f"{path} holds no image to convert (no TIFF, no OME-Zarr directory)")
    return out


def _folder_walk(path: str, others: Sequence[Any], skip: str | None, left: list[str]) -> list[str]:
    out: list[str] = []
    for name in sorted(os.listdir(path)):
        entry = os.path.join(path, name)
        if name.startswith(".") or (skip is not None and _same_file(entry, skip)):
            continue
        if os.path.isdir(entry):
            if OmeZarrReader().can_read(entry):
                out.append(entry)
            elif not os.path.islink(entry):  # a link may lead back up: a loop
                out.extend(_folder_walk(entry, others, skip, left))
        elif any(r.can_read(entry) for r in others):
            out.append(entry)
        else:
            left.append(entry)
    return out


def _inputs(srcs: str | os.PathLike[str] | Sequence[Any], dst_dir: Any) -> list[tuple[Any, str]]:
    """The batch's inputs, each with the folder its output goes to under ``dst_dir`` (``""``:
    ``dst_dir`` itself; an image in a folder of inputs: the folders between them)."""
    if isinstance(srcs, str) and any(ch in srcs for ch in "*?[") and not os.path.exists(srcs):
        return [(s, "") for s in sorted(globmod.glob(srcs))]
    out: list[tuple[Any, str]] = []
    for src in [srcs] if isinstance(srcs, str | os.PathLike) else srcs:
        folder = folder_path(src) if isinstance(src, str | os.PathLike) else None
        if folder is None:
            out.append((src, ""))
            continue
        for entry in folder_inputs(folder, dst_dir):
            sub = os.path.relpath(os.path.dirname(entry), folder)
            out.append((entry, "" if sub == "." else sub.replace(os.sep, "/")))
    return out


# ------------------------------------------------------------------------------ remote folders
#: options of the readers, not of the store (``src_options`` carry both)
_READER_OPTIONS = frozenset({"series", "threads", "path", "limits"})


@dataclass(frozen=True)
class FolderListing:
    """What :func:`remote_folder_inputs` listed in a folder of inputs on an object store
    (URLs): its images, its multi-file OME-TIFFs' members per companion file, the files no
    reader takes, and the keys listed (its cost: never an OME-Zarr directory's chunks)."""

    images: tuple[str, ...]
    sets: Mapping[str, tuple[str, ...]]
    left_out: tuple[str, ...]
    keys_listed: int


async def remote_folder_inputs(
    url: Any,
    options: Mapping[str, Any] | None = None,
    dst_dir: Any = None,
    left_out: list[str] | None = None,
    sets: dict[str, tuple[str, ...]] | None = None,
    listings: dict[str, FolderListing] | None = None,
) -> list[str] | None:
    """The images of a folder of inputs on an object store (``s3://``, ``gs://``, ``az://``):
    ``url``, a key prefix that is no zarr node, holds them: its TIFFs (files a reader other
    than OME-Zarr's takes) and OME-Zarr directories, and those of its folders, as URLs, sorted
    (hidden entries skipped, and ``dst_dir`` when it lies in the folder). ``None`` when ``url``
    is no such folder: a local path, a file a reader takes, a zarr node. ``left_out`` gets
    the files no reader takes. Listed one level at a time: a folder named ``*.zarr``, or
    holding a zarr node file, is an input and never listed below. A multi-file OME-TIFF
    (a ``.companion.ome`` and its TIFFs, a Micro-Manager ``*_MMStack_*.ome.tif`` series: its
    OME-TIFFs' first IFDs read) is one input, its companion file, else the first TIFF its
    OME-XML names: the others are left out, and ``sets`` gets them under its URL. ``listings`` (by URL) keeps the listing,
    and a listing found there is not done again (one listing per command).

    :raises UnsupportedError: an ``http(s)://`` URL ending in ``/`` that is no zarr node (an
        HTTP server lists no folder).
    :raises NotFoundError: nothing lies under the prefix (or its bucket does not exist).
    :raises ValueError: the folder holds no image.
    """
    text = os.fspath(url) if isinstance(url, str | os.PathLike) else None
    if text is None or "://" not in text or text.lower().startswith(("file://", "memory://")):
        return None
    if not isinstance(find_reader(text), OmeZarrReader):
        return None  # a file a reader takes by its name: a TIFF
    if _is_http(text) and not text.endswith("/"):
        return None  # an image's URL: its conversion says what is missing there
    if text.rstrip("/").lower().endswith(".zarr"):
        return None  # an OME-Zarr directory by its name
    listing = (listings or {}).get(text)
    if listing is None:
        listing = await _list_folder(text, options, dst_dir)
        if listing is None:
            return None
        if listings is not None:
            listings[text] = listing
    if sets is not None:
        sets.update(listing.sets)
    if left_out is not None:
        left_out.extend(listing.left_out)
    if not listing.images:
        raise ValueError(f"{text} holds no image to convert (no TIFF, no OME-Zarr directory)")
    return list(listing.images)


async def _list_folder(
    text: str, options: Mapping[str, Any] | None, dst_dir: Any
) -> FolderListing | None:
    """:func:`remote_folder_inputs`' listing of ``text``; ``None`` when it is a zarr node."""
    from ..stores import open_store

    given = dict(options or {})
    store_opts = {k: v for k, v in given.items() if k not in _READER_OPTIONS}
    store = open_store(text, limits=given.get("limits"), **store_opts)
    async with store:
        for name in _NODE_FILES:
            if await store.exists(name):
                return None
        if not store.supports_listing:
            raise UnsupportedError(
                f"{text} is no OME-Zarr (no zarr.json, .zattrs or .zgroup there), and an HTTP "
                "server cannot list a folder: name its files (one URL each)"
            )
        base = text.rstrip("/")
        images, left, count = await _walk(store, _skipped_prefix(base, dst_dir))
        if count == 0:
            raise NotFoundError(f"{text}: nothing there (no key under this prefix)", url=text)
        named = await _remote_sets(store, base, images)
    taken = {m for members in named.values() for m in members}
    return FolderListing(
        images=tuple(f"{base}/{k}" for k in images if k not in taken),
        sets={f"{base}/{k}": tuple(f"{base}/{m}" for m in v) for k, v in named.items()},
        left_out=tuple(f"{base}/{k}" for k in left),
        keys_listed=count,
    )


async def _walk(store: AsyncStore, skip: str | None) -> tuple[list[str], list[str], int]:
    """A folder's images (files a reader other than OME-Zarr's takes; OME-Zarr directories:
    folders named ``*.zarr`` or holding a zarr node file, never listed below), the files no
    reader takes, as keys (hidden entries and ``skip`` left out), and the entries listed;
    one delimiter listing per folder (a level's folders listed at once)."""
    from ..images._run_all import _run_all
    from ._formats import readers

    others = [r for r in readers() if not isinstance(r, OmeZarrReader)]
    images: list[str] = []
    left: list[str] = []
    count = 0
    todo = [""]
    listed: dict[str, tuple[list[str], list[str]]] = {}

    async def one(prefix: str) -> None:
        listed[prefix] = await store.list_dir(prefix)

    while todo:
        listed.clear()
        await _run_all(todo, one, store.limits.max_requests)
        todo = []
        for prefix, (folders, keys) in sorted(listed.items()):
            count += len(folders) + len(keys)
            if prefix and any(k.rpartition("/")[2] in _NODE_FILES for k in keys):
                images.append(prefix)  # a zarr node: an input, whatever it holds below
                continue
            _sort_level(prefix, folders, keys, skip, others, (images, left, todo))
    return sorted(images), sorted(left), count


def _sort_level(
    prefix: str,
    folders: list[str],
    keys: list[str],
    skip: str | None,
    others: Sequence[Any],
    out: tuple[list[str], list[str], list[str]],
) -> None:
    """One folder's listing into ``out``: images, files no reader takes, folders to list."""
    images, left, todo = out
    for folder in folders:
        name = folder.rpartition("/")[2]
        if name.startswith(".") or (skip and _inside(folder, skip)):
            continue
        (images if name.lower().endswith(".zarr") else todo).append(folder)
    for key in keys:
        if key.rpartition("/")[2].startswith(".") or (skip and _inside(key, skip)):
            continue
        (images if any(r.can_read(key) for r in others) else left).append(key)


async def _remote_sets(store: AsyncStore, base: str, keys: Sequence[str]) -> dict[str, list[str]]:
    """Per multi-file OME-TIFF of which several files are among ``keys`` (its companion
    file, its TIFFs: OME-TIFFs read by their first IFD, a few at once): its first one (the
    companion file, else the first TIFF its OME-XML names) and the others. A file that does
    not read makes no set (its conversion says why)."""
    from ._tiffremote import remote_set_keys
    from ._tiffsets import _COMPANION

    names = (_COMPANION, ".ome.tif", ".ome.tiff")
    candidates = [k for k in keys if k.lower().endswith(names)]
    groups: dict[tuple[str, ...], list[str]] = {}
    limiter = anyio.CapacityLimiter(8)

    async def one(key: str) -> None:
        async with limiter:
            try:
                files = await remote_set_keys(store, base, key)
            except Exception:  # noqa: BLE001 - no set; converting it says why
                return
        if files:
            groups.setdefault(tuple(files), []).append(key)

    if len(candidates) > 1:  # one file makes no set to take apart
        async with anyio.create_task_group() as tg:
            for key in candidates:
                tg.start_soon(one, key)
    out: dict[str, list[str]] = {}
    for order, members in groups.items():
        if len(members) > 1:
            rank = {f: i for i, f in enumerate(order)}
            members.sort(key=lambda m: (rank.get(m, len(rank)), m))
            out[members[0]] = members[1:]
    return out


def _skipped_prefix(base: str, dst_dir: Any) -> str | None:
    """The key prefix of ``dst_dir`` below the folder ``base`` (a re-run would take the
    batch's outputs for inputs); ``None`` when it lies elsewhere."""
    if not isinstance(dst_dir, str | os.PathLike):
        return None
    here, there = _url_location(base), _url_location(os.fspath(dst_dir))
    if here is None or there is None or here[:2] != there[:2] or here[0] != "url":
        return None
    if there[2] == here[2] or not _inside(there[2], here[2]):
        return None
    return there[2][len(here[2].rstrip("/")) + 1 :]


async def _batch_inputs(
    srcs: str | os.PathLike[str] | Sequence[Any],
    dst_dir: Any,
    options: Mapping[str, Any] | None,
    sets: dict[str, tuple[str, ...]],
    listings: dict[str, FolderListing] | None = None,
) -> tuple[list[tuple[Any, str]], dict[str, Exception]]:
    """:func:`_inputs`, with the folders of inputs on object stores listed (``sets`` gets
    their multi-file OME-TIFFs' members; ``listings``: those listed already); and the inputs
    that failed so (a folder holding no image, an HTTP folder): their errors."""
    out: list[tuple[Any, str]] = []
    failed: dict[str, Exception] = {}
    for src, sub in _inputs(srcs, dst_dir):
        try:
            found = (
                None
                if sub
                else await remote_folder_inputs(src, options, dst_dir, None, sets, listings)
            )
        except Exception as exc:  # noqa: BLE001 - that input's result
            failed[_name(src)] = exc
            continue
        if found is None:
            out.append((src, sub))
            continue
        base = os.fspath(src).rstrip("/")
        out.extend((entry, posixpath.dirname(entry[len(base) + 1 :])) for entry in found)
    return out, failed
