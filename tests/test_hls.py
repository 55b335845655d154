"""Tests for p2ploader.hls: master/media parsing, validation errors, and the live playlist tracker."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from urllib.parse import unquote, urlparse

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import p2ploader
from p2ploader.core.segments import ByteRange, InitSection, KeyInfo, SegmentId
from p2ploader.errors import PlaylistError, UsageError
from p2ploader.hls import (
    KEY_METHODS,
    LivePlaylistTracker,
    MasterPlaylist,
    MediaPlaylist,
    PlaylistUpdate,
    parse_master,
    parse_media,
    parse_playlist,
)

BASE = "https://cdn.example.com/show/"
MASTER_URL = BASE + "master.m3u8"
MEDIA_URL = BASE + "video/720p/index.m3u8"

HYPOTHESIS = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,  # deterministic: same examples on every run
    database=None,  # write no .hypothesis/ directory
    suppress_health_check=[HealthCheck.too_slow],
)


def media_text(
    segments: list[tuple[float, str]] | None = None,
    *,
    target: int = 6,
    sequence: int | str | None = 0,
    end: bool = False,
    header: str = "",
) -> str:
    """Build a media playlist; ``segments`` defaults to five 6 s segments seg0.ts..seg4.ts."""
    if segments is None:
        segments = [(6.0, f"seg{i}.ts") for i in range(5)]
    lines = ["#EXTM3U", "#EXT-X-VERSION:6", f"#EXT-X-TARGETDURATION:{target}"]
    if sequence is not None:
        lines.append(f"#EXT-X-MEDIA-SEQUENCE:{sequence}")
    if header:
        lines.append(header)
    for duration, uri in segments:
        lines += [f"#EXTINF:{duration:.3f},", uri]
    if end:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def live_window(first: int, count: int, *, duration: float = 6.0, end: bool = False) -> str:
    """A live window of ``count`` segments starting at media sequence ``first`` (URIs by sequence)."""
    return media_text(
        [(duration, f"seg{s}.ts") for s in range(first, first + count)], sequence=first, end=end
    )


def parse(text: str, url: str = MEDIA_URL, rendition: str = "v0") -> MediaPlaylist:
    return parse_media(text, url, rendition=rendition)


def reason_of(excinfo: pytest.ExceptionInfo[PlaylistError], url: str) -> str:
    """Every PlaylistError must name the playlist URL, both as .url and in its message."""
    assert excinfo.value.url == url
    assert url in str(excinfo.value)
    return excinfo.value.reason


# --------------------------------------------------------------------------------------------------
# Master playlists

MASTER = """#EXTM3U
#EXT-X-VERSION:6
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="English",LANGUAGE="en",DEFAULT=YES,AUTOSELECT=YES,URI="audio/en.m3u8"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="Français",LANGUAGE="fr",DEFAULT=NO,AUTOSELECT=YES,URI="audio/fr.m3u8"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="muxed",NAME="Main",DEFAULT=YES
#EXT-X-STREAM-INF:BANDWIDTH=1280000,AVERAGE-BANDWIDTH=1000000,RESOLUTION=640x360,CODECS="avc1.4d401e,mp4a.40.2",FRAME-RATE=29.970,AUDIO="aud"
video/360p/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=2560000,RESOLUTION=1280x720,CODECS="avc1.4d401f,mp4a.40.2",AUDIO="aud"
/abs/720p/index.m3u8
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=86000,URI="iframes.m3u8"
# a comment between variants
#EXT-X-STREAM-INF:BANDWIDTH=7680000,RESOLUTION=1920x1080,AUDIO="muxed"
https://other.example.net/1080p.m3u8?token=abc
"""


def test_master_variants_in_order_with_attributes() -> None:
    master = parse_master(MASTER, MASTER_URL)
    assert isinstance(master, MasterPlaylist)
    assert master.url == MASTER_URL
    assert not master.is_synthetic
    assert [v.rendition_id for v in master.variants] == ["v0", "v1", "v2"]
    assert [v.index for v in master.variants] == [0, 1, 2]
    assert [v.url for v in master.variants] == [
        "https://cdn.example.com/show/video/360p/index.m3u8",
        "https://cdn.example.com/abs/720p/index.m3u8",
        "https://other.example.net/1080p.m3u8?token=abc",
    ]
    low, mid, high = master.variants
    assert low.bandwidth == 1280000
    assert low.average_bandwidth == 1000000
    assert low.resolution == (640, 360)
    assert low.codecs == "avc1.4d401e,mp4a.40.2"
    assert low.frame_rate == pytest.approx(29.97)
    assert low.audio == "aud"
    assert mid.average_bandwidth is None
    assert mid.frame_rate is None
    assert high.codecs is None
    assert high.audio == "muxed"
    assert high.resolution == (1920, 1080)


def test_master_alternate_audio_renditions() -> None:
    master = parse_master(MASTER, MASTER_URL)
    assert [r.rendition_id for r in master.renditions] == ["a:aud:English", "a:aud:Français", "a:muxed:Main"]
    en, fr, main = master.renditions
    assert (en.type, en.group_id, en.name, en.language) == ("AUDIO", "aud", "English", "en")
    assert en.default
    assert en.autoselect
    assert en.url == "https://cdn.example.com/show/audio/en.m3u8"
    assert not fr.default
    assert fr.autoselect
    assert main.url is None  # carried inside the variant stream
    assert master.renditions_in_group("AUDIO", "aud") == (en, fr)
    assert master.renditions_in_group("SUBTITLES", "aud") == ()
    assert master.variant_by_id("v1") is master.variants[1]
    assert master.variant_by_id("v9") is None
    assert master.rendition_by_id("a:aud:English") is en
    assert master.rendition_by_id("v0") is None


def test_master_subtitles_closed_captions_and_id_escaping() -> None:
    text = """#EXTM3U
