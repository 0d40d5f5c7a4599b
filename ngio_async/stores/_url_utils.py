"""Small URL helpers shared by the backends (no third-party imports)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["file_url", "redact_url"]


def redact_url(url: str) -> str:
    """``url`` without credentials: no query string or fragment (signed URLs, SAS tokens), no
    password, and for http(s) no user info at all (tokens are often passed as the user name).
    Other schemes keep a bare user name (``abfs://container@account...``).
    """
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.netloc.rpartition("@")[0].partition(":")[0]
    if user and parts.scheme.lower() not in ("http", "https"):
        host = f"{user}@{host}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def file_url(path: str) -> str:
    """The ``file://`` URL of an absolute local ``path`` that ``open_store`` reads back as that
    path: ``%``, ``#`` and ``?`` escaped (else a ``%20`` in a name would be read as a space and
    the rest of the path after ``#`` or ``?`` as a fragment or query); other characters
    as they are, for messages a person reads."""
    return "file://" + path.replace("%", "%25").replace("#", "%23").replace("?", "%3F")
