"""The parts swarm's core (sans-IO, driven clock): part ids and their bounds, the parts swarm's
info hash, the parts as core segments (:class:`PartIndex`), and the ``p2ploader-live`` election,
deadlines and fallbacks as a scheduler configured by :func:`parts_config` applies them to parts,
including a peer that lies."""

from __future__ import annotations

import math
import random

import pytest

from p2ploader.config import LoaderConfig
from p2ploader.core import actions as act
from p2ploader.core import events as ev
from p2ploader.core import notifications as nt
from p2ploader.core import swarm
from p2ploader.core.ll_follower import FetchRequest, start_position
from p2ploader.core.part_exchange import (
    DEFAULT_PART_WINDOW,
    MAX_PART_MSN,
    MAX_PARTS_PER_SEGMENT,
    PARTS_MAX_PEERS,
    PartIndex,
    p2p_time,
    part_from_wire_id,
    part_policy_settings,
    part_wire_id,
    parts_config,
    parts_hold_back,
    parts_info_hash,
)
from p2ploader.core.policies.live import LivePolicySettings
from p2ploader.core.scheduler import Scheduler
from p2ploader.core.segments import Segment, SegmentId
from p2ploader.errors import HoldBackError, PeerProtocolError, UsageError
from p2ploader.hls import MediaPlaylist, parse_media

BASE = "http://origin.test/ll/"


def playlist_text(
    *, msn: int = 10, complete: int = 2, pending: int = 2, part: float = 0.5, hint: str | None = None
) -> str:
    """An LL-HLS playlist: ``complete`` segments of four ``part`` s parts from ``msn``, then
    ``pending`` parts of the next one and a preload hint for the part after them."""
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:9",
        f"#EXT-X-TARGETDURATION:{max(1, math.ceil(4 * part))}",
        f"#EXT-X-PART-INF:PART-TARGET={part}",
        f"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={3 * part}",
        f"#EXT-X-MEDIA-SEQUENCE:{msn}",
        '#EXT-X-MAP:URI="init.mp4"',
    ]
    for m in range(msn, msn + complete):
        for k in range(4):
            lines.append(
                f'#EXT-X-PART:DURATION={part},URI="s{m}.{k}.m4s"' + (",INDEPENDENT=YES" if k == 0 else "")
            )
        lines += [f"#EXTINF:{4 * part},", f"s{m}.m4s"]
    last = msn + complete
    for k in range(pending):
        lines.append(f'#EXT-X-PART:DURATION={part},URI="s{last}.{k}.m4s"')
    hinted = hint if hint is not None else f'URI="s{last}.{pending}.m4s"'
    lines.append(f"#EXT-X-PRELOAD-HINT:TYPE=PART,{hinted}")
    return "\n".join(lines) + "\n"


def parsed(**kwargs: object) -> MediaPlaylist:
    return parse_media(playlist_text(**kwargs), BASE + "index.m3u8", rendition="v0")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# Ids


def test_part_wire_ids_are_derived_from_msn_and_index_and_round_trip() -> None:
    assert part_wire_id(0, 0) == 0
    assert part_wire_id(12, 3) == 12 * MAX_PARTS_PER_SEGMENT + 3
    assert part_from_wire_id(part_wire_id(123456, 63)) == (123456, 63)
    assert part_wire_id(MAX_PART_MSN - 1, MAX_PARTS_PER_SEGMENT - 1) < 2**53  # exact in JavaScript


@pytest.mark.parametrize(("msn", "index"), [(-1, 0), (MAX_PART_MSN, 0), (5, -1), (5, MAX_PARTS_PER_SEGMENT)])
def test_parts_out_of_bounds_have_no_wire_id(msn: int, index: int) -> None:
    with pytest.raises(UsageError):
        part_wire_id(msn, index)


@pytest.mark.parametrize("wire_id", [-1, MAX_PART_MSN * MAX_PARTS_PER_SEGMENT, 2**63, 10**30])
def test_absurd_wire_ids_from_a_peer_are_protocol_errors(wire_id: int) -> None:
    with pytest.raises(PeerProtocolError):
        part_from_wire_id(wire_id)


