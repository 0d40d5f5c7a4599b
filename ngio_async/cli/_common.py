"""Shared pieces of the command line: exit codes, store options, errors, consoles, JSON."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import sys
from typing import TYPE_CHECKING, Any

from .._errors import (
    CodecError,
    ExistsError,
    MetadataError,
    NgioError,
    NotFoundError,
    PermissionDeniedError,
    StoreError,
    StoreTimeoutError,
    UnsupportedError,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from rich.console import Console

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_INVALID",
    "EXIT_OK",
    "CLIError",
    "add_request_options",
    "add_store_options",
    "check_url",
    "describe_error",
    "human_bytes",
    "is_object_store",
    "one_line_logs",
    "refuse_tiff",
    "request_options",
    "stderr_console",
    "stdout_console",
    "store_options",
]

EXIT_OK = 0
EXIT_INVALID = 1  # the data is invalid (validate), or a metadata / codec error
EXIT_ERROR = 2  # usage, not found, store / network errors, unsupported input
EXIT_INTERRUPTED = 130
_UNWRAPPED = 1 << 16  # the width of a console that is no terminal: lines are never wrapped


class CLIError(Exception):
    """An error the command line reports as one line, with an exit status."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        self.code = code
        super().__init__(message)


class _OneLine(logging.Formatter):
    """A library's log record as one line: the message and its exception's first line, never
    a traceback (nor the raw request bytes aiohttp quotes below one, which may hold a
    client's credentials)."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None:
            detail = getattr(exc, "message", None) or str(exc)
            first = next((ln.strip() for ln in str(detail).splitlines() if ln.strip()), "")
            text = f"{text}: {type(exc).__name__}: {first.rstrip(':')}"
        return f"ngio-async: {record.levelname.lower()}: {' '.join(text.split())}"


#: tifffile's reports of a TIFF with no first page: the conversion then fails with "holds no
#: image (a corrupt or empty TIFF)", which this only says again
_NO_FIRST_PAGE = "invalid offset to first page"


class _NotRepeated(logging.Filter):
    """Drops tifffile's records that only repeat the error the command prints next: a TIFF
    with no first page, and the reports the TIFF reader turns into its error while it parses
    (its handlers for this thread: a broken page chain, a multi-file OME-TIFF's missing
    files). tifffile's other warnings add information: they pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if _NO_FIRST_PAGE in text:
            return False
        tiff = sys.modules.get("ngio_async.convert._tiffopen")  # loaded when a TIFF is read
        if tiff is None:
            return True
        for handler in logging.getLogger(record.name).handlers:
            if getattr(handler, "thread", None) != record.thread:
                continue
            broken = isinstance(handler, tiff._BrokenLog) and record.levelno >= handler.level
            if broken and any(b in text for b in tiff._BROKEN):
                return False
            missing = isinstance(handler, tiff._MissingFilesLog)
            if missing and ("failed to read '" in text or "OME series failed to read " in text):
                return False
        return True


@contextlib.contextmanager
def one_line_logs(logger: str, quiet: bool) -> Iterator[None]:
    """While the block runs: ``logger``'s records (aiohttp's, tifffile's) on stderr through
    :class:`_OneLine`, errors only with ``quiet``; without it they reached stderr through
    Python's last-resort handler, tracebacks included. tifffile's records that only repeat
    the error that follows are left out (:class:`_NotRepeated`)."""
    log = logging.getLogger(logger)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine())
    handler.setLevel(logging.ERROR if quiet else logging.WARNING)
    if logger == "tifffile":
        handler.addFilter(_NotRepeated())
    saved = log.propagate
    log.addHandler(handler)
    log.propagate = False
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.propagate = saved


def refuse_tiff(url: str, command: str) -> None:
    """``info`` and ``validate`` read OME-Zarr: a TIFF gets a message saying so (a TIFF path
    is no directory, so the store layer would say "not found")."""
    from .._open_any import _is_tiff

    if _is_tiff(url):
        raise CLIError(
            f"{url} is a TIFF file; `{command}` reads OME-Zarr. Convert it with "
            "`ngio-async convert`, or stream it with `ngio-async bench`",
            EXIT_ERROR,
        )