#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="English",LANGUAGE="en",FORCED=NO,URI="subs/en.m3u8"
#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="Deutsch: 100% Untertitel",URI="subs/de.m3u8"
#EXT-X-MEDIA:TYPE=CLOSED-CAPTIONS,GROUP-ID="cc",NAME="CC1",INSTREAM-ID="CC1"
#EXT-X-MEDIA:TYPE=VIDEO,GROUP-ID="cams",NAME="Angle 2",URI="angle2.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=500000,SUBTITLES="subs",CLOSED-CAPTIONS="cc",VIDEO="cams"
a.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=900000,CLOSED-CAPTIONS=NONE
b.m3u8
"""
    master = parse_master(text, MASTER_URL)
    assert [r.rendition_id for r in master.renditions] == [
        "s:subs:English",
        "s:subs:Deutsch%3A 100%25 Untertitel",
        "c:cc:CC1",
        "v:cams:Angle 2",
    ]
    cc = master.renditions[2]
    assert cc.url is None
    assert cc.instream_id == "CC1"
    first, second = master.variants
    assert (first.subtitles, first.closed_captions, first.video) == ("subs", "cc", "cams")
    assert second.closed_captions is None


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        pytest.param(
            '#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="x",URI="a.m3u8"\n',
            "no variants",
            id="no-variants",
        ),
        pytest.param("#EXTM3U\n#EXT-X-VERSION:3\n", "no variants", id="nothing-at-all"),
        pytest.param(
            "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\na.m3u8\n#EXTINF:4,\nseg.ts\n",
            "media playlist tag #EXTINF in a master",
            id="media-tag-in-master",
        ),
        pytest.param(
            "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n#EXT-X-STREAM-INF:BANDWIDTH=2\nb.m3u8\n",
            "line 2: #EXT-X-STREAM-INF is not followed by a URI",
            id="stream-inf-without-uri",
        ),
        pytest.param(
            "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n", "not followed by a URI", id="trailing-stream-inf"
        ),
        pytest.param(
            "#EXTM3U\nstray.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=1\na.m3u8\n",
            "URI without a preceding #EXT-X-STREAM-INF",
            id="uri-without-stream-inf",
        ),
        pytest.param(
            "#EXTM3U\n#EXT-X-STREAM-INF:RESOLUTION=1x1\na.m3u8\n", "no BANDWIDTH", id="no-bandwidth"
        ),
        pytest.param(
            "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=-5\na.m3u8\n", "invalid BANDWIDTH", id="negative-bandwidth"
        ),
        pytest.param(
            "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=nan\na.m3u8\n", "malformed playlist", id="nan-bandwidth"
        ),
        pytest.param(
            "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,RESOLUTION=big\na.m3u8\n",
            "invalid RESOLUTION",
            id="bad-resolution",
        ),
        pytest.param(
            "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,FRAME-RATE=-3\na.m3u8\n",
            "invalid FRAME-RATE",
            id="bad-frame-rate",
        ),
        pytest.param(
            '#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,AUDIO="nope"\na.m3u8\n',
            "AUDIO group 'nope' has no EXT-X-MEDIA",
            id="unknown-audio-group",
        ),
        pytest.param(
            '#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="x"\n'
            '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="x"\n#EXT-X-STREAM-INF:BANDWIDTH=1\na.m3u8\n',
            "duplicate EXT-X-MEDIA",
            id="duplicate-rendition",
        ),
        pytest.param(
            '#EXTM3U\n#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="s",NAME="x"\n#EXT-X-STREAM-INF:BANDWIDTH=1\na.m3u8\n',
            "SUBTITLES rendition needs a URI",
            id="subtitles-without-uri",
        ),
        pytest.param(
            '#EXTM3U\n#EXT-X-MEDIA:TYPE=CLOSED-CAPTIONS,GROUP-ID="c",NAME="x",URI="c.m3u8"\n'
            "#EXT-X-STREAM-INF:BANDWIDTH=1\na.m3u8\n",
            "must not have a URI",
            id="closed-captions-with-uri",
        ),
        pytest.param(
            '#EXTM3U\n#EXT-X-MEDIA:TYPE=MUSIC,GROUP-ID="a",NAME="x"\n#EXT-X-STREAM-INF:BANDWIDTH=1\na.m3u8\n',
            "unknown TYPE 'MUSIC'",
            id="unknown-media-type",
        ),
        pytest.param(
            '#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,NAME="x"\n#EXT-X-STREAM-INF:BANDWIDTH=1\na.m3u8\n',
            "has no GROUP-ID",
            id="no-group-id",
        ),
        pytest.param(
            '#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="x",DEFAULT=maybe\n'
            "#EXT-X-STREAM-INF:BANDWIDTH=1\na.m3u8\n",
            "DEFAULT must be YES or NO",
            id="bad-default",
        ),
        pytest.param(
            "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nhttp://[::1/a.m3u8\n", "invalid URI", id="bad-uri"
        ),
    ],
)
def test_master_errors_name_the_url(text: str, fragment: str) -> None:
    with pytest.raises(PlaylistError) as excinfo:
        parse_master(text, MASTER_URL)
    assert fragment in reason_of(excinfo, MASTER_URL)


# --------------------------------------------------------------------------------------------------
# parse_playlist: either kind


def test_parse_playlist_master_equals_parse_master() -> None:
    assert parse_playlist(MASTER, MASTER_URL) == parse_master(MASTER, MASTER_URL)


def test_parse_playlist_direct_media_url_gives_synthetic_master() -> None:
    master = parse_playlist(media_text(end=True), MEDIA_URL)
    assert master.is_synthetic
    assert master.url == MEDIA_URL
    assert master.renditions == ()
    (variant,) = master.variants
    assert (variant.index, variant.rendition_id, variant.url) == (0, "v0", MEDIA_URL)
    media = parse_media(media_text(end=True), variant.url, rendition=variant.rendition_id)
    assert media.segments[0].id == SegmentId("v0", 0)


def test_parse_playlist_validates_a_direct_media_playlist() -> None:
    with pytest.raises(PlaylistError) as excinfo:
        parse_playlist(media_text([(9.0, "a.ts")], target=6), MEDIA_URL)
    assert "exceeds EXT-X-TARGETDURATION" in reason_of(excinfo, MEDIA_URL)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\na.m3u8\n#EXTINF:2,\ns.ts\n", "mixes master tag"),
        ("#EXTM3U\n#EXT-X-VERSION:3\n", "neither a master playlist"),
        ("#EXTM3U\nfoo.ts\n", "neither a master playlist"),
        ("", "empty playlist"),
        ("<html>404</html>", "does not start with #EXTM3U"),
    ],
)
def test_parse_playlist_errors(text: str, fragment: str) -> None:
    with pytest.raises(PlaylistError) as excinfo:
        parse_playlist(text, MASTER_URL)
    assert fragment in reason_of(excinfo, MASTER_URL)


# --------------------------------------------------------------------------------------------------
# Media playlists


@pytest.mark.parametrize(
    ("base", "ref", "expected"),
    [
        (MEDIA_URL, "seg.ts", "https://cdn.example.com/show/video/720p/seg.ts"),
        (MEDIA_URL, "../../audio/seg.ts", "https://cdn.example.com/show/audio/seg.ts"),
        (MEDIA_URL, "/root/seg.ts", "https://cdn.example.com/root/seg.ts"),
        (MEDIA_URL, "//edge.example.org/seg.ts", "https://edge.example.org/seg.ts"),
        (MEDIA_URL, "http://plain.example/seg.ts", "http://plain.example/seg.ts"),
        (MEDIA_URL, "seg.ts?sig=1&exp=2", "https://cdn.example.com/show/video/720p/seg.ts?sig=1&exp=2"),
        (BASE + "index.m3u8?token=abc", "seg.ts", BASE + "seg.ts"),
        (BASE + "index.m3u8?token=abc", "?part=2", BASE + "index.m3u8?part=2"),
    ],
)
def test_relative_uri_resolution(base: str, ref: str, expected: str) -> None:
    text = media_text(
        [(4.0, ref)],
        header='#EXT-X-KEY:METHOD=AES-128,URI="k/key.bin"\n#EXT-X-MAP:URI="init.mp4"',
        end=True,
    )
    playlist = parse_media(text, base, rendition="v0")
    (segment,) = playlist.segments
    assert segment.url == expected
    assert segment.key is not None
    assert segment.key.url == base.rsplit("/", 1)[0] + "/k/key.bin"
    assert segment.init_section == InitSection(url=base.rsplit("/", 1)[0] + "/init.mp4")


def test_vod_playlist() -> None:
    text = media_text(
        [(6.0, "a.ts"), (5.5, "b.ts"), (6.4, "c.ts"), (2.1, "d.ts")],
        sequence=None,
        header="#EXT-X-PLAYLIST-TYPE:VOD",
        end=True,
    )
    playlist = parse(text, rendition="v2")
    assert playlist.url == MEDIA_URL
    assert playlist.rendition == "v2"
    assert playlist.playlist_type == "VOD"
    assert playlist.end_list
    assert not playlist.is_live
    assert playlist.target_duration == 6
    assert playlist.media_sequence == 0
    assert playlist.discontinuity_sequence == 0
    assert [s.id for s in playlist.segments] == [SegmentId("v2", i) for i in range(4)]
    assert [s.start for s in playlist.segments] == pytest.approx([0.0, 6.0, 11.5, 17.9])
    assert [s.duration for s in playlist.segments] == [6.0, 5.5, 6.4, 2.1]
    assert playlist.total_duration == pytest.approx(20.0)
    assert (playlist.first_sequence, playlist.last_sequence) == (0, 3)
    assert playlist.segment_by_sequence(2) is playlist.segments[2]
    assert playlist.segment_by_sequence(4) is None
    assert playlist.segment_by_sequence(-1) is None
    for segment in playlist.segments:
        assert segment.byte_range is None
        assert segment.key is None
        assert segment.init_section is None


def test_event_playlist_type() -> None:
    playlist = parse(media_text(header="#EXT-X-PLAYLIST-TYPE:EVENT"))
    assert playlist.playlist_type == "EVENT"
    assert playlist.is_live


def test_live_playlist() -> None:
    playlist = parse(live_window(1234, 3))
    assert playlist.is_live
    assert not playlist.end_list
    assert playlist.playlist_type is None
    assert playlist.media_sequence == 1234
    assert [s.id.sequence for s in playlist.segments] == [1234, 1235, 1236]
    assert (playlist.first_sequence, playlist.last_sequence) == (1234, 1236)
    assert playlist.segment_by_sequence(1235) is playlist.segments[1]
    assert playlist.segment_by_sequence(1233) is None
    assert playlist.segments[0].start == 0.0


def test_live_playlist_without_segments_is_allowed() -> None:
    playlist = parse(media_text([], sequence=7))
    assert playlist.is_live
    assert playlist.segments == ()
    assert (playlist.first_sequence, playlist.last_sequence) == (7, 6)
    assert playlist.total_duration == 0.0


def test_durations_round_per_rfc() -> None:
    # 6.5 s still rounds to the 6 s target (exact .5 gets the benefit of the doubt); 6.51 does not.
    assert parse(media_text([(6.5, "a.ts")], target=6)).segments[0].duration == 6.5
    with pytest.raises(PlaylistError):
        parse(media_text([(6.51, "a.ts")], target=6))


def test_extinf_title_and_integer_duration() -> None:
    text = "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,title, with comma\na.ts\n#EXTINF:9\nb.ts\n"
    playlist = parse(text)
    assert [s.duration for s in playlist.segments] == [10.0, 9.0]


def test_bom_comments_and_blank_lines_are_tolerated() -> None:
    text = "\ufeff\n#EXTM3U\n\n# comment\n#EXT-X-TARGETDURATION:4\n\n#EXTINF:4,\n# c\n\na.ts\n"
    assert [s.url for s in parse(text).segments] == [MEDIA_URL.rsplit("/", 1)[0] + "/a.ts"]


def test_crlf_line_endings() -> None:
    text = media_text(end=True).replace("\n", "\r\n")
    assert parse(text) == parse(media_text(end=True))


def test_models_are_frozen() -> None:
    playlist = parse(media_text())
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        playlist.media_sequence = 3  # type: ignore[misc]
    master = parse_master(MASTER, MASTER_URL)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        master.variants[0].bandwidth = 1  # type: ignore[misc]


def test_ll_hls_trailing_parts_are_ignored() -> None:
    text = (
        media_text(
            [(4.0, "a.ts")],
            target=4,
            header="#EXT-X-PART-INF:PART-TARGET=1.0",
        )
        + '#EXT-X-PART:DURATION=1.0,URI="a.part1.ts"\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI="a.part2.ts"\n'
    )
    playlist = parse(text)
    assert len(playlist.segments) == 1


# Byte ranges


def test_byte_ranges_explicit_and_implicit_offsets() -> None:
    text = """#EXTM3U
