"""Range planning: merge nearby byte ranges of one object into fewer requests.

Pure (no I/O). The store layer executes the plan and slices the merged buffers back out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["CoalescedRequest", "coalesce_ranges"]


@dataclass(frozen=True, slots=True)
class CoalescedRequest:
    """One request ``[start, end)`` that serves the original ranges listed in ``members``.

    ``members`` holds the indices of the original ranges (in the caller's order) that lie
    inside this request.
    """

    start: int
    end: int
    members: tuple[int, ...]


def coalesce_ranges(
    ranges: Sequence[tuple[int, int]],
    gap: int,
    *,
    max_size: int | None = None,
) -> list[CoalescedRequest]:
    """Plan the requests that fetch ``ranges`` (half-open ``[start, end)`` byte ranges).

    Ranges are sorted by start; a range is merged into the current request when it starts
    less than ``gap`` bytes after the request's end (overlapping and touching ranges always
    merge), unless the merged request would grow beyond ``max_size`` bytes. Empty ranges
    (``start == end``) need no bytes and belong to no request.

    :param ranges: ``(start, end)`` pairs, ``0 <= start <= end``.
    :param gap: ranges closer than this many bytes are fetched as one request.
    :param max_size: optional cap on the size of one merged request.
    :returns: requests sorted by start; every non-empty range index appears in exactly one.
    :raises ValueError: on a negative start, ``end < start`` or a negative ``gap``.
    """
    if gap < 0:
        raise ValueError(f"gap must be >= 0, got {gap}")
    for start, end in ranges:
        if start < 0 or end < start:
            raise ValueError(f"invalid byte range [{start}, {end})")
    order = sorted((i for i, (s, e) in enumerate(ranges) if e > s), key=lambda i: ranges[i])
    plan: list[CoalescedRequest] = []
    cur_start = cur_end = 0
    members: list[int] = []
    for i in order:
        start, end = ranges[i]
        if members:
            new_end = max(cur_end, end)
            fits = max_size is None or new_end - cur_start <= max_size
            if (start <= cur_end or start - cur_end < gap) and fits:
                cur_end = new_end
                members.append(i)
                continue
            plan.append(CoalescedRequest(cur_start, cur_end, tuple(members)))
        cur_start, cur_end, members = start, end, [i]
    if members:
        plan.append(CoalescedRequest(cur_start, cur_end, tuple(members)))
    return plan
