"""A TIFF's files: TIFF names, multi-file OME-TIFF sets and companion files, their OME-XML
(ill-formed XML mended), and opening a local TIFF with them."""

from __future__ import annotations

import os
import re
import threading
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .._errors import NgioError, NotFoundError, UnsupportedError
from ._tiffmeta import _local

if TYPE_CHECKING:
    import logging


_TIFF_SUFFIXES = (
    ".tif",
    ".tiff",
    ".btf",
    ".tf8",
    ".tf2",
    ".svs",
    ".qptiff",
    ".lsm",
    ".companion.ome",
)


_COMPANION = ".companion.ome"  # a multi-file OME-TIFF's OME-XML, its TIFFs BinaryOnly


class MultiFileError(UnsupportedError):
    """A TIFF read over ranges (on a store) is one file of a multi-file OME-TIFF: its planes
    or its metadata are in other files (the remote reader then reads the whole set)."""

    #: the bytes of the TIFF fetched so far (a ``RangeFile``), for the set's reader
    fetched: Any = None


def binary_only(xml: str | None) -> str | None:
    """The ``MetadataFile`` an OME-XML of ``BinaryOnly`` names (a TIFF of a multi-file
    OME-TIFF whose metadata are in a companion file or another TIFF of the set; ``""`` when it
    names none); ``None`` for any other OME-XML."""
    if not xml or "BinaryOnly" not in xml:
        return None
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    found = next((e for e in root if _local(e.tag) == "BinaryOnly"), None)
    return None if found is None else found.get("MetadataFile", "")


def _first_tiff(xml: str, where: str) -> str:
    """The file of a companion OME-XML's first ``TiffData`` (its ``UUID FileName``).

    :raises UnsupportedError: it names none (or does not parse)."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise UnsupportedError(f"{where}: not OME-XML ({exc})") from None
    for e in root.iter():
        if _local(e.tag) == "UUID" and e.get("FileName"):
            return str(e.get("FileName"))
    raise UnsupportedError(f"{where}: no TiffData names a file (UUID FileName)")


def _named_files(xml: str, folder: str) -> list[str]:
    """The files an OME-XML's ``TiffData`` name (``UUID FileName``), once each, in order."""
    names = (e.get("FileName") for e in ET.fromstring(xml).iter() if _local(e.tag) == "UUID")
    return [os.path.join(folder, n) for n in dict.fromkeys(n for n in names if n)]


def set_files(path: str) -> list[str] | None:
    """The files of the multi-file OME-TIFF that the local file ``path`` belongs to (any of
    them converts the whole set): its companion file first (``.companion.ome``), then the TIFFs
    its OME-XML names, in order; ``None`` for a file that is a whole image by itself, or that
    does not read (its conversion says why). Reads the first IFD of ``path`` (and of the TIFF
    a ``BinaryOnly`` one names)."""
    import tifffile

    logger = tifffile.logger()
    thread = threading.get_ident()

    def others(record: logging.LogRecord) -> bool:  # a broken file's report is its conversion's
        return record.thread != thread

    logger.addFilter(others)
    try:
        return _set_files(path, follow=True)
    except (OSError, ValueError, ET.ParseError, NgioError):
        return None
    finally:
        logger.removeFilter(others)


def _set_files(path: str, *, follow: bool) -> list[str] | None:
    import tifffile

    folder = os.path.dirname(path)
    if path.lower().endswith(_COMPANION):
        return [path, *_named_files(_read_xml(path, path), folder)]
    with tifffile.TiffFile(path) as tif:
        xml = tif.ome_metadata if tif.is_ome else None
    meta = binary_only(xml)
    if meta is not None:  # its OME-XML is in the file it names: that file's set
        target = os.path.join(folder, meta)
        if not meta or not follow or not os.path.isfile(target):
            return None  # its conversion says what is missing
        return _set_files(target, follow=False)
    files = _named_files(xml, folder) if xml else []
    if not any(not os.path.exists(f) or not os.path.samefile(f, path) for f in files):
        return None  # it names no other file
    return files


