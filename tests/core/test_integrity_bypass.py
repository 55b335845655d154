"""A peer's bytes are checked as P2P bytes wherever the segment is finished, and every peer that
sent some is blamed when they are wrong.

The reported bypass: a peer sends a correct data header, then all but the last byte wrong, then
stalls. When the segment turns urgent, HTTP fetched only the missing tail (``http_download_ranges``)
and the assembled segment was checked as an HTTP download, which the integrity checks skip: the
liar's bytes reached the player, were cached and shared. The matrix below runs that peer against
every preset, with Range continuation on and off and integrity checks off, on published digests,
and on spot checks, on a driven clock (:mod:`tests.core.world`).
"""

from __future__ import annotations

import attrs
import pytest

from p2ploader.config import PRESETS, LoaderConfig
from p2ploader.core import actions as act
from p2ploader.core import events as ev
from p2ploader.core import notifications as nt
from p2ploader.core.policies import DownloadPolicy, SchedulingContext
from p2ploader.testing.harness import SEGMENT_SIZE, Harness, sid

from .world import Integrity, World, liar_then_stall

LIAR = "L"


def _run(preset: str, ranges: bool, integrity: Integrity) -> World:
    config = PRESETS[preset].evolve(http_download_ranges=ranges)
    world = World(config, integrity=integrity, segments=12, duration=4.0)
    world.tracker_reports(2)
    world.connect(LIAR, liar_then_stall)
    world.play(until=70.0)
    return world


@pytest.mark.parametrize("integrity", ["digests", "spot-checks"])
@pytest.mark.parametrize("ranges", [True, False], ids=["ranges", "no-ranges"])
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_with_checks_no_wrong_byte_reaches_the_player_and_the_liar_is_blamed(
    preset: str, ranges: bool, integrity: Integrity
) -> None:
    world = _run(preset, ranges, integrity)
    assert len(world.ready) == 12, "every segment played"
    assert world.wrong_segments() == []
    blamed = {n.peer_id for n in world.notifications if isinstance(n, nt.PeerMisbehaved)}
    assert LIAR in blamed
    assert any(isinstance(a, act.DisconnectPeer) and a.peer_id == LIAR for a in world.actions)
    stats = world.scheduler.statistics()
    assert stats.p2p_bytes_unverified == 0 and stats.p2p_bytes_rejected > 0
    # Nothing of the liar's is kept for the next attempt: no HTTP fetch resumes after its
    # disconnection, and every cached segment is the origin's.
    for n in range(12):
        entry = world.scheduler.cache.get(world.segments[n].id, now=world.now)
        assert entry is None or entry.data == world.truth[n]


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_with_ranges_the_rejected_segment_comes_again_whole_over_http(preset: str) -> None:
    world = _run(preset, ranges=True, integrity="digests")
    checks = [a for a in world.actions if isinstance(a, act.ValidateSegment)]
    mixed = [c for c in checks if c.method == "p2p" and c.peer_ranges and c.peer_bytes < len(c.data)]
    assert mixed, "the liar's prefix continued over HTTP was checked as a P2P segment"
    assert mixed[0].peer_ids == (LIAR,)
    failed = mixed[0].segment.id
    fetches = [a for a in world.actions if isinstance(a, act.StartHttpFetch) and a.segment.id == failed]
    assert fetches[-1].resume_from == 0, "re-fetched whole, not from the rejected prefix"


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_with_checks_off_and_ranges_on_the_liars_bytes_get_through_counted_unverified(preset: str) -> None:
    # The documented behaviour with integrity_sha256=False and no spot checks: nothing checks a
    # peer's bytes, so a prefix continued over HTTP reaches the player; the statistics say so.
    world = _run(preset, ranges=True, integrity="off")
    assert world.wrong_segments(), "unchecked: the lie gets through (docs/security.md)"
    stats = world.scheduler.statistics()
    assert stats.p2p_bytes_unverified > 0 and stats.p2p_bytes_verified == 0


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_with_checks_off_and_ranges_off_the_liar_is_still_caught_by_the_origins_bytes(preset: str) -> None:
    # Its bytes are never used (HTTP loads the segment whole) and are compared with the origin's.
    world = _run(preset, ranges=False, integrity="off")
    assert world.wrong_segments() == []
    caught = [n for n in world.notifications if isinstance(n, nt.IntegrityCheckFailed)]
    assert caught and caught[0].peer_id == LIAR and caught[0].check == "origin-bytes"
    assert any(isinstance(a, act.DisconnectPeer) and a.peer_id == LIAR for a in world.actions)


def test_the_defaults_as_shipped_check_p2p_bytes_when_the_playlist_publishes_digests() -> None:
    # LoaderConfig() turns the checks on by itself (integrity_sha256=None: automatic); the loader
    # then builds its scheduler with validate_p2p (tests/aio and tests/hostile run it for real).
    assert LoaderConfig().integrity_sha256 is None
    world = _run("p2pml-0.6-defaults", ranges=LoaderConfig().http_download_ranges, integrity="digests")
    assert world.wrong_segments() == []


# --------------------------------------------------------------------------- unit cases


class _Idle(DownloadPolicy):
    name = "test-idle-integrity"

    def schedule(self, ctx: SchedulingContext, *, now: float) -> None:
        pass


