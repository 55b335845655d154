"""Tests for p2ploader.core.swarm: ids as the published P2P Media Loader 2.3.1 computes them.

Where the vectors come from
---------------------------
Every expected id below was printed by node 20 running the published npm packages
``p2p-media-loader-core@2.3.1`` and ``p2p-media-loader-hlsjs@2.3.1`` (``npm install --ignore-scripts``
in a scratch folder) with hls.js 1.6.16. The script imported the two ``dist/*.es.js`` bundles unchanged
except for one appended ``export`` line that exposes the bundle's internal ``getStreamHash``,
``getStreamSwarmId``, ``generatePeerId``, ``sha1`` and ``TRACKER_CLIENT_VERSION_PREFIX`` (and the
glue's ``SegmentManager``); ``generateStreamShortId`` is exported anyway. It then:

* called ``generateStreamShortId(props)`` for each ``SHORT_ID_VECTORS`` entry (JavaScript names:
  ``frameRate``, ``videoRange``) and ``getStreamHash`` / ``sha1`` for each ``INFO_HASH_VECTORS`` string
  (its hand-written sha1 was also checked against node's crypto on 2000 random strings);
* for each ``MASTER_VECTORS`` playlist, ran a real ``Hls`` instance whose loader served the text from
  ``response_url``, took the ``MANIFEST_LOADED`` data (after hls.js's own level controller), passed it to
  ``new SegmentManager(fakeCore).processMainManifest(data)`` and recorded each registered stream's type
  and index, then ``getStreamSwarmId(swarmId, stream)`` and ``getStreamHash`` of that, where
  ``swarmId = streamConfig.swarmId ?? manifestResponseUrl`` of a ``new Core(config)`` after
  ``core.setManifestResponseUrl(response_url)`` (as ``HybridLoader`` does);
* parsed the live and VOD media playlists with hls.js's ``M3U8Parser.parseLevelPlaylist`` and fed them
  to ``SegmentManager.updatePlaylist`` to record each segment's ``externalId``;
* called ``generatePeerId(TRACKER_CLIENT_VERSION_PREFIX)`` with ``Math.random`` replaced by
  ``() => (k++ * 0.161803398875) % 1``.
"""

from __future__ import annotations

import base64
import hashlib
import random
import re
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2ploader.core.segments import SegmentId
from p2ploader.core.swarm import (
    P2PLOADER_PEER_ID_PREFIX,
    P2PML_PEER_ID_PREFIX,
    PEER_ID_ALPHABET,
    PEER_ID_LENGTH,
    P2PStream,
    StreamType,
    SwarmSettings,
    UrlNormalizer,
    from_latin1,
    generate_peer_id,
    hlsjs_audio_codec,
    hlsjs_audio_track_codec,
    hlsjs_audio_track_short_id,
    hlsjs_level_short_id,
    hlsjs_streams,
    hlsjs_video_codec,
    info_hash,
    info_hash_latin1,
    latin1,
    segment_id_from_wire,
    segment_wire_id,
    stream_metadata_string,
    stream_short_id,
    stream_swarm_id,
    swarm_id,
    url_without_query,
    version_prefix,
)
from p2ploader.hls import parse_media, parse_playlist

HYPOTHESIS = settings(max_examples=200, deadline=None, derandomize=True, database=None)


@attrs.frozen(kw_only=True)
class MasterVector:
    name: str
    request_url: str
    response_url: str
    text: str
    video_ranges: dict[str, str]
    swarm_id: str
    streams: list[tuple[str, str, str]]  # (type, index, info hash), in the glue's registration order


