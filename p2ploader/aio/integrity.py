"""Integrity checks of P2P segments, with I/O: published SHA-256 digests and origin spot checks.

:class:`IntegrityChecker` runs the checks the scheduler asks for before storing a download
(``ValidateSegment``), then the application's ``segment_validator`` (if any). For a segment holding
even one byte from a peer (a P2P download, or an HTTP Range request that continued a peer's bytes)
it:

1. compares its SHA-256 with the digest the origin published in the media playlist
   (``integrity_sha256``: by default whenever the playlist publishes one; format in
   :mod:`p2ploader.core.integrity`), or else
2. with probability ``integrity_spot_check_probability``, fetches ``integrity_spot_checks`` small
   byte ranges of it from the origin (``Range`` requests, concurrently) and compares them.

A mismatch rejects the bytes (the scheduler loads the segment again whole over HTTP). When one peer
sent them, it calls ``on_failure`` for that peer so the loader can ban it and tell the application
(the scheduler disconnects it). When several did (one stalled, another continued), a digest cannot
tell which lied, and blaming all would let a liar get an honest peer banned by stalling just before
it: nobody is blamed here; the scheduler compares each one's bytes with the origin's when the
segment comes again and blames those that differ (``IntegrityCheckFailed``, check
``"origin-bytes"``). An origin that cannot answer a spot check (an error status, a wrong
``Content-Range``, a timeout) proves nothing against the peer: the check is *inconclusive* and the
segment is accepted (unverified), because the HTTP fallback would hit the same failing origin.
Segments wholly loaded over HTTP are not checked: they come from the origin.
"""

from __future__ import annotations

import asyncio
import inspect
import random
import re
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, Literal

import attrs
import httpx

from p2ploader.config import LoaderConfig, SegmentValidator
from p2ploader.core import actions as act
from p2ploader.core.integrity import SpotCheckRange, digest_matches, plan_spot_checks
from p2ploader.core.segments import Segment, SegmentId

__all__ = ["IntegrityChecker", "IntegrityStatistics", "Validation", "Verdict", "integrity_enabled"]

Check = Literal["sha256", "spot-check"]
FailureCallback = Callable[[Segment, str, Check, str], None]
"""``on_failure(segment, peer_id, check, reason)``, for the one peer that sent bytes of the segment."""

Verdict = Literal["verified", "unverified", "failed"]
"""What the checks found: proven right, not proven (no check ran, or one was inconclusive), wrong."""

Validation = Callable[[act.ValidateSegment], Coroutine[Any, Any, tuple[bool, bool]]]
"""The driver's validation hook: ``(accept, verified)`` for a finished download's bytes."""

_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
_MAX_DIGESTS = 8192  # published digests remembered (a live stream publishes new ones forever)


def integrity_enabled(config: LoaderConfig) -> bool:
    """Whether the config may check P2P segments: spot checks are on, or ``integrity_sha256`` is
    not turned off (automatic: on for every segment whose playlist publishes a digest)."""
    return config.integrity_sha256 is not False or config.integrity_spot_checks > 0


@attrs.frozen(kw_only=True)
class IntegrityStatistics:
    """What the checks did and cost. ``spot_check_bytes`` are body bytes of spot-check responses;
    the ``p2p_bytes_*`` figures are segment bytes that came from peers."""

    sha256_checks: int
    spot_checked_segments: int
    spot_check_requests: int
    spot_check_bytes: int
    failures: int
    inconclusive: int
    unchecked: int
    p2p_bytes_verified: int = 0
    """Peer bytes of accepted segments that a SHA-256 or conclusive spot check proved right."""
    p2p_bytes_unverified: int = 0
    """Peer bytes of accepted segments that no check proved (see :class:`LoaderStatistics`)."""
    p2p_bytes_rejected: int = 0
    """Peer bytes of segments that failed a check (dropped)."""


class _Lie(Exception):
    """A spot check proved the peer's bytes wrong."""


class _Inconclusive(Exception):
    """The origin could not answer a spot check."""


@attrs.define
class _Counters:
    sha256_checks: int = 0
    spot_checked_segments: int = 0
    spot_check_requests: int = 0
    spot_check_bytes: int = 0
    failures: int = 0
    inconclusive: int = 0
    unchecked: int = 0


