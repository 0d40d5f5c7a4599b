"""``_ObstoreBatchGets``: an :class:`~ngio_async.stores.ObstoreStore`'s whole objects fetched
together as bare obstore calls (``get_together``), each within its deadline, under a limiter."""

from __future__ import annotations

import asyncio
import math
from collections import deque
from typing import TYPE_CHECKING, Any

import anyio
import obstore
from obstore import exceptions as obs_exc

from ._base import NO_ANSWER, Buffer, Unanswered
from ._obstore_errors import CREDENTIALS_REFUSED, _missing, _no_container
from ._obstore_gets import _GZIP_MAGIC, _WHOLE
from ._obstore_reads import _ObstoreReads

if TYPE_CHECKING:
    from collections.abc import Sequence


class _ObstoreBatchGets(_ObstoreReads):
    """Whole objects fetched together (:meth:`get_together`)."""

    @property
    def gets_together(self) -> bool:
        """Remote stores whose whole objects come as one bounded range each (none seen
        Content-Encoded): :meth:`get_many` starts them as bare obstore calls."""
        return not self.blocking_reads and self.whole_as_range and not self._encoded

    async def _get_together(self, keys: Sequence[str]) -> list[Buffer | Unanswered | None] | None:
        return await self.get_together(keys, self.limiter, self.limits.timeout)

    async def get_together(
        self,
        keys: Sequence[str],
        limiter: anyio.CapacityLimiter,
        seconds: float | None,
        *,
        forbidden_is_missing: bool | None = None,
    ) -> list[Buffer | Unanswered | None]:
        """Whole objects ``keys`` (``None``: missing), each as one bounded range, all started
        at once, each within ``seconds`` of its start (``None``: no limit; a per-request limit,
        as ``Limits.timeout``: the time spent waiting for a token never counts). Each holds a
        token of ``limiter`` while in flight; short of tokens, the batch waits for its own
        oldest request first (it never waits for a token while it holds one: no deadlock
        between batches).

        Bare obstore calls (no retry loop, error mapping or timeout per request: 3-4x less
        event-loop work than ``get``). ``NO_ANSWER`` for the objects better fetched one by
        one with ``get`` (which retries, maps errors and checks answers): at any failure but a
        final one, a request past its deadline, a missing bucket, a body starting as gzip data
        that no plain GET has checked yet, the batch stops, and every object without an answer
        by then (that one, those in flight, those not started) is one. A transient failure
        obstore's own retries met is final, as in ``get``. With ``forbidden_is_missing``
        (default: the store's own) a 403 is ``None``, else it stops the batch.
        """
        if self._unready:
            await self._make_ready()
        # started, not awaited: each with its token, its deadline (its start + seconds) and
        # its key's place in keys
        pending: deque[tuple[asyncio.Future[Any], object, float, int]] = deque()
        out: list[Buffer | Unanswered | None] = []

        forbidden = (
            self.forbidden_is_missing if forbidden_is_missing is None else forbidden_is_missing
        )

        def answered(view: memoryview) -> bool:
            """Whether a body is the object's (else it is fetched apart)."""
            return len(view) < _WHOLE and not (
                self._decodes and not self._magic_checked and view[:2] == _GZIP_MAGIC
            )

        def stop() -> list[Buffer | Unanswered | None]:
            """The answers so far, those of the requests in flight that ended (in the order
            of keys), ``NO_ANSWER`` for the others."""
            got: list[Buffer | Unanswered | None] = [*out, *[NO_ANSWER] * (len(keys) - len(out))]
            for started, _, _, i in pending:
                if not started.done() or started.cancelled():
                    continue
                error = started.exception()
                if error is None:
                    view = memoryview(started.result())
                    if answered(view):
                        got[i] = view
                elif (isinstance(error, FileNotFoundError) and _missing(error)) or (
                    forbidden and _forbidden(error)
                ):
                    got[i] = None
                del error  # (its traceback holds this frame)
            return got

        async def finish_oldest() -> bool:
            """Await the oldest request (until its own deadline), give its token back;
            ``False``: stop the batch there."""
            started, token, deadline, _ = pending.popleft()
            try:
                if started.done() or deadline == math.inf:  # (no cancel scope to set up)
                    view = memoryview(await started)
                else:
                    with anyio.CancelScope(deadline=deadline) as scope:
                        view = memoryview(await started)
                    if scope.cancelled_caught:
                        return False  # this request ran out of time
            except FileNotFoundError as exc:
                if _no_container(exc):
                    return False
                out.append(None if _missing(exc) else NO_ANSWER)
                return True
            except obs_exc.PermissionDeniedError as exc:  # a 403
                if not (forbidden and _forbidden(exc)):
                    raise
                out.append(None)
                return True
            finally:
                started.cancel()  # (cancelled here while it ran; else a no-op)
                limiter.release_on_behalf_of(token)
                # a failed future holds its exception, whose traceback holds this frame: no
                # reference back from the frame, or the store waits in a cycle for the GC
                # (an unclosed store's aiohttp session then warns "unclosed" there)
                del started
            if not answered(view):
                return False
            out.append(view)
            return True

        limit = math.inf if seconds is None else seconds
        try:
            for index, key in enumerate(keys):
                token = object()
                while True:
                    try:
                        limiter.acquire_on_behalf_of_nowait(token)
                        break
                    except anyio.WouldBlock:
                        if not pending:
                            await limiter.acquire_on_behalf_of(token)
                            break
                        if not await finish_oldest():
                            return stop()
                try:  # (obstore's calls return started futures: no task each)
                    future: asyncio.Future[Any] = asyncio.ensure_future(
                        obstore.get_range_async(self._store, key, start=0, end=_WHOLE)
                    )
                except BaseException:
                    limiter.release_on_behalf_of(token)
                    raise
                # (the deadline from the token on)
                pending.append((future, token, anyio.current_time() + limit, index))
            while pending:
                if not await finish_oldest():
                    return stop()
            return out
        except obs_exc.GenericError as exc:
            key = keys[len(out)]  # the first key without an answer
            with self._map_exceptions(key):
                self._raise_if_refetched(key, exc)
            return stop()
        except Exception:  # noqa: BLE001 - fetched again one by one: a real error shows there
            return stop()
        finally:
            _abandon(pending, limiter)


def _forbidden(error: BaseException) -> bool:
    """Whether ``error`` is a 403 that ``forbidden_is_missing`` reads as a missing object:
    not one of credentials the server refused (a wrong key, this machine's clock off, an
    expired signature), which every object of the store meets (``get`` raises it)."""
    return isinstance(error, obs_exc.PermissionDeniedError) and not CREDENTIALS_REFUSED.search(
        str(error)
    )


def _abandon(
    pending: deque[tuple[asyncio.Future[Any], object, float, int]],
    limiter: anyio.CapacityLimiter,
) -> None:
    """Cancel the requests of :meth:`ObstoreStore.get_together` still in flight (their results
    retrieved if they ended: no "never retrieved" warning) and give their tokens back."""
    while pending:
        started, token, _, _ = pending.popleft()
        if not started.done():
            started.cancel()
        elif not started.cancelled():
            started.exception()
        limiter.release_on_behalf_of(token)