SHORT_ID_VECTORS: list[tuple[dict[str, Any], str]] = [
    ({}, "UYnLxGhQilEV4D0HbCx+kRv0ZF0="),
    ({"bitrate": 0}, "UYnLxGhQilEV4D0HbCx+kRv0ZF0="),
    (
        {
            "bitrate": 1500000,
            "codecs": "avc1.64001f,mp4a.40.2",
            "width": 1280,
            "height": 720,
            "language": "en",
            "channels": "2",
            "name": "main",
            "frame_rate": "30",
            "video_range": "SDR",
        },
        "6bcoNc8rPzWE3OInyumawG4vSSY=",
    ),
    (
        {
            "bitrate": 1500000,
            "codecs": " MP4A.40.2 , AVC1.100.31 ",
            "width": 1280,
            "height": 720,
            "frame_rate": "30.000",
            "video_range": " sdr ",
        },
        "RUWvQxAw6A85dDAnqE8AreJySks=",
    ),
    (
        {"bitrate": 2000000, "codecs": "avc.77.30,avc1.077.30,avc1.66.30.1", "frame_rate": "29.970"},
        "D3hRErYToYeMrbSqoA0hUxViOsc=",
    ),
    (
        {
            "bitrate": 0,
            "codecs": "mp4a.40.2",
            "language": "ENG",
            "channels": "16/JOC",
            "name": "  Main Audio  ",
        },
        "9+hbSmgmSZ709JE4xzHLLu0eL1w=",
    ),
    (
        {"bitrate": 0, "codecs": "ec-3", "language": "und", "channels": 6, "name": "Surround"},
        "24RxUCKslMG/Md2leM2T1iz0hH8=",
    ),
    (
        {"bitrate": None, "width": 0, "height": None, "frame_rate": 0, "channels": 0, "video_range": ""},
        "pW0yLv7etJ5EY7jDtBYsqhyvF18=",
    ),
    ({"bitrate": 3000000, "frame_rate": 23.976}, "0m/Byto/EYQtxQfoJCeeXBeRMTE="),
    ({"bitrate": 3000000, "frame_rate": "abc"}, "vJkE7HJ/lE6oPy3ysNkS9xMg3pE="),
    ({"bitrate": 3000000, "frame_rate": " 0x1E "}, "zxgv/inhhbOi1C6biGGwIOOR6JU="),
    ({"bitrate": 3000000, "frame_rate": "1e-7"}, "amHHh3AoU6P6PAsoD3reuwCwJrI="),
    ({"bitrate": 3000000, "frame_rate": "0"}, "+FGKy0+TGXGWxS3fG1NFF79T100="),
    ({"bitrate": 1e21}, "pqMxTMscysAafUwM15vOBx4h3Ro="),
    ({"bitrate": 1, "name": "Fran\xe7ais \xc9LAN", "language": "fr-CA"}, "oDdnXPVp/FF8ZEmN3cp5e1r9wL8="),
    ({"bitrate": 1, "codecs": "b,a,B,A,\xe4,z"}, "kypjexarMvY1JGelDdSfIapzm0Y="),
    ({"bitrate": 1, "language": "\U0001d11ex"}, "9E6Cy/D0gRgjn1XCLL0z3MbnWVE="),
    ({"bitrate": 1, "language": "a\U0001d11e"}, "B7TRmPT/MSMb4yWkM3ySYeZtT+A="),
    ({"bitrate": 1, "language": "UND"}, "t236tc/5TpTyV8/4QCxlwlwbqEs="),
    ({"bitrate": 1, "name": "\ufeffName\u3000"}, "aq63obhLfyJT8yS+TCOR3XhFG5A="),
    ({"bitrate": 1, "name": "\x1cname"}, "HUso/bls3377Dvk4gUKxRWPIUxc="),
    ({"bitrate": 1, "codecs": "\uff5e,\U0001d11e"}, "+FAA5dy7fhkzwNmY0CqbpU7sqS0="),
    ({"bitrate": 2.5}, "/p2iPJ+6kUaOLPgnv6aWQVIS+7k="),
    ({"bitrate": 123456789012345680000}, "Be31iTMiYyi93rZQ6VnJfBnSZm0="),
    ({"bitrate": 1, "frame_rate": "1e21"}, "RdSw1MxiCUoPBst9tQR18+sh9Aw="),
    ({"bitrate": 1, "frame_rate": "0.000001"}, "w1uHk6rEZv3zcskxw4yWkT/TR6M="),
    ({"bitrate": 1, "frame_rate": " 29.97\n"}, "3u6rexSf6+kwwQk8lJkrqniCfhY="),
    ({"bitrate": 1, "frame_rate": "Infinity"}, "9xuPWPIJQUWWoccqEooeO3Ud6Ag="),
    ({"bitrate": 1, "frame_rate": "-5"}, "L7amfx6SOivcwQZJl4GaJQsxa1A="),
    ({"bitrate": 1, "frame_rate": "0b101"}, "FOJUL1Jg86Hw5WCh2wpO7HF1MZU="),
    ({"bitrate": 1, "frame_rate": "1_0"}, "I+Z3Ih0ME7NzA+a4i2rHF8Q9Wq4="),
    ({"bitrate": 1, "frame_rate": "30."}, "Vc5qN8f8ELyEdFrCQvXYN2h5fwE="),
    ({"bitrate": 1, "frame_rate": 59.94}, "WanBzk7Km+PayNvnWUIHWFe2tjE="),
    (
        {
            "bitrate": 1,
            "codecs": "avc1.66.30, avc.100.040, AVC1.-5.3, avc1.0x42.30, avc1.9007199254740993.1, avc1.4.5",
        },
        "TgGHqgFM/0O1n5Mxn+nuxJmTXIk=",
    ),
    ({"bitrate": 1, "channels": "6/JOC/X"}, "BmuqfRKk+QMSm/VvtXnziDhgo9I="),
    ({"bitrate": 1, "channels": "/x"}, "I+Z3Ih0ME7NzA+a4i2rHF8Q9Wq4="),
    ({"bitrate": 1, "video_range": "hlg"}, "ru8Zx+rvnOnYly1oARCx5XN5nW0="),
]
INFO_HASH_VECTORS = [
    (
        "v2-https://example.com/live/master.m3u8-main-0",
        "a867e06c8821e65fd8d52f77edeff3cba69a2edf",
        "qGfgbIgh5l/Y1S937e/z",
    ),
    ("", "da39a3ee5e6b4b0d3255bfef95601890afd80709", "2jmj7l5rSw0yVb/vlWAY"),
    ("a", "86f7e437faa5a7fce15d1ddcb9eaeaea377667b8", "hvfkN/qlp/zhXR3cuerq"),
    ("x" * 55, "cef734ba81a024479e09eb5a75b6ddae62e6abf1", "zvc0uoGgJEeeCetadbbd"),
    ("x" * 56, "901305367c259952f4e7af8323f480d59f81335b", "kBMFNnwlmVL056+DI/SA"),
    ("x" * 64, "bb2fa3ee7afb9f54c6dfb5d021f14b1ffe40c163", "uy+j7nr7n1TG37XQIfFL"),
    ("y" * 200, "b33e583382991d2705cd024f5a21b5ec82a27794", "sz5YM4KZHScFzQJPWiG1"),
    (
        "v2-https://ex.com/p\xe4th/\xfcn\xefc\xf8d\xe9-\u20ac-\U0001d11e-main-abc",
        "4fc5ad5c2ba30837bb6caedb036dc6597422aa23",
        "T8WtXCujCDe7bK7bA23G",
    ),
]
MASTER_VECTORS = [
    MasterVector(
        name="M1",
        request_url="https://example.com/live/master.m3u8?token=abc",
        response_url="https://example.com/live/master.m3u8?token=abc",
        text="""\
#EXTM3U
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="English",LANGUAGE="en-US",CHANNELS="2",DEFAULT=YES,URI="en.m3u8"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME=" Deutsch 5.1 ",LANGUAGE="de",CHANNELS="6/JOC",URI="de.m3u8"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="Commentary",LANGUAGE="und",URI="com.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=1500000,AVERAGE-BANDWIDTH=1200000,RESOLUTION=1280x720,CODECS="avc1.66.30,mp4a.40.2",FRAME-RATE=30.000,AUDIO="aud"
v720.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,CODECS="avc1.4d401e,mp4a.40.2",AUDIO="aud"
v360.m3u8
""",
        video_ranges={},
        swarm_id="https://example.com/live/master.m3u8",
        streams=[
            ("main", "pLNhONtZZoRWJx3Diit5DM2QM98=", "ggi5trSj057vxCaJrIY+"),
            ("main", "ZyrtJdm0eCXX0oucB4RC10Br1lA=", "IXMhRCVbI/5wrf0PoP9a"),
            ("secondary", "bdjQ1B4N2yrcTDHyU5j7iDGV9sY=", "inmRsbVmWfbvgnlkL4BJ"),
            ("secondary", "pczMpHWjJRtOWGshIdnPnpJ51U8=", "SS2r1t0cLcudRh0DPho5"),
            ("secondary", "jdPhNc2wpzIxSZmx8+PxH49Q/qw=", "vSM+zCZIBBoUN+FOSBeZ"),
        ],
    ),
    MasterVector(
        name="M2",
        request_url="https://cdn.example.org/vod/movie/master.m3u8",
        response_url="https://cdn.example.org/vod/movie/master.m3u8",
        text="""\
#EXTM3U
#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,CODECS="avc1.4d401e,mp4a.40.2"
360p.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=2500000,AVERAGE-BANDWIDTH=2000000,RESOLUTION=1920x1080,CODECS="mp4a.40.2,avc1.640028",FRAME-RATE=29.970,VIDEO-RANGE=SDR
1080p.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=12000000,RESOLUTION=3840x2160,CODECS="hvc1.2.4.L150.B0,mp4a.40.2",FRAME-RATE=59.940,VIDEO-RANGE=PQ
2160p.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=64000,CODECS="mp4a.40.5"
audio-only.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=300000
nocodecs.m3u8
""",
        video_ranges={"v1": "SDR", "v2": "PQ"},
        swarm_id="https://cdn.example.org/vod/movie/master.m3u8",
        streams=[
            ("main", "ZyrtJdm0eCXX0oucB4RC10Br1lA=", "nrFpWTNhSpNqrBWmYgvW"),
            ("main", "cg2FxySO3fgnwl+wYEmM8QL4cws=", "zDgoir+t4o17ES+Q7j4c"),
            ("main", "FkOTW9HASQnBe0pKxtCfDiwO34M=", "Yw8vqFoFz+srokVGIsW2"),
            ("main", "f3lwepTZphDKr2aqIG3O0UBfhm0=", "kU66OlcadFqsX0lBq2qC"),
            ("main", "bpXcLwjhs6M+MhtmRzyq8F4QiWA=", "hIaPx7Koy02KO1d2tSNU"),
        ],
    ),
    MasterVector(
        name="M3",
        request_url="http://origin.example.net/a/b/index.m3u8?x=1&y=2",
        response_url="https://edge.example.net/c/index.m3u8?sig=zzz",
        text="""\
#EXTM3U
#EXT-X-STREAM-INF:BANDWIDTH=1000000,RESOLUTION=960x540,CODECS="avc1.64001f,mp4a.40.2"
540.m3u8
""",
        video_ranges={},
        swarm_id="https://edge.example.net/c/index.m3u8",
        streams=[
            ("main", "HLCMGMkjm3/byxgpmG0rhbdbfHM=", "KT8sryhenWoUIkTtFlJL"),
        ],
    ),
    MasterVector(
        name="M4",
        request_url="https://example.com/live/stream.m3u8",
        response_url="https://example.com/live/stream.m3u8",
        text="""\
#EXTM3U
#EXT-X-TARGETDURATION:6
#EXT-X-MEDIA-SEQUENCE:100
#EXTINF:6.0,
s100.ts
#EXTINF:6.0,
s101.ts
""",
        video_ranges={},
        swarm_id="https://example.com/live/stream.m3u8",
        streams=[
            ("main", "UYnLxGhQilEV4D0HbCx+kRv0ZF0=", "Q8LYcIUiPFTNGgJfDZF1"),
        ],
    ),
    MasterVector(
        name="M5",
        request_url="https://ex.com/p%C3%A4th/master.m3u8",
        response_url="https://ex.com/p%C3%A4th/master.m3u8",
        text="""\
#EXTM3U
#EXT-X-STREAM-INF:BANDWIDTH=500000,RESOLUTION=640x360,CODECS="avc1.42e01e,mp4a.40.2",NAME="Low"
low.m3u8
""",
        video_ranges={},
        swarm_id="https://ex.com/p%C3%A4th/master.m3u8",
        streams=[
            ("main", "aJ3ZjAClkF/nfSvLfOnRjuJhDe0=", "tdNZB8AFklrWXOu2fbAU"),
        ],
    ),
    MasterVector(
        name="M6",
        request_url="https://media.example.com/show/main.m3u8?session=42",
        response_url="https://media.example.com/show/main.m3u8?session=42",
        text="""\
#EXTM3U
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="lo",NAME="English",LANGUAGE="en",CHANNELS="2",URI="lo/en.m3u8"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="mid",NAME="English",LANGUAGE="en",CHANNELS="2",URI="mid/en.m3u8"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="ac3",NAME="English 5.1",LANGUAGE="en",CHANNELS="6",URI="ac3/en.m3u8"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="orphan",NAME="Orphan",LANGUAGE="fr",URI="orphan/fr.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=0,AVERAGE-BANDWIDTH=500000,RESOLUTION=640x360,CODECS="avc1.64001e, mp4a.40.5",AUDIO="lo"
lo.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=900000,RESOLUTION=854x480,CODECS="mp4a.40.5,avc1.77.30",FRAME-RATE=25,AUDIO="mid"
mid.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=3100000,RESOLUTION=1280x720,CODECS="avc1.640020,ec-3",FRAME-RATE=50.000,VIDEO-RANGE=SDR,AUDIO="ac3"
ac3.m3u8
""",  # noqa: E501
        video_ranges={"v2": "SDR"},
        swarm_id="https://media.example.com/show/main.m3u8",
        streams=[
            ("main", "s1sbyjcJ21+tjSSiagzPAAEIjGs=", "TPc7QIECMT4qiatmQQN8"),
            ("main", "Z2WQTOS3pH+b87p6H5shPRDMd1M=", "BTYJJbw5SlvmssN6p75p"),
            ("main", "woeyMr1dmVT9pFAOAjOLgI+Abw8=", "dyL4Ro8fEJqI4rcL4/mN"),
            ("secondary", "VcpwFWwl4Vfi7bt/022qNTxbj+o=", "+/dTZC9z4KZ2ymU6cMsM"),
            ("secondary", "VcpwFWwl4Vfi7bt/022qNTxbj+o=", "+/dTZC9z4KZ2ymU6cMsM"),
            ("secondary", "cjkn0D83nyFgqsUjETb8r6wiWCc=", "8cVs9rN/ko6zjTsNvTfP"),
            ("secondary", "9a6bJl2jRbQ5kmS1n1lin/gwFvs=", "5+3tIRnpqm+9272RSBW7"),
        ],
    ),
    MasterVector(
        name="M7",
        request_url="https://odd.example/m.m3u8",
        response_url="https://odd.example/m.m3u8",
        text="""\
#EXTM3U
#EXT-X-STREAM-INF:BANDWIDTH=700000,CODECS="avc1.66.030,mp4a.40.2"
a.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=800000,CODECS="avc1.77.30.1 mp4a.40.2"
b.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=9000000,RESOLUTION=3840x2160,CODECS="hvc1.2.4.L153.B0,dvh1.08.07/db4h,ec-3",VIDEO-RANGE=pq
c.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=9007199254740993,CODECS="avc1.640028"
d.m3u8
""",
        video_ranges={"v2": "pq"},
        swarm_id="https://odd.example/m.m3u8",
        streams=[
            ("main", "vjX/JXXJ6eTA4rKOdHkdajIC7Ak=", "ia8giSQUIQewlO4WU9XP"),
            ("main", "aqiyF/BlPwIoyplHsEfK4EEm5Jk=", "7yDDE65LGPnSQRBLreJ1"),
            ("main", "oWXla1koVcaTMhzmeQalqPp0LVc=", "3PlgsJMRDL6LN4TfNRFE"),
            ("main", "PnqPor3LFl1JUNA22eD4Du3LhrQ=", "RahTG+XU90JTGSfRS494"),
        ],
    ),
]