def test_the_parts_swarm_has_its_own_info_hash_that_browsers_never_compute() -> None:
    stream_id = swarm.stream_swarm_id("http://origin.test/master.m3u8", "main", 0)
    parts = parts_info_hash(stream_id)
    assert len(parts) == 20 and parts.isascii()
    assert parts == parts_info_hash(stream_id)  # every p2ploader peer derives the same
    assert parts != swarm.info_hash(stream_id)
    assert parts != parts_info_hash(swarm.stream_swarm_id("http://origin.test/master.m3u8", "main", 1))


# --------------------------------------------------------------------------------------------------
# Settings: the critical window and the fallback adapt to part durations


def test_the_critical_window_and_fallback_follow_the_part_duration() -> None:
    short = part_policy_settings(part_target=0.25, hold_back=0.75)
    longer = part_policy_settings(part_target=1.0, hold_back=4.0)
    # Peers get two part targets (at least 0.5 s, at most half the distance), HTTP the rest.
    assert p2p_time(part_target=0.25, hold_back=0.75) == 0.375
    assert p2p_time(part_target=0.25, hold_back=3.0) == 0.5
    assert p2p_time(part_target=1.0, hold_back=4.0) == 2.0
    assert short["http_lead_time"] == 0.375 and longer["http_lead_time"] == 2.0
    assert part_policy_settings(part_target=0.25, hold_back=3.0)["http_lead_time"] == 2.5
    assert short["seeder_fallback_delay"] == 0.125 and longer["seeder_fallback_delay"] == 0.5
    assert short["slow_origin_lead_time"] == short["http_lead_time"]
    with pytest.raises(UsageError):
        part_policy_settings(part_target=0.0, hold_back=1.0)


def test_the_deadlines_are_set_for_the_players_distance_behind_live() -> None:
    # Key frames at segment starts; the edge at 5.0 s, PART-HOLD-BACK 1.5 s: loaded from the key
    # frame at 2.0 s, played from 3.5 s. The deadlines are for 1.5 s behind live, not 3.0 s.
    playlist = parsed()
    start = start_position(playlist)
    assert (start.start, start.play_from) == (pytest.approx(2.0), pytest.approx(3.5))
    assert parts_hold_back(playlist, given=None, start=start) == pytest.approx(1.5)
    assert parts_hold_back(playlist, given=None, start=None) == pytest.approx(1.5)
    assert parts_hold_back(playlist, given=2.5, start=None) == 2.5  # the application's hold-back
    # Judged on a later playlist (the edge one part on), the player's real distance counts.
    assert parts_hold_back(parsed(pending=3), given=None, start=start) == pytest.approx(2.0)


def test_a_hold_back_of_zero_is_refused_not_turned_into_deadlines_that_drop_the_swarm() -> None:
    # At 0 the deadlines had no room (part_policy_settings refused them) and the stream dropped
    # its parts swarm: P2P silently off. Now the hold-back itself is refused, by its value.
    playlist = parsed()
    with pytest.raises(HoldBackError) as raised:
        parts_hold_back(playlist, given=0.0, start=None)
    assert raised.value.hold_back == 0.0
    with pytest.raises(HoldBackError):
        parts_hold_back(playlist, given=0.9, start=None)  # under two 0.5 s part targets
    # Two part targets: deadlines the swarm can run with.
    hold_back = parts_hold_back(playlist, given=1.0, start=None)
    assert part_policy_settings(part_target=0.5, hold_back=hold_back)["http_lead_time"] == pytest.approx(0.5)


def test_parts_config_from_the_default_config() -> None:
    config = parts_config(LoaderConfig(), part_target=0.5, hold_back=1.5)
    assert config.policy == "p2ploader-live"
    assert config.forward_segment_count == DEFAULT_PART_WINDOW == config.cached_segments_count
    assert config.swarm_join_delay is None
    assert config.max_peers == PARTS_MAX_PEERS < LoaderConfig().max_peers  # a few links each
    assert config.policy_settings["p2ploader-live"]["neighbourhood_share"] == 1.0
    assert parts_config(LoaderConfig(max_peers=2), part_target=0.5, hold_back=1.5).max_peers == 2
    assert config.policy_settings["p2ploader-live"]["http_lead_time"] == 0.75


