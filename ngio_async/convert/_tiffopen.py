"""Checks at a TIFF's open: tifffile's errors as ours, codecs that cannot decode, missing
files of a set, broken files, extents, absent planes."""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import TYPE_CHECKING, Any

from .._errors import (
    CodecError,
    NgioError,
    NotFoundError,
    PermissionDeniedError,
    StoreError,
    UnsupportedError,
)
from ._tiffsets import MultiFileError

if TYPE_CHECKING:
    from collections.abc import Iterator


@contextlib.contextmanager
def _tiff_errors(url: str, what: str) -> Iterator[None]:
    """tifffile's and the codecs' exceptions as ``CodecError`` naming the file (invalid data:
    the CLI exits 1, as for broken zarr chunks); a missing or unreadable file is a
    ``NotFoundError`` / ``PermissionDeniedError`` / ``StoreError`` (not invalid data)."""
    try:
        yield
    except (NgioError, MemoryError):
        raise
    except FileNotFoundError as exc:
        raise NotFoundError(f"no such TIFF file: {url}", url=url) from exc
    except PermissionError as exc:
        raise PermissionDeniedError(f"cannot read {url}: permission denied", url=url) from exc
    except OSError as exc:
        if exc.errno is not None:  # the OS refused (a directory, an I/O error): no bad data
            raise StoreError(f"cannot read {url}: {exc.strerror or exc}", url=url) from exc
        raise _codec_error(url, what, exc) from exc
    except Exception as exc:
        if getattr(exc, "control_flow", False):  # the remote reader's "fetch these bytes"
            raise
        raise _codec_error(url, what, exc) from exc


def _codec_error(url: str, what: str, exc: Exception) -> CodecError:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return CodecError(f"cannot {what} {url}: {type(exc).__name__}: {text}", key=url)


def _check_codecs(url: str, pages: Any) -> None:
    """Refuse, at open, a TIFF whose compression or predictor tifffile cannot decode here
    (JPEG, LZW, ... need the ``imagecodecs`` package): a conversion would otherwise fail at
    its first tile, after the destination was created."""
    from tifffile import TIFF

    for page in pages:
        if page is None:
            continue
        compression, predictor = int(page.compression), int(page.predictor)
        try:
            if compression != 1:
                _probe(TIFF.DECOMPRESSORS[compression], page.compression)
            if predictor != 1 and compression not in TIFF.IMAGE_COMPRESSIONS:
                TIFF.UNPREDICTORS[predictor]
        except KeyError as exc:
            why = str(exc).strip("'\"") or f"compression {compression}"
            hint = " (pip install imagecodecs, or ngio_async[tiff])" if "imagecodecs" in why else ""
            raise UnsupportedError(f"cannot decode {url}: {why}{hint}") from None


#: what tifffile logs (as errors, and then reads on with what it found) for a TIFF whose page
#: chain or series layout is broken: a truncated file, most often
_BROKEN = (
    "invalid page offset",
    "invalid offset to page",
    "corrupted tag list",
    "failed to reshape",
)


class _BrokenLog(logging.Handler):
    """tifffile's reports of a broken structure (:data:`_BROKEN`) logged by this thread."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            text = record.getMessage()
            if any(b in text for b in _BROKEN):
                self.messages.append(text.split("> ", 1)[-1])


class _MissingFilesLog(logging.Handler):
    """tifffile's warnings, logged by this thread, that an OME series' other files (a multi-file
    OME-TIFF) could not be read: it reads on with those planes zeroed."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.files: list[str] = []
        self.count = 0  # how many files, when tifffile tells (it names the first only)

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            text = record.getMessage()
            if "failed to read '" in text:
                self.files.append(text.split("failed to read '", 1)[1].split("'", 1)[0])
            elif "OME series failed to read " in text and text.endswith(" files"):
                with contextlib.suppress(ValueError):
                    self.count = int(text.rsplit(" ", 2)[-2])