#EXT-X-TARGETDURATION:4
#EXTINF:4,
#EXT-X-BYTERANGE:1000@0
main.ts
#EXTINF:4,
#EXT-X-BYTERANGE:500
main.ts
#EXT-X-BYTERANGE:250
#EXTINF:4,
main.ts
#EXTINF:4,
#EXT-X-BYTERANGE:100@5000
main.ts
#EXTINF:4,
#EXT-X-BYTERANGE:7
main.ts
#EXT-X-ENDLIST
"""
    ranges = [s.byte_range for s in parse(text).segments]
    assert ranges == [
        ByteRange(offset=0, length=1000),
        ByteRange(offset=1000, length=500),
        ByteRange(offset=1500, length=250),
        ByteRange(offset=5000, length=100),
        ByteRange(offset=5100, length=7),
    ]


def test_implicit_offset_follows_the_same_uri_when_interleaved() -> None:
    text = """#EXTM3U
#EXT-X-TARGETDURATION:4
#EXTINF:4,
#EXT-X-BYTERANGE:100@0
video.ts
#EXTINF:4,
#EXT-X-BYTERANGE:10@0
audio.aac
#EXTINF:4,
#EXT-X-BYTERANGE:200
video.ts
#EXTINF:4,
#EXT-X-BYTERANGE:20
audio.aac
"""
    ranges = [(s.url.rsplit("/", 1)[1], s.byte_range) for s in parse(text).segments]
    assert ranges == [
        ("video.ts", ByteRange(offset=0, length=100)),
        ("audio.aac", ByteRange(offset=0, length=10)),
        ("video.ts", ByteRange(offset=100, length=200)),
        ("audio.aac", ByteRange(offset=10, length=20)),
    ]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        pytest.param(
            "#EXTINF:4,\n#EXT-X-BYTERANGE:500\nmain.ts\n", "no offset and no previous sub-range", id="first"
        ),
        pytest.param(
            "#EXTINF:4,\n#EXT-X-BYTERANGE:500@0\nother.ts\n#EXTINF:4,\n#EXT-X-BYTERANGE:500\nmain.ts\n",
            "no offset and no previous sub-range",
            id="other-uri",
        ),
        pytest.param(
            "#EXTINF:4,\n#EXT-X-BYTERANGE:500@0\nmain.ts\n#EXTINF:4,\nmain.ts\n"
            "#EXTINF:4,\n#EXT-X-BYTERANGE:500\nmain.ts\n",
            "no offset and no previous sub-range",
            id="after-whole-resource",
        ),
        pytest.param("#EXTINF:4,\n#EXT-X-BYTERANGE:abc\nmain.ts\n", "bad byte range", id="garbage"),
        pytest.param("#EXTINF:4,\n#EXT-X-BYTERANGE:0@0\nmain.ts\n", "bad byte range", id="zero-length"),
        pytest.param("#EXTINF:4,\n#EXT-X-BYTERANGE:10@\nmain.ts\n", "bad byte range", id="empty-offset"),
        pytest.param("#EXTINF:4,\n#EXT-X-BYTERANGE:10@-1\nmain.ts\n", "bad byte range", id="negative"),
        pytest.param("#EXTINF:4,\n#EXT-X-BYTERANGE\nmain.ts\n", "bad byte range", id="no-value"),
        pytest.param(
            "#EXTINF:4,\n#EXT-X-BYTERANGE:99999999999999999999@0\nmain.ts\n", "bad byte range", id="huge"
        ),
        pytest.param(
            "#EXTINF:4,\nmain.ts\n#EXT-X-BYTERANGE:10@0\n", "EXT-X-BYTERANGE without a segment", id="dangling"
        ),
    ],
)
def test_byte_range_errors(body: str, fragment: str) -> None:
    with pytest.raises(PlaylistError) as excinfo:
        parse("#EXTM3U\n#EXT-X-TARGETDURATION:4\n" + body)
    assert fragment in reason_of(excinfo, MEDIA_URL)


# EXT-X-MAP


def test_init_section_without_byte_range() -> None:
    text = media_text(header='#EXT-X-MAP:URI="init.mp4"', end=True)
    sections = {s.init_section for s in parse(text).segments}
    assert sections == {InitSection(url="https://cdn.example.com/show/video/720p/init.mp4")}


def test_init_section_with_byte_range_and_change_mid_playlist() -> None:
    text = """#EXTM3U
