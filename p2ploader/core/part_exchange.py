"""LL-HLS parts as swarm resources, between p2ploader peers only (sans-IO).

P2P Media Loader registers whole segments only; its peers never hear of parts. p2ploader peers
exchange a live LL-HLS stream's parts (and the part a preload hint announces) in a swarm of their
own, next to the stream's ordinary one:

* **Own swarm.** :func:`parts_info_hash` derives its tracker info hash from the stream swarm id
  P2P Media Loader 2.3.1 gives the rendition, plus :data:`PARTS_SWARM_MARKER`. A browser peer
  never computes it, so it never joins; it keeps getting whole segments from the ordinary swarm
  through the 2.x protocol. Nothing new goes on the wire: in the parts swarm the 2.x messages
  (announcements with ``l``/``p``, requests, data, absences, cancels) name parts.
* **Part ids.** A part is a resource whose wire id is ``msn * MAX_PARTS_PER_SEGMENT + index``
  (:func:`part_wire_id`): every peer derives the same id from the playlist, with no new message.
  The ids are bounded (:data:`MAX_PART_MSN`, :data:`MAX_PARTS_PER_SEGMENT`):
  :func:`part_from_wire_id` raises :class:`~p2ploader.errors.PeerProtocolError` for an absurd one,
  and :class:`PartIndex` only knows parts of the playlist's window, so an id naming anything else
  is never queued, requested or served.
* **Parts as segments.** :class:`PartIndex` turns each playlist into the core's
  :class:`~p2ploader.core.segments.Segment` list of the parts swarm: one entry per part (and one
  for the preload hint's part, before it is published: its URL is the hint's, so an HTTP fetch of
  it is held by the origin and its bytes come the moment the part exists). That list feeds an
  ordinary :class:`~p2ploader.core.scheduler.Scheduler`, so the swarm's whole machinery applies to
  parts unchanged: cut-through relays, one download at a time, size checks, strikes and bans, the
  HTTP fallback.
* **Election and deadlines** are the ``p2ploader-live`` policy's
  (:mod:`p2ploader.core.policies.live`: rendezvous hashing of the resource id and the peer ids
  picks the seeders that fetch it over HTTP, everyone else asks them at once, the fallback timer and
  the HTTP critical window cover a slow or lying seeder), with the settings
  :func:`part_policy_settings` derives from the part target duration and the player's distance
  behind live: peers get two part targets (:func:`p2p_time`), HTTP the rest of the buffer.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from typing import Any

import attrs

from p2ploader.config import LoaderConfig
from p2ploader.core.ll_follower import FetchRequest, StartPosition, check_hold_back, live_edge_time
from p2ploader.core.segments import Part, Segment, SegmentId
from p2ploader.errors import PeerProtocolError, UsageError
from p2ploader.hls import MediaPlaylist

__all__ = [
    "MAX_PARTS_PER_SEGMENT",
    "MAX_PART_MSN",
    "PARTS_MAX_PEERS",
    "PARTS_REWIRE_INTERVAL",
    "PARTS_SWARM_MARKER",
    "PartIndex",
    "p2p_time",
    "part_from_wire_id",
    "part_policy_settings",
    "part_wire_id",
    "parts_config",
    "parts_hold_back",
    "parts_info_hash",
]

MAX_PARTS_PER_SEGMENT = 64
"""Parts one segment may have in the parts swarm (a 4 s segment of 0.1 s parts has 40). A part
with a higher index is loaded over HTTP, never shared."""

MAX_PART_MSN = 1 << 40
"""Media sequence numbers the parts swarm names (exclusive bound): wire ids stay below 2**46,
exact in a JavaScript number, whatever a peer announces."""

PARTS_SWARM_MARKER = "|p2ploader-ll-parts"
"""Appended to a rendition's stream swarm id to name its parts swarm (see the module doc)."""

