"""Host/client topology rules (pure) and the scheduler's upload-while-buffer-healthy policy."""

from __future__ import annotations

import pytest

from p2ploader.config import LoaderConfig
from p2ploader.core import actions as act
from p2ploader.core import events as ev
from p2ploader.core import swarm
from p2ploader.core.topology import (
    HEADLESS_LINUX_RULES,
    OME_RULES,
    HostClientTree,
    PeerAttributes,
    admit_link,
    decode_peer_id_attributes,
    encode_peer_id_attributes,
    parse_user_agent,
    register_rules,
    rules_named,
)
from p2ploader.errors import ConfigError
from p2ploader.testing.harness import Harness, sid

WIN_CHROME = PeerAttributes(device="desktop", os="windows", client="chrome")
MAC_SAFARI = PeerAttributes(device="desktop", os="macos", client="safari")
LINUX_CHROME = PeerAttributes(device="desktop", os="linux", client="chrome")
ANDROID_CHROME = PeerAttributes(device="mobile", os="android", client="chrome")
WIN_EDGE = PeerAttributes(device="desktop", os="windows", client="edge")
WIN_UNKNOWN = PeerAttributes(device="desktop", os="windows", client="unknown")
DESK_PY = PeerAttributes(device="desktop", os="windows", client="p2ploader")
LINUX_PY = PeerAttributes(device="desktop", os="linux", client="p2ploader")
PHONE_PY = PeerAttributes(device="mobile", os="android", client="p2ploader")


@pytest.mark.parametrize(
    ("peer", "ome", "headless"),
    [
        (WIN_CHROME, True, True),
        (MAC_SAFARI, True, True),
        (LINUX_CHROME, False, True),  # OME: no Linux host; headless rule set: Linux desktops host
        (ANDROID_CHROME, False, False),
        (WIN_EDGE, False, False),  # the documented "not MS Edge" rule (OME's code never applies it)
        (WIN_UNKNOWN, False, False),
        (PeerAttributes(device="mobile", os="windows", client="chrome"), False, False),
        (PeerAttributes(), False, False),  # nothing declared: never a host
    ],
)
def test_host_classification(peer: PeerAttributes, ome: bool, headless: bool) -> None:
    assert OME_RULES.can_host(peer) is ome
    assert HEADLESS_LINUX_RULES.can_host(peer) is headless


def test_clients_attach_only_to_hosts_of_the_same_client_kind() -> None:
    assert OME_RULES.compatible(WIN_CHROME, ANDROID_CHROME)
    assert not OME_RULES.compatible(MAC_SAFARI, ANDROID_CHROME)
    assert not OME_RULES.compatible(WIN_UNKNOWN, WIN_UNKNOWN)  # "other"/unknown never matches


def test_rule_sets_are_pluggable_and_named() -> None:
    class Everyone:
        name = "everyone-hosts-test"

        def can_host(self, peer: PeerAttributes) -> bool:
            return True

        def compatible(self, host: PeerAttributes, client: PeerAttributes) -> bool:
            return True

    register_rules(Everyone())
    assert rules_named("everyone-hosts-test").can_host(PHONE_PY)
    assert rules_named("headless-linux") is HEADLESS_LINUX_RULES
    with pytest.raises(ConfigError, match="no topology rule set"):
        rules_named("nope")


def test_user_agents_as_documented_and_as_ome_code_parses_them() -> None:
    edge = (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0"
    )
    assert parse_user_agent(edge) == WIN_EDGE
    # OME's code tests "Chrome" first: every Edge becomes a Chrome host (docs/topologies.md).
    assert parse_user_agent(edge, like_ome_code=True) == WIN_CHROME
    assert OME_RULES.can_host(parse_user_agent(edge, like_ome_code=True))
    ipad = (
        "Mozilla/5.0 (iPad; CPU OS 12_0 like Mac OS X) AppleWebKit/605.1.15 Version/12.0 "
        "Mobile/15E148 Safari/604.1"
    )
    assert parse_user_agent(ipad) == PeerAttributes(device="desktop", os="other", client="safari")
    phone = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/120.0 Mobile Safari/537.36"
    assert parse_user_agent(phone) == ANDROID_CHROME


