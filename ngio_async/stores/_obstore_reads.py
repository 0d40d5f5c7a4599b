"""``_ObstoreReads``: an :class:`~ngio_async.stores.ObstoreStore`'s reads of one object: whole,
ranged, suffix, versioned or conditional GETs, bodies stored ``Content-Encoding``d, blocking
reads of local and in-memory stores, and HEADs (exists, size, version)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import anyio
import obstore
from obstore import exceptions as obs_exc

from .._errors import StoreError
from ._base import (
    Buffer,
    ByteRequest,
    RangeByteRequest,
    SuffixByteRequest,
    byte_span,
    check_complete,
    check_key,
    strong_etag,
)
from ._obstore_base import _ObstoreBase
from ._obstore_errors import (
    _IGNORED_RANGE,
    _NOT_PARTIAL,
    _UNSATISFIABLE,
    _raise_if_no_container,
    _range_refused,
)
from ._obstore_gets import (
    _FALLBACK,
    _GZIP_MAGIC,
    _WHOLE,
    _content_encoding,
    _from_byte_0,
    _get_options,
    _pread,
    decode_content,
)

if TYPE_CHECKING:
    from obstore import GetOptions, ObjectMeta


class _ObstoreReads(_ObstoreBase):
    """Reads of one object, and what a HEAD tells of it."""

    def get_blocking(self, key: str, byte_range: ByteRequest | None = None) -> Buffer | None:
        """Blocking ``get`` for worker threads, on local stores (``blocking_reads``).

        obstore's sync API releases the GIL; one thread hop then both reads and decodes a chunk.
        No limiter or retries: the caller's thread limiter bounds the concurrency.
        """
        if not self.blocking_reads:
            return super().get_blocking(key, byte_range)
        self._check_open()
        check_key(key)
        if self._root is not None:
            read = _pread(os.path.join(self._root, *key.split("/")), byte_range)
            if read is not _FALLBACK:
                if read is None:
                    return None
                data, size = read
                return check_complete(data, byte_range, size, url=self.url, key=key)
        with self._map_exceptions(key):
            try:
                result = obstore.get(self._store, key, options=_get_options(byte_range))
            except FileNotFoundError as exc:
                _raise_if_no_container(exc)
                return None
            data = result.bytes()
            return check_complete(
                memoryview(data), byte_range, result.meta["size"], url=self.url, key=key
            )

    def get_blocking_versioned(
        self, key: str, byte_range: ByteRequest | None = None, *, if_match: str | None = None
    ) -> tuple[Buffer | None, str | None]:
        """:meth:`AsyncStore.get_blocking_versioned`; in-memory stores: one ``get`` with the
        object's ETag (``if_match``: conditional on it, ``ChangedError`` if it is another)."""
        if not (self.blocking_reads and self.versioned):  # local files (_root), remote
            return super().get_blocking_versioned(key, byte_range, if_match=if_match)
        self._check_open()
        check_key(key)
        options = _get_options(byte_range)
        if if_match is not None:
            options["if_match"] = if_match
        with self._map_exceptions(key):
            try:
                result = obstore.get(self._store, key, options=options)
            except FileNotFoundError as exc:
                _raise_if_no_container(exc)
                return None, None
            except obs_exc.PreconditionError:
                raise self._changed(key, if_match, "another version is stored") from None
            data = memoryview(result.bytes())
            meta = result.meta
            complete = check_complete(data, byte_range, meta["size"], url=self.url, key=key)
            return complete, strong_etag(meta.get("e_tag"))

    async def _get_once(self, key: str, byte_range: ByteRequest | None) -> Buffer | None:
        try:
            return await self._get_body(key, byte_range)
        except obs_exc.GenericError as exc:
            self._raise_if_refetched(key, exc)
            raise

    async def _get_checked_once(
        self, key: str, byte_range: ByteRequest | None, if_match: str | None
    ) -> tuple[Buffer | None, str | None]:
        if not self.versioned or self._encoded:  # no versions: local, or decoded objects
            return await self._get_once(key, byte_range), None
        try:
            return await self._get_checked(key, byte_range, if_match)
        except obs_exc.GenericError as exc:
            self._raise_if_refetched(key, exc)
            raise

    async def _get_checked(
        self, key: str, byte_range: ByteRequest | None, if_match: str | None
    ) -> tuple[Buffer | None, str | None]:
        """One GET (``If-Match: if_match`` when given) that reads the answer's ETag."""
        options = _get_options(byte_range)
        if if_match is not None:
            options["if_match"] = if_match
        try:
            result = await obstore.get_async(self._store, key, options=options)
        except FileNotFoundError as exc:
            _raise_if_no_container(exc)
            return None, None
        except obs_exc.PreconditionError:
            raise self._changed(key, if_match, "412 Precondition Failed") from None
        except obs_exc.NotSupportedError as exc:
            if isinstance(byte_range, SuffixByteRequest) and not self._http:
                return await self._get_suffix_checked(key, byte_range, if_match)  # Azure
            if if_match is not None or not _range_refused(exc):
                raise
            return await self._get_once(key, byte_range), None  # a range ignored: no version
        except obs_exc.GenericError as exc:
            if if_match is not None or not (_range_refused(exc) or _NOT_PARTIAL.search(str(exc))):
                raise
            # a range the server refused or ignored (an empty object's suffix): the plain
            # path's answer, without a version
            return await self._get_once(key, byte_range), None
        data = memoryview(await result.bytes_async())
        encoding = _content_encoding(result.attributes) if self._decodes else ""
        if encoding:  # stored Content-Encoded: decoded, no version (ranges are cut)
            ranged = "range" in options
            return await self._decoded(key, byte_range, encoding, data, ranged=ranged), None
        meta = result.meta
        tag = strong_etag(meta.get("e_tag"))
        if if_match is not None and tag is not None and tag != if_match:
            # a server that ignores If-Match
            raise self._changed(key, if_match, f"the answer's ETag is {tag}")
        return check_complete(data, byte_range, meta["size"], url=self.url, key=key), tag

    async def _get_suffix_checked(
        self, key: str, byte_range: SuffixByteRequest, if_match: str | None
    ) -> tuple[Buffer | None, str | None]:
        """A suffix where the store has none (Azure): a HEAD for the size and the ETag, then
        the range, conditional on that ETag (asked again if it changed in between, unless
        ``if_match`` named the version)."""
        for _ in range(3):
            try:
                meta = await obstore.head_async(self._store, key)
            except FileNotFoundError as exc:
                _raise_if_no_container(exc)
                return None, None
            tag = strong_etag(meta.get("e_tag"))
            if if_match is not None and tag != if_match:
                raise self._changed(key, if_match, f"its ETag is {tag}")
            size = meta["size"]
            if size == 0:
                return memoryview(b""), tag
            options: GetOptions = {"range": (max(0, size - byte_range.suffix), size)}
            if tag is not None:
                options["if_match"] = tag
            try:
                result = await obstore.get_async(self._store, key, options=options)
            except FileNotFoundError as exc:
                _raise_if_no_container(exc)
                return None, None
            except obs_exc.PreconditionError:
                if if_match is not None:
                    raise self._changed(key, if_match, "412 Precondition Failed") from None
                continue  # rewritten between the HEAD and the GET
            data = memoryview(await result.bytes_async())
            return check_complete(data, byte_range, size, url=self.url, key=key), tag
        raise self._changed(key, None, "rewritten between its size and its bytes, 3 times")

    async def _get_body(self, key: str, byte_range: ByteRequest | None) -> Buffer | None:
        if self._encoded:  # objects come encoded here: plain GETs, whose headers tell
            try:
                return await self._get_plain(key, byte_range)
            except obs_exc.GenericError as exc:
                if byte_range is None or not _UNSATISFIABLE.search(str(exc)):
                    raise
            # a range past the end of the object, or only of its encoded bytes
            whole = await self._get_plain(key, None)
            return None if whole is None else self._cut(key, whole, byte_range)
        data = await self._get_ranged(key, byte_range)
        while (
            self._decodes
            and not self._magic_checked
            and data is not None
            and bytes(data[:2]) == _GZIP_MAGIC
            and _from_byte_0(byte_range)
        ):
            # gzip data at byte 0: a gzip codec's chunk, or an object stored gzip-encoded
            # (uploaded with Content-Encoding: gzip); the headers of a plain GET tell. One
            # request checks; the others wait for its verdict (a stream's first window)
            if self._encoded:
                return await self._get_plain(key, byte_range)
            if self._magic_check is not None:
                await self._magic_check.wait()
                continue  # checked (or failed: then this one checks)
            self._magic_check = check = anyio.Event()
            try:
                data = await self._get_plain(key, byte_range)
                self._magic_checked = not self._encoded  # not encoded: stored gzip data
            finally:
                self._magic_check = None
                check.set()
        return data

    async def _get_ranged(self, key: str, byte_range: ByteRequest | None) -> Buffer | None:
        if byte_range is None and self.whole_as_range:
            # a whole object as the range [0, 2**40): one runtime round trip, not two
            try:
                data = await obstore.get_range_async(self._store, key, start=0, end=_WHOLE)
            except FileNotFoundError as exc:
                _raise_if_no_container(exc)
                return None
            except (obs_exc.NotSupportedError, obs_exc.GenericError) as exc:
                if not _range_refused(exc):
                    raise
                # an empty object has no byte 0 (416), or the server ignores ranges: ask for
                # the object plainly; a non-empty answer means ranges never do here
                whole = await self._get_plain(key, None)
                if whole is not None and len(whole):
                    self.whole_as_range = False
                return whole
            if len(data) < _WHOLE:
                return memoryview(data)
            # an object of 1 TiB or more: ask for all of it
        if isinstance(byte_range, RangeByteRequest):
            # one runtime round trip (get_async + bytes_async take two loop wake-ups)
            try:
                data = await obstore.get_range_async(
                    self._store, key, start=byte_range.start, end=byte_range.end
                )
            except FileNotFoundError as exc:
                _raise_if_no_container(exc)
                return None
            view = memoryview(data)
            if len(view) == byte_range.end - byte_range.start:
                return view
            # shorter: the object ends inside the range; the answer with its size decides
        return await self._get_plain(key, byte_range)

    async def _get_plain(self, key: str, byte_range: ByteRequest | None) -> Buffer | None:
        options = _get_options(byte_range)
        try:
            result = await obstore.get_async(self._store, key, options=options)
        except FileNotFoundError as exc:
            _raise_if_no_container(exc)
            return None
        except obs_exc.NotSupportedError as exc:
            if not isinstance(byte_range, SuffixByteRequest):
                raise
            if self._http or _IGNORED_RANGE.search(str(exc)):  # a 200 to it: a whole came
                whole = await self._get_plain(key, None)  # (a HEAD's 405 reads as "missing")
                return None if whole is None else memoryview(whole)[-byte_range.suffix :]
            return await self._get_suffix_via_head(key, byte_range)  # Azure: no suffix ranges
        except obs_exc.GenericError as exc:
            if not isinstance(byte_range, SuffixByteRequest):
                raise
            text = str(exc)
            if _UNSATISFIABLE.search(text):  # a suffix of an empty object (RFC 9110 14.1.1)
                return memoryview(b"")
            if not _NOT_PARTIAL.search(text):
                raise
            whole = await self._get_plain(key, None)  # a 200 to the range: the whole object
            return None if whole is None else memoryview(whole)[-byte_range.suffix :]
        data = await result.bytes_async()
        encoding = _content_encoding(result.attributes) if self._decodes else ""
        if encoding:
            body = memoryview(data)
            return await self._decoded(key, byte_range, encoding, body, ranged="range" in options)
        size = result.meta["size"]
        return check_complete(memoryview(data), byte_range, size, url=self.url, key=key)

    async def _decoded(
        self, key: str, byte_range: ByteRequest | None, encoding: str, body: Buffer, *, ranged: bool
    ) -> Buffer | None:
        """The object (or its ``byte_range``) from an answer served ``Content-Encoding``d:
        ``body`` is that answer's, of a range of the encoded bytes if ``ranged``."""
        self._encoded = True
        if ranged:  # a range of the compressed bytes: decode the whole
            whole = await obstore.get_async(self._store, key)
            encoding = _content_encoding(whole.attributes)
            body = memoryview(await whole.bytes_async())
        data = decode_content(body, encoding, url=self.url, key=key) if encoding else body
        return memoryview(data) if byte_range is None else self._cut(key, data, byte_range)

    def _cut(self, key: str, data: Buffer, byte_range: ByteRequest) -> Buffer:
        """``byte_range`` of a whole object's bytes (as a backend cuts it: clamped at the end,
        an error when it starts there or later)."""
        start, end = byte_span(byte_range, len(data))
        at_end = isinstance(byte_range, RangeByteRequest) and start == len(data) < byte_range.end
        if start > len(data) or at_end:
            raise StoreError(
                f"range {byte_range} of {key!r} at {self.url} starts past the end of the "
                f"object ({len(data)} bytes)",
                url=self.url,
                key=key,
            )
        return memoryview(data)[start:end]

    async def get_checked_attempt(
        self, key: str, byte_range: ByteRequest | None, if_match: str | None
    ) -> tuple[Buffer | None, str | None]:
        """``get_attempt`` reading the answer's ETag, conditional on ``if_match`` if given
        (see :meth:`AsyncStore.get_with_version`)."""
        if self._unready:
            await self._make_ready()
        with self._map_exceptions(key):
            return await self._get_checked_once(key, byte_range, if_match)

    async def get_attempt(self, key: str, byte_range: ByteRequest | None) -> Buffer | None:
        """One GET, errors mapped to ``ngio_async`` errors, without this store's limiter,
        timeout or retries (obstore's own retries still apply): for a store that sends some of
        its requests through this client under its own limiter (``HTTPStore``)."""
        if self._unready:
            await self._make_ready()
        with self._map_exceptions(key):
            return await self._get_once(key, byte_range)

    async def _get_suffix_via_head(self, key: str, byte_range: SuffixByteRequest) -> Buffer | None:
        # Azure has no suffix ranges: ask for the size, then an explicit range.
        try:
            size = (await obstore.head_async(self._store, key))["size"]
            if size == 0:
                return memoryview(b"")
            start = max(0, size - byte_range.suffix)
            data = await obstore.get_range_async(self._store, key, start=start, end=size)
        except FileNotFoundError as exc:
            _raise_if_no_container(exc)
            return None
        return check_complete(memoryview(data), byte_range, size, url=self.url, key=key)

    async def _head(self, key: str) -> ObjectMeta | None:
        """The object's metadata, ``None`` when it is missing."""
        try:
            return await obstore.head_async(self._store, key)
        except FileNotFoundError as exc:
            _raise_if_no_container(exc)
            if not self._http:
                return None
        # obstore's HTTP client reads a 405 (no HEAD here) as "missing": a GET tells
        try:
            result = await obstore.get_async(self._store, key, options={"range": (0, 1)})
        except FileNotFoundError:
            return None
        except (obs_exc.NotSupportedError, obs_exc.GenericError) as exc:
            if not _range_refused(exc):  # an empty object has no byte 0; ranges ignored
                raise
            result = await obstore.get_async(self._store, key)
        await result.bytes_async()
        return result.meta

    async def _exists_once(self, key: str) -> bool:
        return await self._head(key) is not None

    async def _size_once(self, key: str) -> int | None:
        if self._encoded:  # a HEAD gives the size of the encoded body
            data = await self._get_plain(key, None)
            return None if data is None else len(data)
        meta = await self._head(key)
        return None if meta is None else int(meta["size"])

    async def _version_once(self, key: str) -> str | None:
        meta = await self._head(key)
        if meta is None:
            return None
        tag = meta.get("e_tag") or meta.get("version")  # local files: inode, mtime and size
        if tag:
            return str(tag)
        modified = meta.get("last_modified")
        if modified is None or (self._http and modified.timestamp() == 0):
            return ""  # obstore's HTTP client gives the epoch for no Last-Modified
        return f"{modified.isoformat()}/{meta['size']}"
