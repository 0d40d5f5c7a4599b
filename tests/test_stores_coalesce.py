"""Pure pieces of the store layer: range planning, backoff, key checks, completeness."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, strategies as st

from ngio_async import StoreError
from ngio_async._limits import Limits
from ngio_async.stores import (
    CoalescedRequest,
    OffsetByteRequest,
    RangeByteRequest,
    SuffixByteRequest,
    coalesce_ranges,
)
from ngio_async.stores._base import check_complete, check_key, expected_length
from ngio_async.stores._retry import backoff_delay
from ngio_async.stores._url_utils import redact_url


def test_coalesce_merges_close_ranges_and_keeps_far_ones_apart() -> None:
    plan = coalesce_ranges([(0, 10), (15, 20), (100, 110)], gap=10)
    assert plan == [CoalescedRequest(0, 20, (0, 1)), CoalescedRequest(100, 110, (2,))]


def test_coalesce_gap_is_strict() -> None:
    # a gap of exactly `gap` bytes is not "closer than gap"
    assert len(coalesce_ranges([(0, 10), (20, 30)], gap=10)) == 2
    assert len(coalesce_ranges([(0, 10), (19, 30)], gap=10)) == 1


def test_coalesce_zero_gap_merges_only_touching_and_overlapping() -> None:
    plan = coalesce_ranges([(0, 10), (10, 20), (15, 25), (26, 30)], gap=0)
    assert plan == [CoalescedRequest(0, 25, (0, 1, 2)), CoalescedRequest(26, 30, (3,))]


def test_coalesce_sorts_and_reports_original_indices() -> None:
    plan = coalesce_ranges([(100, 110), (0, 10), (5, 8)], gap=0)
    assert plan == [CoalescedRequest(0, 10, (1, 2)), CoalescedRequest(100, 110, (0,))]


def test_coalesce_respects_max_size() -> None:
    plan = coalesce_ranges([(0, 10), (10, 20), (20, 30)], gap=100, max_size=20)
    assert plan == [CoalescedRequest(0, 20, (0, 1)), CoalescedRequest(20, 30, (2,))]


def test_coalesce_skips_empty_ranges_and_handles_no_input() -> None:
    assert coalesce_ranges([], gap=10) == []
    assert coalesce_ranges([(5, 5)], gap=10) == []
    assert coalesce_ranges([(5, 5), (0, 3)], gap=0) == [CoalescedRequest(0, 3, (1,))]


@pytest.mark.parametrize("bad", [(-1, 3), (5, 4)])
def test_coalesce_rejects_invalid_ranges(bad: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="invalid byte range"):
        coalesce_ranges([bad], gap=0)
    with pytest.raises(ValueError, match="gap"):
        coalesce_ranges([(0, 1)], gap=-1)


@given(
    ranges=st.lists(
        st.tuples(st.integers(0, 500), st.integers(0, 60)).map(lambda t: (t[0], t[0] + t[1])),
        max_size=30,
    ),
    gap=st.integers(0, 100),
)
def test_coalesce_properties(ranges: list[tuple[int, int]], gap: int) -> None:
    plan = coalesce_ranges(ranges, gap)
    covered = sorted(i for req in plan for i in req.members)
    assert covered == [i for i, (s, e) in enumerate(ranges) if e > s]  # each exactly once
    for req in plan:
        for i in req.members:
            assert req.start <= ranges[i][0] and ranges[i][1] <= req.end
    for a, b in itertools.pairwise(plan):
        assert b.start > a.end  # touching ranges always merge
        assert b.start - a.end >= gap


def test_backoff_is_full_jitter_and_capped() -> None:
    limits = Limits(backoff_base=0.1, backoff_max=1.0)
    assert backoff_delay(0, limits, rand=lambda: 0.5) == pytest.approx(0.05)
    assert backoff_delay(2, limits, rand=lambda: 0.999) == pytest.approx(0.3996)
    assert backoff_delay(10, limits, rand=lambda: 1.0) == pytest.approx(1.0)
    assert backoff_delay(3, limits, rand=lambda: 0.0) == 0.0


def test_byte_requests_validate() -> None:
    with pytest.raises(ValueError, match="invalid byte range"):
        RangeByteRequest(5, 4)
    with pytest.raises(ValueError, match="offset"):
        OffsetByteRequest(-1)
    with pytest.raises(ValueError, match="suffix"):
        SuffixByteRequest(0)
    with pytest.raises(AttributeError):
        RangeByteRequest(0, 1).start = 3  # type: ignore[misc]


@pytest.mark.parametrize("key", ["", "/abs", "a//b", "a/../b", "./a", "a/"])
def test_check_key_rejects_non_relative_keys(key: str) -> None:
    with pytest.raises(ValueError, match="key"):
        check_key(key)


def test_expected_length_and_check_complete() -> None:
    assert expected_length(None, 10) == 10
    assert expected_length(RangeByteRequest(2, 20), 10) == 8
    assert expected_length(OffsetByteRequest(4), 10) == 6
    assert expected_length(SuffixByteRequest(20), 10) == 10
    assert check_complete(b"abc", RangeByteRequest(0, 3), 10, url="u", key="k") == b"abc"
    with pytest.raises(StoreError, match="incomplete read of 'k' from u"):
        check_complete(b"ab", RangeByteRequest(0, 3), 10, url="u", key="k")


def test_redact_url_drops_credentials() -> None:
    assert redact_url("https://user:pw@host:8080/a/b?sig=secret#x") == "https://host:8080/a/b"
    assert redact_url("s3://bucket/prefix") == "s3://bucket/prefix"
    assert redact_url("/plain/path") == "/plain/path"
    assert redact_url("https://token@host/x") == "https://host/x"
    assert (
        redact_url("abfs://box@acct.dfs.core.windows.net/p")
        == "abfs://box@acct.dfs.core.windows.net/p"
    )
    assert redact_url("az://acct:key@box/p?sv=sas") == "az://acct@box/p"