def test_attributes_travel_in_the_peer_id() -> None:
    import random

    raw = swarm.generate_peer_id(random.Random(3))
    coded = encode_peer_id_attributes(raw, PHONE_PY)
    assert len(coded) == 20 and coded.startswith(b"-PY0001-tz")
    assert all(chr(c) in swarm.PEER_ID_ALPHABET or chr(c) == "-" for c in coded)
    assert decode_peer_id_attributes(coded) == PHONE_PY
    assert decode_peer_id_attributes(raw) is None or raw[8:10] == b"tz"
    assert decode_peer_id_attributes(b"-PM0100-tzXXXXXXXXXX") is None  # invalid codes
    assert decode_peer_id_attributes(b"short") is None


def test_admit_link_is_the_peer_side_tree() -> None:
    kw = {"rules": OME_RULES, "max_clients": 2}
    # A host takes compatible clients up to its limit, never another host, never a browser.
    assert admit_link(DESK_PY, PHONE_PY, [], **kw)
    assert admit_link(DESK_PY, PHONE_PY, [PHONE_PY], **kw)
    assert not admit_link(DESK_PY, PHONE_PY, [PHONE_PY, PHONE_PY], **kw)
    assert not admit_link(DESK_PY, DESK_PY, [], **kw)
    assert not admit_link(DESK_PY, None, [], **kw)
    assert not admit_link(DESK_PY, ANDROID_CHROME, [], **kw)  # another client kind
    # A client takes one host, and never another client.
    assert admit_link(PHONE_PY, DESK_PY, [], **kw)
    assert not admit_link(PHONE_PY, DESK_PY, [DESK_PY], **kw)
    assert not admit_link(PHONE_PY, PHONE_PY, [], **kw)
    assert not admit_link(PHONE_PY, WIN_CHROME, [], **kw)


def test_tree_attaches_to_vacant_hosts_least_loaded_first_and_frees_slots() -> None:
    tree = HostClientTree(OME_RULES)
    assert tree.add("h1", DESK_PY) == "host" and tree.add("h2", DESK_PY) == "host"
    assert tree.add("h1", DESK_PY) == "host"  # idempotent
    for c in ("c1", "c2", "c3", "c4", "c5"):
        assert tree.add(c, PHONE_PY) == "client"
    assert [tree.attach(c) for c in ("c1", "c2", "c3", "c4", "c5")] == ["h1", "h2", "h1", "h2", None]
    assert tree.attach("c1") == "h1"  # already attached: unchanged
    assert tree.waiting_for("h1") == ()  # full
    # A client leaving makes its host vacant again (OME's code never re-lists a full host).
    assert tree.remove("c3") == ("h1",)
    assert tree.waiting_for("h1") == ("c5",)
    assert tree.attach("c5") == "h1"
    # A host leaving orphans its clients, which attach elsewhere if there is room.
    assert set(tree.remove("h2")) == {"c2", "c4"}
    assert tree.host_of("c2") is None and tree.role("h2") is None
    assert tree.attach("c2") is None  # h1 is full
    tree.add("h3", DESK_PY, max_clients=1)
    assert tree.waiting_for("h3") == ("c2",)
    assert tree.attach("c2") == "h3" and tree.attach("c4") is None
    assert tree.detach("c2") == "h3" and tree.host_of("c2") is None
    assert sorted(tree.hosts) == ["h1", "h3"] and len(tree.clients) == 4


def test_tree_honours_the_rule_set() -> None:
    tree = HostClientTree(OME_RULES)
    assert tree.add("linux", LINUX_PY) == "client"
    headless = HostClientTree(HEADLESS_LINUX_RULES)
    assert headless.add("linux", LINUX_PY) == "host"
    headless.add("phone", PHONE_PY)
    assert headless.attach("phone") == "linux"


