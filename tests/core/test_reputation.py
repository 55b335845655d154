"""Peer reputation in the core (p2ploader.core.reputation, owned by the scheduler): integrity
failures ban at once, protocol violations strike, strikes within one ban period ban, bans fall on
certificates and stay within their swarm, except that a family (a loader and its companions)
shares them by identity. Time is driven by hand: nothing sleeps."""

from __future__ import annotations

from p2ploader.config import LoaderConfig
from p2ploader.core import events as ev
from p2ploader.core import notifications as nt
from p2ploader.core.bans import STRIKES_BEFORE_BAN
from p2ploader.core.reputation import Reputation
from p2ploader.core.scheduler import MAX_SEGMENT_SIZE
from p2ploader.testing.harness import Harness, sid

QUIET = LoaderConfig().evolve(http_download_probability=0.0)


def banned(h: Harness) -> list[nt.PeerBanned]:
    return h.of_type(nt.PeerBanned)


# ---------------------------------------------------------------- the book alone


def test_strikes_within_one_ban_period_ban_and_older_ones_expire() -> None:
    reputation = Reputation(ban_time=60.0)
    assert STRIKES_BEFORE_BAN == 3
    assert reputation.misbehaved("v0", "p", now=0.0, reason="a") is None
    assert reputation.misbehaved("v0", "p", now=70.0, reason="b") is None  # the first one expired
    assert reputation.misbehaved("v0", "p", now=80.0, reason="c") is None
    assert reputation.misbehaved("v0", "p", now=90.0, reason="d") == nt.PeerBanned(
        peer_id="p", reason="d", seconds=60.0
    )
    assert reputation.is_banned("v0", "p", now=149.0) and not reputation.is_banned("v0", "p", now=150.5)
    assert not reputation.is_banned("v1", "p", now=100.0)  # another swarm's book


def test_a_lie_bans_at_once_and_once() -> None:
    reputation = Reputation(ban_time=30.0)
    assert reputation.lied("v0", "p", now=5.0, reason="bad bytes") == nt.PeerBanned(
        peer_id="p", reason="bad bytes", seconds=30.0
    )
    assert reputation.lied("v0", "p", now=6.0, reason="again") is None  # banned already
    assert reputation.misbehaved("v0", "p", now=7.0, reason="x") is None
    assert reputation.bans == 1 and set(reputation.swarms) == {"v0"}


def test_bans_fall_on_the_certificate_so_an_impersonator_cannot_frame_the_owner() -> None:
    reputation = Reputation(ban_time=60.0)
    reputation.bind("v0", "honest", "cert-attacker")  # the attacker's link, under the honest id
    assert reputation.lied("v0", "honest", now=1.0, reason="bad bytes") is not None
    assert reputation.is_banned("v0", "honest", now=2.0, certificate="cert-attacker")
    assert not reputation.is_banned("v0", "honest", now=2.0, certificate="cert-honest")
    assert reputation.is_banned("v0", "other-id", now=2.0, certificate="cert-attacker")


# ---------------------------------------------------------------- fed by the scheduler


def test_an_integrity_failure_bans_the_peer_from_the_segments_swarm() -> None:
    h = Harness(QUIET)
    assert h.config.peer_ban_time == 600.0
    h.connect("A")
    h.now = 3.0
    h.send(ev.IntegrityCheckFailed(segment_id=sid(4), peer_id="A", check="sha256", reason="digest differs"))
    failed = nt.IntegrityCheckFailed(segment_id=sid(4), peer_id="A", check="sha256", reason="digest differs")
    assert h.notifications[-2:] == [
        failed,
        nt.PeerBanned(peer_id="A", reason="digest differs", seconds=600.0),
    ]
    assert h.scheduler.is_banned("v0", "A", now=602.9)
    assert not h.scheduler.is_banned("v0", "A", now=603.1)
    assert not h.scheduler.is_banned("v1", "A", now=4.0)


def test_violations_outside_our_downloads_strike_and_the_third_bans() -> None:
    h = Harness(QUIET, peer_ban_time=20.0)
    for n in range(STRIKES_BEFORE_BAN):
        h.now = float(n)
        h.send(ev.PeerViolatedProtocol(peer_id="A", swarm="v0", reason="flooded us with commands"))
        assert len(h.of_type(nt.PeerMisbehaved)) == n + 1
        assert len(banned(h)) == (1 if n == STRIKES_BEFORE_BAN - 1 else 0)
    assert banned(h) == [nt.PeerBanned(peer_id="A", reason="flooded us with commands", seconds=20.0)]
    assert h.scheduler.is_banned("v0", "A", now=21.9) and not h.scheduler.is_banned("v0", "A", now=22.1)


def test_strikes_spread_over_more_than_a_ban_period_do_not_ban() -> None:
    h = Harness(QUIET, peer_ban_time=20.0)
    for n in range(2 * STRIKES_BEFORE_BAN):
        h.now = 11.0 * n
        h.send(ev.PeerViolatedProtocol(peer_id="A", swarm="v0", reason="garbage"))
    assert banned(h) == [] and not h.scheduler.is_banned("v0", "A", now=h.now)