# Swarm-id settings (P2P Media Loader's swarmId / mainStream.swarmId / secondaryStream.swarmId) for a
# manifest served from CUSTOM_URL, with the stream swarm id and info hash of a stream of index
# UYnLxGhQilEV4D0HbCx+kRv0ZF0= (generateStreamShortId({})) of that type.
# SwarmSettings(swarm_id=X, secondary_swarm_id=Y) stands for
# new Core({swarmId: X, secondaryStream: {swarmId: Y}}).
CUSTOM_URL = "https://example.com/live/master.m3u8?t=1"
CUSTOM_INDEX = "UYnLxGhQilEV4D0HbCx+kRv0ZF0="
CUSTOM_SWARM_VECTORS = [
    (SwarmSettings(swarm_id="my-channel-42"), StreamType.MAIN,
     "v2-my-channel-42-main-UYnLxGhQilEV4D0HbCx+kRv0ZF0=", "aPK9a2zrsV+v/0m9f7XU"),
    (SwarmSettings(swarm_id="my-channel-42"), StreamType.SECONDARY,
     "v2-my-channel-42-secondary-UYnLxGhQilEV4D0HbCx+kRv0ZF0=", "tbFgZ97hMW01aGXufLtf"),
    (SwarmSettings(swarm_id="my-channel-42", secondary_swarm_id="my-channel-42-audio"), StreamType.MAIN,
     "v2-my-channel-42-main-UYnLxGhQilEV4D0HbCx+kRv0ZF0=", "aPK9a2zrsV+v/0m9f7XU"),
    (SwarmSettings(swarm_id="my-channel-42", secondary_swarm_id="my-channel-42-audio"), StreamType.SECONDARY,
     "v2-my-channel-42-audio-secondary-UYnLxGhQilEV4D0HbCx+kRv0ZF0=", "8tgXjPQDbH2mP9n9Nmz4"),
    (SwarmSettings(swarm_id="https://example.com/live/master.m3u8?keep=query"), StreamType.MAIN,
     "v2-https://example.com/live/master.m3u8?keep=query-main-UYnLxGhQilEV4D0HbCx+kRv0ZF0=",
     "Aw/GD4d7T2X52C9LedJs"),
    (SwarmSettings(swarm_id=""), StreamType.MAIN,
     "v2--main-UYnLxGhQilEV4D0HbCx+kRv0ZF0=", "oBVAf3pr4c8mA8dqHWKj"),
]  # fmt: skip

