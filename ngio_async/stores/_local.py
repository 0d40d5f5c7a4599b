"""``LocalFileStore``: local directories with plain file I/O, for processes where obstore's
runtime is gone (a child forked from a process that had used obstore)."""

from __future__ import annotations

import functools
import itertools
import os
import re
import stat
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread

from .._errors import NgioError, PermissionDeniedError, StoreError
from ._base import (
    AsyncStore,
    Buffer,
    ByteRequest,
    check_key,
    file_version,
    read_file,
)
from ._url_utils import file_url

try:
    import fcntl
except ImportError:  # Windows: no flock
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator

    from .._limits import Limits

__all__ = ["LocalFileStore", "directory_lock", "flock_or_close", "take_lock"]

T = TypeVar("T")

# obstore's staging files ("<key>#<n>", renamed over the key once written): never keys
_STAGING = re.compile(r"#\d+$")
_counter = itertools.count()


class LocalFileStore(AsyncStore):
    """A directory as a store, with the behaviour of obstore's ``LocalStore`` (``mkdir``,
    ``automatic_cleanup=True``) from plain Python: reads with ``os.pread``, writes to a staging
    file ``<key>#<n>`` renamed over the key (readers never see half an object), conditional
    writes by a hard link, listings that skip staging files, deletes that remove the
    directories they empty, and obstore's version tokens (inode, mtime and size). Each call
    runs in a worker thread. ``open_store`` uses it for local paths where obstore cannot run.
    """

    supports_writes = True
    supports_listing = True
    blocking_reads = True

    def __init__(
        self,
        root: str,
        *,
        mkdir: bool = False,
        url: str | None = None,
        limits: Limits | None = None,
        limiter: anyio.CapacityLimiter | None = None,
    ) -> None:
        root = os.path.abspath(root)
        super().__init__(url=url or file_url(root), limits=limits, limiter=limiter)
        with self._map_exceptions(""):
            if mkdir:
                os.makedirs(root, exist_ok=True)
        self._dir = self._root = root  # (_root: reads tell versions, see AsyncStore)

    @property
    def root(self) -> str:
        """The directory the keys are relative to."""
        return self._dir

    def _local_path(self, key: str) -> str:
        if _STAGING.search(key):
            raise StoreError(
                f"invalid key {key!r} for {self.url}: names ending in '#<digits>' are staging "
                "files of local stores",
                url=self.url,
                key=key,
            )
        return super()._local_path(key)

    # -- reads ----------------------------------------------------------------------------

    def get_blocking(self, key: str, byte_range: ByteRequest | None = None) -> Buffer | None:
        """``get`` for worker threads (no limiter or retries)."""
        self._check_open()
        check_key(key)
        with self._map_exceptions(key):
            return self._read(key, byte_range)

    def _read(self, key: str, byte_range: ByteRequest | None) -> Buffer | None:
        return read_file(self._local_path(key), byte_range, None, url=self.url, key=key)[0]

    async def _get_once(self, key: str, byte_range: ByteRequest | None) -> Buffer | None:
        return await self._run(self._read, key, byte_range)

    def _stat(self, key: str) -> os.stat_result | None:
        try:
            st = os.stat(self._local_path(key))
        except (FileNotFoundError, NotADirectoryError):
            return None
        return None if stat.S_ISDIR(st.st_mode) else st

    async def _exists_once(self, key: str) -> bool:
        return await self._run(self._stat, key) is not None

    async def _size_once(self, key: str) -> int | None:
        st = await self._run(self._stat, key)
        return None if st is None else st.st_size

    async def _version_once(self, key: str) -> str | None:
        st = await self._run(self._stat, key)
        # obstore's ETag of a local file, so both stores tell the same version
        return None if st is None else file_version(st)

    def _list(self, prefix: str) -> list[str]:
        top = os.path.join(self._dir, *prefix.split("/")) if prefix else self._dir
        keys: list[str] = []
        for directory, _, files in os.walk(top, followlinks=True):
            rel = os.path.relpath(directory, self._dir)
            base = "" if rel == "." else rel.replace(os.sep, "/") + "/"
            keys.extend(base + name for name in files if not _STAGING.search(name))
        return keys

    async def _list_once(self, prefix: str) -> list[str]:
        return await self._run(self._list, prefix)

    def _list_dir(self, prefix: str) -> tuple[list[str], list[str]]:
        top = os.path.join(self._dir, *prefix.split("/")) if prefix else self._dir
        base = f"{prefix}/" if prefix else ""
        folders: list[str] = []
        keys: list[str] = []
        try:
            entries = list(os.scandir(top))
        except (FileNotFoundError, NotADirectoryError):
            return [], []
        for entry in entries:
            if entry.is_dir(follow_symlinks=True):
                folders.append(base + entry.name)
            elif not _STAGING.search(entry.name):
                keys.append(base + entry.name)
        return folders, keys

    async def _list_dir_once(self, prefix: str) -> tuple[list[str], list[str]]:
        return await self._run(self._list_dir, prefix)

    def _sizes(self, prefix: str) -> int:
        total = 0
        for key in self._list(prefix):
            st = self._stat(key)
            total += 0 if st is None else st.st_size
        return total

    async def _stored_bytes_once(self, prefix: str) -> int:
        return await self._run(self._sizes, prefix)

    # -- writes ---------------------------------------------------------------------------

    def _write(self, key: str, data: Buffer, if_absent: bool) -> bool:
        path = self._local_path(key)
        staging = f"{path}#{os.getpid()}{next(_counter)}"
        for attempt in range(100):  # a concurrent delete may remove a directory it emptied
            os.makedirs(os.path.dirname(path), exist_ok=True)
            try:
                fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileNotFoundError:
                if attempt == 99:
                    raise
                continue
            break
        try:
            try:
                view = memoryview(data).cast("B")
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            if not if_absent:
                os.replace(staging, path)
                return True
            try:
                os.link(staging, path)
            except FileExistsError:
                return False
            return True
        finally:
            if if_absent or os.path.lexists(staging):
                with suppress(FileNotFoundError):
                    os.unlink(staging)

    async def _put_once(self, key: str, data: Buffer, *, if_absent: bool) -> bool:
        return await self._run(self._write, key, data, if_absent)

    @asynccontextmanager
    async def _update_guard(self, key: str) -> AsyncIterator[None]:
        directory = os.path.dirname(self._local_path(key))
        async with self._keyed_lock(directory), directory_lock(directory, self.url, key):
            yield

    def _remove(self, key: str) -> None:
        path = self._local_path(key)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        except PermissionError:
            if os.path.isdir(path):  # Linux says EISDIR, macOS EPERM
                raise IsADirectoryError(f"{path} is a directory") from None
            raise
        # remove the directories this emptied, as obstore's automatic_cleanup does
        parent = os.path.dirname(path)
        while parent != self._dir and parent.startswith(self._dir + os.sep):
            try:
                os.rmdir(parent)
            except OSError:  # not empty (or gone): stop
                return
            parent = os.path.dirname(parent)

    async def _delete_once(self, key: str) -> None:
        await self._run(self._remove, key)

    # -- machinery ------------------------------------------------------------------------

    async def _run(self, func: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(functools.partial(func, *args))

    @contextmanager
    def _map_exceptions(self, key: str) -> Iterator[None]:
        url = self.url
        try:
            yield
        except NgioError:
            raise
        except PermissionError as exc:
            raise PermissionDeniedError(
                f"access denied to {key!r} at {url}: {exc}", url=url, key=key
            ) from exc
        except TimeoutError as exc:
            raise self._timed_out(key, url) from exc
        except OSError as exc:
            raise StoreError(f"store error for {key!r} at {url}: {exc}", url=url, key=key) from exc


def _try_flock(directory: str) -> int | None:
    """An open descriptor of ``directory`` holding its exclusive ``flock``, ``None`` when
    another holds it (the directory is made when missing)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        os.makedirs(directory, exist_ok=True)
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    return fd if flock_or_close(fd) else None


def flock_or_close(fd: int) -> bool:
    """Take the exclusive ``flock`` of ``fd`` without blocking; ``False`` (``fd`` closed) when
    another holds it; ``fd`` is closed on any error too."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    except BaseException:
        os.close(fd)
        raise
    return True


@asynccontextmanager
async def directory_lock(directory: str, url: str, key: str) -> AsyncIterator[None]:
    """Hold the exclusive ``flock`` of ``directory`` (other processes of this machine that
    lock it wait; no lock file is made). Released at the end (also when the process dies),
    even while a process forked meanwhile holds a copy of the descriptor. Without ``fcntl``
    (Windows): nothing."""
    if fcntl is None:
        yield
        return
    fd = await take_lock(
        functools.partial(_try_flock, directory), f"cannot lock {directory} to update", url, key
    )
    try:
        yield
    finally:
        _unlock_and_close(fd)


def _unlock_and_close(fd: int) -> None:
    """Release the ``flock`` of ``fd``, then close it: closing alone does not release it
    while a child forked meanwhile still holds a copy of the descriptor (the lock belongs to
    the open file, which the copy keeps open)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


async def take_lock(try_lock: Callable[[], int | None], failure: str, url: str, key: str) -> int:
    """The descriptor ``try_lock()`` returns holding a lock (it tries without blocking:
    ``None`` while another process holds it), tried again after a short sleep meanwhile, so
    waiting holds no thread and can be cancelled; a lock taken is never left behind by a
    cancellation. An ``OSError`` of it is a ``StoreError``: ``failure`` {key!r} at {url}."""
    delay = 0.001
    while True:
        try:
            with anyio.CancelScope(shield=True):  # a lock taken is never left behind
                fd = await anyio.to_thread.run_sync(try_lock)
        except OSError as exc:
            raise StoreError(f"{failure} {key!r} at {url}: {exc}", url=url, key=key) from exc
        if fd is not None:
            return fd
        await anyio.sleep(delay)
        delay = min(delay * 2, 0.05)
