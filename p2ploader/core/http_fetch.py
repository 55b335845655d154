"""One GET of a segment from the origin, sans-IO: what to ask for and what the answer means.

The HTTP executors (:mod:`p2ploader.aio.http`) only send requests and read bodies; this module
decides, from plain values, the ``Range`` header of a GET that continues the bytes held
(:func:`range_header`), whether a response's status is usable (:func:`status_failure`) and where
its body sits in the segment (:func:`plan_body`: bytes to skip, the segment byte it starts at,
the size to stop at), or that it does not hold what was asked for (a wrong ``Content-Range``).
What happens after a failure is :mod:`p2ploader.core.retries`'s decision.
"""

from __future__ import annotations

import re
from typing import Final

import attrs

from p2ploader.core.retries import HttpFailureKind
from p2ploader.core.segments import Segment
from p2ploader.errors import UsageError

__all__ = ["BodyPlan", "UnusableResponse", "plan_body", "range_header", "status_failure"]

_CONTENT_RANGE: Final = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


def range_header(segment: Segment, held: int) -> str | None:
    """The ``Range`` header of a GET of ``segment`` when its first ``held`` bytes are held, or
    ``None`` for a plain GET of the whole resource. A segment with a byte range always asks for
    (the rest of) its range; a whole-resource segment asks for the bytes from ``held`` on."""
    if held < 0:
        raise UsageError(f"held must be >= 0 bytes, not {held}")
    if segment.byte_range is not None:
        return segment.byte_range.http_range(skip=held)
    return f"bytes={held}-" if held else None


def status_failure(status: int) -> HttpFailureKind | None:
    """The failure a response's HTTP ``status`` is, or ``None`` for a usable one (200, 206)."""
    if status in (200, 206):
        return None
    return HttpFailureKind.SERVER_ERROR if status >= 500 else HttpFailureKind.UNUSABLE_STATUS


@attrs.frozen(kw_only=True)
class BodyPlan:
    """How to read a usable response's body (all in bytes): drop its first ``skip`` bytes, then
    it continues the segment from byte ``offset`` (0: the segment starts again, the bytes held
    are replaced); stop at ``size``, the segment's size, or at the body's end when ``None``."""

    skip: int
    offset: int
    size: int | None


@attrs.frozen(kw_only=True)
class UnusableResponse:
    """A response that does not hold what was asked for; ``reason`` is for humans."""

    kind: HttpFailureKind
    reason: str


def plan_body(
    segment: Segment,
    *,
    held: int,
    status: int,
    content_range: str | None,
    content_length: str | None,
    content_encoding: str | None,
) -> BodyPlan | UnusableResponse:
    """Where the body of a 200 or 206 response to the GET of :func:`range_header` (``segment``,
    ``held`` bytes held) sits in the segment, from its status and headers (``None``: absent).

    A 206 must start at the byte asked for and, for a byte-range segment, end at its last byte;
    its total (or, when ``*``, what it carries) is the segment's size. A 200 is the whole
    resource: a byte-range segment skips to its range (and the bytes held in it), which a
    resource shorter than the range cannot hold; a whole-resource segment starts again at 0,
    its size the ``Content-Length`` when the body is not encoded (the header then counts
    encoded bytes)."""
    if status not in (200, 206):
        raise UsageError(f"plan_body needs a 200 or 206 response, not {status}")
    br = segment.byte_range
    length = int(content_length) if content_length and content_length.isdigit() else None
    if (content_encoding or "identity") != "identity":
        length = None
    if status == 206:
        match = _CONTENT_RANGE.match(content_range or "")
        want_start = (br.offset if br else 0) + held
        if match is None or int(match.group(1)) != want_start:
            return UnusableResponse(
                kind=HttpFailureKind.WRONG_CONTENT_RANGE,
                reason=f"wrong Content-Range {content_range!r} for a request from byte {want_start}",
            )
        first, last = int(match.group(1)), int(match.group(2))
        if br is not None:
            if last != br.end - 1:
                return UnusableResponse(
                    kind=HttpFailureKind.WRONG_CONTENT_RANGE,
                    reason=f"Content-Range ends at {last}, the byte range at {br.end - 1}",
                )
            return BodyPlan(skip=0, offset=held, size=br.length)
        total = match.group(3)
        size = int(total) if total != "*" else held + (last - first + 1)
        return BodyPlan(skip=0, offset=held, size=size)
    # 200: the origin ignored Range and sends the whole resource.
    if br is not None:
        # Read through to the byte range (streamed, so memory stays bounded).
        if length is not None and length < br.end:
            return UnusableResponse(
                kind=HttpFailureKind.WRONG_CONTENT_RANGE,
                reason=f"resource has {length} bytes, the byte range ends at {br.end}",
            )
        return BodyPlan(skip=br.offset + held, offset=held, size=br.length)
    return BodyPlan(skip=0, offset=0, size=length)
