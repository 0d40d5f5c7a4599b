"""obstore's errors in one short line of our own: the request's method, the HTTP status and the
server's own words, or the connection failure, and how often obstore retried."""

from __future__ import annotations

import html
import ipaddress
import json
import re
from contextlib import suppress
from urllib.parse import SplitResult, urlsplit

__all__ = ["obstore_message"]

# obstore's text of a failed request: "... Error performing GET <url> in 12ms[, after 2
# retries, max_retries: 4, retry_timeout: 180s ] - <reason>", then a "Debug source:" dump
_PERFORMING = re.compile(
    r"Error performing (?P<method>[A-Z]+) (?P<target>\S+ )?in [^,\s]+"
    r"(?:, after (?P<retries>\d+) retries[^\n]*?)? +- (?P<reason>.*)",
    re.DOTALL,
)
_DEBUG = "\n\nDebug source:"
_STATUS_ANSWER = re.compile(
    r"Server returned (?:non-2xx status code: (?P<status>\d{3})(?: (?P<phrase>[^:\n]*))?"
    r"|error response): ?(?P<body>.*)",
    re.DOTALL,
)
_DEBUG_STATUS = re.compile(r"\bstatus: (\d{3}),")
_DEBUG_KIND = re.compile(r"HttpError \{\s*kind: (\w+)")
_DEBUG_OS = re.compile(r'\bmessage: "([^"\n]*)"')
# rustls's refusal of a server's certificate: "InvalidCertificate(UnknownIssuer)", or
# "InvalidCertificate(Other(OtherError(CaUsedAsEndEntity)))"
_DEBUG_CERTIFICATE = re.compile(r"InvalidCertificate\(\s*(?:Other\(\s*OtherError\(\s*)?(\w+)")
# the address a connection was tried to: "ConnectError(\"tcp connect error\", 10.0.0.1:80, ..."
_DEBUG_ADDRESS = re.compile(r'ConnectError\(\s*"[^"\n]*",\s*(\[[0-9A-Fa-f:.]+\]|[0-9.]+):(\d+),')
_DEFAULT_PORTS = {"http": 80, "https": 443}
_XML_CODE = re.compile(r"<Code>\s*([^<]*?)\s*</Code>")
_XML_MESSAGE = re.compile(r"<Message>\s*([^<]*?)\s*</Message>")
# S3's answer to a request signed for another region than its bucket's (the region it wants)
_XML_REGION = re.compile(r"<Region>\s*([a-z0-9-]+)\s*</Region>")
_HTML_TITLE = re.compile(r"<(title|h1)\b[^>]*>([^<]*)</\1>", re.IGNORECASE)
_TAG = re.compile(r"<[!?/]?[A-Za-z][^<>]*>")  # a markup tag (HTML, XML, a DOCTYPE)
_WORDS_MAX = 100  # characters of the server's own words in a message
_LINE_MAX = 200  # characters of an unstructured error's first line


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def _server_words(body: str, status: str, phrase: str) -> str:
    """One short line of what an error answer's body says: an S3/GCS/Azure XML error's
    ``Code: Message``, a JSON error's message, an HTML page's title, or a plain text's first
    line; ``""`` for nothing more than the status."""
    body = body.strip()
    words = body
    if body.startswith("<"):
        code, message = _XML_CODE.search(body), _XML_MESSAGE.search(body)
        title = _HTML_TITLE.search(body)
        region = _XML_REGION.search(body)
        if code and region and code.group(1) == "AuthorizationHeaderMalformed":
            return (  # its message, cut to fit, lost the region
                f"{code.group(1)}: the bucket is in region {region.group(1)!r}: pass "
                f"region={region.group(1)!r} or set AWS_REGION"
            )
        if code or message:
            words = ": ".join(m.group(1) for m in (code, message) if m and m.group(1))
        elif title:
            words = title.group(2)
        else:  # the first line of text between the tags
            words = _TAG.sub("\n", body)
        words = html.unescape(words)
    elif body.startswith("{"):
        with suppress(ValueError):
            doc = json.loads(body)
            error = doc.get("error", doc) if isinstance(doc, dict) else None
            if isinstance(error, dict):
                error = error.get("message") or error.get("error_description")
            words = str(error) if error else body
    line = next((line for line in words.splitlines() if line.strip()), "")
    words = _clip(_TAG.sub("", line), _WORDS_MAX)
    redundant = {"", status, phrase.lower(), f"{status} {phrase}".lower().strip()}
    return "" if words.lower() in redundant else words


def obstore_message(exc: BaseException) -> str:
    """What an obstore error says, in one short line of our own: the request's method and
    the HTTP status with the server's own code and words, or the connection failure, and
    how often obstore retried; not its request URL, timings, retry settings, HTML or XML
    (the raw error stays the ``__cause__``). An error of another shape: its first line."""
    head, _, debug = str(exc).partition(_DEBUG)
    head = head.strip()
    found = _PERFORMING.search(head)
    if found is None:
        return _clip(_TAG.sub("", head.splitlines()[0]), _LINE_MAX) if head else type(exc).__name__
    method, reason = found["method"], found["reason"].strip()
    answer = _STATUS_ANSWER.match(reason)
    if answer is not None:
        status = answer["status"] or next(iter(_DEBUG_STATUS.findall(debug)), "")
        phrase = (answer["phrase"] or "").strip()
        said = f"HTTP {status} {phrase}".strip() if status else "an error answer"
        words = _server_words(answer["body"], status, phrase)
        summary = f"{method} got {said}" + (f" ({words})" if words else "")
    else:
        kind = next(iter(_DEBUG_KIND.findall(debug)), "")
        cause = next(iter(_DEBUG_OS.findall(debug)), "")
        if not cause and (certificate := _DEBUG_CERTIFICATE.search(debug)):
            cause = f"its TLS certificate is not trusted: {certificate[1]}"
        where = _where(urlsplit((found["target"] or "").strip()), debug)
        if kind == "Connect":
            summary = f"{method} could not connect to {where or 'the server'}"
        elif kind == "Timeout":
            summary = f"{method} to {where or 'the server'} timed out"
        else:
            summary = f"{method} failed: {_clip(reason.splitlines()[0], _WORDS_MAX)}"
        if cause:
            summary += f" ({_clip(cause, _WORDS_MAX)})"
    retries = int(found["retries"] or 0)
    if retries:
        summary += f", after {retries} retr{'y' if retries == 1 else 'ies'}"
    return summary


def _where(target: SplitResult, debug: str) -> str:
    """The host a request went to: its URL's, or the address it tried to connect to when
    that is another one (a redirect's target: the store's own host was answering)."""
    where = target.netloc.rpartition("@")[2]
    tried = _DEBUG_ADDRESS.search(debug)
    if tried is None:
        return where
    address = f"{tried[1]}:{tried[2]}"
    try:
        wanted = target.port or _DEFAULT_PORTS.get(target.scheme.lower())
    except ValueError:  # no port number: the URL's own words
        return where
    if int(tried[2]) != wanted:
        return address
    try:  # a host name resolves to any address; an address literal to itself
        same = ipaddress.ip_address(target.hostname or "") == ipaddress.ip_address(
            tried[1].strip("[]")
        )
    except ValueError:
        return where
    return where if same else address