def add_store_options(parser: argparse.ArgumentParser) -> None:
    """``--endpoint``, ``--region``, ``--anonymous``, ``--allow-http`` (credentials: ``AWS_*``)."""
    group = parser.add_argument_group(
        "store options",
        "for s3:// (and gs://, az://) URLs; credentials come from the environment "
        "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, ...)",
    )
    group.add_argument("--endpoint", metavar="URL", help="object store endpoint (S3-compatible)")
    group.add_argument("--region", help="bucket region")
    group.add_argument(
        "--anonymous", action="store_true", help="unsigned requests (public buckets)"
    )
    group.add_argument("--allow-http", action="store_true", help="allow plain http:// endpoints")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds > 0, got {text}")
    return value


def _at_least(low: int, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {value}")
    return value


def non_negative(text: str) -> int:
    """An argparse type: an integer >= 0."""
    return _at_least(0, text)


def positive(text: str) -> int:
    """An argparse type: an integer >= 1."""
    return _at_least(1, text)


#: the largest ``--tile-size``: ``ngio_async.web.MAX_TILE_SIZE`` (not imported from there: that
#: would load aiohttp for every command)
MAX_TILE_SIZE = 4096


def tile_size(text: str) -> int:
    """An argparse type: a tile edge, 1 to :data:`MAX_TILE_SIZE` pixels."""
    value = _at_least(1, text)
    if value > MAX_TILE_SIZE:
        raise argparse.ArgumentTypeError(
            f"expected a tile edge from 1 to {MAX_TILE_SIZE} pixels, got {value} (every tile "
            "request reads up to its square)"
        )
    return value


def port(text: str) -> int:
    """An argparse type: a TCP port, 0 to 65535 (0: any free port)."""
    value = _at_least(0, text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {value}")
    return value


def add_request_options(parser: argparse.ArgumentParser) -> None:
    """``--timeout`` and ``--retries``: how long a stalled or failing store is waited for."""
    from .._limits import Limits

    default = Limits()
    group = parser.add_argument_group("request options")
    group.add_argument(
        "--timeout",
        type=_seconds,
        metavar="SECONDS",
        help=f"seconds allowed for one request (default {default.timeout:g}); a stalled "
        "server fails after the retries",
    )
    group.add_argument(
        "--retries",
        type=non_negative,
        metavar="N",
        help=f"retries of a request that timed out or failed with 5xx / 429 (default "
        f"{default.max_retries})",
    )


def request_options(args: argparse.Namespace) -> dict[str, Any]:
    """``{"limits": Limits(...)}`` for ``--timeout`` / ``--retries``; empty without them."""
    from .._limits import Limits

    changes: dict[str, Any] = {}
    if getattr(args, "timeout", None) is not None:
        changes["timeout"] = args.timeout
    if getattr(args, "retries", None) is not None:
        changes["max_retries"] = args.retries
    return {"limits": Limits(**changes)} if changes else {}


OBJECT_STORE_SCHEMES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "azure", "adl"})


def is_object_store(url: str) -> bool:
    """Whether ``url`` is an ``s3://``, ``gs://`` or ``az://`` URL (the store options' URLs)."""
    from urllib.parse import urlsplit

    return urlsplit(url).scheme.lower() in OBJECT_STORE_SCHEMES


#: a URL scheme missing its colon (``s3//bucket/key``): a local path to the store layer
_SCHEME_TYPO = re.compile(
    r"^(s3|s3a|gs|gcs|az|abfs|abfss|azure|https?|file|memory)//(?=[^/])", re.IGNORECASE
)


def check_url(url: str) -> None:
    """Refuse an empty path, a URL that does not parse (naming it), and a URL whose scheme
    lost its colon (``s3//b/x``) when no such local path exists: it would be a local path,
    reported as a missing directory far from the typo."""
    if not url.strip():
        raise CLIError("empty path or URL (use '.' for the current directory)")
    if "://" in url:
        from urllib.parse import urlsplit

        try:
            urlsplit(url)
        except ValueError as exc:  # urllib names nothing: "Invalid IPv6 URL"
            raise CLIError(f"{url}: not a valid URL ({exc})") from None
    match = _SCHEME_TYPO.match(url)
    if match is not None and not os.path.exists(url):
        fixed = f"{match.group(1)}://{url[match.end() :]}"
        raise CLIError(
            f"{url}: no such local path, and not a URL (no ':' after the scheme): did you "
            f"mean {fixed}?"
        )