def _open_local(path: str) -> Any:
    """A local TIFF as a ``tifffile.TiffFile``, with the whole multi-file OME-TIFF it belongs
    to: a companion OME-XML (``.companion.ome``) opens its first TIFF with it; a TIFF whose
    OME-XML is ``BinaryOnly`` opens with the XML of the ``MetadataFile`` it names (a companion
    file), or as that file (the set's TIFF holding the XML, as Micro-Manager writes them).

    :raises NotFoundError: the companion or metadata file is missing.
    """
    import tifffile

    if path.lower().endswith(_COMPANION):
        xml = _read_xml(path, path)
        name = _first_tiff(xml, path)
        first = os.path.join(os.path.dirname(path), name)
        if not os.path.isfile(first):
            raise NotFoundError(f"{path} puts its first planes in {name}, not found beside it")
        return tifffile.TiffFile(first, omexml=xml)
    tif = tifffile.TiffFile(path)
    try:
        if tif.is_ome and (mended := _mended_xml(path, tif.ome_metadata)) is not None:
            tif.close()
            return tifffile.TiffFile(path, omexml=mended)
        meta_name = binary_only(tif.ome_metadata if tif.is_ome else None)
        if not meta_name:
            return tif
        meta = os.path.join(os.path.dirname(path), meta_name)
        if not meta.lower().endswith(_COMPANION) and is_tiff_name(meta):
            opened = tifffile.TiffFile(_existing(meta, path))
            if binary_only(opened.ome_metadata if opened.is_ome else None) is None:
                tif.close()
                return opened
            opened.close()
            raise UnsupportedError(f"{path}: its metadata file {meta_name} holds no OME-XML")
        xml = _read_xml(_existing(meta, path), path)
    except BaseException:
        tif.close()
        raise
    tif.close()
    return tifffile.TiffFile(path, omexml=xml)


#: what makes writers' OME-XML ill-formed: an ``&`` that starts no entity (a channel named
#: "GFP & RFP"), control characters (in a name or description)
_BARE_AMPERSAND = re.compile(r"&(?!(?:[A-Za-z][A-Za-z0-9]*|#[0-9]+|#x[0-9A-Fa-f]+);)")


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _xml_error(xml: str | None) -> str | None:
    """Why ``xml`` does not parse; ``None`` when it does (or there is none)."""
    if not xml:
        return None
    try:
        ET.fromstring(xml)
    except ET.ParseError as exc:
        return str(exc)
    return None


def _mended_xml(url: str, xml: str | None) -> str | None:
    """``xml`` (a TIFF's OME-XML) that does not parse, with a bare ``&`` escaped and control
    characters removed, when that makes it parse (with a ``MetadataWarning`` saying so: tifffile
    reads such a file as plain pages, without its dimensions and metadata); else ``None``."""
    if _xml_error(xml) is None:
        return None
    assert xml is not None
    mended = _CONTROL.sub("", _BARE_AMPERSAND.sub("&amp;", xml))
    if _xml_error(mended) is not None:
        return None
    _warn(
        f"{url}: its OME-XML does not parse ({_xml_error(xml)}): read with its bare '&' escaped and control characters removed"
    )
    return mended


def _warn(text: str) -> None:
    import warnings

    from ..meta import MetadataWarning

    warnings.warn(text, MetadataWarning, stacklevel=3)


def _existing(meta: str, path: str) -> str:
    """``meta``, the metadata file a multi-file OME-TIFF's ``path`` names, if it exists.

    :raises NotFoundError: it does not."""
    if not os.path.isfile(meta):
        raise NotFoundError(
            f"{path} holds pixels only (OME-XML BinaryOnly): its metadata are in "
            f"{os.path.basename(meta)}, not found beside it",
            url=path,
        )
    return meta


def _read_xml(meta: str, path: str) -> str:
    """The OME-XML text of ``meta`` (a companion file of ``path``)."""
    with open(meta, "rb") as f:
        text = f.read().decode("utf-8", errors="replace")
    if not text.rstrip().endswith("OME>"):
        raise UnsupportedError(f"{path}: {os.path.basename(meta)} is no OME-XML document")
    return text


def is_tiff_name(url: Any) -> bool:
    """Whether ``url`` (a path or URL) names a TIFF by its suffix; an http(s) URL by its path,
    so a signed URL (``name.tif?sig=...``) counts."""
    if not isinstance(url, str | os.PathLike):
        return False
    text = os.fspath(url)
    if text.lower().startswith(("http://", "https://")):
        text = urlsplit(text).path
    return text.lower().endswith(_TIFF_SUFFIXES)