def test_the_applications_own_live_settings_win() -> None:
    base = LoaderConfig(
        policy_settings={"p2ploader-live": {"http_lead_time": 0.3, "seeders_per_segment": 2.0}}
    )
    settings = parts_config(base, part_target=0.5, hold_back=1.5).policy_settings["p2ploader-live"]
    assert settings["http_lead_time"] == 0.3 and settings["seeders_per_segment"] == 2.0
    assert settings["seeder_fallback_delay"] == 0.25


# --------------------------------------------------------------------------------------------------
# Parts as core segments


def test_each_part_and_the_hinted_one_is_an_entry_in_play_order() -> None:
    index = PartIndex("v0")
    entries = index.update(parsed())
    ids = [part_from_wire_id(e.id.sequence) for e in entries]
    assert ids == [*((m, k) for m in (10, 11) for k in range(4)), (12, 0), (12, 1), (12, 2)]
    starts = [e.start for e in entries]
    assert starts == [0.5 * k for k in range(len(entries))]
    assert entries[-1].url == BASE + "s12.2.m4s" and entries[-1].duration == 0.5


def test_fetches_map_to_their_entries_and_a_hint_to_the_part_it_becomes() -> None:
    index = PartIndex("v0")
    index.update(parsed())
    hint = FetchRequest(url=BASE + "s12.2.m4s", offset=0, length=None, kind="hint", ranged=True)
    hinted = index.segment_for(hint)
    assert hinted is not None and part_from_wire_id(hinted.id.sequence) == (12, 2)
    index.update(parsed(pending=3))  # the hinted part is published: same entry, same id
    part = index.segment_for(FetchRequest(url=BASE + "s12.2.m4s", offset=0, length=None))
    assert part is not None and part.id == hinted.id
    assert (
        index.segment_for(FetchRequest(url=BASE + "s11.m4s", offset=0, length=None, kind="segment")) is None
    )
    assert index.segment_for(FetchRequest(url=BASE + "elsewhere.m4s", offset=0, length=None)) is None


def test_the_window_keeps_parts_the_server_stopped_listing_until_newer_ones_push_them_out() -> None:
    index = PartIndex("v0", window=6)
    index.update(parsed(msn=10))
    entries = index.update(parsed(msn=11))  # segment 10's parts are no longer listed
    assert len([e for e in entries if e.url != BASE + "s13.2.m4s"]) == 6
    assert part_from_wire_id(entries[0].id.sequence) == (12, 0)
    assert index.segment_for(FetchRequest(url=BASE + "s10.0.m4s", offset=0, length=None)) is None
    with pytest.raises(UsageError):
        PartIndex("v0", window=0)


def test_an_open_byte_range_hint_stays_on_http() -> None:
    index = PartIndex("v0")
    entries = index.update(parsed(hint='URI="s12.m4s",BYTERANGE-START=1000'))
    assert all(e.url != BASE + "s12.m4s" for e in entries)
    fetch = FetchRequest(url=BASE + "s12.m4s", offset=1000, length=None, kind="hint", ranged=True)
    assert index.segment_for(fetch) is None


def test_a_part_past_the_index_bound_is_not_in_the_swarm() -> None:
    index = PartIndex("v0")
    text = playlist_text(complete=0, pending=0).replace('URI="s10.0.m4s"', 'URI="far.m4s"')
    lines = text.splitlines()
    many = [f'#EXT-X-PART:DURATION=0.02,URI="p{k}.m4s"' for k in range(MAX_PARTS_PER_SEGMENT + 2)]
    lines[-1:-1] = many
    playlist = parse_media("\n".join(lines) + "\n", BASE + "index.m3u8", rendition="v0")
    entries = index.update(playlist)
    indices = [part_from_wire_id(e.id.sequence)[1] for e in entries]
    assert max(indices) == MAX_PARTS_PER_SEGMENT - 1
    assert (
        index.segment_for(FetchRequest(url=BASE + f"p{MAX_PARTS_PER_SEGMENT}.m4s", offset=0, length=None))
        is None
    )


# --------------------------------------------------------------------------------------------------
# The election, deadlines and fallbacks, on a driven clock


