"""How a big file is cut into ranges, and how a free connection takes work from a busy one."""

from __future__ import annotations

import itertools

from proxy.core.segments import MIN_RANGE, MIN_SPLIT, Span, Spans

MIB = 1024 * 1024


def test_a_file_is_cut_into_even_aligned_spans_end_to_end() -> None:
    spans = list(Spans.even(100 * MIB + 5, 4))
    assert [s.start for s in spans] == [0, 25 * MIB + 65536, 50 * MIB + 131072, 75 * MIB + 196608]
    assert spans[-1].end == 100 * MIB + 5
    assert all(a.end == b.start for a, b in itertools.pairwise(spans))
    assert all(s.pos == s.start and not s.busy for s in spans)


def test_no_file_starts_with_ranges_shorter_than_the_minimum() -> None:
    assert len(Spans.even(20 * MIB, 8)) == 20 * MIB // MIN_RANGE == 2
    assert len(Spans.even(MIN_RANGE - 1, 8)) == 1


def test_free_connections_take_the_spans_nearest_the_start_first() -> None:
    spans = Spans.even(64 * MIB, 4)
    taken = [spans.claim() for _ in range(4)]
    assert [s.start for s in taken if s] == [0, 16 * MIB, 32 * MIB, 48 * MIB]


def test_with_every_span_busy_the_one_with_most_left_is_halved() -> None:
    spans = Spans.even(64 * MIB, 2)
    first, second = spans.claim(), spans.claim()
    assert first and second
    first.pos = 30 * MIB  # nearly done; the second has all 32 MiB to go
    taken = spans.claim()
    assert taken is not None and taken.busy
    assert (taken.start, taken.end) == (48 * MIB, 64 * MIB)
    assert second.end == 48 * MIB
    assert [s.start for s in spans] == [0, 32 * MIB, 48 * MIB]


def test_spans_too_short_to_halve_are_left_to_their_connection() -> None:
    spans = Spans.even(2 * MIN_SPLIT - 1, 1)
    assert spans.claim() is not None
    assert spans.claim() is None


def test_a_released_span_is_taken_up_again_where_it_stopped() -> None:
    spans = Spans([Span(0, 10, 0), Span(10, 20, 10)])
    span = spans.claim()
    assert span is not None
    span.pos, span.busy = 4, False  # its connection broke off after 4 bytes
    again = spans.claim()
    assert again is span and again.pos == 4


def test_the_prefix_is_what_is_written_without_a_gap() -> None:
    spans = Spans([Span(0, 10, 0), Span(10, 20, 10), Span(20, 30, 20)])
    first, second, third = spans
    third.pos = 30
    assert spans.prefix() == 0
    first.pos = 10
    second.pos = 15
    assert spans.prefix() == 15 and not spans.done
    second.pos = 20
    assert spans.prefix() == 30 and spans.done