#EXT-X-TARGETDURATION:4
#EXTINF:4,
before.ts
#EXT-X-MAP:URI="main.mp4",BYTERANGE="720@0"
#EXTINF:4,
#EXT-X-BYTERANGE:1000@720
main.mp4
#EXTINF:4,
#EXT-X-BYTERANGE:1000
main.mp4
#EXT-X-DISCONTINUITY
#EXT-X-MAP:URI="other-init.mp4",BYTERANGE="64"
#EXTINF:4,
other.m4s
"""
    first, second, third, fourth = parse(text).segments
    assert first.init_section is None
    main_init = InitSection(url=BASE + "video/720p/main.mp4", byte_range=ByteRange(offset=0, length=720))
    assert second.init_section == third.init_section == main_init
    assert second.byte_range == ByteRange(offset=720, length=1000)
    assert third.byte_range == ByteRange(offset=1720, length=1000)
    # An EXT-X-MAP byte range without offset starts at 0 (there is no previous sub-range for a map).
    assert fourth.init_section == InitSection(
        url=BASE + "video/720p/other-init.mp4", byte_range=ByteRange(offset=0, length=64)
    )


@pytest.mark.parametrize(
    ("tag", "fragment"),
    [
        ('#EXT-X-MAP:BYTERANGE="10@0"', "EXT-X-MAP has no URI"),
        ("#EXT-X-MAP:", "EXT-X-MAP has no URI"),
        ('#EXT-X-MAP:URI="i.mp4",BYTERANGE="x@0"', "bad byte range"),
    ],
)
def test_init_section_errors(tag: str, fragment: str) -> None:
    with pytest.raises(PlaylistError) as excinfo:
        parse(media_text(header=tag))
    assert fragment in reason_of(excinfo, MEDIA_URL)


# EXT-X-KEY


def test_aes_keys_iv_rotation_and_method_none() -> None:
    text = """#EXTM3U
