"""The ``ngio-async`` command line: ``info``, ``validate``, ``convert``, ``bench``, ``serve``.

``main(argv) -> int`` parses the arguments, runs the command on one asyncio event loop (anyio)
and turns every error into one line on stderr (``ngio-async: error: <message>``) and an exit
status: 0 success, 1 invalid data (``validate`` found errors; metadata or codec errors), 2 usage
errors, missing inputs and store / network errors, 130 interrupted, 141 the reader of
stdout went away (``| head``).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import sys
from typing import TYPE_CHECKING, NoReturn

from ._common import (
    EXIT_INTERRUPTED,
    MAX_TILE_SIZE,
    add_request_options,
    add_store_options,
    describe_error,
    non_negative,
    one_line_logs,
    port,
    positive,
    tile_size,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["build_parser", "main"]

PROG = "ngio-async"
EXIT_BROKEN_PIPE = 141


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="asyncio-native OME-Zarr (NGFF 0.4 / 0.5) tools: local paths, s3://, "
        "gs://, az://, http(s):// URLs.",
        epilog="exit status: 0 ok, 1 invalid data, 2 usage / not found / I/O error, 130 interrupted",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    parser.set_defaults(_commands=sub.choices)  # main() reports unknown options per command

    def common(p: argparse.ArgumentParser, *, store: bool = True) -> None:
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or notes")
        if store:
            add_store_options(p)

    p = sub.add_parser(
        "info",
        help="the tree of an image, plate, well or bioformats2raw container",
        description="Levels (shape, chunks, shards, codecs, dtype, sizes), channels, labels, "
        "plate layout and series, from the metadata (read concurrently) and, for the stored "
        "sizes, a listing of each level's objects (--no-sizes: metadata only).",
    )
    p.add_argument("url", metavar="URL")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument(
        "--no-sizes",
        action="store_true",
        help="skip the stored sizes (they list every object of every level)",
    )
    add_request_options(p)
    common(p)

    p = sub.add_parser(
        "validate",
        help="NGFF validation of a whole hierarchy",
        description="Validate every group (image, labels, plate, wells, fields, series) and the "
        "cross-node rules; print every error with its key and JSON path. "
        "Exit status 0 valid, 1 invalid, 2 usage or I/O error.",
    )
    p.add_argument("url", metavar="URL")
    p.add_argument("--strict", action="store_true", help="also the SHOULD rules (strict schemas)")
    p.add_argument(
        "--depth",
        type=non_negative,
        default=None,
        metavar="N",
        help="descend at most N levels below URL (0: only URL's group and its arrays; "
        "default: the whole hierarchy)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document")
    add_request_options(p)
    common(p)

    p = sub.add_parser(
        "convert",
        help="convert images (NGFF version, chunks, shards, compressor, levels)",
        description="Convert SRC to DST. Several SRCs (or a quoted glob pattern such as "
        "'scans/*.tif', or a folder of TIFFs and OME-Zarr directories that is no zarr itself), "
        "or a DST that is an existing directory other than a zarr, put each "
        "image in DST, as DST/<name>.ome.zarr (complete ones are skipped unless --overwrite).",
    )
    # two positionals (not one nargs="+" list): options may come between them
    p.add_argument("srcs", nargs="+", metavar="SRC")
    p.add_argument("dst", metavar="DST")
    p.add_argument(
        "--ngff-version",
        choices=("0.4", "0.5"),
        default=None,
        help="output NGFF version (default: the source's, 0.5 for 0.6 and 0.4 for 0.1-0.3; 0.5 for TIFFs)",
    )
    p.add_argument(
        "--chunks",
        metavar="SHAPE",
        help="chunk shape, one value per axis, e.g. 1,1,512,512, or fewer: the last axes' "
        "(the leading ones take 1); leading 1s beyond an image's axes are ignored (default: "
        "the source's; at most 1 MiB for TIFFs)",
    )
    p.add_argument(
        "--shards",
        metavar="SHAPE",
        help="shard shape (0.5; values as for --chunks), or 'none' (default: the source's "
        "if the chunks are kept, else up to 8x8 chunks in y/x)",
    )
    p.add_argument(
        "--compressor",
        metavar="NAME",
        help="zstd, blosc-zstd, gzip or none (default: the source's; zstd for TIFFs)",
    )
    p.add_argument(
        "--levels",
        type=positive,
        metavar="N",
        help="pyramid levels to write (default: the source's; for TIFFs, until y and x are at "
        "most 256)",
    )
    p.add_argument(
        "--series",
        type=non_negative,
        metavar="N",
        help="convert only image N (from 0) of a SRC holding several (a multi-image TIFF or a "
        "bioformats2raw container), as a plain image (default: every image, into a "
        "bioformats2raw container: DST/0, DST/1, ...)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing zarr DST, or an existing DST.ozx zip (never another file; what "
        "an interrupted convert left is replaced without it)",
    )
    for flag, side in (("--source-option", "SRC"), ("--dest-option", "DST")):
        p.add_argument(
            flag,
            action="append",
            metavar="KEY=VALUE",
            help=f"a store option for the s3:// / gs:// / az:// {side} only (repeatable; e.g. "
            "anonymous=true, endpoint=URL, region=NAME, allow_http=true; over the store "
            "options below, which apply to both sides)",
        )
    common(p)  # the store options apply to every s3:// / gs:// / az:// SRC and DST

    p = sub.add_parser(
        "bench",
        help="stream an image tile by tile and report the decoded MB/s",
        description="Stream every tile of one level (unordered, with prefetch) and print the "
        "decoded throughput, the number of tiles and the seconds taken.",
    )
    p.add_argument("url", metavar="URL")
    p.add_argument(
        "--level",
        type=int,
        default=0,
        metavar="N",
        help="pyramid level (default 0; negative counts from the smallest)",
    )
    p.add_argument(
        "--prefetch",
        type=positive,
        default=None,
        metavar="N",
        help="tiles ahead, a fixed window (default: adaptive, within the store's Limits)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document")
    add_request_options(p)
    common(p)

    p = sub.add_parser(
        "serve",
        help="serve images over HTTP: JSON metadata, tiles, regions, zarr, a viewer",
        description="Open each URL (an OME-Zarr image, HCS plate or bioformats2raw container, "
        "whose images are served as NAME/0, NAME/1, ...; convert TIFFs first) once and "
        "serve it (ngio_async.web) until Ctrl-C: /api/datasets, rendered tiles, region.npy, a "
        "read-only /zarr passthrough and a browser viewer at /. A plate's fields and a "
        "container's images are opened on their first request (see --max-open-fields).",
    )
    p.add_argument("urls", nargs="+", metavar="URL")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=port, default=8000, help="port (default 8000; 0: any)")
    p.add_argument(
        "--name",
        action="extend",
        nargs="+",
        metavar="NAME",
        help="dataset names, one per URL in order (after the URLs, or --name repeated; "
        "default: each URL's last path component, de-duplicated)",
    )
    p.add_argument(
        "--tile-size",
        type=tile_size,
        default=512,
        metavar="N",
        help=f"tile edge in pixels, 1 to {MAX_TILE_SIZE} (default 512; a tile of 3 channels "
        "then stays within the default --max-region-pixels)",
    )
    p.add_argument(
        "--max-region-pixels",
        type=positive,
        default=None,
        metavar="N",
        help="largest region.npy answer in elements (default 64 Mi)",
    )
    p.add_argument(
        "--max-open-fields",
        type=positive,
        default=None,
        metavar="N",
        help="plate fields and container images kept open at once; the least recently used one is closed beyond "
        "(default 256)",
    )
    p.add_argument(
        "--read-cache",
        type=non_negative,
        default=0,
        metavar="MIB",
        help="decoded chunks each open image keeps across requests, in MiB (default 0: none); "
        "neighbouring tiles and z steps over chunks several planes deep then decode each chunk "
        "once. For images that do not change while served: a chunk rewritten meanwhile may be "
        "served as first read",
    )
    common(p)
    return parser


def _command(name: str) -> Callable[[argparse.Namespace], int]:
    if name == "info":
        from ._info import run_info

        return run_info
    if name == "validate":
        from ._validate import run_validate

        return run_validate
    if name == "convert":
        from ._convert import run_convert

        return run_convert
    if name == "serve":
        from ._serve import run_serve

        return run_serve
    from ._bench import run_bench

    return run_bench


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    try:
        args, unknown = parser.parse_known_args(argv)
        if unknown:  # under the command's usage (``ngio-async info URL --bogus``), not the top's
            command = args._commands.get(args.command, parser)
            command.error(f"unrecognized arguments: {' '.join(unknown)}")
    except SystemExit as exc:  # --help, --version, usage errors (argparse printed them)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        with one_line_logs("tifffile", bool(getattr(args, "quiet", False))):
            return _command(args.command)(args)
    except BrokenPipeError:  # `ngio-async info ... | head`: the reader went away
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        # 128 + SIGPIPE, as a shell reports a writer the pipe ended: 1 would say "invalid"
        # (`validate ... | head` of a valid image), 0 that everything was printed
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - every error: one line, never a traceback
        code, message = describe_error(exc)
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return code


def run() -> NoReturn:
    """The console entry point: :func:`main`, then an exit that skips interpreter finalization.

    obstore's Rust runtime can abort the process (SIGABRT, exit status 134, no message) when the
    interpreter finalizes shortly after failed requests (seen: ``ngio-async info s3://...``
    against a dead endpoint, 1 run in 4). So after ``main`` returns, stdout and stderr are
    flushed, the ``atexit`` hooks run (the sync shim's event loop stops there), and the process
    exits with ``os._exit``: the status is always the command's own.
    """
    code = main()
    try:
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        atexit._run_exitfuncs()
    finally:
        os._exit(code)