def test_config_validates_topology_fields() -> None:
    with pytest.raises(ConfigError, match="topology"):
        LoaderConfig(topology="star")
    with pytest.raises(ConfigError, match="peer_device"):
        LoaderConfig(peer_device="tablet")
    with pytest.raises(ConfigError, match="max_client_peers_per_host_peer"):
        LoaderConfig(max_client_peers_per_host_peer=0)
    cfg = LoaderConfig(topology="host-client", peer_os="linux", upload_min_buffer=4, rendition_linger=5)
    assert LoaderConfig.from_faq(cfg.to_faq()) == cfg
    assert cfg.to_faq()["loader"]["uploadMinBuffer"] == 4000


# --------------------------------------------------------------------------------------------------
# upload_min_buffer (scheduler)
# --------------------------------------------------------------------------------------------------


def _buffering(**overrides: float) -> Harness:
    """A harness whose first request starts HTTP downloads of segments 0..9 at once."""
    return Harness(
        LoaderConfig(
            http_download_probability=0.0, required_segments_priority=9, simultaneous_http_downloads=10
        ),
        **overrides,
    )


def _holding(h: Harness, *segments: int) -> None:
    for n in segments:
        h.complete_http(h.http_request_for(n))


def test_uploads_wait_for_a_healthy_own_buffer() -> None:
    h = _buffering(upload_min_buffer=5.0)  # 2 s segments
    h.send(ev.PeerConnected(peer_id="A"))
    h.send(ev.PeerRequestedSegment(peer_id="A", segment_id=sid(0), peer_request_id=1))
    assert isinstance(h.actions[-1], act.SendSegmentAbsent)  # nothing played, nothing buffered
    h.play_at(0)
    h.request(0)
    _holding(h, 0, 1)  # 4 s ahead of the playhead: below 5 s
    h.send(ev.PeerRequestedSegment(peer_id="A", segment_id=sid(0), peer_request_id=2))
    assert isinstance(h.actions[-1], act.SendSegmentAbsent)
    _holding(h, 2)  # 6 s ahead
    h.send(ev.PeerRequestedSegment(peer_id="A", segment_id=sid(1), peer_request_id=3))
    assert isinstance(h.actions[-1], act.SendSegmentToPeer)
    h.send(ev.UploadFinished(peer_id="A", peer_request_id=3, sent_bytes=1000))
    # Playback moves on to the middle of segment 1: 1 + 2 = 3 s left of contiguous media.
    h.send(ev.PlaybackMoved(position=3.0))
    h.send(ev.PeerRequestedSegment(peer_id="A", segment_id=sid(2), peer_request_id=4))
    assert isinstance(h.actions[-1], act.SendSegmentAbsent)


def test_a_gap_in_the_buffer_counts_as_its_end() -> None:
    h = _buffering(upload_min_buffer=3.0)
    h.send(ev.PeerConnected(peer_id="A"))
    h.play_at(0)
    h.request(0)
    _holding(h, 0, 2, 3)  # segment 1 missing: only 2 s contiguous
    h.send(ev.PeerRequestedSegment(peer_id="A", segment_id=sid(2), peer_request_id=1))
    assert isinstance(h.actions[-1], act.SendSegmentAbsent)
    _holding(h, 1)
    h.send(ev.PeerRequestedSegment(peer_id="A", segment_id=sid(2), peer_request_id=2))
    assert isinstance(h.actions[-1], act.SendSegmentToPeer)


def test_without_upload_min_buffer_uploads_are_unconditional() -> None:
    h = _buffering()
    h.send(ev.PeerConnected(peer_id="A"))
    h.request(0)
    _holding(h, 0)
    h.send(ev.PeerRequestedSegment(peer_id="A", segment_id=sid(0), peer_request_id=1))
    assert isinstance(h.actions[-1], act.SendSegmentToPeer)
