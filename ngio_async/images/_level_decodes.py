"""``_LevelDecodes``: the chunks of a read fetched and decoded into its outputs in worker threads,
each taken from a read cache (``Keeper``) or shared with the reads of it in flight
(``InFlight``) where it can be, instead of fetched again."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from ._chunk_decode import (
    Decode,
    Targets,
    _claim_chunks,
    _decode_all,
    _decode_for_all,
    _keep_chunks,
    _own,
    _Ready,
    _waits,
)
from ._level_indexes import _LevelIndexes
from ._reuse import Fetch, Keeper, Pending

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from numpy.typing import NDArray

    from ..codecs import ChunkCodec
    from ..engine import Region
    from ..stores import Buffer


class _LevelDecodes(_LevelIndexes):
    """The chunks of a read fetched (or taken from a read cache, or shared) and decoded."""

    @staticmethod
    def _claim_decode_blocking(
        codec: ChunkCodec,
        groups: dict[str, Targets],
        coords: dict[str, tuple[int, ...]],
        reuse: Keeper | None,
        get: Callable[[str], Buffer | None],
        fill_value: Any,
    ) -> None:
        """The chunks of ``groups`` decoded into their targets (worker thread): each read
        with ``get(name)`` or taken from ``reuse``; this run's own first, then those other
        runs in flight were reading (read here if that failed)."""
        claimed, keep = _claim_chunks(groups, reuse, coords)
        kept: dict[str, NDArray[Any] | None] = {}
        try:
            decodes: list[Decode] = [
                (get(k) if isinstance(b, Fetch) else b, k, t) for b, k, t in _own(claimed)
            ]
            _decode_all(codec, decodes, fill_value, keep, kept)
        finally:
            _keep_chunks(reuse, keep, kept)
        waited = [(p.wait_blocking(), k, t) for p, k, t in _waits(claimed)]
        decodes = [(get(k) if isinstance(c, Fetch) else c, k, t) for c, k, t in waited]
        _decode_all(codec, decodes, fill_value)

    async def _fetch_decode_groups(
        self,
        codec: ChunkCodec,
        groups: dict[str, Targets],
        reuse: Keeper | None = None,
        coords: dict[str, tuple[int, ...]] | None = None,
    ) -> None:
        """The chunks named in ``groups`` fetched with one ``store.get_many`` and decoded once
        each into all their targets, in worker threads (a missing one: the fill value); with
        ``reuse``, the chunks it keeps are copied from it, and it keeps those it asks for."""
        if groups:
            await self._claim_decode(codec, groups, coords, reuse, self._fetched)

    async def _claim_decode(
        self,
        codec: ChunkCodec,
        groups: dict[str, Targets],
        coords: dict[str, tuple[int, ...]] | None,
        reuse: Keeper | None,
        fetched: Callable[[Sequence[_Ready]], Awaitable[list[Decode]]],
        share: bool = False,
    ) -> None:
        """The chunks of ``groups`` decoded into their targets in worker threads: each
        fetched with ``fetched`` (one call for all) or taken from ``reuse``; this run's own
        first, then those other runs in flight were reading (fetched here if that failed).
        ``share`` (a region read of a read-only level, without ``reuse``): shared with the
        reads in flight instead (:meth:`_share_decode`). The async twin of
        :meth:`_claim_decode_blocking`."""
        if share and reuse is None:
            await self._share_decode(codec, groups, fetched)
            return
        claimed, keep = _claim_chunks(groups, reuse, coords)
        kept: dict[str, NDArray[Any] | None] = {}
        decode = partial(_decode_all, codec, fill_value=self.fill_value)
        try:  # this run's own chunks first: those other runs wait for among them
            decodes = await fetched(_own(claimed))
            await self._in_threads(partial(decode, keep=keep, kept=kept), decodes)
        finally:
            _keep_chunks(reuse, keep, kept)
        waits = list(_waits(claimed))
        if waits:  # chunks other runs in flight were reading (fetched again if that failed)
            waited = [(await p.wait(), k, t) for p, k, t in waits]
            await self._in_threads(decode, await fetched(waited))

    async def _share_decode(
        self,
        codec: ChunkCodec,
        groups: dict[str, Targets],
        fetched: Callable[[Sequence[_Ready]], Awaitable[list[Decode]]],
    ) -> None:
        """The chunks of ``groups`` (by name, as :meth:`_read_in_chunk` names them) decoded
        into their targets, shared with the other reads of this read-only level in flight
        (:class:`InFlight`): the chunks no read is fetching, this read leads: fetched with
        ``fetched`` (one call for all: one batch of GETs, one coalesced set of ranges) and
        decoded, each closed to more reads once decoded and handed to those that joined (a
        copy, made only if one did). Then the chunks other reads were fetching, waited for
        and copied; a chunk whose leader failed or was cancelled (it hands nothing over) is
        claimed again: one of the reads that joined leads it."""
        flight = self._in_flight
        decode = partial(_decode_all, codec, fill_value=self.fill_value)
        while groups:
            led, joined = flight.claim_all(groups)  # (no await from the claims to the try)
            kept: dict[str, NDArray[Any] | None] = {}
            try:
                if led:
                    decodes = await fetched([(Fetch.ONCE, n, groups[n]) for n in led])

                    def close(name: str, led: dict[str, Pending] = led) -> int:
                        return flight.close(name, led[name])

                    await self._in_threads(partial(decode, kept=kept, close=close), decodes)
            finally:  # (failed or cancelled: nothing handed over; they claim it again)
                flight.finish_all(led, kept)
            if not joined:
                return
            again: dict[str, Targets] = {}
            ready: list[Decode] = []
            for name, pending in joined:
                chunk = await pending.wait()
                if isinstance(chunk, Fetch):
                    again[name] = groups[name]
                else:
                    ready.append((chunk, name, groups[name]))
            if ready:
                await self._in_threads(decode, ready)
            groups = again

    async def _fetched(self, claimed: Sequence[_Ready]) -> list[Decode]:
        """``claimed`` with each chunk still to fetch (``Fetch``) fetched: one ``get_many``."""
        wanted = [key for buf, key, _ in claimed if isinstance(buf, Fetch)]
        got = iter(await self.store.get_many(wanted) if wanted else ())
        return [(next(got) if isinstance(b, Fetch) else b, k, t) for b, k, t in claimed]

    async def _decode_shared(
        self,
        codec: ChunkCodec,
        buf: Buffer,
        key: str,
        chunk_sel: Region,
        out: NDArray[Any],
        share: tuple[str, Pending],
    ) -> NDArray[Any] | Fetch:
        """Decode a chunk into ``out`` in a worker thread, and a copy of the whole chunk for
        the reads that joined ``share`` (``Fetch.FAILED``: none did)."""
        close = partial(self._in_flight.close, *share)
        got: NDArray[Any] | None = await self._workers.run(
            _decode_for_all, codec, buf, key, chunk_sel, out, close
        )
        return Fetch.FAILED if got is None else got