def _stalled_prefix(h: Harness, peer: str = "A", size: int = 600) -> None:
    ctx = h.scheduler._context
    ctx.start_p2p(sid(3), peer, now=h.now)
    h.send(ev.PlaybackMoved(position=0.0))
    rid = h.p2p_request_for(3)
    h.send(ev.PeerResponseStarted(request_id=rid, total_bytes=SEGMENT_SIZE))
    h.send(ev.PeerChunkReceived(request_id=rid, data=b"x" * size))
    h.advance(h.config.p2p_stall_timeout + 0.1)  # stalls: its bytes are kept


def _harness(**overrides: object) -> Harness:
    h = Harness(policy=_Idle(LoaderConfig()), validate_p2p=True, **overrides)
    h.play_at(0)
    h.request(0)
    for peer in "AB":
        h.connect(peer, loaded=[3])
    return h


def test_an_http_range_continuation_is_checked_as_p2p_with_its_senders() -> None:
    h = _harness(http_download_ranges=True)
    _stalled_prefix(h)
    h.scheduler._context.start_http(sid(3), now=h.now, continue_p2p=True)
    h.send(ev.PlaybackMoved(position=0.0))
    (start,) = [a for a in h.http_starts() if a.segment.id == sid(3)]
    assert start.resume_from == 600
    h.complete_http(start.request_id, offset=600)
    (check,) = h.of_type(act.ValidateSegment)
    assert check.method == "p2p" and check.peer_id == "A"
    assert [(r.peer_id, r.offset, r.length) for r in check.peer_ranges] == [("A", 0, 600)]
    assert sid(3) not in h.scheduler.cache, "nothing is stored before the checks answer"
    h.send(ev.SegmentValidated(request_id=start.request_id, valid=True, verified=True))
    stats = h.scheduler.statistics()
    assert (stats.p2p_bytes_verified, stats.p2p_bytes_unverified) == (600, 0)


def test_an_origin_ignoring_range_makes_the_download_an_http_one_and_compares_the_prefix() -> None:
    h = _harness(http_download_ranges=True)
    _stalled_prefix(h)
    h.scheduler._context.start_http(sid(3), now=h.now, continue_p2p=True)
    h.send(ev.PlaybackMoved(position=0.0))
    rid = h.http_request_for(3)
    h.complete_http(rid, offset=0)  # 200: the whole segment, "h" * 1000, unlike A's "x" bytes
    assert not h.of_type(act.ValidateSegment), "no peer byte left in it"
    (failed,) = h.of_type(nt.IntegrityCheckFailed)
    assert (failed.peer_id, failed.check) == ("A", "origin-bytes")
    assert [d.peer_id for d in h.of_type(act.DisconnectPeer)] == ["A"]


def test_an_honest_prefix_dropped_for_a_whole_http_fetch_blames_nobody() -> None:
    h = _harness(http_download_ranges=False)
    _stalled_prefix(h)
    # Make A's bytes the origin's: the harness's origin sends "h" bytes.
    kept = h.scheduler._stalled_bytes[sid(3)]
    h.scheduler._stalled_bytes[sid(3)] = attrs.evolve(kept, data=b"h" * 600)
    h.scheduler._context.start_http(sid(3), now=h.now, continue_p2p=True)
    h.send(ev.PlaybackMoved(position=0.0))
    h.complete_http(h.http_request_for(3))
    assert not h.of_type(nt.IntegrityCheckFailed) and not h.of_type(act.DisconnectPeer)


def test_a_download_continuing_peer_bytes_is_never_relayed_before_its_checks() -> None:
    h = _harness(http_download_ranges=True)
    _stalled_prefix(h)
    h.scheduler._context.start_http(sid(3), now=h.now, continue_p2p=True)
    h.send(ev.PlaybackMoved(position=0.0))
    rid = h.http_request_for(3)
    h.send(ev.HttpResponseStarted(request_id=rid, offset=600, total_bytes=SEGMENT_SIZE))
    h.send(ev.PeerRequestedSegment(peer_id="B", segment_id=sid(3), peer_request_id=7, byte_offset=0))
    assert not h.of_type(act.SendSegmentToPeer)
    (absent,) = h.of_type(act.SendSegmentAbsent)
    assert absent.peer_id == "B"


def test_a_rejected_pure_p2p_segment_blames_its_peer_and_comes_over_http() -> None:
    h = _harness()
    h.scheduler._context.start_p2p(sid(3), "A", now=h.now)
    h.send(ev.PlaybackMoved(position=0.0))
    rid = h.p2p_request_for(3)
    h.complete_p2p(rid)
    (check,) = h.of_type(act.ValidateSegment)
    assert check.method == "p2p" and check.peer_ids == ("A",)
    h.send(ev.SegmentValidated(request_id=rid, valid=False))
    assert [n.peer_id for n in h.of_type(nt.PeerMisbehaved)] == ["A"]
    assert h.http_starts()[-1].segment.id == sid(3) and h.http_starts()[-1].resume_from == 0


def test_without_checks_a_pure_http_segment_is_not_sent_for_validation() -> None:
    h = _harness()
    h.scheduler._context.start_http(sid(3), now=h.now, continue_p2p=False)
    h.send(ev.PlaybackMoved(position=0.0))
    h.complete_http(h.http_request_for(3))
    assert not h.of_type(act.ValidateSegment)
    assert sid(3) in h.scheduler.cache