#EXT-X-TARGETDURATION:4
#EXT-X-MEDIA-SEQUENCE:10
#EXTINF:4,
clear.ts
#EXT-X-KEY:METHOD=AES-128,URI="keys/k1.bin",IV=0x0f0e0d0c0b0a09080706050403020100
#EXTINF:4,
a.ts
#EXTINF:4,
b.ts
#EXT-X-KEY:METHOD=AES-128,URI="https://keys.example/k2?id=2"
#EXTINF:4,
c.ts
#EXT-X-KEY:METHOD=NONE
#EXTINF:4,
d.ts
#EXT-X-KEY:METHOD=SAMPLE-AES,URI="skd://asset-1",KEYFORMAT="com.apple.streamingkeydelivery",KEYFORMATVERSIONS="1"
#EXTINF:4,
e.ts
#EXT-X-KEY:METHOD=SAMPLE-AES-CTR,URI="k3.bin"
#EXTINF:4,
f.ts
"""
    keys = [s.key for s in parse(text).segments]
    k1 = KeyInfo(
        method="AES-128",
        url="https://cdn.example.com/show/video/720p/keys/k1.bin",
        iv=bytes.fromhex("0f0e0d0c0b0a09080706050403020100"),
    )
    k2 = KeyInfo(method="AES-128", url="https://keys.example/k2?id=2")
    assert keys == [
        None,
        k1,
        k1,
        k2,
        None,
        KeyInfo(method="SAMPLE-AES", url="skd://asset-1", key_format="com.apple.streamingkeydelivery"),
        KeyInfo(method="SAMPLE-AES-CTR", url="https://cdn.example.com/show/video/720p/k3.bin"),
    ]
    assert keys[3] is not None
    assert keys[3].iv is None  # no IV: the media sequence number is the IV (RFC 8216 §5.2)
    assert frozenset({"NONE", "AES-128", "SAMPLE-AES", "SAMPLE-AES-CTR"}) == KEY_METHODS


@pytest.mark.parametrize(
    ("tag", "fragment"),
    [
        ('#EXT-X-KEY:METHOD=AES-256,URI="k"', "unsupported EXT-X-KEY METHOD 'AES-256'"),
        ('#EXT-X-KEY:METHOD=aes-128,URI="k"', "unsupported EXT-X-KEY METHOD"),
        ("#EXT-X-KEY:METHOD=AES-128", "METHOD=AES-128 has no URI"),
        ('#EXT-X-KEY:URI="k"', "EXT-X-KEY has no METHOD"),
        ("#EXT-X-KEY:", "EXT-X-KEY has no METHOD"),
        ('#EXT-X-KEY:METHOD=AES-128,URI="k",IV=12345', "IV is not a 128-bit hexadecimal"),
        ('#EXT-X-KEY:METHOD=AES-128,URI="k",IV=0x' + "0" * 33, "IV is not a 128-bit hexadecimal"),
        ('#EXT-X-KEY:METHOD=AES-128,URI="k",IV=0x', "IV is not a 128-bit hexadecimal"),
        ('#EXT-X-KEY:METHOD=AES-128,URI="k",IV=0x0g', "IV is not a 128-bit hexadecimal"),
        ("#EXT-X-KEY:METHOD", "malformed playlist"),
    ],
)
def test_key_errors(tag: str, fragment: str) -> None:
    with pytest.raises(PlaylistError) as excinfo:
        parse(media_text(header=tag))
    assert fragment in reason_of(excinfo, MEDIA_URL)


@pytest.mark.parametrize(
    ("written", "iv"),
    [
        ("0x0f0e0d0c0b0a09080706050403020100", bytes.fromhex("0f0e0d0c0b0a09080706050403020100")),
        ("0X0F0E0D0C0B0A09080706050403020100", bytes.fromhex("0f0e0d0c0b0a09080706050403020100")),
        ("0x1", bytes(15) + b"\x01"),  # a shorter sequence is the same 128-bit integer
        ("0x" + "f" * 32, b"\xff" * 16),
    ],
)
def test_key_iv_is_parsed_to_sixteen_bytes(written: str, iv: bytes) -> None:
    segment = parse(media_text(header=f'#EXT-X-KEY:METHOD=AES-128,URI="k",IV={written}')).segments[0]
    assert segment.key is not None and segment.key.iv == iv
    assert segment.key.iv_hex == "0x" + iv.hex()


@pytest.mark.parametrize("iv", ["0x01", b"\x01" * 15, b"\x01" * 17, bytearray(16)])
def test_key_info_refuses_an_iv_that_is_not_sixteen_bytes(iv: object) -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        KeyInfo(method="AES-128", url="http://k", iv=iv)  # type: ignore[arg-type]


def test_unsupported_key_method_on_a_later_unused_tag_is_still_rejected() -> None:
    text = media_text() + '#EXT-X-KEY:METHOD=ROT13,URI="k"\n'
    with pytest.raises(PlaylistError, match="unsupported EXT-X-KEY METHOD"):
        parse(text)


# Discontinuities


def test_discontinuity_sequence_per_segment() -> None:
    text = """#EXTM3U
