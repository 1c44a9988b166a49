"""Request ids: unguessable, never repeated, and ordered by time (the request log's index depends on it)."""

from __future__ import annotations

import re
import time

from byollm.api.request_id import new_request_id

SHAPE = re.compile(r"req_([0-9a-f]{12})([0-9a-f]{24})")


def test_an_id_is_the_time_in_milliseconds_then_96_random_bits() -> None:
    before = time.time_ns() // 1_000_000
    match = SHAPE.fullmatch(new_request_id())
    after = time.time_ns() // 1_000_000
    assert match is not None
    assert before <= int(match.group(1), 16) <= after


def test_ids_issued_later_sort_after_earlier_ones() -> None:
    earlier = [new_request_id() for _ in range(300)]  # more than one refill of the random buffer
    time.sleep(0.002)
    later = [new_request_id() for _ in range(300)]
    assert max(earlier) < min(later)


def test_ids_never_repeat_and_their_random_parts_differ_within_a_millisecond() -> None:
    ids = [new_request_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    randoms = [SHAPE.fullmatch(i).group(2) for i in ids]  # type: ignore[union-attr]
    assert len(set(randoms)) == len(randoms)