@contextlib.contextmanager
def _refuse_missing_files(url: str, remote: bool) -> Iterator[None]:
    """Raise ``NotFoundError`` (``UnsupportedError`` for a TIFF on a store) when tifffile could
    not read the other files of a multi-file OME-TIFF while this block parses: their planes
    would be converted as zeros, the conversion looking complete."""
    log = logging.getLogger("tifffile")
    handler = _MissingFilesLog()
    log.addHandler(handler)
    try:
        yield
    except ValueError:  # a TiffData of a file it could not open gives no plane count
        if not (remote and handler.files):
            raise
    finally:
        log.removeHandler(handler)
    if handler.files:
        names = ", ".join(dict.fromkeys(handler.files))
        more = handler.count - len(set(handler.files))
        if more > 0:
            names += f" and {more} more file{'s' if more > 1 else ''}"
        if remote:
            raise MultiFileError(  # the set's reader reads them (``open_remote_set``)
                f"{url} is a multi-file OME-TIFF: its planes are in other files too ({names})"
            )
        raise NotFoundError(
            f"{url} is a multi-file OME-TIFF whose OME-XML puts planes in {names}, which "
            "could not be read (missing or unreadable beside it)",
            url=url,
        )


@contextlib.contextmanager
def _refuse_broken(url: str) -> Iterator[None]:
    """Raise ``CodecError`` when tifffile reports a broken page chain or series while this
    block parses: it would read on with the pages it found (a 4-page stack truncated after its
    first page is a 2-D image), and the conversion would look complete."""
    log = logging.getLogger("tifffile")
    handler = _BrokenLog()
    log.addHandler(handler)
    try:
        yield
    finally:
        log.removeHandler(handler)
    if handler.messages:
        raise CodecError(f"{url} is truncated or corrupt: {handler.messages[0]}", key=url)


def _check_extent(url: str, pages: Any, size: int, tif: Any = None) -> None:
    """Refuse pages whose pixel data ends past the end of the file (``size`` bytes): a TIFF
    cut short after its IFDs, whose conversion would fail at its last tiles. A page of another
    file than ``tif`` (a multi-file OME-TIFF) is checked against that file's size."""
    for page in pages:
        if page is None:
            continue
        name, limit = url, size
        parent = getattr(page, "parent", tif)
        if tif is not None and parent is not tif:
            fh = parent.filehandle
            name, limit = str(getattr(fh, "path", "") or url), int(getattr(fh, "size", 0) or 0)
            if not 0 < limit < 1 << 60:
                continue
        ends = [
            int(o) + int(n)
            for o, n in zip(page.dataoffsets, page.databytecounts, strict=False)
            if int(n)
        ]
        if ends and max(ends) > limit:
            raise CodecError(
                f"{name} is truncated: its pixel data runs to byte {max(ends)}, "
                f"the file has {limit} bytes",
                key=url,
            )


def _warn_absent_planes(url: str, series: int, pages: list[Any]) -> None:
    """Warn (``MetadataWarning``) when planes an OME-XML lists are in no page of the file
    (an aborted acquisition, or planes never acquired: tifffile reads them as zeros)."""
    absent = [i for i, p in enumerate(pages) if p is None]
    if not absent:
        return
    import warnings

    from ..meta import MetadataWarning

    first, last = absent[0], absent[-1]
    which = f"plane {first}" if len(absent) == 1 else f"planes {first} to {last}"
    if len(absent) not in (1, last - first + 1):
        which = f"{len(absent)} planes ({first} to {last})"
    warnings.warn(
        f"{url}: {which} of the {len(pages)} planes its OME-XML (TiffData) lists for series "
        f"{series} are in no page of the file (an aborted acquisition, or planes never "
        "acquired): they read as zeros",
        MetadataWarning,
        stacklevel=2,
    )


def _probe(decompress: Any, compression: Any) -> None:
    """Raise ``KeyError`` when ``decompress`` is a stand-in that needs a missing module:
    tifffile's ZSTD decoder without ``imagecodecs`` imports ``compression.zstd`` (Python 3.14)
    only when it is called. Any other error (no valid stream in no bytes) is no verdict."""
    try:
        decompress(b"")
    except ImportError:
        raise KeyError(f"{compression!r} requires the 'imagecodecs' package") from None
    except Exception:  # noqa: BLE001, S110 - a real decoder refusing empty input
        pass