PARTS_MAX_PEERS = 6
"""Most links one viewer keeps in a parts swarm (the stream's ``max_peers`` if lower). A part has
about a second to spread; a seeder sends it to its neighbours one upload at a time, and every link
costs the viewer CPU (its handshake, announcements on every part): a few neighbours each, one
seeder per neighbourhood, and a part crosses the swarm in a few hops. Six rather than four: with
:data:`PARTS_REWIRE_INTERVAL`, 10 viewers on a quiet machine's loopback took 0.80 of the bytes
from peers against 0.72 with four (the simulator: 0.787 against 0.751; docs/ll-p2p.md)."""

PARTS_REWIRE_INTERVAL = 10.0
"""Seconds between two newcomers taking a useful peer's slot in a parts swarm
(:attr:`~p2ploader.core.admission.AdmissionLimits.rewire_interval`). With so few links a viewer,
the first viewers fill each other's slots within a second of joining; without rewiring, every
later viewer's offers met full peers and it played with a link or two (half the viewers of a
10-viewer loopback run with four links, whose P2P ratio was 0.65 against the simulator's 0.75)."""

DEFAULT_PART_WINDOW = 48
"""Parts the parts swarm keeps listed (about three 4 s segments of 0.25 s parts, twelve 2 s
segments of 0.5 s parts would need 48 too): a part leaves the swarm after that many newer ones."""


def part_wire_id(msn: int, index: int) -> int:
    """The wire id of part ``index`` of segment ``msn`` in the parts swarm. Raises
    :class:`~p2ploader.errors.UsageError` when either is out of the swarm's bounds (the caller then
    loads the part over HTTP)."""
    if not 0 <= msn < MAX_PART_MSN:
        raise UsageError(f"media sequence {msn} is outside the parts swarm's range")
    if not 0 <= index < MAX_PARTS_PER_SEGMENT:
        raise UsageError(f"part index {index} is outside the parts swarm's range")
    return msn * MAX_PARTS_PER_SEGMENT + index


def part_from_wire_id(wire_id: int) -> tuple[int, int]:
    """``(msn, index)`` of a wire id a peer sent; :class:`~p2ploader.errors.PeerProtocolError`
    for an id no part can have (negative, or past :data:`MAX_PART_MSN`)."""
    if not 0 <= wire_id < MAX_PART_MSN * MAX_PARTS_PER_SEGMENT:
        raise PeerProtocolError(f"part wire id {wire_id} is out of range")
    return divmod(wire_id, MAX_PARTS_PER_SEGMENT)


def parts_info_hash(stream_swarm_id: str) -> bytes:
    """The 20-byte tracker info hash of the parts swarm of the stream whose P2P Media Loader 2.3.1
    stream swarm id is ``stream_swarm_id`` (as :func:`p2ploader.core.swarm.info_hash` encodes one:
    base64 of the first 15 bytes of a SHA-1, 20 ASCII characters)."""
    digest = hashlib.sha1((stream_swarm_id + PARTS_SWARM_MARKER).encode("utf-8")).digest()
    return base64.b64encode(digest[:15])


def part_policy_settings(*, part_target: float, hold_back: float) -> dict[str, Any]:
    """``p2ploader-live`` settings for parts of ``part_target`` seconds played ``hold_back``
    seconds behind the live edge (the player's distance: its buffer when it keeps up).

    A part is published at the live edge and played ``hold_back`` seconds later. Peers get
    :func:`p2p_time` of that (two part targets, at least 0.5 s, at most half the distance); the
    rest is the critical window (HTTP, no waiting on peers), so a part a peer did not bring in time
    still comes over HTTP with the rest of the player's buffer as margin (a busy event loop, a
    slow origin). The slow-origin floor is the same window (the default 3 s would put every part
    in it). The fallback step is half a part target: when the elected seeder does not announce a
    part, the next in rank takes it half a part target after the part's duration. Uploads are
    measured in media seconds per second and parts are short: the slow-uploader rules are left off
    (they would judge a seeder by a few tiny transfers)."""
    if part_target <= 0 or hold_back <= 0:
        raise UsageError("part_target and hold_back must be > 0 seconds")
    lead = hold_back - p2p_time(part_target=part_target, hold_back=hold_back)
    return {
        "http_lead_time": lead,
        "slow_origin_lead_time": lead,
        "seeder_fallback_delay": max(part_target / 2, 0.05),
        "seeder_min_upload_speed": 0.0,
        "uploader_min_speed": 0.0,
        "pace_patience": max(part_target / 2, 0.1),
        # One seeder per neighbourhood of PARTS_MAX_PEERS + 1 viewers: the others take it from
        # it, or from a neighbour that did (parts are small; a hop costs a round trip).
        "neighbourhood_share": 1.0,
        # Parts sit at most the hold-back ahead of the playhead: no prefetch horizon (the segments'
        # 30 s would be refused with a hold-back past it, as inside the critical window).
        "p2p_horizon": 1e9,
    }


