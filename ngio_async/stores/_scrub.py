"""The exceptions chained below ours (``__cause__``, ``__context__``: aiohttp's and obstore's
own) without the secrets their texts quote: a redirect's signed target, a URL's password, a
SAS token. Each one whose text holds one is replaced, in place, by a stand-in of its type with
the text cleaned, so a printed traceback shows what failed, and no credential."""

from __future__ import annotations

import re
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from ._url_utils import redact_urls

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["scrub_chain", "scrub_text"]

# a URL as Rust's Debug prints one (``Url { username: "u", password: Some("p"), query:
# Some("sig=..."), ... }``)
_DEBUG_FIELDS = re.compile(r'\b(password|query|fragment): Some\(\s*"(?:[^"\\]|\\.)*"\s*\)')
_DEBUG_USER = re.compile(r'\busername: "(?:[^"\\]|\\.)+"')


def scrub_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without URL user info, query strings and fragments (shown as ``?***``), nor
    any of ``secrets`` standing as a word of its own."""
    text = redact_urls(text)
    text = _DEBUG_FIELDS.sub(r'\1: Some("***")', text)
    text = _DEBUG_USER.sub('username: "***"', text)
    for secret in secrets:
        if secret:
            text = re.sub(rf"(?<![\w.:/@-]){re.escape(secret)}(?![\w.:/@-])", "***", text)
    return text


def scrub_chain(error: BaseException, secrets: Iterable[str] = ()) -> None:
    """Replace each exception chained below ``error`` whose text (or a note) holds a secret
    by a stand-in of its type (see :func:`_stand_in`); ``error``'s own text is not looked at
    (ours: already clean)."""
    words = tuple(s for s in secrets if s)
    seen: set[int] = set()
    todo = [error]
    while todo:
        node = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        suppress = node.__suppress_context__
        for name in ("__cause__", "__context__"):
            linked = getattr(node, name)
            if linked is None:
                continue
            clean = _clean(linked, words)
            if clean is not linked:
                setattr(node, name, clean)
            todo.append(clean)
        node.__suppress_context__ = suppress  # (setting __cause__ sets it)


def _clean(exc: BaseException, secrets: tuple[str, ...]) -> BaseException:
    """``exc``, or its stand-in when its text or notes hold a secret."""
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - a text that cannot be made shows nothing either
        return exc
    notes = getattr(exc, "__notes__", None)
    notes = [str(n) for n in notes] if isinstance(notes, list) else []
    clean = scrub_text(text, secrets)
    clean_notes = [scrub_text(n, secrets) for n in notes]
    if clean == text and clean_notes == notes:
        return exc
    stand_in = _stand_in(exc, clean)
    if clean_notes:
        stand_in.__notes__ = clean_notes
    stand_in.__cause__ = exc.__cause__
    stand_in.__context__ = exc.__context__
    stand_in.__suppress_context__ = exc.__suppress_context__
    stand_in.__traceback__ = exc.__traceback__
    return stand_in


# the stand-in types made so far, by the type they stand for (None: it cannot be subclassed)
_STAND_INS: dict[type[BaseException], type[BaseException] | None] = {}


class RedactedError(Exception):
    """The stand-in for an exception whose type cannot be subclassed: its text names it."""


def _stand_in(exc: BaseException, text: str) -> BaseException:
    """An exception of a subclass of ``exc``'s type (``isinstance`` holds, and a traceback
    shows the same name) whose text is ``text``; its attributes are not copied (they may
    hold what the text did)."""
    return _remade(type(exc), text)


def _remade(kind: type[BaseException], text: str) -> BaseException:
    """A stand-in for an exception of type ``kind`` whose text is ``text`` (also how one is
    unpickled)."""
    if kind not in _STAND_INS:
        _STAND_INS[kind] = _stand_in_type(kind)
    cls = _STAND_INS[kind]
    made: BaseException | None = None
    if cls is not None:
        with suppress(Exception):  # a type whose __new__ wants other arguments
            made = cls.__new__(cls, text)
            made.args = (text,)
    return made or RedactedError(f"{kind.__module__}.{kind.__qualname__}: {text}")


def _stand_in_type(kind: type[BaseException]) -> type[BaseException] | None:
    def text(self: BaseException) -> str:
        return str(self.args[0]) if self.args else ""

    def represent(self: BaseException) -> str:
        return f"{kind.__name__}({text(self)!r})"

    def init(self: BaseException, *args: Any) -> None:
        pass  # (made by __new__ alone: the type's own __init__ wants its own arguments)

    def reduce(self: BaseException) -> tuple[Any, ...]:
        # pickled as the type it stands for and its text (tblib pickles the chain, for dask):
        # this type is made here, so pickle cannot find it by its name
        return (_remade, (kind, text(self)), self.__dict__ or None)

    body = {
        "__str__": text,
        "__repr__": represent,
        "__init__": init,
        "__reduce__": reduce,
        "__module__": kind.__module__,
        "__qualname__": kind.__qualname__,
    }
    try:
        return type(kind.__name__, (kind,), body)
    except TypeError:  # a final type
        return None
