"""``convert`` to a zipped OME-Zarr (``.ozx``, NGFF RFC-9): the image is converted into a
temporary folder beside the output (same file system), then zipped as RFC-9 recommends:
the root ``zarr.json`` first, the other ``zarr.json`` documents next (breadth-first), then
the chunks and shards; every entry stored (no zip compression: chunks are compressed
already, and ranged reads need stored entries), ZIP64 records where sizes or offsets need
them, and the archive comment ``{"ome": {"version": ...}}`` when every array is sharded
(RFC-9's recommended variant; without it, no comment).

The zip is written to ``<output>.partial`` and renamed to the output once complete: a
conversion that fails (or is cancelled) leaves no zip under the output's name, and the
temporary folder is removed either way (its files go as they are zipped: the disk holds the
output about once). Only local outputs: the zip is written by seeking back into it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
import threading
import zipfile
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import anyio.to_thread

from .._errors import ExistsError, ReadOnlyError, UnsupportedError
from ..stores._url_utils import redact_url
from ..stores._zip import ZIP_SUFFIXES, zip_target

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ._jobs import ConvertResult

__all__ = ["convert_to_zip", "entry_order", "write_zip", "zip_output"]


def zip_output(dst: Any) -> str | None:
    """The local path of the zip file ``dst`` names (a path or ``file://`` URL ending in
    ``.ozx`` or ``.zip``); ``None``: another destination (a folder, a store, a group inside
    an existing zip, which its store refuses to write).

    :raises ReadOnlyError: ``dst`` is a remote URL naming a zip file."""
    if not isinstance(dst, str | os.PathLike):
        return None
    target = zip_target(dst)
    if target is None or target[2] or not target[1].lower().endswith(ZIP_SUFFIXES):
        return None
    folder, name, _ = target
    if "://" in folder:
        shown = f"{redact_url(folder).rstrip('/')}/{name}"
        raise ReadOnlyError(
            f"cannot write {shown}: it names a zip file (zipped OME-Zarr, .ozx) on a remote "
            "store; convert writes zips to local paths only: convert to a local .ozx file "
            "and upload it"
        )
    return os.path.join(folder, name)


async def convert_to_zip(
    path: str,
    shown: str,
    overwrite: bool,
    run: Callable[[str], Awaitable[ConvertResult]],
) -> ConvertResult:
    """Convert with ``run`` (a conversion into the folder it is given) into a temporary
    folder beside ``path``, then zip it to ``path`` (:func:`write_zip`); ``shown``: how the
    result names the output.

    :raises ExistsError: ``path`` exists and not ``overwrite`` (nothing is read then)."""
    folder = await anyio.to_thread.run_sync(_temporary_folder, path, shown, overwrite)
    partial = f"{path}.partial"
    try:
        result = await run(folder)
        await _zip_in_thread(folder, partial, result.ngff_version)
        await anyio.to_thread.run_sync(os.replace, partial, path)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(_remove, partial)
        raise
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(shutil.rmtree, folder, True)
    return dataclasses.replace(result, dst=shown)


def _temporary_folder(path: str, shown: str, overwrite: bool) -> str:
    """A new empty folder beside ``path`` (same file system: the zip is renamed there)."""
    if os.path.lexists(path) and not overwrite:
        raise ExistsError(
            f"the destination {shown} already exists; pass overwrite=True to replace it",
            key=path,
            kind="node",
        )
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    return tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=parent)


async def _zip_in_thread(folder: str, target: str, version: str) -> None:
    """:func:`write_zip` in a worker thread, told to stop (between entries) when this task
    is cancelled; returns once the thread is done with ``target``."""
    stop = threading.Event()
    error: Exception | None = None

    async def watch() -> None:
        try:
            await anyio.sleep_forever()
        finally:
            stop.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch)
        try:
            await anyio.to_thread.run_sync(write_zip, folder, target, version, stop)
        except Exception as exc:  # noqa: BLE001 - raised below, outside the task group
            error = exc
        tg.cancel_scope.cancel()
    if error is not None:
        if isinstance(error, InterruptedError) and stop.is_set():
            await anyio.lowlevel.checkpoint()  # raises the cancellation that stopped it
        raise error


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def entry_order(folder: str) -> list[str]:
    """The files under ``folder`` as zip entry names, in RFC-9's order: the root
    ``zarr.json``, the other ``zarr.json`` documents breadth-first, then the rest."""
    names: list[str] = []
    for at, _, files in os.walk(folder):
        rel = os.path.relpath(at, folder)
        prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        names.extend(prefix + f for f in files)
    return sorted(
        names,
        key=lambda n: (
            n != "zarr.json",
            not n.endswith("/zarr.json"),
            n.count("/") if n.endswith("zarr.json") else 0,
            n,
        ),
    )


def write_zip(folder: str, target: str, version: str, stop: threading.Event | None = None) -> None:
    """Zip ``folder`` (an OME-Zarr of zarr v3: ``zarr.json`` at its root) to ``target``:
    entries stored, in :func:`entry_order`, ZIP64 where needed, RFC-9's archive comment when
    every array is sharded. Each file is deleted from ``folder`` once in the zip. For a
    worker thread: when ``stop`` is set, it stops between entries with
    :class:`InterruptedError`."""
    names = entry_order(folder)
    if not names or names[0] != "zarr.json":
        raise UnsupportedError(
            f"cannot zip {folder}: no zarr.json at its root (RFC-9 zips hold zarr v3, NGFF 0.5)"
        )
    sharded = True
    with zipfile.ZipFile(target, "w", allowZip64=True, strict_timestamps=False) as zf:
        for name in names:
            if stop is not None and stop.is_set():
                raise InterruptedError(f"writing {target} was cancelled")
            path = os.path.join(folder, *name.split("/"))
            if name.endswith("zarr.json") and sharded:
                sharded = _sharded_or_group(path)
            zf.write(path, name)
            os.remove(path)  # the disk holds the output about once, not twice
        if sharded:
            zf.comment = json.dumps({"ome": {"version": version}}).encode()


def _sharded_or_group(path: str) -> bool:
    """Whether the ``zarr.json`` at ``path`` is a group's or a sharded array's."""
    with open(path, "rb") as f:
        doc = json.load(f)
    if doc.get("node_type") != "array":
        return True
    codecs = doc.get("codecs") or [{}]
    return isinstance(codecs[0], dict) and codecs[0].get("name") == "sharding_indexed"