# SegmentManager.updatePlaylist's externalId for these playlists (hls.js parseLevelPlaylist).
LIVE_PLAYLIST = """\
#EXTM3U
#EXT-X-TARGETDURATION:6
#EXT-X-MEDIA-SEQUENCE:1234
#EXTINF:6.0,
a1234.ts
#EXTINF:6.0,
a1235.ts
#EXTINF:6.0,
a1236.ts
"""
LIVE_WIRE_IDS = [1234, 1235, 1236]
VOD_PLAYLIST = """\
#EXTM3U
#EXT-X-TARGETDURATION:6
#EXT-X-MEDIA-SEQUENCE:5
#EXTINF:6.0,
b5.ts
#EXTINF:6.0,
b6.ts
#EXTINF:6.0,
b7.ts
#EXT-X-ENDLIST
"""
VOD_WIRE_IDS = [0, 1, 2]

# generatePeerId(TRACKER_CLIENT_VERSION_PREFIX) with Math.random = () => (k++ * 0.161803398875) % 1.
STUBBED_PEER_ID = "-PM0203-AKUeoy8IScmw"


# --------------------------------------------------------------------------------------------------
# Stream index and info hash against the package


@pytest.mark.parametrize(("props", "expected"), SHORT_ID_VECTORS)
def test_stream_short_id_matches_generate_stream_short_id(props: dict[str, Any], expected: str) -> None:
    assert stream_short_id(**props) == expected


