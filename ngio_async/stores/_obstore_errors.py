"""What obstore's errors mean: a missing object or a missing bucket, a range refused or ignored,
a transient body or connection failure, denied access and what gives credentials, and the
parts of HTTP URLs kept out of messages."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from obstore import exceptions as obs_exc
from obstore.store import AzureStore, GCSStore

from .._errors import StoreError

if TYPE_CHECKING:
    from obstore.store import ObjectStore


__all__ = ["obstore_transient"]

_NO_CREDENTIALS = "169.254.169.254"  # the instance-metadata address obstore falls back to
_DENIED = re.compile(r"status code: 40([13])\b")
# answers of HTTP servers that obstore's client refuses (aiohttp reads them): a body sent
# chunked (no Content-Length), a Last-Modified not in HTTP's date format
_UNREADABLE = re.compile(r"Content-Length Header missing|Invalid last modified", re.IGNORECASE)
# a plain-http request of a client that allows https only
_HTTP_REFUSED = re.compile(r"\bhttp://\S+ .*HTTP error: builder error", re.IGNORECASE)


def _asked(key: str) -> str:
    """`` (asked for 'key')`` for a message about a whole bucket; nothing for its root."""
    return f" (asked for {key!r})" if key else ""


def _allows_http(store: ObjectStore) -> bool:
    """Whether ``store``'s client was told to allow plain http."""
    value = (getattr(store, "client_options", None) or {}).get("allow_http")
    return str(value).strip().lower() in ("1", "true", "on", "yes", "y")


def _credentials_hint(store: ObjectStore) -> str:
    """What gives ``store`` credentials (for the error when it found none)."""
    if isinstance(store, AzureStore):
        return (
            "set AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY (or pass account_name= "
            "/ account_key=, or sas_key=), or anonymous=True for a public container"
        )
    if isinstance(store, GCSStore):
        emulator = "STORAGE_EMULATOR_HOST (or use_emulator=True with endpoint=) for an emulator"
        anonymous = str(store.config.get("skip_signature")).strip().lower()
        if anonymous in ("1", "true", "on", "yes", "y"):
            # obstore's GCS client fetches a token for writes and deletes all the same
            return (
                "anonymous=True serves reads only; writes and deletes need credentials: set "
                "GOOGLE_APPLICATION_CREDENTIALS (or pass service_account= / "
                f"service_account_key=), or {emulator}"
            )
        return (
            "set GOOGLE_APPLICATION_CREDENTIALS (or pass service_account= / "
            f"service_account_key=), anonymous=True for a public bucket, or {emulator}"
        )
    return (
        "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or pass access_key_id= / "
        "secret_access_key=) or AWS_PROFILE (a profile of ~/.aws/credentials), or "
        "anonymous=True for a public bucket"
    )


# a 403 (or 401) of credentials the server refused, not of a permission the key lacks: a
# signature that does not match (a wrong secret or account key, a mistyped or expired SAS),
# an unknown key id, a request signed at a time too far from the server's (this machine's
# clock is off), a signature or token past its expiry. S3: SignatureDoesNotMatch,
# InvalidAccessKeyId, RequestTimeTooSkewed, AccessDenied "Request has expired" (a presigned
# URL), ExpiredToken; Azure: AuthenticationFailed ("Server failed to authenticate the
# request", Azurite's AuthorizationFailure says so too)
CREDENTIALS_REFUSED = re.compile(
    r"SignatureDoesNotMatch|InvalidAccessKeyId|AuthenticationFailed|failed to authenticate"
    r"|RequestTimeTooSkewed|Request has expired|ExpiredToken"
)
_SKEWED = re.compile(r"RequestTimeTooSkewed")
_EXPIRED = re.compile(r"Request has expired|ExpiredToken")


def refusal_reason(text: str) -> str | None:
    """Why the server refused credentials, where its answer ``text`` says more than "they
    do not match": this machine's clock, or an expiry."""
    if _SKEWED.search(text):
        return (
            "the clock of this machine is off from the server's by more than it allows (15 "
            "minutes for S3): a signed request carries its time; set the clock right (NTP)"
        )
    if _EXPIRED.search(text):
        return (
            "the signature or token has expired (a presigned URL, a SAS or temporary "
            "credentials past their expiry): sign a new URL or renew the credentials"
        )
    return None