#EXT-X-TARGETDURATION:4
#EXT-X-MEDIA-SEQUENCE:100
#EXT-X-DISCONTINUITY-SEQUENCE:5
#EXTINF:4,
a.ts
#EXTINF:4,
b.ts
#EXT-X-DISCONTINUITY
#EXTINF:4,
ad1.ts
#EXTINF:4,
ad2.ts
#EXT-X-DISCONTINUITY
#EXTINF:4,
c.ts
"""
    playlist = parse(text)
    assert playlist.discontinuity_sequence == 5
    assert [s.discontinuity_sequence for s in playlist.segments] == [5, 5, 6, 6, 7]
    assert [s.id.sequence for s in playlist.segments] == [100, 101, 102, 103, 104]


def test_discontinuity_on_the_first_segment() -> None:
    text = "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-DISCONTINUITY\n#EXTINF:4,\na.ts\n"
    assert parse(text).segments[0].discontinuity_sequence == 1


# Media playlist errors

MEDIA_ERRORS = [
    pytest.param("", "empty playlist", id="empty"),
    pytest.param(" \n\n\t", "empty playlist", id="blank"),
    pytest.param("#EXTINF:4,\na.ts\n", "does not start with #EXTM3U", id="no-header"),
    pytest.param("<!doctype html><h1>Not found</h1>", "does not start with #EXTM3U", id="html"),
    pytest.param(
        media_text(header="#EXT-X-STREAM-INF:BANDWIDTH=1"),
        "master playlist tag #EXT-X-STREAM-INF in a media playlist (line 5)",
        id="variant-tag",
    ),
    pytest.param(
        media_text(header='#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="b"'),
        "master playlist tag #EXT-X-MEDIA",
        id="media-tag",
    ),
    pytest.param("#EXTM3U\n#EXTINF:4,\na.ts\n", "missing EXT-X-TARGETDURATION", id="no-target"),
    pytest.param(media_text(target=0), "invalid EXT-X-TARGETDURATION '0'", id="zero-target"),
    pytest.param(
        "#EXTM3U\n#EXT-X-TARGETDURATION:six\n#EXTINF:4,\na.ts\n",
        "invalid EXT-X-TARGETDURATION",
        id="nan-target",
    ),
    pytest.param(
        "#EXTM3U\n#EXT-X-TARGETDURATION:6.5\n#EXTINF:4,\na.ts\n",
        "invalid EXT-X-TARGETDURATION",
        id="float-target",
    ),
    pytest.param(
        "#EXTM3U\n#EXT-X-TARGETDURATION\n#EXTINF:4,\na.ts\n",
        "invalid EXT-X-TARGETDURATION",
        id="empty-target",
    ),
    pytest.param(
        media_text(header="#EXT-X-TARGETDURATION:8"), "TARGETDURATION appears 2 times", id="two-targets"
    ),
    pytest.param(
        media_text([(6.0, "a.ts"), (7.2, "b.ts")], target=6),
        "segment 1 (line 7): duration 7.2s exceeds EXT-X-TARGETDURATION 6s",
        id="too-long",
    ),
    pytest.param("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:-1,\na.ts\n", "negative EXTINF", id="negative"),
    pytest.param(
        "#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:abc,\na.ts\n", "duration is not a number", id="word"
    ),
    pytest.param("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:nan,\na.ts\n", "not a number", id="nan"),
    pytest.param("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:inf,\na.ts\n", "not a number", id="inf"),
    pytest.param("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:1_0,\na.ts\n", "not a number", id="underscore"),
    pytest.param("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:,\na.ts\n", "not a number", id="missing"),
    pytest.param(
        "#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:4\n#EXTINF:4\na.ts\n",
        "line 3: #EXTINF is not followed by a URI",
        id="double-extinf",
    ),
    pytest.param(
        "#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:4,\na.ts\n#EXTINF:4,\n",
        "#EXTINF is not followed by a URI",
        id="trailing-extinf",
    ),
    pytest.param(
        "#EXTM3U\n#EXT-X-TARGETDURATION:6\nstray.ts\n",
        "line 3: segment URI without a preceding #EXTINF",
        id="uri-without-extinf",
    ),
    pytest.param(
        media_text(header='#EXT-X-KEY:METHOD=CHACHA20,URI="k"'),
        "unsupported EXT-X-KEY METHOD",
        id="key-method",
    ),
    pytest.param(media_text(sequence="abc"), "EXT-X-MEDIA-SEQUENCE is not a decimal integer", id="seq-word"),
    pytest.param(media_text(sequence="1.5"), "EXT-X-MEDIA-SEQUENCE is not a decimal integer", id="seq-float"),
    pytest.param(media_text(sequence="+5"), "EXT-X-MEDIA-SEQUENCE is not a decimal integer", id="seq-plus"),
    pytest.param(media_text(sequence=-1), "EXT-X-MEDIA-SEQUENCE is not a decimal integer", id="seq-negative"),
    pytest.param(
        media_text(sequence=2**64), "EXT-X-MEDIA-SEQUENCE is not a decimal integer", id="seq-too-large"
    ),
    pytest.param(
        media_text(header="#EXT-X-MEDIA-SEQUENCE:3"), "MEDIA-SEQUENCE appears 2 times", id="two-sequences"
    ),
    pytest.param(
        media_text(header="#EXT-X-DISCONTINUITY-SEQUENCE:x"),
        "EXT-X-DISCONTINUITY-SEQUENCE is not a decimal integer",
        id="disc-seq",
    ),
    pytest.param(media_text([], end=True), "no segments and is not live", id="ended-without-segments"),
    pytest.param(
        media_text(header="#EXT-X-PLAYLIST-TYPE:vod"), "invalid EXT-X-PLAYLIST-TYPE 'vod'", id="playlist-type"
    ),
    pytest.param(
        media_text(header='#EXT-X-DEFINE:NAME="x",VALUE="y"'), "EXT-X-DEFINE", id="define-unsupported"
    ),
    pytest.param(
        media_text(header="#EXT-X-SKIP:SKIPPED-SEGMENTS=3"),
        "EXT-X-SKIP in a playlist whose EXT-X-SERVER-CONTROL has no CAN-SKIP-UNTIL",
        id="skip-without-can-skip-until",
    ),
    pytest.param(
        media_text([(4.0, "http://[::1/a.ts")]), "invalid URI 'http://[::1/a.ts'", id="bad-segment-uri"
    ),
    pytest.param(media_text(header="#EXT-X-KEY:METHOD=AES-128,URI"), "malformed playlist", id="m3u8-raises"),
]


@pytest.mark.parametrize(("text", "fragment"), MEDIA_ERRORS)
def test_media_errors_name_the_url(text: str, fragment: str) -> None:
    with pytest.raises(PlaylistError) as excinfo:
        parse(text)
    assert fragment in reason_of(excinfo, MEDIA_URL)


def test_m3u8_exceptions_are_chained() -> None:
    with pytest.raises(PlaylistError) as excinfo:
        parse(media_text(header="#EXT-X-KEY:METHOD=AES-128,URI"))
    assert isinstance(excinfo.value.__cause__, ValueError)


def test_empty_rendition_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        parse_media(media_text(), MEDIA_URL, rendition="")


# --------------------------------------------------------------------------------------------------
# Live tracker


def track(first: str) -> LivePlaylistTracker:
    return LivePlaylistTracker(parse(first))


def test_tracker_starts_from_the_first_playlist() -> None:
    tracker = track(live_window(100, 3))
    assert tracker.current.first_sequence == 100
    assert [s.start for s in tracker.current.segments] == [0.0, 6.0, 12.0]


def test_tracker_normal_slide() -> None:
    tracker = track(live_window(0, 5))
    update = tracker.update(parse(live_window(2, 5)))
    assert update == PlaylistUpdate(
        added=update.added, removed=(SegmentId("v0", 0), SegmentId("v0", 1)), skipped=0
    )
    assert [s.id.sequence for s in update.added] == [5, 6]
    assert [s.start for s in update.added] == [30.0, 36.0]
    current = tracker.current
    assert [s.id.sequence for s in current.segments] == [2, 3, 4, 5, 6]
    assert [s.start for s in current.segments] == [12.0, 18.0, 24.0, 30.0, 36.0]
    assert current.media_sequence == 2
    assert current.segment_by_sequence(6) == update.added[-1]
    assert not update.unchanged
    assert not update.ended


def test_tracker_unchanged() -> None:
    tracker = track(live_window(0, 5))
    before = tracker.current
    update = tracker.update(parse(live_window(0, 5)))
    assert update == PlaylistUpdate(unchanged=True)
    assert tracker.current is before


def test_tracker_unchanged_after_a_slide_compares_with_the_last_refresh() -> None:
    tracker = track(live_window(0, 5))
    tracker.update(parse(live_window(1, 5)))
    assert tracker.update(parse(live_window(1, 5))).unchanged


def test_tracker_growing_event_playlist() -> None:
    tracker = track(live_window(0, 2))
    update = tracker.update(parse(live_window(0, 4)))
    assert [s.id.sequence for s in update.added] == [2, 3]
    assert update.removed == ()
    assert [s.start for s in tracker.current.segments] == [0.0, 6.0, 12.0, 18.0]


def test_tracker_jump_ahead_counts_skipped_and_estimates_the_gap() -> None:
    tracker = track(live_window(0, 5, duration=5.0))  # target 6, segments 5 s: known timeline ends at 25
    update = tracker.update(parse(live_window(8, 3, duration=5.0)))
    assert update.skipped == 3  # 5, 6, 7 were never seen
    assert update.removed == tuple(SegmentId("v0", s) for s in range(5))
    assert [s.id.sequence for s in update.added] == [8, 9, 10]
    # 25 s known + 3 skipped segments * 6 s target duration
    assert [s.start for s in update.added] == [43.0, 48.0, 53.0]
    assert tracker.current.segments == update.added
    follow = tracker.update(parse(live_window(9, 3, duration=5.0)))
    assert follow.skipped == 0
    assert [s.start for s in follow.added] == [58.0]


def test_tracker_going_backwards_raises_and_keeps_current() -> None:
    tracker = track(live_window(10, 5))
    tracker.update(parse(live_window(12, 5)))
    good = tracker.current
    with pytest.raises(PlaylistError) as excinfo:
        tracker.update(parse(live_window(11, 5)))
    assert "went backwards" in reason_of(excinfo, MEDIA_URL)
    assert tracker.current is good
    # Stale copy with the same media sequence but fewer segments at the live edge.
    with pytest.raises(PlaylistError, match="went backwards"):
        tracker.update(parse(live_window(12, 4)))
    assert tracker.current is good
    # Encoder restarted and reuses sequence numbers with other URIs.
    replaced = media_text([(6.0, f"new{s}.ts") for s in range(14, 18)], sequence=14)
    with pytest.raises(PlaylistError, match="went backwards"):
        tracker.update(parse(replaced))
    assert tracker.current is good
    # The tracker still works afterwards.
    update = tracker.update(parse(live_window(13, 5)))
    assert [s.id.sequence for s in update.added] == [17]
    assert update.added[0].start == good.segments[-1].end


def test_tracker_same_uri_with_another_byte_range_is_rejected() -> None:
    def window(offsets: list[int]) -> str:
        body = "".join(f"#EXTINF:4,\n#EXT-X-BYTERANGE:100@{o}\nall.ts\n" for o in offsets)
        return "#EXTM3U\n#EXT-X-TARGETDURATION:4\n" + body

    tracker = track(window([0, 100, 200]))
    with pytest.raises(PlaylistError, match="went backwards"):
        tracker.update(parse(window([0, 100, 300, 400])))


def test_tracker_accepts_recycled_uris_at_new_sequence_numbers() -> None:
    # A ring-buffer server reuses file names; only the sequence number identifies a segment.
    def ring(first: int) -> str:
        return media_text([(6.0, f"slot{s % 4}.ts") for s in range(first, first + 3)], sequence=first)

    tracker = track(ring(0))
    for first in range(1, 10):
        update = tracker.update(parse(ring(first)))
        assert [s.id.sequence for s in update.added] == [first + 2]


def test_tracker_endlist_appears() -> None:
    tracker = track(live_window(0, 3))
    update = tracker.update(parse(live_window(0, 4, end=True)))
    assert update.ended
    assert [s.id.sequence for s in update.added] == [3]
    assert tracker.current.end_list
    assert not tracker.current.is_live
    again = tracker.update(parse(live_window(0, 4, end=True)))
    assert again.unchanged
    assert not again.ended
    with pytest.raises(PlaylistError, match="changed after EXT-X-ENDLIST"):
        tracker.update(parse(live_window(0, 5)))
    assert tracker.current.end_list


def test_tracker_endlist_without_new_segments() -> None:
    tracker = track(live_window(0, 3))
    update = tracker.update(parse(live_window(0, 3, end=True)))
    assert update == PlaylistUpdate(ended=True)


def test_tracker_rendition_mismatch() -> None:
    tracker = track(live_window(0, 3))
    with pytest.raises(PlaylistError, match="rendition mismatch") as excinfo:
        tracker.update(parse(live_window(1, 3), rendition="v1"))
    reason_of(excinfo, MEDIA_URL)


def test_tracker_carries_discontinuities_through() -> None:
    def window(first: int, disc_before: set[int], disc_seq: int | None) -> str:
        lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:6", f"#EXT-X-MEDIA-SEQUENCE:{first}"]
        if disc_seq is not None:
            lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{disc_seq}")
        for s in range(first, first + 3):
            if s in disc_before:
                lines.append("#EXT-X-DISCONTINUITY")
            lines += ["#EXTINF:6,", f"seg{s}.ts"]
        return "\n".join(lines) + "\n"

    tracker = track(window(0, set(), 0))
    update = tracker.update(parse(window(1, {3}, 0)))
    assert [(s.id.sequence, s.discontinuity_sequence) for s in update.added] == [(3, 1)]
    # The discontinuity slid out; a correct server bumps EXT-X-DISCONTINUITY-SEQUENCE.
    update = tracker.update(parse(window(3, set(), 1)))
    assert [(s.id.sequence, s.discontinuity_sequence) for s in update.added] == [(4, 1), (5, 1)]
    # A server that forgets the tag (numbering restarts at 0) is rebased onto the known numbering.
    update = tracker.update(parse(window(4, {6}, None)))
    assert [(s.id.sequence, s.discontinuity_sequence) for s in update.added] == [(6, 2)]
    assert [s.discontinuity_sequence for s in tracker.current.segments] == [1, 1, 2]
    assert tracker.current.discontinuity_sequence == 1


def test_tracker_from_an_empty_live_playlist() -> None:
    tracker = track(media_text([], sequence=50))
    update = tracker.update(parse(live_window(50, 2)))
    assert update.skipped == 0
    assert [s.start for s in update.added] == [0.0, 6.0]
    with pytest.raises(PlaylistError, match="went backwards"):
        tracker.update(parse(media_text([], sequence=51)))  # window older than what we saw


def test_tracker_continuous_start_times_over_many_refreshes() -> None:
    durations = [4.0 + (i * 37 % 20) / 10 for i in range(400)]  # 4.0 .. 5.9 s, deterministic

    def window(first: int, count: int) -> str:
        return media_text([(durations[s], f"s{s}.ts") for s in range(first, first + count)], sequence=first)

    tracker = track(window(0, 6))
    first_seen: dict[SegmentId, float] = {s.id: s.start for s in tracker.current.segments}
    first, last = 0, 5
    for step in range(120):
        first += step % 3  # the window start slides by 0, 1 or 2
        last = max(last, first + 5 + step % 2)  # and grows by 0 .. 3 at the live edge
        last_before = tracker.current.segments[-1]
        update = tracker.update(parse(window(first, last - first + 1)))
        assert update.unchanged == (update.added == () and update.removed == ())
        if update.added:
            assert update.added[0].start == pytest.approx(last_before.end)
        segments = tracker.current.segments
        for previous, following in itertools.pairwise(segments):
            assert following.id.sequence == previous.id.sequence + 1
            assert following.start == pytest.approx(previous.end)
        for segment in segments:
            assert first_seen.setdefault(segment.id, segment.start) == segment.start
    newest = tracker.current.segments[-1]
    assert newest.end == pytest.approx(math.fsum(durations[: newest.id.sequence + 1]))


def test_refresh_interval_follows_rfc_8216() -> None:
    tracker = track(media_text(target=6))
    assert tracker.refresh_interval(changed=True) == 6.0
    assert tracker.refresh_interval(changed=False) == 3.0
    assert tracker.next_refresh_at(100.0, changed=True) == 106.0
    assert tracker.next_refresh_at(100.0, changed=False) == 103.0


# --------------------------------------------------------------------------------------------------
# Property-based tests


@st.composite
def valid_media_playlists(draw: st.DrawFn) -> tuple[str, int, list[float], list[bool], int, bool]:
    target = draw(st.integers(1, 12))
    sequence = draw(st.integers(0, 2**63))
    disc_base = draw(st.integers(0, 1000))
    count = draw(st.integers(0, 40))
    millis = draw(st.lists(st.integers(0, target * 1000), min_size=count, max_size=count))
    discs = draw(st.lists(st.booleans(), min_size=count, max_size=count))
    end = draw(st.booleans()) and count > 0
    lines = [
        "#EXTM3U",
        f"#EXT-X-TARGETDURATION:{target}",
        f"#EXT-X-MEDIA-SEQUENCE:{sequence}",
        f"#EXT-X-DISCONTINUITY-SEQUENCE:{disc_base}",
    ]
    for index, (ms, disc) in enumerate(zip(millis, discs, strict=True)):
        if disc:
            lines.append("#EXT-X-DISCONTINUITY")
        lines += [f"#EXTINF:{ms / 1000:.3f},", f"media/{index}.ts"]
    if end:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines), sequence, [ms / 1000 for ms in millis], discs, disc_base, end


@HYPOTHESIS
@given(valid_media_playlists())
def test_valid_media_playlists_have_contiguous_starts_and_ids(
    case: tuple[str, int, list[float], list[bool], int, bool],
) -> None:
    text, sequence, durations, discs, disc_base, end = case
    playlist = parse(text, rendition="a:aud:en")
    assert playlist.end_list == end
    assert [s.id for s in playlist.segments] == [
        SegmentId("a:aud:en", sequence + i) for i in range(len(durations))
    ]
    assert [s.duration for s in playlist.segments] == pytest.approx(durations)
    expected_start = 0.0
    expected_disc = disc_base
    for segment, duration, disc in zip(playlist.segments, durations, discs, strict=True):
        expected_disc += disc
        assert segment.start == pytest.approx(expected_start)
        assert segment.discontinuity_sequence == expected_disc
        expected_start += duration
    assert playlist.total_duration == pytest.approx(math.fsum(durations))
    assert playlist.last_sequence == sequence + len(durations) - 1


FUZZ_LINES = st.one_of(
    st.sampled_from(
        [
            "#EXTM3U",
            "#EXTINF:4,",
            "#EXTINF:",
            "#EXT-X-TARGETDURATION:4",
            "#EXT-X-MEDIA-SEQUENCE:3",
            "#EXT-X-ENDLIST",
            "#EXT-X-DISCONTINUITY",
            "#EXT-X-BYTERANGE:10",
            "#EXT-X-BYTERANGE:10@0",
            '#EXT-X-KEY:METHOD=AES-128,URI="k"',
            "#EXT-X-KEY:METHOD=NONE",
            '#EXT-X-MAP:URI="i.mp4"',
            "#EXT-X-STREAM-INF:BANDWIDTH=1",
            '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="n"',
            '#EXT-X-PART:DURATION=1,URI="p"',
            "#EXT-X-PART-INF:PART-TARGET=1",
            "#EXT-X-SERVER-CONTROL:CAN-SKIP-UNTIL=24,PART-HOLD-BACK=3",
            "#EXT-X-SKIP:SKIPPED-SEGMENTS=1",
            "#EXT-X-PLAYLIST-TYPE:VOD",
            "#EXT-X-PROGRAM-DATE-TIME:2024-01-01T00:00:00Z",
            "a.ts",
            "v.m3u8",
            "http://[::1",
            "",
        ]
    ),
    st.builds(
        "{}{}".format,
        st.sampled_from(
            [
                "#EXTINF:",
                "#EXT-X-TARGETDURATION:",
                "#EXT-X-MEDIA-SEQUENCE:",
                "#EXT-X-DISCONTINUITY-SEQUENCE:",
                "#EXT-X-BYTERANGE:",
                "#EXT-X-KEY:",
                "#EXT-X-MAP:",
                "#EXT-X-STREAM-INF:",
                "#EXT-X-MEDIA:",
                "#EXT-X-I-FRAME-STREAM-INF:",
                "#EXT-X-PART:",
                "#EXT-X-PLAYLIST-TYPE:",
                "#EXT-X-PROGRAM-DATE-TIME:",
                "#EXT-X-DATERANGE:",
                "#EXT-X-CUE-OUT:",
                "#EXT-X-SERVER-CONTROL:",
                "#EXT-X-PART-INF:",
                "#EXT-X-PRELOAD-HINT:",
                "#EXT-X-RENDITION-REPORT:",
                "#EXT-X-SKIP:",
                "#EXT-X-START:",
                "#EXT",
                "",
            ]
        ),
        st.text(max_size=24),
    ),
)
FUZZ_TEXT = st.one_of(
    st.text(max_size=200),
    st.lists(FUZZ_LINES, max_size=25).map(lambda lines: "#EXTM3U\n" + "\n".join(lines)),
)


@HYPOTHESIS
@given(FUZZ_TEXT)
def test_fuzz_only_playlist_errors(text: str) -> None:
    errors: list[PlaylistError] = []
    for call in (
        lambda: parse_playlist(text, MASTER_URL),
        lambda: parse_master(text, MASTER_URL),
        lambda: parse_media(text, MEDIA_URL, rendition="v0"),
    ):
        try:
            call()
        except PlaylistError as exc:  # anything else propagates and fails the test
            errors.append(exc)
    for error in errors:
        assert error.url in (MASTER_URL, MEDIA_URL)
        assert error.reason


# --------------------------------------------------------------------------------------------------
# Real ffmpeg-generated samples (p2ploader/sample/, generated by scripts/make_sample.py)

SAMPLE_DIR = Path(next(iter(p2ploader.__path__))) / "sample"


def _file_path(url: str) -> Path:
    return Path(unquote(urlparse(url).path))


@pytest.mark.parametrize("name", ["ts", "byterange", "fmp4", "aes"])
def test_sample_streams_parse(name: str) -> None:
    master_path = SAMPLE_DIR / name / "master.m3u8"
    if not master_path.is_file():
        pytest.skip(f"sample {name!r} not generated (run scripts/make_sample.py)")
    master_url = master_path.as_uri()
    master = parse_playlist(master_path.read_text(encoding="utf-8"), master_url)
    assert not master.is_synthetic
    assert master.variants
    for variant in master.variants:
        assert variant.codecs == "avc1.4d401e,mp4a.40.2"
        assert variant.resolution is not None
        media_path = _file_path(variant.url)
        playlist = parse_media(
            media_path.read_text(encoding="utf-8"), variant.url, rendition=variant.rendition_id
        )
        assert playlist.end_list
        assert playlist.playlist_type == "VOD"
        assert len(playlist.segments) == 10
        assert playlist.total_duration == pytest.approx(20.0)
        for segment in playlist.segments:
            path = _file_path(segment.url)
            assert path.is_file()
            if segment.init_section is not None:
                assert _file_path(segment.init_section.url).is_file()
            if segment.key is not None:
                assert segment.key.method == "AES-128"
                assert segment.key.iv == bytes.fromhex("0f0e0d0c0b0a09080706050403020100")
                assert segment.key.url is not None
                assert _file_path(segment.key.url).name == "key.bin"
        if name == "byterange":
            ranges = [s.byte_range for s in playlist.segments]
            assert all(r is not None for r in ranges)
            ends = [0] + [r.end for r in ranges if r is not None]
            assert [r.offset for r in ranges if r is not None] == ends[:-1]
            assert ends[-1] == _file_path(playlist.segments[0].url).stat().st_size
        if name == "fmp4":
            assert {s.init_section for s in playlist.segments} == {
                InitSection(url=(SAMPLE_DIR / "fmp4" / "init.mp4").as_uri())
            }
        if name == "aes":
            assert all(s.key is not None for s in playlist.segments)