class IntegrityChecker:
    """Checks P2P segments before they are accepted (see the module docstring)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        config: LoaderConfig,
        *,
        rng: random.Random,
        on_failure: FailureCallback | None = None,
    ) -> None:
        self._client = client
        self._config = config
        self._rng = rng
        self._on_failure = on_failure
        self._digests: dict[SegmentId, bytes] = {}
        self._counters = _Counters()

    # ------------------------------------------------------------------ published digests

    def publish(self, rendition: str, digests: Mapping[int, bytes]) -> None:
        """Remember the digests a media playlist publishes (``{media sequence: SHA-256}``). The
        oldest are forgotten beyond a fixed number, so a long live stream keeps memory bounded."""
        for sequence, digest in digests.items():
            self._digests[SegmentId(rendition, sequence)] = digest
        excess = len(self._digests) - _MAX_DIGESTS
        if excess > 0:
            for sid in list(self._digests)[:excess]:
                del self._digests[sid]

    def digest_of(self, segment_id: SegmentId) -> bytes | None:
        return self._digests.get(segment_id)

    @property
    def digests_held(self) -> int:
        return len(self._digests)

    # ------------------------------------------------------------------ the validator

    def validation(self, user: SegmentValidator | None) -> Validation:
        """The driver's validation hook: these checks for segments holding peer bytes, then
        ``user``'s validator (for every segment). Returns ``(accept, verified)``."""

        async def validate(action: act.ValidateSegment) -> tuple[bool, bool]:
            verdict: Verdict = "unverified"
            if action.method == "p2p":
                spans = [(r.offset, r.length) for r in action.peer_ranges]
                verdict = await self.verify(action.segment, action.data, action.peer_ids, focus=spans)
                if verdict == "failed":
                    return False, False
            if user is not None:
                accepted = user(action.segment, action.data, action.method, action.peer_id)
                if inspect.isawaitable(accepted):
                    accepted = await accepted
                if not accepted:
                    return False, False
            return True, verdict == "verified"

        return validate

    async def check(self, segment: Segment, data: bytes, peer_ids: str | Sequence[str]) -> bool:
        """``False`` when ``data`` (from ``peer_ids``) is proven wrong (``on_failure`` was called)."""
        return await self.verify(segment, data, peer_ids) != "failed"

    async def verify(
        self,
        segment: Segment,
        data: bytes,
        peer_ids: str | Sequence[str],
        *,
        focus: Sequence[tuple[int, int]] = (),
    ) -> Verdict:
        """Check ``data``, a segment whose bytes came (at least in part) from ``peer_ids``; spot
        checks aim at the ``focus`` spans (``(offset, length)``: the peers' bytes) when given. On
        ``"failed"``, ``on_failure`` was called for the sender if there was only one."""
        peers = (peer_ids,) if isinstance(peer_ids, str) else tuple(peer_ids)
        config = self._config
        counters = self._counters
        digest = self._digests.get(segment.id) if config.integrity_sha256 is not False else None
        if digest is not None:
            counters.sha256_checks += 1
            if digest_matches(data, digest):
                return "verified"
            self._fail(segment, peers, "sha256", "SHA-256 differs from the digest the origin publishes")
            return "failed"
        if config.integrity_spot_checks <= 0 or self._rng.random() >= config.integrity_spot_check_probability:
            counters.unchecked += 1
            return "unverified"
        counters.spot_checked_segments += 1
        plan = plan_spot_checks(
            len(data),
            count=config.integrity_spot_checks,
            length=config.integrity_spot_check_bytes,
            rng=self._rng,
            focus=focus,
        )
        results = await asyncio.gather(
            *(self._check_range(segment, data, r) for r in plan), return_exceptions=True
        )
        lies = [r for r in results if isinstance(r, _Lie)]
        if lies:
            self._fail(segment, peers, "spot-check", str(lies[0]))
            return "failed"
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, _Inconclusive):
                raise result  # a bug, not a verdict: the driver rejects the bytes and logs it
        if any(isinstance(r, _Inconclusive) for r in results):
            counters.inconclusive += 1
            return "unverified"
        return "verified"

    def statistics(self) -> IntegrityStatistics:
        return IntegrityStatistics(**attrs.asdict(self._counters))

    # ------------------------------------------------------------------ internals

    def _fail(self, segment: Segment, peer_ids: tuple[str, ...], check: Check, reason: str) -> None:
        self._counters.failures += 1
        # With several senders, which of them lied cannot be told here: the scheduler finds out
        # from the origin's bytes (see the module docstring).
        if self._on_failure is not None and len(peer_ids) == 1:
            self._on_failure(segment, peer_ids[0], check, reason)

    async def _check_range(self, segment: Segment, data: bytes, span: SpotCheckRange) -> None:
        """Compare bytes ``span`` of ``data`` with the origin; raise :class:`_Lie` or
        :class:`_Inconclusive`, return when they match."""
        base = segment.byte_range.offset if segment.byte_range is not None else 0
        first, last = base + span.offset, base + span.end - 1
        whole_file = segment.byte_range is None
        config = self._config
        self._counters.spot_check_requests += 1
        try:
            async with asyncio.timeout(config.http_connect_timeout + config.http_read_timeout):
                async with self._client.stream(
                    "GET", segment.url, headers={"Range": f"bytes={first}-{last}"}
                ) as response:
                    if response.status_code == 206:
                        match = _CONTENT_RANGE.match(response.headers.get("content-range", ""))
                        if match is None or (int(match[1]), int(match[2])) != (first, last):
                            raise _Inconclusive("the origin sent a wrong Content-Range")
                        if whole_file and match[3] != "*" and int(match[3]) != len(data):
                            raise _Lie(f"the origin has {match[3]} bytes, the peer sent {len(data)}")
                        body = await self._read(response, span.length)
                    elif response.status_code == 200:
                        # The origin ignores Range: read its body only as far as the range goes.
                        length = response.headers.get("content-length", "")
                        if whole_file and length.isdigit() and int(length) != len(data):
                            raise _Lie(f"the origin has {length} bytes, the peer sent {len(data)}")
                        body = (await self._read(response, last + 1))[first:]
                    else:
                        raise _Inconclusive(f"the origin answered HTTP {response.status_code}")
        except (httpx.HTTPError, TimeoutError) as exc:
            raise _Inconclusive(f"origin unreachable: {type(exc).__name__}") from exc
        if len(body) != span.length:
            raise _Inconclusive(f"the origin sent {len(body)} of {span.length} bytes")
        if body != data[span.offset : span.end]:
            raise _Lie(f"bytes {span.offset}-{span.end - 1} differ from the origin's")

    async def _read(self, response: httpx.Response, limit: int) -> bytes:
        """At most ``limit`` body bytes (a hostile or broken origin cannot make us buffer more)."""
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            self._counters.spot_check_bytes += len(chunk)
            if size >= limit:
                break
        return b"".join(chunks)[:limit]