def test_metadata_string_renders_every_field_in_order() -> None:
    text = stream_metadata_string(
        bitrate=1500000,
        codecs="mp4a.40.2, AVC1.100.31",
        width=1280,
        height=720,
        language="EN-us",
        channels="16/JOC",
        name=" Main ",
        frame_rate="30.000",
        video_range="sdr",
    )
    assert text == "1500000-avc1.64001f,mp4a.40.2-1280-720-en-16-main-30-SDR"
    assert stream_metadata_string() == "0--------"
    # The reference's worked example (p2p-media-loader.md §4.2) hashes to the package's value.
    assert stream_short_id(
        bitrate=1500000, codecs="avc1.64001f,mp4a.40.2", width=1280, height=720, language="en",
        channels="2", name="main", frame_rate="30", video_range="SDR",
    ) == "6bcoNc8rPzWE3OInyumawG4vSSY="  # fmt: skip


@pytest.mark.parametrize(("stream_id", "sha1_hex", "expected"), INFO_HASH_VECTORS)
def test_info_hash_matches_get_stream_hash(stream_id: str, sha1_hex: str, expected: str) -> None:
    assert hashlib.sha1(stream_id.encode()).hexdigest() == sha1_hex
    digest = info_hash(stream_id)
    assert digest == expected.encode("ascii")
    assert len(digest) == 20
    assert info_hash_latin1(stream_id) == expected
    assert base64.b64decode(digest) == bytes.fromhex(sha1_hex)[:15]


