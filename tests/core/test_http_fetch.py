"""One GET of a segment, sans-IO (p2ploader.core.http_fetch): where a response's body sits in the
segment, or that it does not hold what was asked for. The executor reads bodies as these plans
say (tests/aio/test_http_executor.py runs them against respx)."""

from __future__ import annotations

import pytest

from p2ploader.core.http_fetch import BodyPlan, UnusableResponse, plan_body, range_header
from p2ploader.core.retries import HttpFailureKind
from p2ploader.core.segments import ByteRange, Segment, SegmentId
from p2ploader.errors import UsageError

WHOLE = Segment(id=SegmentId("v0", 1), url="http://origin.test/1.ts", duration=2.0)
RANGED = Segment(
    id=SegmentId("v0", 1),
    url="http://origin.test/all.ts",
    duration=2.0,
    byte_range=ByteRange(offset=500, length=1000),
)


def plan(
    segment: Segment,
    *,
    held: int = 0,
    status: int = 206,
    content_range: str | None = None,
    content_length: str | None = None,
    content_encoding: str | None = None,
) -> BodyPlan | UnusableResponse:
    return plan_body(
        segment,
        held=held,
        status=status,
        content_range=content_range,
        content_length=content_length,
        content_encoding=content_encoding,
    )


def wrong(reason: str) -> UnusableResponse:
    return UnusableResponse(kind=HttpFailureKind.WRONG_CONTENT_RANGE, reason=reason)


def test_a_206_continues_from_the_bytes_held_and_gives_the_segments_size() -> None:
    assert range_header(WHOLE, 700) == "bytes=700-"
    assert plan(WHOLE, held=700, content_range="bytes 700-2047/2048") == BodyPlan(
        skip=0, offset=700, size=2048
    )
    # An unknown total: the size is what the body carries after the bytes held.
    assert plan(WHOLE, held=700, content_range="bytes 700-2047/*") == BodyPlan(skip=0, offset=700, size=2048)
    assert range_header(RANGED, 200) == "bytes=700-1499"
    assert plan(RANGED, held=200, content_range="bytes 700-1499/4096") == BodyPlan(
        skip=0, offset=200, size=1000
    )


def test_a_206_from_another_byte_or_ending_elsewhere_is_a_wrong_content_range() -> None:
    assert plan(WHOLE, held=700, content_range="bytes 0-2047/2048") == wrong(
        "wrong Content-Range 'bytes 0-2047/2048' for a request from byte 700"
    )
    assert plan(WHOLE, content_range=None) == wrong("wrong Content-Range None for a request from byte 0")
    assert plan(WHOLE, content_range="bytes=0-10/11") == wrong(
        "wrong Content-Range 'bytes=0-10/11' for a request from byte 0"
    )
    assert plan(RANGED, content_range="bytes 500-999/4096") == wrong(
        "Content-Range ends at 999, the byte range at 1499"
    )


def test_a_200_to_a_whole_resource_segment_starts_it_again() -> None:
    # The origin ignored Range: the bytes held are replaced, the size is Content-Length.
    assert plan(WHOLE, held=700, status=200, content_length="2048") == BodyPlan(skip=0, offset=0, size=2048)
    assert plan(WHOLE, status=200) == BodyPlan(skip=0, offset=0, size=None)
    # An encoded body's Content-Length counts encoded bytes: the size is unknown.
    assert plan(WHOLE, status=200, content_length="900", content_encoding="gzip") == BodyPlan(
        skip=0, offset=0, size=None
    )
    assert plan(WHOLE, status=200, content_length="2048", content_encoding="identity").size == 2048


def test_a_200_to_a_byte_range_segment_skips_to_the_range_and_the_bytes_held() -> None:
    assert plan(RANGED, held=200, status=200, content_length="4096") == BodyPlan(
        skip=700, offset=200, size=1000
    )
    assert plan(RANGED, status=200) == BodyPlan(skip=500, offset=0, size=1000)
    assert plan(RANGED, status=200, content_length="1499") == wrong(
        "resource has 1499 bytes, the byte range ends at 1500"
    )


def test_only_usable_statuses_are_planned() -> None:
    with pytest.raises(UsageError, match="needs a 200 or 206 response, not 503"):
        plan(WHOLE, status=503)