def p2p_time(*, part_target: float, hold_back: float) -> float:
    """Seconds a new part may take to come from peers before HTTP takes it (see
    :func:`part_policy_settings`): ``min(max(2 * part_target, 0.5), hold_back / 2)``."""
    return min(max(2 * part_target, 0.5), hold_back / 2)


def parts_hold_back(playlist: MediaPlaylist, *, given: float | None, start: StartPosition | None) -> float:
    """The distance behind the live edge (seconds) a parts swarm's deadlines are set for
    (:func:`part_policy_settings`' ``hold_back``): ``given`` (the application's hold-back), else
    the playlist's ``PART-HOLD-BACK``, else three part targets; at least the player's real distance
    when following ``start``ed already (it plays from :attr:`StartPosition.play_from`: the hold-back
    from the live edge, or further back when the playlist was too short for it). A ``given`` that
    :func:`~p2ploader.core.ll_follower.check_hold_back` refuses (0, or under two part targets)
    raises :class:`~p2ploader.errors.HoldBackError`: at 0 the deadlines leave peers no time at all."""
    part_target = playlist.part_target or playlist.target_duration
    if given is not None:
        check_hold_back(given, playlist)
        hold_back = given
    else:
        control = playlist.server_control
        hold_back = (
            control.part_hold_back if control is not None and control.part_hold_back else 3 * part_target
        )
    if start is not None:
        hold_back = max(hold_back, live_edge_time(playlist) - start.play_from)
    return hold_back


def parts_config(
    config: LoaderConfig, *, part_target: float, hold_back: float, window: int = DEFAULT_PART_WINDOW
) -> LoaderConfig:
    """The :class:`~p2ploader.config.LoaderConfig` of a parts swarm's scheduler, from the stream's
    ``config``: the ``p2ploader-live`` policy with :func:`part_policy_settings` (merged under any
    the application gave it), the queue and cache sized to ``window`` parts, and the swarm joined
    at once (parts have no first segment to wait for)."""
    own: Mapping[str, Any] = config.policy_settings.get("p2ploader-live", {})
    settings = {**part_policy_settings(part_target=part_target, hold_back=hold_back), **own}
    return attrs.evolve(
        config,
        policy="p2ploader-live",
        policy_settings={**config.policy_settings, "p2ploader-live": settings},
        forward_segment_count=window,
        max_peers=min(config.max_peers, PARTS_MAX_PEERS),
        cached_segments_count=window,
        swarm_join_delay=None,
        upload_min_buffer=None,
    )