def test_info_hash_of_lone_surrogates_follows_text_encoder() -> None:
    # TextEncoder turns a lone surrogate into U+FFFD before hashing.
    assert info_hash("v2-\ud834-main-x") == info_hash("v2-\ufffd-main-x")


@HYPOTHESIS
@given(st.text())
def test_info_hash_is_20_base64_characters(stream_id: str) -> None:
    digest = info_hash(stream_id)
    assert len(digest) == 20
    assert re.fullmatch(rb"[A-Za-z0-9+/]{20}", digest)
    assert from_latin1(latin1(digest)) == digest


@HYPOTHESIS
@given(
    bitrate=st.none() | st.integers(0, 10**10),
    codecs=st.none() | st.text(),
    language=st.none() | st.text(),
    name=st.none() | st.text(),
    frame_rate=st.none() | st.text() | st.floats(allow_nan=True),
)
def test_stream_short_id_is_a_padded_base64_sha1(
    bitrate: int | None,
    codecs: str | None,
    language: str | None,
    name: str | None,
    frame_rate: str | float | None,
) -> None:
    short_id = stream_short_id(
        bitrate=bitrate, codecs=codecs, language=language, name=name, frame_rate=frame_rate
    )
    assert len(short_id) == 28
    assert short_id.endswith("=")
    assert len(base64.b64decode(short_id)) == 20


# --------------------------------------------------------------------------------------------------
# Whole master playlists, through p2ploader.hls, against the hls.js glue


@pytest.mark.parametrize("vector", MASTER_VECTORS, ids=lambda v: v.name)
def test_master_playlist_streams_match_the_hlsjs_glue(vector: MasterVector) -> None:
    master = parse_playlist(vector.text, vector.response_url)
    swarm = swarm_id(vector.response_url)
    assert swarm == vector.swarm_id
    streams = hlsjs_streams(master.variants, master.renditions, video_ranges=vector.video_ranges)
    got = [(s.type.value, s.index, info_hash_latin1(s.swarm_id(swarm))) for s in streams]
    assert got == vector.streams
    for stream in streams:
        assert stream.swarm_id(swarm) == f"v2-{vector.swarm_id}-{stream.type.value}-{stream.index}"
        assert stream.info_hash(swarm) == info_hash(stream.swarm_id(swarm))


def test_a_redirect_changes_the_swarm() -> None:
    (vector,) = [v for v in MASTER_VECTORS if v.name == "M3"]
    assert url_without_query(vector.request_url) != vector.swarm_id
    assert swarm_id(vector.response_url) == vector.swarm_id


def test_one_swarm_per_rendition() -> None:
    (vector,) = [v for v in MASTER_VECTORS if v.name == "M1"]
    master = parse_playlist(vector.text, vector.response_url)
    swarm = swarm_id(vector.response_url)
    streams = hlsjs_streams(master.variants, master.renditions)
    assert [s.rendition_id for s in streams] == [
        "v0", "v1", "a:aud:English", "a:aud: Deutsch 5.1 ", "a:aud:Commentary",
    ]  # fmt: skip
    hashes = {s.info_hash(swarm) for s in streams}
    assert len(hashes) == len(streams)
    # The stream type is part of the id: the same index as main and as secondary are two swarms.
    same = P2PStream(rendition_id="x", type=StreamType.MAIN, index=streams[0].index)
    other = P2PStream(rendition_id="x", type=StreamType.SECONDARY, index=streams[0].index)
    assert same.info_hash(swarm) != other.info_hash(swarm)
    # ... and so is the swarm id.
    assert streams[0].info_hash(swarm) != streams[0].info_hash(swarm + "x")


def test_renditions_with_equal_metadata_share_a_swarm_upstream() -> None:
    # 2.3.1 indexes by metadata, not position: two audio groups with an "English" track of the same
    # codec get one swarm, and the same variant metadata under two masters gives the same index.
    (m6,) = [v for v in MASTER_VECTORS if v.name == "M6"]
    master = parse_playlist(m6.text, m6.response_url)
    streams = hlsjs_streams(master.variants, master.renditions)
    lo, mid = (s for s in streams if s.rendition_id in ("a:lo:English", "a:mid:English"))
    assert lo.index == mid.index
    (m1,) = [v for v in MASTER_VECTORS if v.name == "M1"]
    (m2,) = [v for v in MASTER_VECTORS if v.name == "M2"]
    assert m1.streams[1][1] == m2.streams[0][1]  # 640x360 avc1.4d401e at 800000
    assert m1.streams[1][2] != m2.streams[0][2]  # ... in different swarms


def test_hlsjs_codec_mapping() -> None:
    assert hlsjs_video_codec("avc1.66.30,mp4a.40.2") == "avc1.42001e"
    assert hlsjs_video_codec("mp4a.40.2 avc1.77.30.1") == "avc1.4d001e"
    assert hlsjs_video_codec("hvc1.2.4.L153.B0,dvh1.08.07/db4h,ec-3") == "hvc1.2.4.L153.B0,dvh1.08.07"
    assert hlsjs_video_codec("mp4a.40.2") is None
    assert hlsjs_video_codec(None) is None
    assert hlsjs_audio_codec("avc1.64001f,mp4a.40.2,ec-3") == "mp4a.40.2,ec-3"
    assert hlsjs_audio_codec("avc1.64001f") is None


