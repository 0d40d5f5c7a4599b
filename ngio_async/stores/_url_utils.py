"""Small URL helpers shared by the backends (no third-party imports)."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit, urlunsplit

__all__ = ["file_url", "gcs_bucket_problem", "redact_url", "redact_urls"]

# a URL within a message: up to a space, a quote or an angle bracket
_URL_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


# S3 and GCS URLs: their keys are literal ('?' and '#' are characters of a key, as the stores
# take them), no query string nor fragment to hide (Azure's may carry a SAS: hidden)
_LITERAL_SCHEMES = frozenset(["s3", "s3a", "gs", "gcs"])


def redact_url(url: str) -> str:
    """``url`` without credentials: no query string or fragment (signed URLs, SAS tokens), no
    password, and for http(s) no user info at all (tokens are often passed as the user name).
    Other schemes keep a bare user name (``abfs://container@account...``); S3 and GCS URLs
    keep all of their path (``s3://bucket/run#1/a?b.zarr``: a key as it is named).
    """
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.netloc.rpartition("@")[0].partition(":")[0]
    if user and parts.scheme.lower() not in ("http", "https"):
        host = f"{user}@{host}"
    if parts.scheme.lower() in _LITERAL_SCHEMES:
        rest = url.partition("://")[2]
        return f"{parts.scheme}://{host}{rest[len(parts.netloc) :]}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def redact_urls(text: str) -> str:
    """``text`` with every URL in it (a redirect's ``Location`` that a client quotes) stripped
    of its user info and fragment, and its query string shown as ``?***``."""
    return _URL_IN_TEXT.sub(_hide_secrets, text)


def _hide_secrets(match: re.Match[str]) -> str:
    url = match[0]
    try:
        parts = urlsplit(url)
    except ValueError:  # no URL after all (a bad port, a bracket): cut what may be secret
        scheme, _, rest = url.partition("://")
        rest = rest.partition("?")[0].partition("#")[0]
        return f"{scheme}://{rest.rpartition('@')[2]}"
    host = parts.netloc.rpartition("@")[2]
    query = "?***" if parts.query else ""
    return urlunsplit((parts.scheme, host, parts.path, "", "")) + query


def file_url(path: str) -> str:
    """The ``file://`` URL of an absolute local ``path`` that ``open_store`` reads back as that
    path: ``%``, ``#`` and ``?`` escaped (else a ``%20`` in a name would be read as a space and
    the rest of the path after ``#`` or ``?`` as a fragment or query); other characters
    as they are, for messages a person reads."""
    return "file://" + path.replace("%", "%25").replace("#", "%23").replace("?", "%3F")


_GCS_BUCKET_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")


def gcs_bucket_problem(bucket: str) -> str | None:
    """The rule of Google Cloud Storage's bucket names that ``bucket`` breaks, as what a
    bucket name does ("has 3 to 63 characters ..."; ``None``: it breaks none). Not the
    names reserved to Google ('goog' first, 'google' in them): its own buckets have them
    (gs://google-code-archive-downloads), read by anyone."""
    if "." not in bucket and not 3 <= len(bucket) <= 63:
        return f"has 3 to 63 characters (up to 222 with dots), not {len(bucket)}"
    if not 3 <= len(bucket) <= 222:
        return f"has 3 to 222 characters with dots, not {len(bucket)}"
    if bad := sorted(set(bucket) - _GCS_BUCKET_CHARS):
        listed = ", ".join(map(repr, bad))
        return f"has lowercase letters, digits, '-', '_' and '.' only, not {listed}"
    if bucket[0] not in _ALNUM or bucket[-1] not in _ALNUM:
        return "starts and ends with a letter or a digit"
    if any(not part for part in bucket.split(".")):
        return "has no empty part between dots ('..')"
    if long := [part for part in bucket.split(".") if len(part) > 63]:
        return f"has at most 63 characters between dots, not {len(long[0])}"
    try:
        ipaddress.IPv4Address(bucket)
    except ValueError:
        pass
    else:
        return "is no IP address"
    return None