class Viewer:
    """One parts-swarm scheduler, driven by hand."""

    def __init__(self, peer_id: str, *, part: float = 0.5, seed: int = 0) -> None:
        config = parts_config(LoaderConfig(), part_target=part, hold_back=3 * part)
        self.peer_id = peer_id
        self.scheduler = Scheduler(config, rng=random.Random(seed), peer_id=peer_id, validate_p2p=True)
        self.actions: list[act.Action] = []
        self.ready: list[nt.SegmentReady] = []
        self.http_at: dict[SegmentId, float] = {}  # when each HTTP fetch started (clock seconds)

    def feed(self, event: ev.Event, now: float) -> None:
        self.scheduler.handle_event(event, now=now)
        self.drain(now)

    def drain(self, now: float) -> None:
        for action in self.scheduler.actions_to_perform(now=now):
            self.actions.append(action)
            if isinstance(action, act.StartHttpFetch):
                self.http_at.setdefault(action.segment.id, now)
        notification = self.scheduler.next_notification()
        while notification is not None:
            if isinstance(notification, nt.SegmentReady):
                self.ready.append(notification)
            notification = self.scheduler.next_notification()

    def run_until(self, until: float, now: float) -> float:
        """Fire timers up to ``until``; returns the clock."""
        while True:
            timer = self.scheduler.get_timer()
            if timer is None or timer > until:
                return until
            now = max(now, timer)
            self.scheduler.handle_timer(now=now)
            self.drain(now)

    new: SegmentId | None = None

    def http_fetches(self) -> list[act.StartHttpFetch]:
        """HTTP fetches of the new part."""
        return [a for a in self.actions if isinstance(a, act.StartHttpFetch) and a.segment.id == self.new]

    def peer_requests(self) -> list[act.RequestFromPeer]:
        return [a for a in self.actions if isinstance(a, act.RequestFromPeer)]


def finish_http(viewer: Viewer, now: float) -> None:
    """Complete every HTTP fetch but the new part's at ``now`` (a fast origin); forget them."""
    done = [a for a in viewer.actions if isinstance(a, act.StartHttpFetch) and a.segment.id != viewer.new]
    for fetch in done:
        body = b"%d" % fetch.segment.id.sequence
        viewer.feed(ev.HttpResponseStarted(request_id=fetch.request_id, offset=0, total_bytes=len(body)), now)
        viewer.feed(ev.HttpChunkReceived(request_id=fetch.request_id, data=body), now)
        viewer.feed(ev.HttpFetchCompleted(request_id=fetch.request_id), now)
    viewer.actions = [a for a in viewer.actions if a not in done and not isinstance(a, act.AnnounceSegments)]
    viewer.ready.clear()