def test_hlsjs_audio_track_codec_uses_the_first_variant_of_the_group() -> None:
    (m6,) = [v for v in MASTER_VECTORS if v.name == "M6"]
    master = parse_playlist(m6.text, m6.response_url)
    assert hlsjs_audio_track_codec("ac3", master.variants) == "ec-3"
    assert hlsjs_audio_track_codec("orphan", master.variants) == "mp4a.40.5"  # no variant: the first one's
    assert hlsjs_audio_track_codec("any", ()) is None


def test_level_without_bitrate_keeps_only_the_bitrate() -> None:
    bare = stream_short_id(bitrate=0)
    assert hlsjs_level_short_id(bandwidth=0, codecs="avc1.64001f", resolution=(1280, 720)) == bare
    assert hlsjs_level_short_id(bandwidth=0, average_bandwidth=500000) == stream_short_id(bitrate=500000)
    assert hlsjs_audio_track_short_id(name="", language="en") == stream_short_id(language="en", name="en")


# --------------------------------------------------------------------------------------------------
# Swarm id: query stripping, custom ids, normalisation


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://a.example/x.m3u8", "https://a.example/x.m3u8"),
        ("https://a.example/x.m3u8?", "https://a.example/x.m3u8"),
        ("https://a.example/x.m3u8?a=1?b=2", "https://a.example/x.m3u8"),
        ("https://a.example/p?q#f", "https://a.example/p"),
        # 2.3.1 keeps a fragment (split("?") only) but browsers never report one; we drop it.
        ("https://a.example/x.m3u8#frag", "https://a.example/x.m3u8"),
        ("https://a.example/x.m3u8#frag?not-a-query", "https://a.example/x.m3u8"),
    ],
)
def test_query_stripping(url: str, expected: str) -> None:
    assert url_without_query(url) == expected
    assert swarm_id(url) == expected


@pytest.mark.parametrize(("settings_", "stream_type", "expected_id", "expected_hash"), CUSTOM_SWARM_VECTORS)
def test_custom_swarm_id(
    settings_: SwarmSettings, stream_type: StreamType, expected_id: str, expected_hash: str
) -> None:
    resolved = settings_.resolve(CUSTOM_URL, stream_type)
    assert stream_swarm_id(resolved, stream_type, CUSTOM_INDEX) == expected_id
    assert info_hash_latin1(expected_id) == expected_hash


def test_custom_swarm_id_wins_and_is_used_verbatim() -> None:
    normalizer = UrlNormalizer(pattern=r"^(.*)$", replacement=r"canon:\1")
    assert swarm_id(CUSTOM_URL, custom="id?x=1", normalizer=normalizer) == "id?x=1"
    assert swarm_id(CUSTOM_URL, custom="") == ""
    assert SwarmSettings().resolve(CUSTOM_URL) == "https://example.com/live/master.m3u8"
    assert SwarmSettings(main_swarm_id="m").resolve(CUSTOM_URL, StreamType.MAIN) == "m"
    assert SwarmSettings(main_swarm_id="m").resolve(CUSTOM_URL, StreamType.SECONDARY) == url_without_query(
        CUSTOM_URL
    )
    assert (
        SwarmSettings(normalizer=normalizer).resolve(CUSTOM_URL)
        == "canon:https://example.com/live/master.m3u8"
    )


def test_normaliser_concatenates_capture_groups() -> None:
    normalizer = UrlNormalizer(pattern=r"^(https://cdn\.example\.com/)[^/]+/(.*)$")
    a = "https://cdn.example.com/tok123/live/master.m3u8?sig=1"
    b = "https://cdn.example.com/tokXYZ/live/master.m3u8?sig=2"
    assert normalizer.normalize(a) == normalizer.normalize(b) == "https://cdn.example.com/live/master.m3u8"
    assert swarm_id(a, normalizer=normalizer) == swarm_id(b, normalizer=normalizer)
    # Groups that did not take part are skipped; a URL that does not match is kept (without query).
    optional = UrlNormalizer(pattern=r"^(https://h/)(?:x/)?(y)?(.*)$")
    assert optional.normalize("https://h/x/z.m3u8") == "https://h/z.m3u8"
    assert normalizer.normalize("https://other.example/a/b.m3u8?q") == "https://other.example/a/b.m3u8"


def test_normaliser_without_groups_keeps_the_whole_match() -> None:
    normalizer = UrlNormalizer(pattern=re.compile(r"https://[^/]+/live/[a-z]+\.m3u8"))
    assert normalizer.normalize("https://h.example/live/abc.m3u8?x") == "https://h.example/live/abc.m3u8"
    assert (
        normalizer.normalize("session=9;https://h.example/live/abc.m3u8") == "https://h.example/live/abc.m3u8"
    )


def test_normaliser_with_replacement() -> None:
    normalizer = UrlNormalizer(pattern=r"/session-[0-9a-f]+/", replacement="/")
    url = "https://cdn.example.com/session-9f3a/live/session-77/master.m3u8?t=5"
    assert normalizer.normalize(url) == "https://cdn.example.com/live/master.m3u8"
    named = UrlNormalizer(pattern=r"^https://(?P<host>[^/]+)/[^/]+/", replacement=r"https://\g<host>/")
    assert named.normalize("https://h.example/r4nd0m/v/master.m3u8") == "https://h.example/v/master.m3u8"


