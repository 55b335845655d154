"""Tests for p2ploader.config: LoaderConfig, the FAQ spelling, its text parser and the presets."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import MappingProxyType
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2ploader.config import (
    DEFAULT_RTC_CONFIG,
    DEFAULT_TRACKER_ANNOUNCE,
    PRESETS,
    LoaderConfig,
)
from p2ploader.errors import ConfigError

# The VOD example of P2P Media Loader's FAQ, copied verbatim (whitespace-only lines included) from
# /work/shared/seeds/002_402fcbf7054b0245.txt, lines 38-75. Note: no outer braces.
FAQ_VOD_TEXT = """\
segments:{
  // number of segments to pass for processing to P2P algorithm
  forwardSegmentCount:50, // usually should be equal or greater than p2pDownloadMaxPriority and httpDownloadMaxPriority
},
loader:{
  // how long to store the downloaded segments for P2P sharing
  cachedSegmentExpiration:86400000,
  // count of the downloaded segments to store for P2P sharing
  cachedSegmentsCount:1000,
  
  // first 4 segments (priorities 0, 1, 2 and 3) are required buffer for stable playback
  requiredSegmentsPriority:3,

  // each 1 second each of 10 segments ahead of playhead position gets 6% probability for random HTTP download
  httpDownloadMaxPriority:9,
  httpDownloadProbability:0.06,
  httpDownloadProbabilityInterval: 1000,
  
  // disallow randomly download segments over HTTP if there are no connected peers
  httpDownloadProbabilitySkipIfNoPeers: true,
  
  // P2P will try to download only first 51 segment ahead of playhead position
  p2pDownloadMaxPriority: 50,
  
  // 1 second timeout before retrying HTTP download of a segment in case of an error
  httpFailedSegmentTimeout:1000,
  
  // number of simultaneous downloads for P2P and HTTP methods
  simultaneousP2PDownloads:20,
  simultaneousHttpDownloads:3,
  
  // enable mode, that try to prevent HTTP downloads on stream start-up
  httpDownloadInitialTimeout: 120000, // try to prevent HTTP downloads during first 2 minutes
  httpDownloadInitialTimeoutPerSegment: 17000, // try to prevent HTTP download per segment during first 17 seconds
  
  // allow to continue aborted P2P downloads via HTTP
  httpDownloadRanges:true,
}
"""  # noqa: E501, W293

SEED_FILE = Path("/work/shared/seeds/002_402fcbf7054b0245.txt")

# P2P Media Loader 0.6.2 defaultSettings (hybrid-loader.ts) and hls.js segments defaults, in ms.
P2PML_062_DEFAULTS_MS: dict[str, Any] = {
    "forwardSegmentCount": 20,
    "cachedSegmentExpiration": 300000,
    "cachedSegmentsCount": 30,
    "useP2P": True,
    "consumeOnly": False,
    "requiredSegmentsPriority": 1,
    "simultaneousHttpDownloads": 2,
    "httpDownloadProbability": 0.1,
    "httpDownloadProbabilityInterval": 1000,
    "httpDownloadProbabilitySkipIfNoPeers": False,
    "httpFailedSegmentTimeout": 10000,
    "httpDownloadMaxPriority": 20,
    "httpDownloadInitialTimeout": 0,
    "httpDownloadInitialTimeoutPerSegment": 4000,
    "httpDownloadRanges": False,
    "simultaneousP2PDownloads": 3,
    "p2pDownloadMaxPriority": 20,
    "p2pSegmentDownloadTimeout": 60000,
    "webRtcMaxMessageSize": 65535,
    "trackerAnnounce": ["wss://tracker.novage.com.ua", "wss://tracker.openwebtorrent.com"],
    "peerRequestsPerAnnounce": 10,
    "rtcConfig": {
        "iceServers": [
            {"urls": "stun:stun.l.google.com:19302"},
            {"urls": "stun:global.stun.twilio.com:3478?transport=udp"},
        ],
        "sdpSemantics": "unified-plan",
    },
}

DEFAULT_FIELDS: dict[str, Any] = {
    "forward_segment_count": 20,
    "cached_segment_expiration": 300.0,
    "cached_segments_count": 30,
    "required_segments_priority": 1,
    "simultaneous_http_downloads": 2,
    "simultaneous_p2p_downloads": 3,
    "http_download_probability": 0.1,
    "http_download_probability_interval": 1.0,
    "http_download_probability_skip_if_no_peers": False,
    "http_failed_segment_timeout": 10.0,
    "http_download_max_priority": 20,
    "http_download_initial_timeout": 0.0,
    "http_download_initial_timeout_per_segment": 4.0,
    "http_download_ranges": False,
    "p2p_download_max_priority": 20,
    "p2p_segment_download_timeout": 60.0,
    "web_rtc_max_message_size": 65535,
    "use_p2p": True,
    "consume_only": False,
    "tracker_announce": ("wss://tracker.novage.com.ua", "wss://tracker.openwebtorrent.com"),
    "peer_requests_per_announce": 10,
    "segment_validator": None,
    "swarm_id": None,
    "http_connect_timeout": 10.0,
    "http_read_timeout": 10.0,
    "http_retries": 2,
    "http_retry_backoff": 0.5,
    "http_retry_jitter": 0.5,
    "http_headers": MappingProxyType({}),
    "http_cookies": MappingProxyType({}),
    "http_headers_hosts": (),
    "user_agent": None,
    "live_refresh_interval": None,
    "live_playlist_stuck_reloads": 6,
    "max_playlist_bytes": 16 * 1024 * 1024,
    "max_playlist_segments": 50_000,
    "max_init_section_bytes": 16 * 1024 * 1024,
    "decrypt": False,
    "p2p_stall_timeout": 2.0,
    "max_peers": 20,
    "peer_idle_grace": 5.0,
    "upload_rate_limit": None,
    "upload_stall_timeout": 5.0,
    "upload_delay_target": 0.05,
    "upload_yield_time": 4.0,
    "upload_budget_rate": 4.0,
    "upload_budget_burst": 600.0,
    "swarm_url_pattern": None,
    "max_concurrent_uploads": 2,
    "policy": "p2pml-0.6",
    "policy_settings": MappingProxyType({}),
    "integrity_sha256": None,
    "integrity_spot_checks": 0,
    "integrity_spot_check_bytes": 64,
    "integrity_spot_check_probability": 1.0,
    "peer_ban_time": 600.0,
    "topology": "mesh",
    "max_client_peers_per_host_peer": 2,
    "topology_rules": "ome",
    "peer_device": "desktop",
    "peer_os": None,
    "peer_client": "p2ploader",
    "upload_min_buffer": None,
    "swarm_join_delay": 2.0,
    "rendition_linger": 30.0,
}

FAQ_VOD_FIELDS: dict[str, Any] = {
    **DEFAULT_FIELDS,
    "forward_segment_count": 50,
    "cached_segment_expiration": 86400.0,
    "cached_segments_count": 1000,
    "required_segments_priority": 3,
    "http_download_max_priority": 9,
    "http_download_probability": 0.06,
    "http_download_probability_interval": 1.0,
    "http_download_probability_skip_if_no_peers": True,
    "p2p_download_max_priority": 50,
    "http_failed_segment_timeout": 1.0,
    "simultaneous_p2p_downloads": 20,
    "simultaneous_http_downloads": 3,
    "http_download_initial_timeout": 120.0,
    "http_download_initial_timeout_per_segment": 17.0,
    "http_download_ranges": True,
}


def _plain(value: Any) -> Any:
    """Read-only rtc_config -> plain dicts and lists, for comparisons."""
    if isinstance(value, dict) or hasattr(value, "items"):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _assert_fields(config: LoaderConfig, expected: dict[str, Any]) -> None:
    for name, value in expected.items():
        actual = getattr(config, name)
        assert actual == value, name
        assert type(actual) is type(value), name
    assert _plain(config.rtc_config) == P2PML_062_DEFAULTS_MS["rtcConfig"]
    # Every field is covered (rtc_config separately).
    assert set(expected) | {"rtc_config"} == set(attrs.fields_dict(LoaderConfig))


# --- the FAQ VOD example and the presets ----------------------------------------------------------


def test_faq_vod_text_is_the_seed_verbatim() -> None:
    if not SEED_FILE.exists():
        pytest.skip("seed file not available")
    lines = SEED_FILE.read_text().splitlines(keepends=True)
    assert "".join(lines[37:75]) == FAQ_VOD_TEXT


def test_faq_vod_example_parses_to_the_faq_vod_preset() -> None:
    config = LoaderConfig.from_faq_text(FAQ_VOD_TEXT)
    assert config == PRESETS["faq-vod"]
    assert config == LoaderConfig.preset("faq-vod")
    _assert_fields(config, FAQ_VOD_FIELDS)
    _assert_fields(PRESETS["faq-vod"], FAQ_VOD_FIELDS)
    assert config.cached_segment_expiration == 86400.0
    assert config.http_download_ranges is True
    assert config.http_download_initial_timeout_per_segment == 17.0


def test_faq_vod_example_wrapped_in_braces_is_the_same() -> None:
    assert LoaderConfig.from_faq_text("{\n" + FAQ_VOD_TEXT + "}\n") == PRESETS["faq-vod"]
    commented = "// leading comment\n/* block */{" + FAQ_VOD_TEXT + "}"
    assert LoaderConfig.from_faq_text(commented) == PRESETS["faq-vod"]


def test_defaults_are_p2pml_062() -> None:
    config = LoaderConfig()
    _assert_fields(config, DEFAULT_FIELDS)
    assert config.tracker_announce == DEFAULT_TRACKER_ANNOUNCE
    assert config.rtc_config == DEFAULT_RTC_CONFIG
    faq = config.to_faq()
    flat = {**faq["segments"], **faq["loader"]}
    ours = {
        "httpConnectTimeout": 10000,
        "httpReadTimeout": 10000,
        "httpRetries": 2,
        "httpRetryBackoff": 500,
        "httpRetryJitter": 0.5,
        "httpHeaders": {},
        "httpCookies": {},
        "httpHeadersHosts": [],
        # userAgent is None (httpx's own): not written.
        "livePlaylistStuckReloads": 6,
        "maxPlaylistBytes": 16 * 1024 * 1024,
        "maxPlaylistSegments": 50_000,
        "maxInitSectionBytes": 16 * 1024 * 1024,
        "decrypt": False,
        "p2pStallTimeout": 2000,
        "maxPeers": 20,
        "peerIdleGrace": 5000,
        "maxConcurrentUploads": 2,
        "uploadStallTimeout": 5000,
        "uploadDelayTarget": 50,
        "uploadYieldTime": 4000,
        "uploadBudgetRate": 4.0,
        "uploadBudgetBurst": 600000,
        "policy": "p2pml-0.6",
        "policySettings": {},
        # integritySha256 is automatic (None): not written, like every unset value.
        "integritySpotChecks": 0,
        "integritySpotCheckBytes": 64,
        "integritySpotCheckProbability": 1.0,
        "peerBanTime": 600000,
        "topology": "mesh",
        "maxClientPeersPerHostPeer": 2,
        "topologyRules": "ome",
        "peerDevice": "desktop",
        "peerClient": "p2ploader",
        "swarmJoinDelay": 2000,
        "renditionLinger": 30000,
    }
    assert flat == {**P2PML_062_DEFAULTS_MS, **ours}
    assert LoaderConfig.from_faq(P2PML_062_DEFAULTS_MS) == config


@pytest.mark.parametrize(("value", "faq"), [(None, None), (True, True), (False, False)])
def test_integrity_sha256_is_automatic_by_default_and_round_trips(
    value: bool | None, faq: bool | None
) -> None:
    assert LoaderConfig().integrity_sha256 is None, "on whenever the playlist publishes digests"
    config = LoaderConfig(integrity_sha256=value)
    written = config.to_faq()["loader"]
    assert written.get("integritySha256") is faq
    assert LoaderConfig.from_faq(config.to_faq()) == config
    assert LoaderConfig.from_faq_text("integritySha256: null").integrity_sha256 is None
    for name, preset in PRESETS.items():
        assert preset.integrity_sha256 is None, name
    with pytest.raises(ConfigError, match="integrity_sha256"):
        LoaderConfig(integrity_sha256="auto")  # type: ignore[arg-type]


def test_presets() -> None:
    assert set(PRESETS) == {"p2pml-0.6-defaults", "faq-live", "faq-vod"}
    assert PRESETS["p2pml-0.6-defaults"] == LoaderConfig()
    assert PRESETS["faq-live"] == LoaderConfig()
    assert LoaderConfig.preset("faq-live") is PRESETS["faq-live"]
    with pytest.raises(TypeError):
        PRESETS["mine"] = LoaderConfig()  # type: ignore[index]


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [("faq-vood", "faq-vod"), ("FAQ-LIVE", "faq-live"), ("p2pml-defaults", "p2pml-0.6-defaults")],
)
def test_unknown_preset_suggests_closest(name: str, suggestion: str) -> None:
    with pytest.raises(ConfigError) as info:
        LoaderConfig.preset(name)
    assert info.value.suggestion == suggestion
    assert repr(name) in str(info.value)
    assert repr(suggestion) in str(info.value)


# --- facts per field ------------------------------------------------------------------------------


def test_every_field_carries_its_facts_and_the_faq_table_is_derived_from_them() -> None:
    from p2ploader import config as module

    fields = attrs.fields(LoaderConfig)
    written = [key for key in module._FAQ_KEYS.values() if key.emit]
    # One FAQ name written per field, in field order; the aliases are read only.
    assert [key.field for key in written] == [field.name for field in fields]
    assert [key.name for key in written] == [module._FIELD_FACTS[f.name].faq for f in fields]
    assert {key.name for key in module._FAQ_KEYS.values() if not key.emit} == {"httpUseRanges"}
    for field in fields:
        facts = field.metadata["p2ploader"]
        assert facts is module._FIELD_FACTS[field.name]
        # A time is read and written in milliseconds; anything else keeps its kind.
        assert module._FAQ_KEYS[facts.faq].kind == ("ms" if facts.unit == "seconds" else facts.kind)
        # A time or a probability is stored as a float, whatever number the caller gave.
        if facts.unit is not None and field.default is not None:
            assert type(getattr(LoaderConfig(), field.name)) is float


def test_to_faq_writes_the_settings_in_field_order() -> None:
    faq = LoaderConfig(swarm_id="s").to_faq()
    order = [name for block in ("segments", "loader") for name in faq[block]]
    from p2ploader import config as module

    emitted = {key.name: key.field for key in module._FAQ_KEYS.values() if key.emit}
    names = [field.name for field in attrs.fields(LoaderConfig)]
    positions = [names.index(emitted[name]) for name in faq["loader"]]
    assert positions == sorted(positions)
    assert order[:2] == ["forwardSegmentCount", "swarmId"]


# --- from_faq: keys -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [
        ("httpDownloadProbabilty", "httpDownloadProbability"),
        ("required_segments_priority", "requiredSegmentsPriority"),
        ("simultaneous_p2p_downloads", "simultaneousP2PDownloads"),
        ("web_rtc_max_message_size", "webRtcMaxMessageSize"),
        ("use_p2p", "useP2P"),
        ("httpuseranges", "httpUseRanges"),
        ("cachedSegmentExpire", "cachedSegmentExpiration"),
        ("forwardSegmentsCount", "forwardSegmentCount"),
    ],
)
def test_unknown_key_names_key_and_suggests(key: str, suggestion: str) -> None:
    for mapping in ({key: 1}, {"loader": {key: 1}}, {"segments": {key: 1}}):
        with pytest.raises(ConfigError) as info:
            LoaderConfig.from_faq(mapping)
        assert info.value.key == key
        assert info.value.suggestion == suggestion
        assert repr(key) in str(info.value) or f"{key}'" in str(info.value)
        assert repr(suggestion) in str(info.value)


def test_snake_case_key_message_explains_the_convention() -> None:
    with pytest.raises(ConfigError, match=r"camelCase.*milliseconds") as info:
        LoaderConfig.from_faq({"loader": {"http_connect_timeout": 5}})
    assert info.value.suggestion == "httpConnectTimeout"


@pytest.mark.parametrize("key", ["localTransport", "maxHistorySegments", "zzz"])
def test_unknown_key_without_a_close_match(key: str) -> None:
    with pytest.raises(ConfigError) as info:
        LoaderConfig.from_faq({"loader": {key: 1}})
    assert info.value.key == key
    assert key in str(info.value)


def test_misspelt_block_suggests_block() -> None:
    with pytest.raises(ConfigError) as info:
        LoaderConfig.from_faq({"segment": {"forwardSegmentCount": 5}})
    assert info.value.suggestion == "segments"


@pytest.mark.parametrize("key", ["xhrSetup", "segmentUrlBuilder", "segmentsStorage", "assetsStorage"])
def test_javascript_hooks_are_rejected(key: str) -> None:
    mappings: list[dict[str, Any]] = [
        {key: lambda *a: None},
        {"loader": {key: None}},
        {"segments": {key: {}}},
    ]
    for mapping in mappings:
        with pytest.raises(ConfigError, match="JavaScript hook") as info:
            LoaderConfig.from_faq(mapping)
        assert info.value.key == key


def test_flat_nested_and_any_block_are_equivalent() -> None:
    nested = {"segments": {"forwardSegmentCount": 50, "swarmId": "s"}, "loader": {"cachedSegmentsCount": 7}}
    flat = {"forwardSegmentCount": 50, "swarmId": "s", "cachedSegmentsCount": 7}
    swapped = {"loader": {"forwardSegmentCount": 50, "swarmId": "s"}, "segments": {"cachedSegmentsCount": 7}}
    mixed = {"forwardSegmentCount": 50, "loader": {"swarmId": "s", "cachedSegmentsCount": 7}}
    expected = LoaderConfig(forward_segment_count=50, swarm_id="s", cached_segments_count=7)
    for mapping in (nested, flat, swapped, mixed):
        assert LoaderConfig.from_faq(mapping) == expected


def test_same_key_twice() -> None:
    same = {"segments": {"swarmId": "a"}, "loader": {"swarmId": "a"}, "swarmId": "a"}
    assert LoaderConfig.from_faq(same).swarm_id == "a"
    with pytest.raises(ConfigError, match=r"twice.*segments\.swarmId='a'.*loader\.swarmId='b'") as info:
        LoaderConfig.from_faq({"segments": {"swarmId": "a"}, "loader": {"swarmId": "b"}})
    assert info.value.key == "swarmId"
    with pytest.raises(ConfigError, match="twice"):
        LoaderConfig.from_faq({"useP2P": True, "loader": {"useP2P": False}})


def test_null_means_default() -> None:
    config = LoaderConfig.from_faq(
        {"segments": None, "loader": {"swarmId": None, "cachedSegmentsCount": None}}
    )
    assert config == LoaderConfig()
    assert LoaderConfig.from_faq_text("loader: {swarmId: undefined, httpRetries: null}") == LoaderConfig()


def test_from_faq_needs_a_mapping() -> None:
    with pytest.raises(ConfigError):
        LoaderConfig.from_faq([("useP2P", True)])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="loader") as info:
        LoaderConfig.from_faq({"loader": [1]})
    assert info.value.key == "loader"
    with pytest.raises(ConfigError, match="nested"):
        LoaderConfig.from_faq({"loader": {"segments": {}}})


# --- from_faq: values -----------------------------------------------------------------------------


def test_milliseconds_become_seconds() -> None:
    config = LoaderConfig.from_faq(
        {
            "cachedSegmentExpiration": 1500,
            "httpDownloadProbabilityInterval": 250.5,
            "p2pSegmentDownloadTimeout": 1,
            "httpConnectTimeout": 3000,
            "httpReadTimeout": 2500,
            "httpRetryBackoff": 0,
        }
    )
    assert config.cached_segment_expiration == 1.5
    assert config.http_download_probability_interval == 0.2505
    assert config.p2p_segment_download_timeout == 0.001
    assert config.http_connect_timeout == 3.0
    assert config.http_read_timeout == 2.5
    assert config.http_retry_backoff == 0.0
    assert all(type(getattr(config, f)) is float for f in ("cached_segment_expiration", "http_retry_backoff"))


def test_integral_float_is_accepted_for_an_integer() -> None:
    config = LoaderConfig.from_faq({"forwardSegmentCount": 50.0, "httpDownloadProbability": 1})
    assert config.forward_segment_count == 50
    assert type(config.forward_segment_count) is int
    assert config.http_download_probability == 1.0
    assert type(config.http_download_probability) is float


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("forwardSegmentCount", "20"),
        ("forwardSegmentCount", 2.5),
        ("cachedSegmentsCount", True),
        ("httpRetries", False),
        ("cachedSegmentExpiration", "300000"),
        ("cachedSegmentExpiration", True),
        ("httpDownloadProbability", "0.1"),
        ("httpDownloadProbability", math.nan),
        ("p2pSegmentDownloadTimeout", math.inf),
        ("useP2P", 1),
        ("consumeOnly", "false"),
        ("httpDownloadRanges", 0),
        ("trackerAnnounce", 5),
        ("trackerAnnounce", ["wss://a", 5]),
        ("rtcConfig", []),
        ("rtcConfig", {"iceServers": [object()]}),
        ("rtcConfig", {1: "x"}),
        ("segmentValidator", "function () {}"),
        ("swarmId", 5),
        ("bufferedSegmentsCount", "5"),
    ],
)
def test_wrong_type_names_the_key(key: str, value: object) -> None:
    with pytest.raises(ConfigError) as info:
        LoaderConfig.from_faq({"loader": {key: value}})
    assert info.value.key == key
    assert key in str(info.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("forwardSegmentCount", 0),
        ("cachedSegmentExpiration", -1),
        ("cachedSegmentsCount", -1),
        ("requiredSegmentsPriority", -1),
        ("simultaneousHttpDownloads", 0),
        ("simultaneousP2PDownloads", 0),
        ("httpDownloadProbability", -0.1),
        ("httpDownloadProbability", 1.01),
        ("httpDownloadProbabilityInterval", 0),
        ("httpFailedSegmentTimeout", -5),
        ("httpDownloadMaxPriority", -1),
        ("httpDownloadInitialTimeout", -1),
        ("httpDownloadInitialTimeoutPerSegment", -1),
        ("p2pDownloadMaxPriority", -2),
        ("p2pSegmentDownloadTimeout", 0),
        ("webRtcMaxMessageSize", 0),
        ("webRtcMaxMessageSize", 262145),
        ("peerRequestsPerAnnounce", 0),
        ("peerRequestsPerAnnounce", 11),
        ("trackerAnnounce", "https://tracker.example"),
        ("swarmId", ""),
        ("httpConnectTimeout", 0),
        ("httpReadTimeout", -1),
        ("httpRetries", -1),
        ("httpRetryBackoff", -0.5),
        ("bufferedSegmentsCount", -1),
        ("uploadDelayTarget", -1),
        ("uploadDelayTarget", 1001),
    ],
)
def test_out_of_range_names_the_key(key: str, value: object) -> None:
    with pytest.raises(ConfigError) as info:
        LoaderConfig.from_faq({"loader": {key: value}})
    assert info.value.key == key
    assert str(info.value).startswith(key)
    assert repr(value) in str(info.value)


def test_in_range_edges_are_accepted() -> None:
    config = LoaderConfig.from_faq(
        {
            "webRtcMaxMessageSize": 262144,
            "peerRequestsPerAnnounce": 1,
            "httpDownloadProbability": 0,
            "requiredSegmentsPriority": 0,
            "cachedSegmentsCount": 0,
            "httpRetries": 0,
            "httpDownloadInitialTimeout": 0,
            "trackerAnnounce": [],
        }
    )
    assert config.web_rtc_max_message_size == 262144
    assert config.tracker_announce == ()


def test_upload_yield_time_goes_through_the_faq_in_milliseconds() -> None:
    assert LoaderConfig().to_faq()["loader"]["uploadYieldTime"] == 4000
    assert LoaderConfig.from_faq({"uploadYieldTime": 2500}).upload_yield_time == 2.5
    assert LoaderConfig.from_faq(LoaderConfig(upload_yield_time=1.5).to_faq()).upload_yield_time == 1.5
    assert LoaderConfig.from_faq({"uploadYieldTime": 0}).upload_yield_time == 0


def test_upload_delay_target_is_on_by_default_and_zero_turns_it_off_through_the_faq() -> None:
    assert LoaderConfig().upload_delay_target == 0.05
    off = LoaderConfig(upload_delay_target=0)
    assert off.to_faq()["loader"]["uploadDelayTarget"] == 0
    assert LoaderConfig.from_faq(off.to_faq()).upload_delay_target == 0
    assert LoaderConfig.from_faq({"uploadDelayTarget": 1000}).upload_delay_target == 1.0


def test_time_range_error_mentions_milliseconds() -> None:
    with pytest.raises(ConfigError, match=r"httpFailedSegmentTimeout must be >= 0, got -5 \(milliseconds\)"):
        LoaderConfig.from_faq({"httpFailedSegmentTimeout": -5})


@pytest.mark.parametrize(("use_ranges", "download_ranges"), [(True, None), (None, True), (True, True)])
def test_http_use_ranges_alias(use_ranges: bool | None, download_ranges: bool | None) -> None:
    config = LoaderConfig.from_faq(
        {"loader": {"httpUseRanges": use_ranges}, "httpDownloadRanges": download_ranges}
    )
    assert config.http_download_ranges is True


@pytest.mark.parametrize(
    "mapping",
    [
        {"httpUseRanges": True, "httpDownloadRanges": False},
        {"loader": {"httpUseRanges": False}, "segments": {"httpDownloadRanges": True}},
    ],
)
def test_http_use_ranges_alias_conflict(mapping: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=r"httpUseRanges.*httpDownloadRanges.*same setting") as info:
        LoaderConfig.from_faq(mapping)
    assert info.value.key == "httpDownloadRanges"


def test_buffered_segments_count_sets_both_max_priorities() -> None:
    config = LoaderConfig.from_faq({"loader": {"bufferedSegmentsCount": 7}})
    assert config.p2p_download_max_priority == 7
    assert config.http_download_max_priority == 7
    # Explicit settings win, as in 0.6.
    config = LoaderConfig.from_faq({"bufferedSegmentsCount": 7, "httpDownloadMaxPriority": 3})
    assert (config.p2p_download_max_priority, config.http_download_max_priority) == (7, 3)
    config = LoaderConfig.from_faq({"bufferedSegmentsCount": 7, "p2pDownloadMaxPriority": 4})
    assert (config.p2p_download_max_priority, config.http_download_max_priority) == (4, 7)


def test_tracker_announce_string_or_list() -> None:
    one = LoaderConfig.from_faq({"trackerAnnounce": "wss://tracker.example.com/announce"})
    assert one.tracker_announce == ("wss://tracker.example.com/announce",)
    two = LoaderConfig.from_faq({"trackerAnnounce": ["ws://localhost:8000", "wss://b.example"]})
    assert two.tracker_announce == ("ws://localhost:8000", "wss://b.example")
    assert LoaderConfig(tracker_announce="wss://x.example").tracker_announce == ("wss://x.example",)
    assert LoaderConfig(tracker_announce=["wss://x.example"]).tracker_announce == ("wss://x.example",)


@pytest.mark.parametrize(
    ("key", "one", "item"),
    [
        ("tracker_announce", "wss://x.example", "URL string"),
        ("http_headers_hosts", "https://cdn.example", "string"),
    ],
)
def test_string_list_settings_take_one_string_or_a_list_or_tuple(key: str, one: str, item: str) -> None:
    # The two settings that accept one string for a list share one converter.
    assert getattr(LoaderConfig(**{key: one}), key) == (one,)
    assert getattr(LoaderConfig(**{key: [one]}), key) == (one,)
    assert getattr(LoaderConfig(**{key: (one, one)}), key) == (one, one)
    for bad in (5, {one: one}, {one}):
        with pytest.raises(
            ConfigError, match=f"^{key} must be a {item} or a list/tuple of {item}s"
        ) as caught:
            LoaderConfig(**{key: bad})
        assert caught.value.key == key


def test_segment_validator_from_faq() -> None:
    def validator(segment: object, data: bytes, method: str, peer_id: str | None) -> bool:
        return True

    config = LoaderConfig.from_faq({"loader": {"segmentValidator": validator}})
    assert config.segment_validator is validator
    assert config == LoaderConfig()  # excluded from equality ...
    assert hash(config) == hash(LoaderConfig())  # ... and from the hash
    assert "segmentValidator" not in config.to_faq()["loader"]


# --- LoaderConfig itself --------------------------------------------------------------------------


def test_frozen() -> None:
    config = LoaderConfig()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        config.use_p2p = False  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.rtc_config["iceServers"] = []  # type: ignore[index]
    assert isinstance(config.rtc_config["iceServers"], tuple)


def test_rtc_config_is_a_deep_copy() -> None:
    source: dict[str, Any] = {"iceServers": [{"urls": "stun:a.example"}]}
    config = LoaderConfig(rtc_config=source)
    source["iceServers"][0]["urls"] = "stun:changed.example"
    source["extra"] = 1
    assert _plain(config.rtc_config) == {"iceServers": [{"urls": "stun:a.example"}]}
    with pytest.raises(TypeError):
        config.rtc_config["iceServers"][0]["urls"] = "x"
    assert config == LoaderConfig(rtc_config={"iceServers": [{"urls": "stun:a.example"}]})
    assert config != LoaderConfig()


def test_hashable_and_equal_by_value() -> None:
    assert hash(LoaderConfig()) == hash(LoaderConfig())
    assert len({LoaderConfig(), LoaderConfig(), PRESETS["faq-vod"]}) == 2
    assert LoaderConfig(cached_segment_expiration=300) == LoaderConfig()


def test_times_are_stored_as_float() -> None:
    config = LoaderConfig(cached_segment_expiration=300, http_download_probability=1, http_retry_backoff=0)
    assert type(config.cached_segment_expiration) is float
    assert type(config.http_download_probability) is float
    assert type(config.http_retry_backoff) is float


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("forward_segment_count", 0),
        ("forward_segment_count", 1.0),
        ("cached_segments_count", True),
        ("cached_segment_expiration", -0.001),
        ("cached_segment_expiration", "300"),
        ("http_download_probability", 1.5),
        ("http_download_probability", math.nan),
        ("simultaneous_http_downloads", 0),
        ("simultaneous_p2p_downloads", 0),
        ("http_download_probability_interval", 0.0),
        ("web_rtc_max_message_size", 262145),
        ("peer_requests_per_announce", 11),
        ("use_p2p", 1),
        ("tracker_announce", 5),
        ("tracker_announce", ("wss://ok.example", "http://bad.example")),
        ("rtc_config", [("iceServers", [])]),
        ("rtc_config", {"x": math.inf}),
        ("segment_validator", 5),
        ("swarm_id", ""),
        ("http_retries", -1),
        ("http_connect_timeout", 0),
        ("max_playlist_bytes", 1023),
        ("max_playlist_segments", 0),
        ("max_init_section_bytes", 2.5),
        ("upload_delay_target", None),
        ("upload_delay_target", -0.01),
        ("upload_delay_target", 1.5),
        ("upload_delay_target", math.nan),
        ("upload_delay_target", True),
    ],
)
def test_construction_validates_and_names_the_field(field: str, value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        LoaderConfig(**{field: value})
    assert info.value.key == field
    assert field in str(info.value)
    with pytest.raises(ConfigError) as info:
        LoaderConfig().evolve(**{field: value})
    assert info.value.key == field


def test_evolve() -> None:
    base = LoaderConfig()
    changed = base.evolve(use_p2p=False, http_retries=0)
    assert (changed.use_p2p, changed.http_retries) == (False, 0)
    assert base.use_p2p is True
    assert changed.evolve(use_p2p=True, http_retries=2) == base
    with pytest.raises(ConfigError, match="http_download_probability") as info:
        base.evolve(http_download_probability=1.5)
    assert info.value.key == "http_download_probability"


@pytest.mark.parametrize(
    ("name", "suggestion"), [("useP2P", "use_p2p"), ("http_retry", "http_retries"), ("swarmId", "swarm_id")]
)
def test_evolve_unknown_field_suggests(name: str, suggestion: str) -> None:
    with pytest.raises(ConfigError) as info:
        LoaderConfig().evolve(**{name: 1})
    assert info.value.key == name
    assert info.value.suggestion == suggestion


# --- to_faq ---------------------------------------------------------------------------------------


def test_to_faq_shape() -> None:
    faq = PRESETS["faq-vod"].evolve(swarm_id="my-swarm").to_faq()
    assert set(faq) == {"segments", "loader"}
    assert faq["segments"] == {"forwardSegmentCount": 50, "swarmId": "my-swarm"}
    assert faq["loader"]["cachedSegmentExpiration"] == 86400000
    assert faq["loader"]["httpDownloadInitialTimeoutPerSegment"] == 17000
    assert faq["loader"]["httpDownloadRanges"] is True  # the FAQ's own name
    assert "httpUseRanges" not in faq["loader"]
    assert json.loads(json.dumps(faq)) == faq


@pytest.mark.parametrize("name", ["defaults", *PRESETS])
def test_every_preset_and_the_defaults_round_trip_through_to_faq(name: str) -> None:
    config = LoaderConfig() if name == "defaults" else PRESETS[name]
    assert LoaderConfig.from_faq(config.to_faq()) == config


def test_to_faq_of_the_faq_vod_example_writes_the_faqs_own_names_and_values() -> None:
    from p2ploader.jsobject import parse_js_object

    example = parse_js_object(FAQ_VOD_TEXT)  # the FAQ's keys and values, as written
    faq = LoaderConfig.from_faq_text(FAQ_VOD_TEXT).to_faq()
    flat = {**faq["segments"], **faq["loader"]}
    for block in ("segments", "loader"):
        for key, value in example[block].items():
            assert flat.get(key) == value, key
    assert "httpUseRanges" not in flat


def test_old_range_spelling_is_still_read() -> None:
    assert LoaderConfig.from_faq({"httpUseRanges": True}).http_download_ranges is True
    assert LoaderConfig.from_faq({"httpDownloadRanges": True}).http_download_ranges is True


# Times that are whole milliseconds: everything a FAQ config can express.
def _ms(lo: int) -> st.SearchStrategy[float]:
    return st.integers(lo, 10**11).map(lambda ms: ms / 1000)


_json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
_json_values = st.recursive(
    _json_leaves,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
_tracker_urls = st.from_regex(r"wss?://[a-z0-9.-]{1,20}(:[0-9]{1,5})?(/[a-z0-9/]{0,10})?", fullmatch=True)

configs = st.builds(
    LoaderConfig,
    forward_segment_count=st.integers(1, 10**6),
    swarm_id=st.none() | st.text(min_size=1, max_size=20),
    cached_segment_expiration=_ms(0),
    cached_segments_count=st.integers(0, 10**6),
    required_segments_priority=st.integers(0, 100),
    simultaneous_http_downloads=st.integers(1, 100),
    http_download_probability=st.floats(0, 1),
    http_download_probability_interval=_ms(1),
    http_download_probability_skip_if_no_peers=st.booleans(),
    http_failed_segment_timeout=_ms(0),
    http_download_max_priority=st.integers(0, 1000),
    http_download_initial_timeout=_ms(0),
    http_download_initial_timeout_per_segment=_ms(0),
    http_download_ranges=st.booleans(),
    simultaneous_p2p_downloads=st.integers(1, 100),
    p2p_download_max_priority=st.integers(0, 1000),
    p2p_segment_download_timeout=_ms(1),
    web_rtc_max_message_size=st.integers(1, 262144),
    use_p2p=st.booleans(),
    consume_only=st.booleans(),
    tracker_announce=st.lists(_tracker_urls, max_size=3).map(tuple),
    peer_requests_per_announce=st.integers(1, 10),
    rtc_config=st.dictionaries(st.text(max_size=8), _json_values, max_size=3),
    http_connect_timeout=_ms(1),
    http_read_timeout=_ms(1),
    http_retries=st.integers(0, 20),
    http_retry_backoff=_ms(0),
    http_retry_jitter=st.floats(0, 1),
    http_headers=st.dictionaries(
        st.sampled_from(["X-Token", "Referer", "Origin"]), st.text("ab =/", max_size=6)
    ),
    http_cookies=st.dictionaries(st.sampled_from(["session", "cdn_auth"]), st.text("ab=/", max_size=6)),
    http_headers_hosts=st.lists(
        st.sampled_from(["*", "https://cdn.example.com", "http://127.0.0.1:8080"]), max_size=3
    ).map(tuple),
    user_agent=st.none() | st.sampled_from(["VLC/3.0.20 LibVLC/3.0.20", "Mozilla/5.0 (X11)"]),
    live_refresh_interval=st.none() | _ms(1),
    live_playlist_stuck_reloads=st.integers(0, 1000),
    max_playlist_bytes=st.integers(1024, 2**40),
    max_playlist_segments=st.integers(1, 10**7),
    max_init_section_bytes=st.integers(1024, 2**40),
    decrypt=st.booleans(),
    p2p_stall_timeout=_ms(1),
    max_peers=st.integers(0, 1000),
    upload_rate_limit=st.none() | st.integers(1, 10**9).map(float),
    upload_delay_target=st.integers(0, 1000).map(lambda ms: ms / 1000),
    max_concurrent_uploads=st.integers(0, 50),
    policy=st.sampled_from(["p2pml-0.6", "p2pml-2.2", "p2ploader-live"]),
    policy_settings=st.dictionaries(st.text(max_size=8), _json_values, max_size=2),
    swarm_url_pattern=st.none() | st.sampled_from([r"^(https://cdn\.example\.com/)[^/]+/(.*)$", "live"]),
)


@settings(max_examples=150, derandomize=True, database=None, deadline=None)
@given(configs)
def test_to_faq_from_faq_round_trip(config: LoaderConfig) -> None:
    faq = config.to_faq()
    assert LoaderConfig.from_faq(faq) == config
    text = json.dumps(faq)  # JSON-serialisable ...
    assert LoaderConfig.from_faq(json.loads(text)) == config
    # ... and JSON is a subset of the object-literal syntax from_faq_text reads.
    assert LoaderConfig.from_faq_text(text) == config
    assert LoaderConfig.from_faq_text(text.strip()[1:-1]) == config


@settings(max_examples=100, derandomize=True, database=None, deadline=None)
@given(st.floats(0, 1e12))
def test_to_faq_times_round_trip_closely(seconds: float) -> None:
    config = LoaderConfig(cached_segment_expiration=seconds)
    back = LoaderConfig.from_faq(config.to_faq()).cached_segment_expiration
    assert back == pytest.approx(seconds, rel=1e-15, abs=1e-300)


# --- from_faq_text --------------------------------------------------------------------------------


def test_text_parser_subset() -> None:
    text = """
    /* block comment
       over two lines */
    segments: {swarmId: 'it\\'s "quoted"', forwardSegmentCount: 1_0,},
    "loader": {
      'httpRetries': 0x3, // hex
      httpRetryBackoff: .5e3,
      httpDownloadProbability: +0.25,
      trackerAnnounce: ["wss://a.example", 'ws://b.example:8000/x',],
      rtcConfig: {iceServers: [{urls: "stun:s.example\\u003a1"}], n: null, neg: -1.5e-3, t: true},
      httpDownloadInitialTimeout: undefined,
    },
    """
    config = LoaderConfig.from_faq_text(text)
    assert config.swarm_id == 'it\'s "quoted"'
    assert config.forward_segment_count == 10
    assert config.http_retries == 3
    assert config.http_retry_backoff == 0.5
    assert config.http_download_probability == 0.25
    assert config.tracker_announce == ("wss://a.example", "ws://b.example:8000/x")
    assert _plain(config.rtc_config) == {
        "iceServers": [{"urls": "stun:s.example:1"}],
        "n": None,
        "neg": -0.0015,
        "t": True,
    }
    assert config.http_download_initial_timeout == 0.0


def test_text_negative_number_reaches_range_check() -> None:
    with pytest.raises(ConfigError, match="cachedSegmentsCount") as info:
        LoaderConfig.from_faq_text("loader: { cachedSegmentsCount: -3 }")
    assert info.value.key == "cachedSegmentsCount"


def test_text_unknown_key_and_empty_text() -> None:
    with pytest.raises(ConfigError) as info:
        LoaderConfig.from_faq_text("loader: {httpDownloadProbabilty: 0.2}")
    assert info.value.suggestion == "httpDownloadProbability"
    assert LoaderConfig.from_faq_text("") == LoaderConfig()
    assert LoaderConfig.from_faq_text("// nothing\n{}") == LoaderConfig()


def test_text_must_be_str() -> None:
    with pytest.raises(ConfigError):
        LoaderConfig.from_faq_text(b"loader: {}")  # type: ignore[arg-type]


# --- P2P Media Loader 2.x's {"core": {...}} -----------------------------------------------------

# p2p-media-loader-core 2.3.1's Core.DEFAULT_STREAM_CONFIG and DEFAULT_COMMON_CORE_CONFIG
# (src/core.ts), written out; the functions are undefined there, so null here.
P2PML_231_DEFAULTS: dict[str, Any] = {
    "segmentMemoryStorageLimit": None,
    "customSegmentStorageFactory": None,
    "isP2PUploadDisabled": False,
    "isP2PDisabled": False,
    "simultaneousHttpDownloads": 2,
    "simultaneousP2PDownloads": 3,
    "highDemandTimeWindow": 15,
    "httpDownloadInitialTimeoutMs": 0,
    "httpDownloadTimeWindow": 3000,
    "p2pDownloadTimeWindow": 6000,
    "webRtcMaxMessageSize": 64 * 1024 - 1,
    "p2pNotReceivingBytesTimeoutMs": 2000,
    "p2pInactiveLoaderDestroyTimeoutMs": 30 * 1000,
    "httpNotReceivingBytesTimeoutMs": 3000,
    "httpErrorRetries": 3,
    "p2pErrorRetries": 3,
    "trackerClientVersionPrefix": "-PM0203-",
    "announceTrackers": ["wss://tracker.novage.com.ua", "wss://tracker.openwebtorrent.com"],
    "rtcConfig": {
        "iceServers": [{"urls": "stun:stun.l.google.com:19302"}, {"urls": "stun:global.stun.twilio.com:3478"}]
    },
    "validateP2PSegment": None,
    "validateHTTPSegment": None,
    "httpRequestSetup": None,
    "swarmId": None,
}

# The "advanced video stream" example of CoreConfig's documentation (src/types.ts), as JavaScript.
P2PML_231_ADVANCED_EXAMPLE = """
core: {
 // Configuration for both streams
 highDemandTimeWindow: 20,
 httpDownloadTimeWindow: 3000,
 p2pDownloadTimeWindow: 6000,
 mainStream: {
  // Optional configuration for the main stream
  swarmId: "custom swarm ID for video stream",
 },
}
"""


def test_p2pml2_defaults_map_onto_the_22_policy_and_the_loaders_fields() -> None:
    config = LoaderConfig.from_p2pml2({"core": P2PML_231_DEFAULTS})
    assert config.policy == "p2pml-2.2"
    assert _plain(config.policy_settings) == {
        "p2pml-2.2": {
            "high_demand_time_window": 15.0,
            "http_download_time_window": 3000.0,
            "p2p_download_time_window": 6000.0,
            "http_error_retries": 3,
        }
    }
    assert config.simultaneous_http_downloads == 2
    assert config.simultaneous_p2p_downloads == 3
    assert config.web_rtc_max_message_size == 65535
    assert config.p2p_stall_timeout == 2.0
    assert config.rendition_linger == 30.0
    assert config.http_read_timeout == 3.0  # milliseconds -> seconds
    assert config.tracker_announce == ("wss://tracker.novage.com.ua", "wss://tracker.openwebtorrent.com")
    assert _plain(config.rtc_config) == P2PML_231_DEFAULTS["rtcConfig"]
    assert config.use_p2p is True
    assert config.consume_only is False
    assert config.swarm_id is None
    # The same object without the wrapper, and through from_faq, give the same config.
    assert LoaderConfig.from_p2pml2(P2PML_231_DEFAULTS) == config
    assert LoaderConfig.from_faq({"core": P2PML_231_DEFAULTS}) == config


def test_p2pml2_documented_example_through_from_faq_text() -> None:
    config = LoaderConfig.from_faq_text(P2PML_231_ADVANCED_EXAMPLE)
    assert config.policy == "p2pml-2.2"
    assert config.swarm_id == "custom swarm ID for video stream"
    assert config.policy_settings["p2pml-2.2"]["high_demand_time_window"] == 20.0
    # Unset keys keep the base's values.
    assert config.evolve(policy="p2pml-0.6", policy_settings={}, swarm_id=None) == LoaderConfig()
    base = PRESETS["faq-vod"]
    refined = LoaderConfig.from_p2pml2({"core": {"simultaneousP2PDownloads": 7}}, base=base)
    assert refined == base.evolve(policy="p2pml-2.2", simultaneous_p2p_downloads=7)


def test_p2pml2_booleans_are_inverted_where_the_meaning_is() -> None:
    config = LoaderConfig.from_p2pml2({"core": {"isP2PDisabled": True, "isP2PUploadDisabled": True}})
    assert config.use_p2p is False
    assert config.consume_only is True


def test_p2pml2_main_stream_overrides_and_secondary_stream_is_checked_not_applied(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level("INFO", logger="p2ploader.p2pml2_config"):
        config = LoaderConfig.from_p2pml2(
            {"core": {"simultaneousHttpDownloads": 4, "mainStream": {"simultaneousHttpDownloads": 5},
                      "secondaryStream": {"simultaneousHttpDownloads": 6, "swarmId": "audio"}}}
        )  # fmt: skip
    assert config.simultaneous_http_downloads == 5
    assert config.swarm_id is None
    assert "not applied (one config for every stream): simultaneousHttpDownloads, swarmId" in caplog.text
    with pytest.raises(ConfigError, match=r"core\.secondaryStream\.webRtcMaxMessageSize") as info:
        LoaderConfig.from_p2pml2({"core": {"secondaryStream": {"webRtcMaxMessageSize": -1}}})
    assert info.value.key == "webRtcMaxMessageSize"


@pytest.mark.parametrize(
    ("core", "pattern", "key", "suggestion"),
    [
        ({"highDemandTimeWindw": 10}, r"unknown P2P Media Loader 2\.x setting 'core\.highDemandTimeWindw'",
         "highDemandTimeWindw", "highDemandTimeWindow"),
        ({"mainStream": {"simultaneousP2pDownload": 1}}, r"'core\.mainStream\.simultaneousP2pDownload'",
         "simultaneousP2pDownload", "simultaneousP2PDownloads"),
        ({"trackerAnnounce": ["ws://x"]}, r"0\.6's name; 2\.x calls it 'announceTrackers'",
         "trackerAnnounce", "announceTrackers"),
        ({"cachedSegmentsCount": 30}, r"not a P2P Media Loader 2\.x setting", "cachedSegmentsCount", None),
        ({"cachedSegmentExpiration": 30}, r"2\.0 removed it", "cachedSegmentExpiration", None),
        ({"validateP2PSegment": lambda *a: True}, r"JavaScript function.*segment_validator",
         "validateP2PSegment", None),
        ({"httpRequestSetup": "f"}, r"JavaScript function", "httpRequestSetup", None),
        ({"secondaryStream": {"validateHTTPSegment": print}}, r"secondaryStream\.validateHTTPSegment is a",
         "validateHTTPSegment", None),
        ({"httpDownloadInitialTimeoutMs": 3000}, r"must be 0", "httpDownloadInitialTimeoutMs", None),
        ({"httpErrorRetries": 0}, r"core\.httpErrorRetries is out of range", "httpErrorRetries", None),
        ({"highDemandTimeWindow": -1}, r"core\.highDemandTimeWindow", "highDemandTimeWindow", None),
        ({"p2pNotReceivingBytesTimeoutMs": 0}, r"core\.p2pNotReceivingBytesTimeoutMs must be > 0.*milli",
         "p2pNotReceivingBytesTimeoutMs", None),
        ({"simultaneousHttpDownloads": "2"}, r"must be an integer", None, None),
        ({"mainStream": {"segmentMemoryStorageLimit": 100}}, r"common to all streams",
         "segmentMemoryStorageLimit", None),
    ],
)  # fmt: skip
def test_p2pml2_refusals_name_the_key(
    core: dict[str, Any], pattern: str, key: str | None, suggestion: str | None
) -> None:
    with pytest.raises(ConfigError, match=pattern) as info:
        LoaderConfig.from_p2pml2({"core": core})
    if key is not None:
        assert info.value.key == key
    assert info.value.suggestion == suggestion


def test_p2pml2_core_cannot_be_mixed_with_06_blocks() -> None:
    with pytest.raises(ConfigError, match=r"only a 'core' block; got also loader"):
        LoaderConfig.from_faq({"core": {}, "loader": {"cachedSegmentsCount": 3}})


def test_p2pml2_ignored_settings_are_type_checked_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="p2ploader.p2pml2_config"):
        config = LoaderConfig.from_p2pml2({"core": {"p2pErrorRetries": 5, "segmentMemoryStorageLimit": 512}})
    assert config == LoaderConfig(policy="p2pml-2.2")
    assert "p2pErrorRetries, segmentMemoryStorageLimit" in caplog.text
    with pytest.raises(ConfigError, match="must be an integer"):
        LoaderConfig.from_p2pml2({"core": {"p2pErrorRetries": "x"}})