def store_options(args: argparse.Namespace, url: str | None = None) -> dict[str, Any]:
    """The ``open_store`` options the user gave; with ``url``, refused (naming the flags)
    unless ``url`` is an object-store URL (a local path or http(s):// takes none)."""
    options: dict[str, Any] = {}
    if getattr(args, "endpoint", None):
        options["endpoint"] = args.endpoint
    if getattr(args, "region", None):
        options["region"] = args.region
    if getattr(args, "anonymous", False):
        options["anonymous"] = True
    if getattr(args, "allow_http", False):
        options["allow_http"] = True
    if options and url is not None and not is_object_store(url):
        flags = ", ".join("--" + k.replace("_", "-") for k in options)
        raise CLIError(f"{flags}: for s3://, gs:// or az:// URLs, and {url} is none")
    return options


#: the API's keywords in a missing-credentials message (the command line takes the environment's)
_CREDENTIAL_ARGS = re.compile(r" \(or pass [a-z_]+=[^)]*\)")
#: the stores' advice for a GCS emulator: keywords the command line has no options for (it
#: reads STORAGE_EMULATOR_HOST as they do)
_EMULATOR_ARGS = re.compile(r" \(or use_emulator=True with endpoint=\)")


def describe_error(exc: BaseException) -> tuple[int, str]:
    """The exit status and the one-line message for an exception."""
    from .._prefetch import first_leaf  # with anyio: loaded when there is an error to tell

    exc = first_leaf(exc)
    if isinstance(exc, CLIError):
        return exc.code, str(exc)
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, NotFoundError):
        return EXIT_ERROR, f"not found: {text}"
    if isinstance(exc, PermissionDeniedError):
        if exc.missing_credentials:  # the stores' advice, in the command line's words
            text = _EMULATOR_ARGS.sub("", _CREDENTIAL_ARGS.sub("", text))
            text = text.replace(", anonymous=True for a public", ", or anonymous=True for a public")
            text = text.replace("anonymous=True", "--anonymous")
        return EXIT_ERROR, f"permission denied: {text}"
    if isinstance(exc, StoreTimeoutError):
        return EXIT_ERROR, f"timed out: {text}"
    if isinstance(exc, StoreError):
        return EXIT_ERROR, f"store error: {text}"
    if isinstance(exc, MetadataError):
        return EXIT_INVALID, f"invalid metadata: {text}"
    if isinstance(exc, CodecError):
        return EXIT_INVALID, f"cannot decode: {text}"
    if isinstance(exc, UnsupportedError):
        return EXIT_ERROR, f"unsupported: {text}"
    if isinstance(exc, ExistsError):
        if not exc.overwrite_replaces:  # a file or a parent array: --overwrite would not help
            return EXIT_ERROR, "exists: " + text.replace("overwrite=True", "--overwrite")
        if "overwrite=True" in text:  # the API's advice, in the command line's words
            return EXIT_ERROR, "exists: " + text.replace("pass overwrite=True", "use --overwrite")
        return EXIT_ERROR, f"exists: {text} (use --overwrite)"
    if isinstance(exc, NgioError):
        return EXIT_ERROR, text
    if isinstance(exc, FileNotFoundError):
        return EXIT_ERROR, f"not found: {text}"
    if isinstance(exc, (OSError, ValueError, TypeError, KeyError, IndexError)):
        return EXIT_ERROR, text
    return EXIT_ERROR, f"{type(exc).__name__}: {text}"


def stdout_console() -> Console:
    """A console on stdout; when stdout is not a terminal, no colours and no wrapping (one
    line per item for ``grep``: a nested label level's line is longer than 200 columns).

    A reader that went away (``| head``) raises ``BrokenPipeError`` (``main`` exits 141),
    where rich's own console exits 1, the status of invalid data."""
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            raise BrokenPipeError(32, "Broken pipe")

    console = _Console(highlight=False, soft_wrap=False)
    if not console.is_terminal:
        console = _Console(highlight=False, width=_UNWRAPPED, no_color=True)
    return console


def stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def human_bytes(n: int | None) -> str:
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def wants_progress(quiet: bool) -> bool:
    """Progress bars go to stderr unless ``--quiet`` (or ``NGIO_ASYNC_NO_PROGRESS`` is set)."""
    return not quiet and not os.environ.get("NGIO_ASYNC_NO_PROGRESS") and sys.stderr is not None
