"""``ngio-async convert SRC... DST``: wired to ``ngio_async.convert`` / ``convert_many``.

A SRC is an image (OME-Zarr, TIFF, ...), a whole HCS plate (every field converted; the line
printed counts its wells and fields), or several images (a multi-image TIFF, a bioformats2raw
container): every one of them, into a bioformats2raw container, or with ``--series N`` image N
alone.

The store options (``--endpoint``, ``--region``, ``--anonymous``, ``--allow-http``, as for
``info``, ``validate`` and ``bench``) go to every ``s3://``, ``gs://`` or ``az://`` SRC
(``src_options``) and DST (``dst_options``); local paths and ``http(s)://`` URLs get none.
``--source-option KEY=VALUE`` / ``--dest-option KEY=VALUE`` (repeatable) go to one side only,
over those: ``--source-option anonymous=true`` reads a public bucket and writes to one of
yours with the environment's credentials.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import re
import sys
from typing import TYPE_CHECKING, Any

from .._errors import NotFoundError
from .._prefetch import first_leaf
from ._common import (
    CLIError,
    check_url,
    is_object_store,
    stderr_console,
    store_options,
    wants_progress,
)

if TYPE_CHECKING:
    import argparse

__all__ = ["parse_shape", "run_convert"]


def parse_shape(text: str) -> tuple[int, ...]:
    """``"1,1,512,512"`` (or ``1x1x512x512``) -> ``(1, 1, 512, 512)``."""
    parts = re.split(r"[,x]", text.strip())
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise CLIError(f"invalid shape {text!r}: expected integers like 1,1,512,512") from None
    if not shape or any(n < 1 for n in shape):
        raise CLIError(f"invalid shape {text!r}: expected positive integers like 1,1,512,512")
    return shape


def _shards(text: str | None) -> tuple[int, ...] | bool | None:
    if text is None:
        return None
    if text.lower() in ("none", "no", "false", "off"):
        return False
    return parse_shape(text)


_COMPRESSORS = ("zstd", "blosc-zstd", "gzip")


def _compressor(text: str | None) -> str | bool | None:
    """``--compressor none`` -> ``False`` (uncompressed); unset -> ``None`` (the source's);
    names in any case (``ZSTD``); an unknown name is a usage error naming the option."""
    if text is None:
        return None
    name = text.strip().lower()
    if name in ("none", "no", "false", "off", "raw"):
        return False
    if name not in _COMPRESSORS:
        raise CLIError(f"--compressor {text!r}: expected {', '.join(_COMPRESSORS)} or none")
    return name


def _expand(
    srcs: list[str], dst: str | None = None, left_out: list[str] | None = None
) -> tuple[list[str], bool]:
    """SRCs with their glob patterns (``'scans/*.tif'``, quoted or from a shell that does not
    expand them) expanded, sorted (a folder of inputs, a directory that is no zarr node, is
    kept as it is for ``convert_many``, which mirrors its folders; one that holds no image is
    an error); and whether a pattern or folder was given (then DST is a directory, whatever
    the number of matches). A local path that exists is never a pattern. ``left_out`` gets
    the folders' files no reader takes."""
    import glob
    import os

    from ..convert._inputs import folder_inputs, folder_path

    out: list[str] = []
    pattern = False
    for src in srcs:
        folder = folder_path(src)
        if folder is not None:  # a folder of inputs (not an OME-Zarr directory): its images
            try:
                folder_inputs(folder, dst, left_out)
            except ValueError as exc:
                raise CLIError(f"not found: {exc}") from None
            out.append(src)
            pattern = True
            continue
        if "://" in src or not any(ch in src for ch in "*?[") or os.path.exists(src):
            out.append(src)
            continue
        matches = sorted(glob.glob(src))
        if not matches:
            raise CLIError(f"not found: no file or directory matches {src!r}")
        out.extend(matches)
        pattern = True
    return out, pattern


def _remote_folders(
    srcs: list[str], dst: str, options: dict[str, Any], left_out: list[str]
) -> list[str]:
    """The SRCs that are folders of inputs on an object store (a key prefix that is no zarr
    node: ``s3://bucket/scans/``), listed (once: ``options["folder_listings"]`` hands the
    listings to ``convert_many``); a folder holding no image, an empty prefix and an
    ``http(s)://`` folder (a server lists none) are usage errors naming the SRC."""
    from ..convert._inputs import remote_folder_inputs
    from ._common import describe_error
    from ._run import run_async

    listings: dict[str, Any] = {}

    async def probe() -> list[str]:
        folders: list[str] = []
        for src in srcs:
            if "://" not in src or src.startswith("file://") or "*" in src:
                continue  # local, or a pattern (told below, if it finds nothing)
            try:
                found = await remote_folder_inputs(
                    src, options.get("src_options"), dst, left_out, None, listings
                )
            except Exception as exc:
                _, message = describe_error(exc)
                named = src.rstrip("/") in message
                raise CLIError(message if named else f"{src}: {message}") from exc
            if found is not None:
                folders.append(src)
        return folders

    folders = run_async(probe)
    if folders:
        options["folder_listings"] = listings
    return folders


def _options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "ngff_version": args.ngff_version,
        "chunks": parse_shape(args.chunks) if args.chunks else None,
        "shards": _shards(args.shards),
        "compressor": _compressor(args.compressor),
        "levels": args.levels,
        "overwrite": args.overwrite,
    }


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _side_options(items: list[str], flag: str) -> dict[str, Any]:
    """``--source-option`` / ``--dest-option`` ``KEY=VALUE`` items as ``open_store`` options
    (``allow-http`` is ``allow_http``; ``true`` / ``false`` are booleans)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise CLIError(f"{flag} {item!r}: expected KEY=VALUE (e.g. anonymous=true)")
        low = value.strip().lower()
        out[key] = True if low in _TRUE else False if low in _FALSE else value
    return out


def _store_options(args: argparse.Namespace, srcs: list[str], dst: str) -> dict[str, Any]:
    """``src_options`` / ``dst_options`` from the store options (both sides) and
    ``--source-option`` / ``--dest-option`` (one side, over them), for the object-store
    URLs."""
    given = store_options(args)
    source = _side_options(getattr(args, "source_option", None) or [], "--source-option")
    dest = _side_options(getattr(args, "dest_option", None) or [], "--dest-option")
    if not given and not source and not dest:
        return {}
    out: dict[str, Any] = {}
    remote = [s for s in srcs if is_object_store(s)]
    if remote and len(remote) != len(srcs) and (given or source):
        raise CLIError(
            "the store options (--endpoint, --region, --anonymous, --allow-http, "
            "--source-option) apply to every SRC: convert s3:// / gs:// / az:// SRCs apart "
            "from the other ones"
        )
    if source and not remote:
        raise CLIError("--source-option: for s3://, gs:// or az:// SRCs, and no SRC is one")
    if dest and not is_object_store(dst):
        raise CLIError(f"--dest-option: for an s3://, gs:// or az:// DST, and {dst} is none")
    if remote and (given or source):
        out["src_options"] = {**given, **source}
    if is_object_store(dst) and (given or dest):
        out["dst_options"] = {**given, **dest}
    if not out:
        raise CLIError(
            "the store options (--endpoint, --region, --anonymous, --allow-http) are for "
            "s3://, gs:// or az:// URLs, and no SRC or DST is one"
        )
    return out


def _supported(func: Any, options: dict[str, Any]) -> dict[str, Any]:
    """Drop ``progress`` when the conversion function does not take it."""
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return options
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return options
    return {k: v for k, v in options.items() if k in params or k != "progress"}


def _describe(result: Any, dst: str) -> str:
    """One line for a ``ConvertResult`` (attributes read defensively)."""
    where = getattr(result, "dst", None) or dst
    if getattr(result, "skipped", False):
        return f"skipped {where} (complete already)" + _members(result)
    parts = [f"wrote {where}"]
    version = getattr(result, "ngff_version", None)
    if version:
        parts.append(f"NGFF {version}")
    if getattr(result, "kind", "image") == "plate":
        wells, fields = len(getattr(result, "wells", ())), getattr(result, "fields", 0)
        parts.append(
            f"plate: {wells} well{'s' * (wells != 1)}, {fields} field{'s' * (fields != 1)}"
        )
    series = getattr(result, "series", ())
    if series:  # a multi-image source: a bioformats2raw container
        parts.append(f"{len(series)} series")
    shape = getattr(result, "shape", None)
    if shape:
        parts.append("shape " + "x".join(map(str, shape)))
    levels = getattr(result, "levels", None)
    if levels:
        parts.append(f"{levels} levels")
    labels = getattr(result, "labels", None)
    if labels:
        parts.append(f"labels {', '.join(labels)}")
    written = getattr(result, "bytes_written", None)
    if written:
        parts.append(f"{written / 1e6:.1f} MB")
    return ", ".join(parts) + _members(result)


def _members(result: Any) -> str:
    """What a batch took as files of the same multi-file OME-TIFF as ``result.src``."""
    members = getattr(result, "members", ())
    if not members:
        return ""
    first, *others = (
        os.path.basename(str(m).rstrip("/")) for m in (getattr(result, "src", ""), *members)
    )
    return f"; one multi-file OME-TIFF: {first} with {', '.join(others)}"


_NODE_FILES = ("zarr.json", ".zattrs", ".zgroup", ".zarray")


def _into_directory(dst: str) -> bool:
    """DST is an existing local directory that is no zarr node (and not named ``*.zarr``): the
    image goes inside it as ``DST/<name>.ome.zarr``, as with several SRCs (``cp``'s rule).
    Written as DST itself it would mix with what the directory holds, and ``--overwrite``
    would delete all of it (earlier conversions, other files)."""
    import os
    from urllib.parse import unquote, urlsplit

    if dst.startswith("file://"):
        path = unquote(urlsplit(dst).path)
    elif "://" in dst:
        return False
    else:
        path = os.path.expanduser(dst)
    if not os.path.isdir(path) or path.rstrip("/").lower().endswith(".zarr"):
        return False
    return not any(os.path.lexists(os.path.join(path, name)) for name in _NODE_FILES)


def _left_out(files: list[str]) -> str:
    """The note on the files of folders of inputs that no reader takes (five named)."""
    names = ", ".join(files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "")
    return f"no reader for {len(files)} file{'s' * (len(files) != 1)}, left out: {names}"


def run_convert(args: argparse.Namespace) -> int:
    import ngio_async

    from ._common import EXIT_OK, describe_error
    from ._run import run_async

    dst: str = args.dst
    for url in (*args.srcs, dst):
        check_url(url)
    if dst.lower().startswith("memory://"):
        raise CLIError(
            f"{dst}: a memory:// store ends with this process: nothing written there would be "
            "kept (write to a path or an object store)"
        )
    left_out: list[str] = []
    srcs, pattern = _expand(list(args.srcs), dst, left_out)
    options = _options(args)
    options.update(_store_options(args, srcs, dst))
    if getattr(args, "series", None) is not None:  # the reader's option, for every SRC
        options["src_options"] = {**options.get("src_options", {}), "series": args.series}
    if _remote_folders(srcs, dst, options, left_out):
        pattern = True  # DST is a directory, as for a local folder
    single = len(srcs) == 1 and not pattern and not _into_directory(dst)
    func: Any = ngio_async.convert if single else ngio_async.convert_many
    target: Any = srcs[0] if single else list(srcs)
    with contextlib.ExitStack() as stack:
        console = stderr_console()
        # a terminal only: elsewhere the transient bar leaves an empty line on stderr
        if wants_progress(args.quiet) and console.is_terminal:
            from ..progress import rich_progress

            # the bar counts the inputs (convert_many's total: a multi-file OME-TIFF's
            # files, and a file given twice, are one input; a folder's are known once listed)
            what = "converting" if single else "converting inputs"
            options["progress"] = stack.enter_context(
                rich_progress(what, console=console, transient=True)
            )
        try:
            result = run_async(func, target, dst, quiet=args.quiet, **_supported(func, options))
        except ValueError as exc:  # the API's option, in the command line's words
            if str(exc).startswith("series="):
                raise CLIError("--series " + str(exc).removeprefix("series=")) from None
            raise
        except Exception as exc:
            remote = [s for s in srcs if "://" in s and not s.startswith("file://") and "*" in s]
            if remote and isinstance(first_leaf(exc), NotFoundError):  # s3://bucket/*.tif
                _, message = describe_error(exc)
                raise CLIError(
                    f"{message} (patterns such as {remote[0]!r} are expanded for local paths "
                    "only: list the URLs, or name their folder)"
                ) from exc
            raise
    if single:
        if not args.quiet:
            print(_describe(result, dst))
        return EXIT_OK
    status = EXIT_OK
    for src, one in dict(result).items():  # convert_many: {src: ConvertResult | Exception}
        if isinstance(one, BaseException):
            code, message = describe_error(one)
            status = max(status, code)
            print(f"ngio-async: error: {src}: {message}", file=sys.stderr)
        elif not args.quiet:
            print(_describe(one, dst))
    if left_out and not args.quiet:  # a .czi beside the TIFFs must not look converted
        print(f"ngio-async: note: {_left_out(left_out)}", file=sys.stderr)
    return status