def refused_hint(store: ObjectStore, text: str = "") -> str:
    """What to check when the server refused ``store``'s credentials (``text``: the
    server's answer)."""
    if _anonymous(store):
        return (
            "anonymous=True: the server asks for credentials (not a public bucket or "
            f"container): {_credentials_hint(store)}"
        )
    if (reason := refusal_reason(text)) is not None:
        return f"the server refused the credentials given: {reason}"
    if isinstance(store, AzureStore):
        what = "the account key (account_key=) or the SAS (sas_key=: mistyped, expired, or of"
        return f"the server refused the credentials given: check {what} another container)"
    if isinstance(store, GCSStore):
        return "the server refused the credentials given: check the service account key or token"
    if "InvalidAccessKeyId" in text:
        return (
            "the server refused the credentials given: it knows no such access key id "
            "(access_key_id=, AWS_ACCESS_KEY_ID or the profile's: of another account or "
            "endpoint, or deleted)"
        )
    return (
        "the server refused the credentials given: check the secret key of the access key id "
        "(secret_access_key=, AWS_SECRET_ACCESS_KEY or the profile's)"
    )


def _anonymous(store: ObjectStore) -> bool:
    config = getattr(store, "config", None) or {}
    value = config.get("skip_signature")
    return str(value).strip().lower() in ("1", "true", "on", "yes", "y")


_QUERY = re.compile(r"\?[^\s'\"]*")
_USERINFO = re.compile(r"(https?://)[^/@\s]*@", re.IGNORECASE)
# how backends refuse a range: a 200 to a ranged GET (NotSupported), 416 (S3, HTTP), and the
# local and in-memory stores' "invalid range" for an empty object
_RANGE_REFUSED = re.compile(
    r"status code: 416|Range Not Satisfiable|InvalidRange|invalid range|range was invalid"
    r"|Range request not supported",
    re.IGNORECASE,
)


_IGNORED_RANGE = re.compile(r"Range request not supported", re.IGNORECASE)  # a 200 to it
_UNSATISFIABLE = re.compile(r"status code: 416|Range Not Satisfiable|InvalidRange", re.IGNORECASE)
_NOT_PARTIAL = re.compile(r"non-partial response", re.IGNORECASE)

# what obstore raises for a body cut off or a connection lost after the response began (its
# own retries cover those of GETs, and only failures before the response for the rest)
_TRANSIENT = re.compile(
    r"body error|decoding response body|connection (?:reset|closed|aborted)|broken pipe"
    r"|incomplete ?message|unexpected (?:eof|end of file)",
    re.IGNORECASE,
)


class _GetRetriedError(StoreError):
    """A GET whose body obstore's own retries fetched again until they ran out (obstore
    0.12 resumes cut-off GET bodies; other requests' bodies it does not retry)."""


def obstore_transient(exc: BaseException) -> bool:
    """Whether an obstore error (raw, or the cause of a mapped ``StoreError``) is a body or
    connection failure that another attempt may not meet (not a GET's: obstore retried it)."""
    if isinstance(exc, _GetRetriedError):
        return False
    if isinstance(exc, StoreError) and exc.__cause__ is not None:
        exc = exc.__cause__
    text = str(exc)
    return (
        isinstance(exc, obs_exc.GenericError)
        and bool(_TRANSIENT.search(text))
        and not _RETRIED.search(text)  # obstore's own retries (ours) have run out
    )


# a missing bucket answers 404 too; its body's error code says so (S3 and GCS's XML API:
# NoSuchBucket, Azure: ContainerNotFound; GCS's JSON API and Azure's blob batches: their
# reason), not words of a page (an HTTP server's own 404 page, of a missing object)
_NO_CONTAINER = re.compile(
    r"<Code>\s*(?:NoSuchBucket|ContainerNotFound)\s*</Code>"
    r"|\"message\": ?\"The specified bucket does not exist"
    r"|\breason: \"The specified (?:container|bucket) does not exist"
    r"|\bno bucket named\b"  # fake-gcs-server's (a 500)
)


_RETRIED = re.compile(r"after \d+ retries, max_retries")


def _no_container(exc: BaseException) -> bool:
    return bool(_NO_CONTAINER.search(str(exc)))


# obstore's HTTP client reads a 405 as "not found" too
_NOT_ALLOWED = re.compile(r"status code: 405\b")


def _missing(exc: BaseException) -> bool:
    """Whether obstore's "not found" says the object is missing: not a missing bucket, nor
    an HTTP server's 405 (``get`` asks such a one again, and its HTTP store has aiohttp
    confirm it: a batch took it for a missing chunk, read as fill values)."""
    return not _no_container(exc) and not _NOT_ALLOWED.search(str(exc))


def _raise_if_no_container(exc: FileNotFoundError) -> None:
    """A missing object is ``None`` (or ``False``); a missing bucket is an error."""
    if _no_container(exc):
        raise exc


def _range_refused(exc: BaseException) -> bool:
    return isinstance(exc, obs_exc.NotSupportedError) or bool(_RANGE_REFUSED.search(str(exc)))