def test_normaliser_can_keep_the_query() -> None:
    normalizer = UrlNormalizer(pattern=r"^([^?]*)\?(?:.*&)?(channel=[^&]*).*$", strip_query=False)
    a = "https://h.example/live.m3u8?token=1&channel=5&x=2"
    assert normalizer.normalize(a) == "https://h.example/live.m3u8channel=5"
    assert (
        normalizer.normalize("https://h.example/live.m3u8?channel=6")
        == "https://h.example/live.m3u8channel=6"
    )


def test_normaliser_rejects_a_bad_replacement() -> None:
    with pytest.raises(ValueError, match="invalid replacement"):
        UrlNormalizer(pattern=r"(a)", replacement=r"\2")
    with pytest.raises(re.error):
        UrlNormalizer(pattern=r"(")


# --------------------------------------------------------------------------------------------------
# Segment ids on the wire


def test_live_segments_are_numbered_by_media_sequence() -> None:
    playlist = parse_media(LIVE_PLAYLIST, "https://example.com/live/v0.m3u8", rendition="v0")
    assert playlist.is_live
    wire = [
        segment_wire_id(s.id, live=True, first_sequence=playlist.media_sequence) for s in playlist.segments
    ]
    assert wire == LIVE_WIRE_IDS
    assert [segment_id_from_wire("v0", w, live=True, first_sequence=1234) for w in wire] == [
        s.id for s in playlist.segments
    ]


def test_vod_segments_are_numbered_by_position() -> None:
    playlist = parse_media(VOD_PLAYLIST, "https://example.com/vod/v0.m3u8", rendition="v0")
    assert not playlist.is_live
    wire = [
        segment_wire_id(s.id, live=False, first_sequence=playlist.media_sequence) for s in playlist.segments
    ]
    assert wire == VOD_WIRE_IDS
    assert segment_id_from_wire("v0", 2, live=False, first_sequence=5) == SegmentId("v0", 7)


def test_segment_ids_out_of_range() -> None:
    with pytest.raises(ValueError, match="precedes"):
        segment_wire_id(SegmentId("v0", 4), live=False, first_sequence=5)
    with pytest.raises(ValueError, match="negative"):
        segment_id_from_wire("v0", -1, live=True, first_sequence=0)


# --------------------------------------------------------------------------------------------------
# Peer ids


class _StubbedMathRandom(random.Random):
    """Math.random = () => (k++ * 0.161803398875) % 1, as in the node snippet."""

    def __init__(self) -> None:
        super().__init__(0)
        self.k = 0

    def random(self) -> float:
        value = (self.k * 0.161803398875) % 1
        self.k += 1
        return value


def test_peer_id_matches_generate_peer_id() -> None:
    assert version_prefix("PM", "2.3.1") == P2PML_PEER_ID_PREFIX == "-PM0203-"
    assert generate_peer_id(_StubbedMathRandom(), prefix=P2PML_PEER_ID_PREFIX) == STUBBED_PEER_ID.encode()


def test_peer_id_shape() -> None:
    peer_id = generate_peer_id(random.Random(1))
    assert isinstance(peer_id, bytes)
    assert len(peer_id) == PEER_ID_LENGTH == 20
    assert peer_id.startswith(b"-PY0001-")
    assert version_prefix("PY", "0.1.0") == P2PLOADER_PEER_ID_PREFIX
    assert set(peer_id[8:].decode()) <= set(PEER_ID_ALPHABET)
    assert peer_id.decode("utf-8") == latin1(peer_id)  # ASCII: the same text for browsers and trackers


def test_peer_id_is_deterministic_with_a_seeded_rng() -> None:
    assert generate_peer_id(random.Random(42)) == generate_peer_id(random.Random(42))
    rng = random.Random(42)
    assert generate_peer_id(rng) != generate_peer_id(rng)
    assert generate_peer_id(random.Random(1)) != generate_peer_id(random.Random(2))


def test_peer_id_prefixes() -> None:
    assert generate_peer_id(random.Random(0), prefix="").isalnum()
    assert generate_peer_id(random.Random(0), prefix="-XY1234567890123456-") == b"-XY1234567890123456-"
    assert version_prefix("PM", "10.12.0") == "-PM1012-"
    with pytest.raises(ValueError, match="printable ASCII"):
        generate_peer_id(random.Random(0), prefix="-\u00e9\u00e9-")
    with pytest.raises(ValueError, match="printable ASCII"):
        generate_peer_id(random.Random(0), prefix="x" * 21)
    with pytest.raises(ValueError, match="minor"):
        version_prefix("PY", "1")


@HYPOTHESIS
@given(st.integers(0, 2**64))
def test_any_seed_gives_a_valid_peer_id(seed: int) -> None:
    peer_id = generate_peer_id(random.Random(seed))
    assert re.fullmatch(rb"-PY0001-[A-Za-z0-9]{12}", peer_id)