def peer_ids(count: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [swarm.generate_peer_id(rng).hex() for _ in range(count)]


def start_swarm(ids: list[str], *, part: float = 0.5) -> tuple[list[Viewer], list[Segment], Segment]:
    """Viewers all connected to each other, following a playlist from clock 0; the new part (the
    hint's, appearing at clock 1) is requested by each at once, its start the live edge with the
    playhead ``3 * part`` behind it."""
    viewers = [Viewer(pid, part=part, seed=k) for k, pid in enumerate(ids)]
    index = PartIndex("v0")
    first = index.update(parsed(part=part))
    for viewer in viewers:
        viewer.feed(ev.TrackerUpdated(incomplete=len(ids)), 0.0)
        for other in ids:
            if other != viewer.peer_id:
                viewer.feed(ev.PeerConnected(peer_id=other), 0.0)
        viewer.feed(ev.PlaylistUpdated(segments=first), 0.0)
        # Playing already: the policy started on the parts listed then (those it "came" with).
        viewer.feed(ev.PlaybackMoved(position=first[-3].start - 1.0), 0.0)
        viewer.feed(ev.SegmentRequested(segment_id=first[-3].id), 0.0)
    entries = index.update(parsed(part=part, pending=3))
    new = entries[-1]
    for viewer in viewers:
        viewer.new = new.id
        viewer.feed(ev.PlaybackMoved(position=new.start - 3 * part), 1.0)
        viewer.feed(ev.PlaylistUpdated(segments=entries), 1.0)
        viewer.feed(ev.SegmentRequested(segment_id=new.id), 1.0)
        finish_http(viewer, 1.001)  # the parts before the new one came over HTTP, fast
    return viewers, entries, new


def test_exactly_the_elected_viewer_fetches_a_new_part_over_http_at_once() -> None:
    viewers, _, new = start_swarm(peer_ids(4))
    fetching = [v for v in viewers if any(f.segment.id == new.id for f in v.http_fetches())]
    assert len(fetching) == 1  # one seeder per part (seeders_per_segment 1), agreed without talking
    # Another part elects (most likely) someone else: over many parts the work spreads.
    seeders = set()
    for n in range(12):
        seeders.add(min(peer_ids(4), key=lambda p, n=n: _rank_of(p, n)))
    assert len(seeders) > 1


def _rank_of(peer_id: str, n: int) -> float:
    viewer = Viewer(peer_id)
    sid = SegmentId("v0", part_wire_id(20 + n, 0))
    for other in peer_ids(4):
        if other != peer_id:
            viewer.scheduler.handle_event(ev.PeerConnected(peer_id=other), now=0.0)
    policy = viewer.scheduler._policy  # the election's rank, as the policy computes it
    ctx = viewer.scheduler._context
    rank, _quota = policy.seeder_rank(sid, ctx, swarm=4)  # type: ignore[attr-defined]
    return float(rank)


def test_the_others_ask_the_seeder_as_soon_as_it_announces_loading() -> None:
    viewers, _, new = start_swarm(peer_ids(4))
    (seeder,) = [v for v in viewers if v.http_fetches()]
    others = [v for v in viewers if v is not seeder]
    for viewer in others:
        assert not viewer.http_fetches()
        viewer.feed(
            ev.PeerAnnounced(peer_id=seeder.peer_id, loaded=frozenset(), loading_by_http=frozenset({new.id})),
            1.01,
        )
        (request,) = viewer.peer_requests()  # cut-through: asked while it still loads
        assert request.peer_id == seeder.peer_id and request.segment_id == new.id


@pytest.mark.parametrize("part", [0.25, 0.5, 1.0])
def test_without_any_seeder_the_part_comes_over_http_before_its_deadline(part: float) -> None:
    viewers, _, new = start_swarm(peer_ids(4), part=part)
    for viewer in viewers:
        if viewer.http_fetches():
            continue
        # Nobody announces anything: the fallback (or the critical window) fetches it over HTTP.
        viewer.run_until(1.0 + 3 * part, 1.0)
        (fetch,) = viewer.http_fetches()
        assert fetch.segment.id == new.id
        # The playhead reaches the part 3 part durations after it appeared (at 1.0); the critical
        # window (1.5 parts here) starts HTTP no later than that, and the fallback gives the seeder
        # at least half a part's duration first.
        assert 1.0 + part / 2 <= viewer.http_at[new.id] <= 1.0 + 1.5 * part + 1e-6


def test_the_fallback_waits_longer_for_longer_parts() -> None:
    def first_fallback(part: float) -> float:
        viewers, _, _ = start_swarm(peer_ids(4), part=part)
        waiting = [v for v in viewers if not v.http_fetches()]
        times = []
        for viewer in waiting:
            timer = viewer.scheduler.get_timer()
            assert timer is not None
            times.append(timer)
        return min(times) - 1.0

    assert first_fallback(0.25) < first_fallback(1.0)


def _serve(
    viewer: Viewer, request: act.RequestFromPeer, data: bytes, now: float, *, total: int | None = None
) -> None:
    viewer.feed(ev.PeerResponseStarted(request_id=request.request_id, total_bytes=total or len(data)), now)
    viewer.feed(ev.PeerChunkReceived(request_id=request.request_id, data=data), now)


def test_a_peer_sending_more_bytes_than_announced_is_dropped_and_the_part_comes_over_http() -> None:
    viewers, _, new = start_swarm(peer_ids(3))
    (seeder,) = [v for v in viewers if v.http_fetches()]
    viewer = next(v for v in viewers if v is not seeder)
    viewer.feed(ev.PeerAnnounced(peer_id=seeder.peer_id, loaded=frozenset({new.id})), 1.01)
    (request,) = viewer.peer_requests()
    _serve(viewer, request, b"x" * 200, 1.02, total=100)
    assert any(isinstance(a, act.DisconnectPeer) and a.peer_id == seeder.peer_id for a in viewer.actions)
    viewer.run_until(1.0 + 1.5, 1.02)
    assert [f.segment.id for f in viewer.http_fetches()] == [new.id]
    assert viewer.ready == []  # nothing of the peer's reached the player


def test_a_peer_sending_wrong_bytes_is_caught_by_the_check_and_the_player_gets_the_origins() -> None:
    viewers, _, new = start_swarm(peer_ids(3))
    (seeder,) = [v for v in viewers if v.http_fetches()]
    viewer = next(v for v in viewers if v is not seeder)
    viewer.feed(ev.PeerAnnounced(peer_id=seeder.peer_id, loaded=frozenset({new.id})), 1.01)
    (request,) = viewer.peer_requests()
    _serve(viewer, request, b"bad!" * 25, 1.02)
    (validate,) = [a for a in viewer.actions if isinstance(a, act.ValidateSegment)]
    assert validate.method == "p2p" and validate.peer_id == seeder.peer_id
    # The loader's check (a spot check against the origin) says no:
    viewer.feed(
        ev.IntegrityCheckFailed(
            segment_id=new.id, peer_id=seeder.peer_id, check="spot-check", reason="differs"
        ),
        1.05,
    )
    viewer.feed(ev.SegmentValidated(request_id=validate.request_id, valid=False), 1.05)
    assert any(isinstance(a, act.DisconnectPeer) and a.peer_id == seeder.peer_id for a in viewer.actions)
    viewer.run_until(2.5, 1.05)
    (fetch,) = viewer.http_fetches()
    good = b"good" * 25
    viewer.feed(ev.HttpResponseStarted(request_id=fetch.request_id, offset=0, total_bytes=len(good)), 1.1)
    viewer.feed(ev.HttpChunkReceived(request_id=fetch.request_id, data=good), 1.1)
    viewer.feed(ev.HttpFetchCompleted(request_id=fetch.request_id), 1.1)
    assert [(r.data, r.source) for r in viewer.ready] == [(good, "http")]


def test_announcements_of_ids_outside_the_window_are_never_requested() -> None:
    viewers, entries, new = start_swarm(peer_ids(3))
    (seeder,) = [v for v in viewers if v.http_fetches()]
    viewer = next(v for v in viewers if v is not seeder)
    absurd = frozenset({SegmentId("v0", 2**60), SegmentId("v0", part_wire_id(999999, 5))})
    viewer.feed(ev.PeerAnnounced(peer_id=seeder.peer_id, loaded=absurd), 1.01)
    assert all(r.segment_id in {e.id for e in entries} for r in viewer.peer_requests())
    assert not viewer.peer_requests()
    assert new.id not in absurd


def test_hints_whose_part_never_came_are_forgotten() -> None:
    index = PartIndex("v0", window=4)
    for n in range(40):  # a new hint every time, for a part that is never listed
        index.update(parsed(hint=f'URI="ghost{n}.m4s"'))
    assert len(index._by_start) <= 2 * index.window + 1
    ghost = FetchRequest(url=BASE + "ghost0.m4s", offset=0, length=None, kind="hint", ranged=True)
    assert index.segment_for(ghost) is None
    # The hinted part listed under another URI than its hint's: the old hint is not that part.
    index = PartIndex("v0")
    index.update(parsed(hint='URI="early.m4s"'))
    index.update(parsed(pending=3))
    early = FetchRequest(url=BASE + "early.m4s", offset=0, length=None, kind="hint", ranged=True)
    assert index.segment_for(early) is None


def test_parts_with_a_hold_back_past_the_segments_horizon_make_a_valid_policy() -> None:
    # The parts' critical window is nearly the whole hold-back; the segments' 30 s P2P horizon
    # inside it would be refused. Parts have no horizon.
    settings = part_policy_settings(part_target=1.0, hold_back=40.0)
    assert settings["p2p_horizon"] > settings["http_lead_time"] > 30.0
    LivePolicySettings(**settings)