def test_a_download_violation_strikes_in_the_segments_swarm() -> None:
    h = Harness(QUIET, peer_ban_time=60.0, simultaneous_http_downloads=1)
    h.play_at(0)
    h.request(0)
    for _ in range(STRIKES_BEFORE_BAN):
        h.connect("A", loaded=[5])
        rid = h.p2p_request_for(5)
        h.send(ev.PeerResponseStarted(request_id=rid, total_bytes=MAX_SEGMENT_SIZE + 1))
        assert "A" not in h.scheduler.p2p_loading().values()  # dropped at once
        h.send(ev.PeerDisconnected(peer_id="A"))
    reasons = [m.reason for m in h.of_type(nt.PeerMisbehaved)]
    assert len(reasons) == STRIKES_BEFORE_BAN and all("impossible size" in r for r in reasons)
    assert [b.peer_id for b in banned(h)] == ["A"]
    assert h.scheduler.is_banned("v0", "A", now=h.now) and not h.scheduler.is_banned("v1", "A", now=h.now)


# ---------------------------------------------------------------- shared by a loader and its companions


def test_a_ban_counts_in_every_swarm_of_the_family_and_the_other_way_round() -> None:
    video, audio = Reputation(ban_time=60.0), Reputation(ban_time=60.0)
    video.share_with(audio)
    assert video.family == (video, audio) and audio.family == (video, audio)
    assert video.lied("v0", "liar", now=1.0, reason="bad bytes") is not None
    assert audio.is_banned("a:aud:en", "liar", now=2.0)  # same bare id (no certificate bound)
    assert audio.misbehaved("a:aud:en", "flooder", now=3.0, reason="x") is None  # strikes stay put
    for n in range(STRIKES_BEFORE_BAN - 1):
        audio.misbehaved("a:aud:en", "flooder", now=4.0 + n, reason="x")
    assert video.is_banned("v0", "flooder", now=10.0)
    # Within one loader the renditions keep separate books, as before.
    assert not video.is_banned("v1", "liar", now=2.0)
    # Bans expire everywhere at once.
    assert not audio.is_banned("a:aud:en", "liar", now=61.5)


def test_a_shared_ban_follows_the_certificate_not_another_swarms_binding_of_the_id() -> None:
    video, audio = Reputation(ban_time=60.0), Reputation(ban_time=60.0)
    audio.share_with(video)
    video.bind("v0", "p-video", "cert-liar")
    video.lied("v0", "p-video", now=1.0, reason="bad bytes")
    # 2.3.1 gives each stream its own peer id: the audio link is known by its certificate.
    assert audio.is_banned("a:aud:en", "p-audio", now=2.0, certificate="cert-liar")
    audio.bind("a:aud:en", "p-audio", "cert-liar")
    assert audio.is_banned("a:aud:en", "p-audio", now=2.0)  # through the audio book's own binding
    # Someone else's link under the liar's video id, with its own certificate, is not refused.
    assert not audio.is_banned("a:aud:en", "p-video", now=2.0, certificate="cert-honest")
    audio.bind("a:aud:en", "p-video", "cert-honest")
    assert not audio.is_banned("a:aud:en", "p-video", now=2.0)
    assert not audio.is_banned("a:aud:en", "cert-liar", now=2.0)  # an id is not a certificate


def test_families_merge_and_a_member_that_leaves_shares_nothing_more() -> None:
    video, audio, subtitles = (Reputation(ban_time=60.0) for _ in range(3))
    audio.share_with(video)
    subtitles.share_with(video)
    subtitles.share_with(audio)  # already one family: nothing changes
    assert set(audio.family) == {video, audio, subtitles} and len(audio.family) == 3
    subtitles.lied("s:subs:en", "liar", now=1.0, reason="bad cue")
    assert audio.is_banned("a:aud:en", "liar", now=2.0)
    subtitles.leave_family()
    assert subtitles.family == (subtitles,) and set(video.family) == {video, audio}
    assert not audio.is_banned("a:aud:en", "liar", now=2.0)
    audio.lied("a:aud:en", "other", now=3.0, reason="bad bytes")
    assert not subtitles.is_banned("s:subs:en", "other", now=4.0)
    assert video.is_banned("v0", "other", now=4.0)


def test_schedulers_share_bans_through_their_reputations() -> None:
    video, audio = Harness(QUIET), Harness(QUIET, seed=2)
    video.scheduler.reputation.share_with(audio.scheduler.reputation)
    video.connect("A")
    video.now = audio.now = 5.0
    video.send(
        ev.IntegrityCheckFailed(segment_id=sid(4), peer_id="A", check="sha256", reason="digest differs")
    )
    assert audio.scheduler.is_banned("a:aud:en", "A", now=6.0)
    assert not audio.scheduler.is_banned("a:aud:en", "A", now=605.1)  # peer_ban_time (600 s) later