@attrs.define
class PartIndex:
    """The parts swarm's view of a live LL-HLS playlist: its parts as core segments.

    :meth:`update` takes each new playlist and returns the segment list to feed the parts swarm's
    scheduler (``PlaylistUpdated``): the last ``window`` parts seen, in order, then the preload
    hint's part. A part keeps its entry after the server stops listing it (older segments lose
    their parts), until ``window`` newer parts came. :meth:`segment_for` maps a follower's fetch
    (a part's, or a hint's) to its entry; None means the fetch is not for the swarm (a whole
    segment, a part out of bounds)."""

    rendition: str
    window: int = DEFAULT_PART_WINDOW
    _entries: dict[SegmentId, Segment] = attrs.field(factory=dict, init=False)
    _by_start: dict[tuple[str, int], SegmentId] = attrs.field(factory=dict, init=False)
    _hint: Segment | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        if self.window < 1:
            raise UsageError(f"window must be >= 1 part, got {self.window}")

    @property
    def segments(self) -> tuple[Segment, ...]:
        """The current list (parts in order, then the hint's part, if not listed yet)."""
        listed = tuple(self._entries.values())
        if self._hint is not None and self._hint.id not in self._entries:
            return (*listed, self._hint)
        return listed

    def update(self, playlist: MediaPlaylist) -> tuple[Segment, ...]:
        """Fold ``playlist`` in; the new list (see the class doc)."""
        for segment in playlist.segments:
            start = segment.start
            for part in segment.parts:
                self._add(part, start)
                start += part.duration
        start = playlist.segments[-1].end if playlist.segments else 0.0
        pending_msn = (
            (playlist.segments[-1].id.sequence + 1) if playlist.segments else playlist.media_sequence
        )
        for part in playlist.pending_parts:
            self._add(part, start)
            start += part.duration
        self._hint = None
        hint = next((h for h in playlist.preload_hints if h.type == "PART"), None)
        if hint is not None and hint.byte_range_start == 0 and hint.byte_range_length is None:
            # A hint for a whole resource (the common case: one URI per part). A hint inside a
            # resource (byte ranges of a segment being written) is left to HTTP: its length is not
            # known before the part is published, and a peer cannot be asked for an open range.
            index = len(playlist.pending_parts)
            try:
                wire = part_wire_id(pending_msn, index)
            except UsageError:
                wire = None
            if wire is not None:
                sid = SegmentId(self.rendition, wire)
                duration = playlist.part_target or 1.0
                self._hint = Segment(id=sid, url=hint.url, duration=duration, start=live_edge_time(playlist))
                self._by_start[(hint.url, 0)] = sid
        while len(self._entries) > self.window:
            oldest = next(iter(self._entries))
            dropped = self._entries.pop(oldest)
            key = (dropped.url, dropped.byte_range.offset if dropped.byte_range else 0)
            if self._by_start.get(key) == oldest:
                del self._by_start[key]
        if len(self._by_start) > 2 * self.window:
            # Hints whose part was never listed as hinted (a re-sync, a replaced playlist): forget
            # them; what stays is every entry's own URL and the current hint's.
            keep = {
                (e.url, e.byte_range.offset if e.byte_range else 0): sid for sid, e in self._entries.items()
            }
            if self._hint is not None:
                keep[(self._hint.url, 0)] = self._hint.id
            self._by_start = keep
        return self.segments

    def _add(self, part: Part, start: float) -> None:
        try:
            wire = part_wire_id(part.id.segment.sequence, part.id.index)
        except UsageError:
            return  # out of the swarm's bounds: the follower loads it over HTTP
        sid = SegmentId(self.rendition, wire)
        if sid in self._entries:
            return
        br = part.byte_range
        self._entries[sid] = Segment(
            id=sid, url=part.url, duration=part.duration, start=start, byte_range=br, gap=part.gap
        )
        self._by_start[(part.url, br.offset if br else 0)] = sid

    def segment_for(self, fetch: FetchRequest) -> Segment | None:
        """The parts swarm's entry for a follower's ``fetch``, or None (not a part or hint of the
        window: load it over HTTP)."""
        if fetch.kind == "segment":
            return None
        sid = self._by_start.get(fetch.start_key)
        if sid is None:
            return None
        entry = self._entries.get(sid)
        if entry is None and self._hint is not None and self._hint.id == sid:
            entry = self._hint
        if entry is None:
            return None
        if (entry.url, entry.byte_range.offset if entry.byte_range else 0) != fetch.start_key:
            return None  # a stale hint whose part came under another URI: not this resource
        if entry.byte_range is not None and (fetch.length != entry.byte_range.length):
            return None
        return entry

    @staticmethod
    def part_of(segment_id: SegmentId) -> tuple[int, int]:
        """``(msn, index)`` of an entry's id."""
        return part_from_wire_id(segment_id.sequence)
