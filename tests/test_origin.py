"""Tests of the local HLS origin (:mod:`p2ploader.testing.origin`) against a real server on 127.0.0.1.

Every test serves a small tree written into ``tmp_path``; live tests drive the live edge with a
mutable clock, so no test sleeps except the ``delay`` fault tests (under 0.3 s each).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import http.client
import inspect
import os
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import m3u8
import pytest

from p2ploader.errors import ConfigError, UsageError
from p2ploader.testing.origin import (
    LiveSettings,
    OriginServer,
    OriginStatistics,
    content_type_for,
    resource_kind,
)

SEGMENTS = 5

# One TLS context for every client: the tests speak plain HTTP, and loading the CA bundle for each
# new httpx.Client costs ~45 ms.
TLS = ssl.create_default_context()


class Clock:
    """A clock the test moves by hand (seconds since the live stream started)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def seg_bytes(name: str, index: int) -> bytes:
    return f"{name}-segment-{index}|".encode() * (8 + index)


def media_playlist(name: str, *, ext: str = "ts", head: str = "", durations: list[str] | None = None) -> str:
    durations = durations or ["2.0"] * SEGMENTS
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:2", "#EXT-X-MEDIA-SEQUENCE:0"]
    lines += ["#EXT-X-PLAYLIST-TYPE:VOD", *filter(None, [head])]
    for i, duration in enumerate(durations):
        lines += [f"#EXTINF:{duration},", f"{name}{i}.{ext}"]
    return "\n".join([*lines, "#EXT-X-ENDLIST", ""])


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """master.m3u8, v0/ and v1/ (5 x 2.0 s TS), single/ (byterange), fmp4/ (EXT-X-MAP), enc/
    (EXT-X-KEY without IV, then METHOD=NONE), flat/ (two playlists in one folder), misc files,
    and a secret file *outside* the root."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "master.m3u8").write_text(
        "#EXTM3U\n#EXT-X-VERSION:3\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=100000\nv0/index.m3u8\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=200000\nv1/index.m3u8\n"
    )
    (root / "abs_master.m3u8").write_text(
        "#EXTM3U\n#EXT-X-VERSION:3\n"
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="x",URI="/v1/index.m3u8"\n'
        '#EXT-X-SESSION-KEY:METHOD=AES-128,URI="keys/key.bin"\n'
        '#EXT-X-STREAM-INF:BANDWIDTH=100000,AUDIO="a"\n/v0/index.m3u8\n'
        "#EXT-X-STREAM-INF:BANDWIDTH=300000\nhttp://elsewhere.invalid/x.m3u8\n"
    )
    for name in ("v0", "v1"):
        (root / name).mkdir()
        (root / name / "index.m3u8").write_text(media_playlist("seg"))
        for i in range(SEGMENTS):
            (root / name / f"seg{i}.ts").write_bytes(seg_bytes(name, i))
    single = root / "single"
    single.mkdir()
    blob = b"".join(seg_bytes("single", i) for i in range(SEGMENTS))
    (single / "all.ts").write_bytes(blob)
    lines = ["#EXTM3U", "#EXT-X-VERSION:4", "#EXT-X-TARGETDURATION:2"]
    offset = 0
    for i in range(SEGMENTS):
        size = len(seg_bytes("single", i))
        lines += ["#EXTINF:2.0,", f"#EXT-X-BYTERANGE:{size}@{offset}", "all.ts"]
        offset += size
    (single / "index.m3u8").write_text("\n".join([*lines, "#EXT-X-ENDLIST", ""]))
    fmp4 = root / "fmp4"
    fmp4.mkdir()
    (fmp4 / "index.m3u8").write_text(
        media_playlist("frag", ext="m4s", head='#EXT-X-MAP:URI="init.mp4"').replace("VERSION:3", "VERSION:7")
    )
    (fmp4 / "init.mp4").write_bytes(b"ftyp....moov...." * 4)
    for i in range(SEGMENTS):
        (fmp4 / f"frag{i}.m4s").write_bytes(seg_bytes("fmp4", i))
    (root / "keys").mkdir()
    (root / "keys" / "key.bin").write_bytes(bytes(range(16)))
    enc = root / "enc"
    enc.mkdir()
    text = media_playlist("e", head='#EXT-X-KEY:METHOD=AES-128,URI="../keys/key.bin"')
    text = text.replace("#EXTINF:2.0,\ne3.ts", "#EXT-X-KEY:METHOD=NONE\n#EXTINF:2.0,\ne3.ts")
    (enc / "index.m3u8").write_text(text)
    for i in range(SEGMENTS):
        (enc / f"e{i}.ts").write_bytes(seg_bytes("enc", i))
    flat = root / "flat"
    flat.mkdir()
    for name in ("a", "b"):
        (flat / f"{name}.m3u8").write_text(media_playlist(name))
        for i in range(SEGMENTS):
            (flat / f"{name}{i}.ts").write_bytes(seg_bytes(f"flat-{name}", i))
    (root / "audio.aac").write_bytes(b"\xff\xf1aac" * 10)
    (root / "empty.bin").write_bytes(b"")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("TOP SECRET")
    return root


@pytest.fixture
def origin(root: Path) -> Iterator[OriginServer]:
    with OriginServer(root) as server:
        yield server


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def live(root: Path, clock: Clock) -> Iterator[OriginServer]:
    with OriginServer(root, live=LiveSettings(window_segments=3), clock=clock) as server:
        yield server


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0, verify=TLS) as c:
        yield c


def raw_request(
    server: OriginServer, path: str, *, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """Send ``path`` byte for byte (httpx would normalise ``..``)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.msg, response.read()
    finally:
        conn.close()


def uris(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def tag(text: str, name: str) -> str | None:
    for line in text.splitlines():
        if line.startswith(f"#{name}:"):
            return line.split(":", 1)[1]
    return None


def live_playlist(client: httpx.Client, server: OriginServer, path: str = "live/v0/index.m3u8") -> str:
    response = client.get(server.url_for(path))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/vnd.apple.mpegurl"
    return response.text


# ------------------------------------------------------------------------------------------------
# Lifecycle and binding


def test_default_bind_address_is_loopback(root: Path) -> None:
    assert inspect.signature(OriginServer).parameters["host"].default == "127.0.0.1"
    server = OriginServer(root)
    assert server.host == "127.0.0.1"
    with server:
        assert server.host == "127.0.0.1"  # read back from the bound socket
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert server.port > 0


def test_port_zero_picks_distinct_free_ports(root: Path, client: httpx.Client) -> None:
    with OriginServer(root) as a, OriginServer(root) as b:
        assert a.port != b.port
        assert client.get(a.url_for("v0/seg0.ts")).status_code == 200
        assert client.get(b.url_for("/v0/seg0.ts")).status_code == 200


def test_lifecycle_errors(root: Path, tmp_path: Path) -> None:
    server = OriginServer(root)
    with pytest.raises(UsageError):
        _ = server.url
    server.start()
    with pytest.raises(UsageError):
        server.start()
    server.stop()
    server.stop()  # idempotent
    with pytest.raises(UsageError):
        server.start()
    with pytest.raises(ConfigError):
        OriginServer(tmp_path / "missing")
    with pytest.raises(UsageError):
        OriginServer(root).freeze_live(True)
    with pytest.raises(UsageError):
        OriginServer(root).rollback_live(1)


def test_stop_closes_idle_keepalive_connections(root: Path) -> None:
    server = OriginServer(root)
    server.start()
    with httpx.Client(timeout=2.0, verify=TLS) as c:
        assert c.get(server.url_for("v0/seg0.ts")).status_code == 200  # connection kept alive
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 1.5
        with pytest.raises(httpx.TransportError):
            c.get(server.url_for("v0/seg0.ts"))


def test_works_from_an_asyncio_event_loop(origin: OriginServer, root: Path) -> None:
    async def fetch() -> list[bytes]:
        async with httpx.AsyncClient(verify=TLS) as c:
            responses = await asyncio.gather(
                *(c.get(origin.url_for(f"v0/seg{i}.ts")) for i in range(SEGMENTS))
            )
            return [r.content for r in responses]

    assert asyncio.run(fetch()) == [seg_bytes("v0", i) for i in range(SEGMENTS)]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"window_segments": 0},
        {"window_segments": True},
        {"initial_segments": -1},
        {"segment_duration": 0.0},
        {"segment_duration": float("nan")},
        {"end_after": 0},
    ],
)
def test_live_settings_validation(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        LiveSettings(**kwargs)
    assert isinstance(info.value, ValueError)
    assert info.value.key == next(iter(kwargs))


def test_live_settings_defaults() -> None:
    settings = LiveSettings()
    assert (settings.window_segments, settings.initial_segments, settings.loop) == (6, None, True)
    assert (settings.segment_duration, settings.end_after, settings.initial) == (None, None, 6)
    assert LiveSettings(window_segments=4, initial_segments=1).initial == 1
    with pytest.raises(TypeError):
        LiveSettings(6)  # type: ignore[call-arg]


# ------------------------------------------------------------------------------------------------
# VOD


def test_vod_file_bytes_and_headers(origin: OriginServer, client: httpx.Client) -> None:
    for i in range(SEGMENTS):
        response = client.get(origin.url_for(f"v1/seg{i}.ts"))
        assert response.status_code == 200
        assert response.content == seg_bytes("v1", i)
        assert response.headers["content-length"] == str(len(seg_bytes("v1", i)))
        assert response.headers["accept-ranges"] == "bytes"
    response = client.get(origin.url_for("v0/index.m3u8?token=abc"))
    assert response.text == media_playlist("seg")


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("master.m3u8", "application/vnd.apple.mpegurl"),
        ("v0/index.m3u8", "application/vnd.apple.mpegurl"),
        ("v0/seg0.ts", "video/mp2t"),
        ("fmp4/init.mp4", "video/mp4"),
        ("fmp4/frag0.m4s", "video/mp4"),
        ("audio.aac", "audio/aac"),
        ("keys/key.bin", "application/octet-stream"),
    ],
)
def test_content_types(origin: OriginServer, client: httpx.Client, path: str, content_type: str) -> None:
    response = client.get(origin.url_for(path))
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type


@pytest.mark.parametrize(
    ("range_header", "start", "stop"),
    [
        ("bytes=0-9", 0, 10),
        ("bytes=5-5", 5, 6),
        ("bytes=10-", 10, None),
        ("bytes=-7", -7, None),
        ("bytes=90-100000", 90, None),  # last-pos past the end is clamped
        ("bytes=-100000", 0, None),  # suffix longer than the file: the whole file
        ("bytes=0-", 0, None),
        ("Bytes=3-4", 3, 5),  # the unit is case-insensitive
        ("bytes=2-4,", 2, 5),  # an empty list element is not a second range
    ],
)
def test_range_forms(
    origin: OriginServer, client: httpx.Client, range_header: str, start: int, stop: int | None
) -> None:
    data = seg_bytes("v0", 0)
    expected = data[start:stop]
    first = len(data) - len(expected) if start < 0 else start
    response = client.get(origin.url_for("v0/seg0.ts"), headers={"Range": range_header})
    assert response.status_code == 206
    assert response.content == expected
    assert response.headers["content-length"] == str(len(expected))
    assert response.headers["content-range"] == f"bytes {first}-{first + len(expected) - 1}/{len(data)}"
    assert response.headers["content-type"] == "video/mp2t"


@pytest.mark.parametrize(
    ("path", "range_header"),
    [
        ("v0/seg0.ts", "bytes=104-"),  # first-pos == size
        ("v0/seg0.ts", "bytes=1000-2000"),
        ("v0/seg0.ts", "bytes=-0"),
        ("empty.bin", "bytes=0-"),
        ("empty.bin", "bytes=-5"),
    ],
)
def test_unsatisfiable_range_is_416(
    origin: OriginServer, client: httpx.Client, root: Path, path: str, range_header: str
) -> None:
    assert len(seg_bytes("v0", 0)) == 104
    size = (root / path).stat().st_size
    response = client.get(origin.url_for(path), headers={"Range": range_header})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{size}"
    assert response.headers["content-type"].startswith("text/plain")
    assert "accept-ranges" not in response.headers
    assert response.headers["content-length"] == str(len(response.content))


@pytest.mark.parametrize(
    "range_header",
    [
        "bytes=5-2",  # last < first
        "bytes=abc",
        "bytes=-",
        "bytes=--5",
        "bytes=1.5-2",
        "bytes=0x1-2",
        "bytes 0-5",
        "items=0-5",  # unknown unit
        "bytes=0-1,4-5",  # several ranges: this server ignores them
        "bytes=",
        "",
    ],
)
def test_malformed_range_is_ignored(origin: OriginServer, client: httpx.Client, range_header: str) -> None:
    response = client.get(origin.url_for("v0/seg0.ts"), headers={"Range": range_header})
    assert response.status_code == 200
    assert response.content == seg_bytes("v0", 0)
    assert "content-range" not in response.headers


def test_two_range_headers_are_ignored(origin: OriginServer, client: httpx.Client) -> None:
    headers = httpx.Headers([("Range", "bytes=0-1"), ("Range", "bytes=2-3")])
    response = client.get(origin.url_for("v0/seg0.ts"), headers=headers)
    assert response.status_code == 200
    assert response.content == seg_bytes("v0", 0)


def test_head(origin: OriginServer, client: httpx.Client) -> None:
    data = seg_bytes("v0", 3)
    response = client.head(origin.url_for("v0/seg3.ts"))
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == str(len(data))
    assert response.headers["content-type"] == "video/mp2t"
    assert response.headers["accept-ranges"] == "bytes"
    ranged = client.head(origin.url_for("v0/seg3.ts"), headers={"Range": "bytes=1-2"})
    assert ranged.status_code == 206
    assert ranged.content == b""
    assert ranged.headers["content-range"] == f"bytes 1-2/{len(data)}"
    assert client.head(origin.url_for("v0/nope.ts")).status_code == 404
    # The connection is still usable after the bodiless responses.
    assert client.get(origin.url_for("v0/seg3.ts")).content == data


@pytest.mark.parametrize("path", ["/", "/v0", "/v0/", "/nope.ts", "/v0/seg9.ts", "/live/v0/index.m3u8"])
def test_missing_files_and_directories_are_404(origin: OriginServer, client: httpx.Client, path: str) -> None:
    response = client.get(origin.url_for(path))
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize(
    "path",
    [
        "/../outside/secret.txt",
        "/v0/../../outside/secret.txt",
        "/%2e%2e/outside/secret.txt",
        "/%2E%2E%2Foutside%2Fsecret.txt",
        "/v0/%2e%2e/%2e%2e/outside/secret.txt",
        "/..%2foutside/secret.txt",
        "/live/../../outside/secret.txt",
        "/..\\outside/secret.txt",
    ],
)
def test_path_traversal_is_refused(origin: OriginServer, path: str) -> None:
    status, _, body = raw_request(origin, path)
    assert status == 403
    assert b"SECRET" not in body


def test_absolute_paths_stay_inside_root(origin: OriginServer, tmp_path: Path) -> None:
    secret = str(tmp_path / "outside" / "secret.txt")  # an absolute path: /tmp/...
    for path in [secret, "/" + secret, "/%2F" + secret.lstrip("/"), "/%2F%2F" + secret.lstrip("/")]:
        status, _, body = raw_request(origin, path)
        assert status == 404, path  # looked up as root/tmp/..., which does not exist
        assert b"SECRET" not in body
    status, _, body = raw_request(origin, f"http://127.0.0.1:{origin.port}/../outside/secret.txt")
    assert status == 403
    assert b"SECRET" not in body


def test_symlinks_outside_root_are_refused(root: Path, tmp_path: Path, client: httpx.Client) -> None:
    outside = tmp_path / "outside"
    (root / "leak.txt").symlink_to(outside / "secret.txt")
    (root / "leakdir").symlink_to(outside, target_is_directory=True)
    (root / "alias.ts").symlink_to(root / "v0" / "seg1.ts")  # inside the root: fine
    with OriginServer(root) as server:
        for path in ("leak.txt", "leakdir/secret.txt"):
            response = client.get(server.url_for(path))
            assert response.status_code == 403
            assert "SECRET" not in response.text
        assert client.get(server.url_for("alias.ts")).content == seg_bytes("v0", 1)


# ------------------------------------------------------------------------------------------------
# Live emulation


@pytest.mark.parametrize(
    ("now", "first"),
    [(0.0, 0), (1.999, 0), (2.0, 1), (3.5, 1), (4.0, 2), (5.0, 2)],
)
def test_live_window_follows_the_clock(
    live: OriginServer, client: httpx.Client, clock: Clock, now: float, first: int
) -> None:
    clock.now = now
    text = live_playlist(client, live)
    assert text.startswith("#EXTM3U\n")
    assert tag(text, "EXT-X-MEDIA-SEQUENCE") == str(first)
    assert tag(text, "EXT-X-TARGETDURATION") == "2"
    assert tag(text, "EXT-X-DISCONTINUITY-SEQUENCE") == "0"
    assert uris(text) == [f"seg_{n}.ts" for n in range(first, first + 3)]
    assert text.count("#EXTINF:2.0,") == 3
    for dropped in ("#EXT-X-ENDLIST", "#EXT-X-PLAYLIST-TYPE", "#EXT-X-DISCONTINUITY\n"):
        assert dropped not in text
    assert live.statistics().playlist_requests == 1


@pytest.mark.parametrize(
    ("now", "first", "discontinuity_sequence", "discontinuity_before"),
    [
        (4.0, 2, 0, None),
        (6.0, 3, 0, "seg_5.ts"),  # the wrap to VOD segment 0
        (8.0, 4, 0, "seg_5.ts"),
        (10.0, 5, 1, None),  # the wrap is now the first segment: counted, not tagged
        (14.0, 7, 1, None),
        (16.0, 8, 1, "seg_10.ts"),
        (20.0, 10, 2, None),
        (1_000_000.0, 500_000, 100_000, None),
    ],
)
def test_live_loops_with_discontinuities(
    live: OriginServer,
    client: httpx.Client,
    clock: Clock,
    now: float,
    first: int,
    discontinuity_sequence: int,
    discontinuity_before: str | None,
) -> None:
    clock.now = now
    text = live_playlist(client, live)
    assert tag(text, "EXT-X-MEDIA-SEQUENCE") == str(first)
    assert tag(text, "EXT-X-DISCONTINUITY-SEQUENCE") == str(discontinuity_sequence)
    assert uris(text) == [f"seg_{n}.ts" for n in range(first, first + 3)]
    if discontinuity_before is None:
        assert "#EXT-X-DISCONTINUITY\n" not in text
    else:
        assert text.count("#EXT-X-DISCONTINUITY\n") == 1
        assert f"#EXT-X-DISCONTINUITY\n#EXTINF:2.0,\n{discontinuity_before}\n" in text
    # An independent parser reads the same thing.
    parsed = m3u8.loads(text)
    assert parsed.media_sequence == first
    assert parsed.discontinuity_sequence == discontinuity_sequence
    assert not parsed.is_endlist
    assert [s.discontinuity for s in parsed.segments] == [
        s.uri == discontinuity_before for s in parsed.segments
    ]


def test_live_segments_are_the_mapped_vod_segments(
    live: OriginServer, client: httpx.Client, clock: Clock
) -> None:
    clock.now = 20.0  # published: 13, listed: 10..12
    for msn in range(7, 13):
        response = client.get(live.url_for(f"live/v1/seg_{msn}.ts"))
        assert response.status_code == 200, msn
        assert response.content == seg_bytes("v1", msn % SEGMENTS)
        assert response.headers["content-type"] == "video/mp2t"
    ranged = client.get(live.url_for("live/v1/seg_12.ts"), headers={"Range": "bytes=2-5"})
    assert ranged.status_code == 206
    assert ranged.content == seg_bytes("v1", 2)[2:6]


def test_live_segment_availability(live: OriginServer, client: httpx.Client, clock: Clock) -> None:
    def status(name: str) -> int:
        return client.get(live.url_for(f"live/v0/{name}")).status_code

    assert [status(f"seg_{n}.ts") for n in range(5)] == [200, 200, 200, 404, 404]
    clock.now = 20.0  # published 13, window 10..12, grace back to 7
    assert [status(f"seg_{n}.ts") for n in range(5, 15)] == [404, 404] + [200] * 6 + [404, 404]
    assert status("seg_7.m4s") == 404  # wrong extension
    assert status("seg_07.ts") == 404  # not the canonical name
    assert status("seg_x.ts") == 404
    assert status("other.ts") == 404
    response = client.get(live.url_for("live/v0/seg_13.ts"))
    assert "not available" in response.text


def test_live_initial_segments(root: Path, client: httpx.Client, clock: Clock) -> None:
    settings = LiveSettings(window_segments=3, initial_segments=1)
    with OriginServer(root, live=settings, clock=clock) as server:
        expected = {0.0: [0], 3.9: [0, 1], 4.0: [0, 1, 2], 6.0: [1, 2, 3]}
        for now, msns in expected.items():
            clock.now = now
            assert uris(live_playlist(client, server)) == [f"seg_{n}.ts" for n in msns]
    with OriginServer(root, live=LiveSettings(initial_segments=0), clock=clock) as server:
        clock.now = 0.0
        text = live_playlist(client, server)
        assert uris(text) == []
        assert tag(text, "EXT-X-MEDIA-SEQUENCE") == "0"


def test_live_segment_duration_override(root: Path, client: httpx.Client, clock: Clock) -> None:
    with OriginServer(
        root, live=LiveSettings(window_segments=3, segment_duration=0.5), clock=clock
    ) as server:
        clock.now = 1.0  # 3 + 2 published
        text = live_playlist(client, server)
        assert uris(text) == ["seg_2.ts", "seg_3.ts", "seg_4.ts"]
        assert text.count("#EXTINF:2.0,") == 3  # the playlist keeps the VOD durations


def test_live_uses_vod_durations_exactly(root: Path, client: httpx.Client, clock: Clock) -> None:
    (root / "var").mkdir()
    (root / "var" / "index.m3u8").write_text(media_playlist("v", durations=["0.1", "0.2", "0.3"]))
    with OriginServer(root, live=LiveSettings(window_segments=5, initial_segments=0), clock=clock) as server:
        # Segment n is published once durations 0..n have elapsed: 0.1, 0.3, 0.6, then 0.7, ...
        for now, published in [
            (0.0999, 0),
            (0.1, 1),
            (0.2999, 1),
            (0.1 + 0.2, 2),
            (0.6, 3),
            (0.7, 4),
            (1.2, 6),
        ]:
            clock.now = now
            assert (
                uris(live_playlist(client, server, "live/var/index.m3u8"))
                == [f"seg_{n}.ts" for n in range(published)][-5:]
            ), now


def test_live_end_after_adds_endlist(root: Path, client: httpx.Client, clock: Clock) -> None:
    with OriginServer(root, live=LiveSettings(window_segments=3, end_after=4), clock=clock) as server:
        text = live_playlist(client, server)
        assert "#EXT-X-ENDLIST" not in text
        for now in (2.0, 100.0):
            clock.now = now
            text = live_playlist(client, server)
            assert uris(text) == ["seg_1.ts", "seg_2.ts", "seg_3.ts"]
            assert text.endswith("seg_3.ts\n#EXT-X-ENDLIST\n")
            assert m3u8.loads(text).is_endlist
        assert client.get(server.url_for("live/v0/seg_4.ts")).status_code == 404


def test_live_without_loop_ends_after_the_last_vod_segment(
    root: Path, client: httpx.Client, clock: Clock
) -> None:
    with OriginServer(root, live=LiveSettings(window_segments=3, loop=False), clock=clock) as server:
        clock.now = 1000.0
        text = live_playlist(client, server)
        assert uris(text) == ["seg_2.ts", "seg_3.ts", "seg_4.ts"]
        assert "#EXT-X-DISCONTINUITY\n" not in text
        assert text.endswith("#EXT-X-ENDLIST\n")
        assert client.get(server.url_for("live/v0/seg_5.ts")).status_code == 404


def test_live_master_keeps_relative_variant_uris(live: OriginServer, client: httpx.Client) -> None:
    vod = client.get(live.url_for("master.m3u8")).text
    response = client.get(live.url_for("live/master.m3u8"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.apple.mpegurl"
    assert uris(response.text) == uris(vod) == ["v0/index.m3u8", "v1/index.m3u8"]
    for uri in uris(response.text):
        variant = response.url.join(uri)
        assert variant.path.startswith("/live/")
        text = client.get(variant).text
        assert tag(text, "EXT-X-MEDIA-SEQUENCE") == "0"
        assert "#EXT-X-ENDLIST" not in text


def test_live_master_rewrites_root_relative_uris(live: OriginServer, client: httpx.Client) -> None:
    text = live_playlist(client, live, "live/abs_master.m3u8")
    assert uris(text) == ["/live/v0/index.m3u8", "http://elsewhere.invalid/x.m3u8"]
    assert 'URI="/live/v1/index.m3u8"' in text
    # A session key is not a playlist: it keeps pointing at the VOD file.
    session_key = tag(text, "EXT-X-SESSION-KEY")
    assert session_key is not None
    key_uri = session_key.split('URI="')[1].split('"')[0]
    assert client.get(httpx.URL(live.url_for("live/abs_master.m3u8")).join(key_uri)).content == bytes(
        range(16)
    )


def test_live_byterange_playlist_is_404(live: OriginServer, client: httpx.Client) -> None:
    response = client.get(live.url_for("live/single/index.m3u8"))
    assert response.status_code == 404
    assert "EXT-X-BYTERANGE" in response.text
    assert client.get(live.url_for("live/single/seg_0.ts")).status_code == 404
    assert client.get(live.url_for("single/index.m3u8")).status_code == 200  # VOD still works


def test_live_fmp4_keeps_ext_x_map(live: OriginServer, client: httpx.Client, clock: Clock) -> None:
    url = live.url_for("live/fmp4/index.m3u8")
    text = live_playlist(client, live, "live/fmp4/index.m3u8")
    assert tag(text, "EXT-X-VERSION") == "7"
    assert uris(text) == ["seg_0.m4s", "seg_1.m4s", "seg_2.m4s"]
    assert text.count("#EXT-X-MAP:") == 1
    init_uri = m3u8.loads(text).segments[0].init_section.uri
    init = httpx.URL(url).join(init_uri)
    assert init.path == "/fmp4/init.mp4"
    assert client.get(init).content == b"ftyp....moov...." * 4
    segment = client.get(httpx.URL(url).join("seg_1.m4s"))
    assert segment.content == seg_bytes("fmp4", 1)
    assert segment.headers["content-type"] == "video/mp4"
    clock.now = 6.0  # window 3, 4, 5 (wrap): the init section is repeated after the discontinuity
    text = live_playlist(client, live, "live/fmp4/index.m3u8")
    assert text.count("#EXT-X-MAP:") == 2
    assert '#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI="../../fmp4/init.mp4"\n#EXTINF:2.0,\nseg_5.m4s' in text


def test_live_keeps_ext_x_key_with_explicit_iv(
    live: OriginServer, client: httpx.Client, clock: Clock
) -> None:
    url = httpx.URL(live.url_for("live/enc/index.m3u8"))
    text = live_playlist(client, live, "live/enc/index.m3u8")
    parsed = m3u8.loads(text)
    # Without IV the VOD IV is the VOD media sequence number; it is spelled out for the live copy.
    assert [s.key.iv for s in parsed.segments] == [f"0x{n:032x}" for n in range(3)]
    for segment in parsed.segments:
        assert segment.key.method == "AES-128"
        key_url = url.join(segment.key.uri)
        assert key_url.path == "/keys/key.bin"
        assert client.get(key_url).content == bytes(range(16))
    clock.now = 6.0  # 3 and 4 are clear (METHOD=NONE), 5 wraps to the encrypted VOD segment 0
    text = live_playlist(client, live, "live/enc/index.m3u8")
    assert uris(text) == ["seg_3.ts", "seg_4.ts", "seg_5.ts"]
    assert "METHOD=NONE" not in text  # clear from the start of the window: nothing to say
    assert text.count("#EXT-X-KEY:") == 1
    assert f'#EXT-X-KEY:METHOD=AES-128,URI="../../keys/key.bin",IV=0x{0:032x}\n#EXTINF:2.0,\nseg_5.ts' in text
    clock.now = 4.0  # 2 (encrypted), then 3 and 4 clear: the key is switched off explicitly
    text = live_playlist(client, live, "live/enc/index.m3u8")
    assert text.count("#EXT-X-KEY:METHOD=NONE\n#EXTINF:2.0,\nseg_3.ts") == 1
    assert [s.key.method if s.key else None for s in m3u8.loads(text).segments] == ["AES-128", "NONE", "NONE"]


def test_live_playlists_sharing_a_folder(live: OriginServer, client: httpx.Client, clock: Clock) -> None:
    clock.now = 10.0
    for name in ("a", "b"):
        url = httpx.URL(live.url_for(f"live/flat/{name}.m3u8"))
        text = live_playlist(client, live, f"live/flat/{name}.m3u8")
        assert uris(text) == [f"{name}/seg_{n}.ts" for n in (5, 6, 7)]
        for uri in uris(text):
            msn = int(uri.split("_")[1].split(".")[0])
            assert client.get(url.join(uri)).content == seg_bytes(f"flat-{name}", msn % SEGMENTS)
    assert client.get(live.url_for("live/flat/seg_5.ts")).status_code == 404


def test_freeze_live(live: OriginServer, client: httpx.Client, clock: Clock) -> None:
    clock.now = 4.0
    live.freeze_live(True)
    clock.now = 10.0
    text = live_playlist(client, live)
    assert tag(text, "EXT-X-MEDIA-SEQUENCE") == "2"  # stale
    assert uris(text) == ["seg_2.ts", "seg_3.ts", "seg_4.ts"]
    live.freeze_live(True)  # already frozen: keeps the first freeze time
    assert tag(live_playlist(client, live), "EXT-X-MEDIA-SEQUENCE") == "2"
    # Segments are published by the real clock even while the playlist is stale.
    assert client.get(live.url_for("live/v0/seg_7.ts")).status_code == 200
    live.freeze_live(False)
    assert tag(live_playlist(client, live), "EXT-X-MEDIA-SEQUENCE") == "5"


def test_rollback_live(live: OriginServer, client: httpx.Client, clock: Clock) -> None:
    clock.now = 10.0
    assert tag(live_playlist(client, live), "EXT-X-MEDIA-SEQUENCE") == "5"
    live.rollback_live(2)
    text = live_playlist(client, live)
    assert tag(text, "EXT-X-MEDIA-SEQUENCE") == "3"
    assert uris(text) == ["seg_3.ts", "seg_4.ts", "seg_5.ts"]
    assert tag(text, "EXT-X-DISCONTINUITY-SEQUENCE") == "0"
    assert client.get(live.url_for("live/v0/seg_1.ts")).status_code == 200  # within the grace
    live.rollback_live(2)  # not cumulative
    assert tag(live_playlist(client, live), "EXT-X-MEDIA-SEQUENCE") == "3"
    live.rollback_live(0)
    assert tag(live_playlist(client, live), "EXT-X-MEDIA-SEQUENCE") == "5"
    with pytest.raises(ConfigError):
        live.rollback_live(-1)


def test_live_default_clock_starts_at_zero(root: Path, client: httpx.Client) -> None:
    with OriginServer(root, live=LiveSettings(window_segments=2)) as server:
        text = live_playlist(client, server)
        assert tag(text, "EXT-X-MEDIA-SEQUENCE") == "0"  # the first segment takes 2 s


def test_live_refuses_what_it_cannot_emulate(root: Path, live: OriginServer, client: httpx.Client) -> None:
    (root / "junk.m3u8").write_text("hello\n")
    (root / "zero").mkdir()
    (root / "zero" / "index.m3u8").write_text(media_playlist("seg", durations=["0"] * 3))
    junk = client.get(live.url_for("live/junk.m3u8"))
    assert junk.status_code == 404
    assert "not an HLS playlist" in junk.text
    zero = client.get(live.url_for("live/zero/index.m3u8"))
    assert zero.status_code == 404
    assert "segment_duration" in zero.text
    assert client.get(live.url_for("junk.m3u8")).status_code == 200  # VOD serves any file


def test_content_type_and_kind_helpers() -> None:
    assert content_type_for("a/B.M3U8") == "application/vnd.apple.mpegurl"
    assert content_type_for("x.unknown") == "application/octet-stream"
    assert content_type_for("noext") == "application/octet-stream"
    kinds = {
        p: resource_kind(p) for p in ("i.m3u8", "s.ts", "s.m4s", "init.mp4", "a.aac", "key.bin", "x.key")
    }
    assert kinds == {
        "i.m3u8": "playlist",
        "s.ts": "segment",
        "s.m4s": "segment",
        "init.mp4": "segment",
        "a.aac": "segment",
        "key.bin": "other",
        "x.key": "other",
    }


def test_live_prefix_only_with_live_settings(origin: OriginServer, client: httpx.Client) -> None:
    assert client.get(origin.url_for("live/v0/index.m3u8")).status_code == 404
    assert client.get(origin.url_for("live/master.m3u8")).status_code == 404


def test_live_unknown_paths_are_404(live: OriginServer, client: httpx.Client) -> None:
    for path in ("live", "live/", "live/v0/", "live/nope/index.m3u8", "live/v0/seg0.ts", "live/keys/key.bin"):
        assert client.get(live.url_for(path)).status_code == 404, path


# ------------------------------------------------------------------------------------------------
# Fault injection


def test_fault_status_times(origin: OriginServer, client: httpx.Client) -> None:
    origin.inject("v0/seg1.ts", status=503, times=2)
    url = origin.url_for("v0/seg1.ts")
    first, second = client.get(url), client.get(url)
    assert (first.status_code, second.status_code) == (503, 503)
    assert "injected" in first.text
    assert client.get(url).content == seg_bytes("v0", 1)
    assert client.get(origin.url_for("v1/seg1.ts")).status_code == 200  # suffix "v0/seg1.ts" only


def test_fault_forever_until_cleared(origin: OriginServer, client: httpx.Client) -> None:
    origin.inject(".m3u8", status=500)
    for _ in range(3):
        assert client.get(origin.url_for("v0/index.m3u8")).status_code == 500
        assert client.head(origin.url_for("master.m3u8")).status_code == 500
    assert client.get(origin.url_for("v0/seg0.ts")).status_code == 200
    origin.clear_faults()
    assert client.get(origin.url_for("v0/index.m3u8")).status_code == 200


def test_fault_rules_apply_in_order(origin: OriginServer, client: httpx.Client) -> None:
    origin.inject("seg2.ts", status=404, times=1)
    origin.inject(".ts", status=502)
    url = origin.url_for("v0/seg2.ts")
    assert [client.get(url).status_code for _ in range(2)] == [404, 502]


def test_fault_truncate(origin: OriginServer, client: httpx.Client) -> None:
    data = seg_bytes("v0", 2)
    origin.inject("v0/seg2.ts", truncate_to=10, times=2)
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(origin.url_for("v0/seg2.ts"))
    conn = http.client.HTTPConnection("127.0.0.1", origin.port, timeout=5)
    try:
        conn.request("GET", "/v0/seg2.ts")
        response = conn.getresponse()
        assert response.status == 200
        assert response.headers["Content-Length"] == str(len(data))  # the full length is announced
        with pytest.raises(http.client.IncompleteRead) as info:
            response.read()
        assert info.value.partial == data[:10]
    finally:
        conn.close()
    assert client.get(origin.url_for("v0/seg2.ts")).content == data  # times=2 used up
    stats = origin.statistics()
    assert stats.segment_bytes_sent == 10 + 10 + len(data)


def test_fault_truncate_a_range(origin: OriginServer, client: httpx.Client) -> None:
    origin.inject("seg4.ts", truncate_to=3, times=1)
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(origin.url_for("v0/seg4.ts"), headers={"Range": "bytes=10-29"})
    assert origin.statistics().segment_bytes_sent == 3


def test_fault_delay(origin: OriginServer, client: httpx.Client) -> None:
    origin.inject("seg0.ts", delay=0.2, times=1)
    started = time.monotonic()
    response = client.get(origin.url_for("v0/seg0.ts"))
    assert time.monotonic() - started >= 0.19
    assert response.content == seg_bytes("v0", 0)


def test_fault_delay_makes_a_client_time_out(origin: OriginServer) -> None:
    origin.inject("seg0.ts", delay=0.25, times=1)
    with httpx.Client(timeout=0.05, verify=TLS) as impatient, pytest.raises(httpx.ReadTimeout):
        impatient.get(origin.url_for("v0/seg0.ts"))


def test_fault_delay_then_status(origin: OriginServer, client: httpx.Client) -> None:
    origin.inject("index.m3u8", delay=0.1, status=503, times=1)
    started = time.monotonic()
    assert client.get(origin.url_for("v0/index.m3u8")).status_code == 503
    assert time.monotonic() - started >= 0.09


def test_fault_wrong_content_range(origin: OriginServer, client: httpx.Client) -> None:
    data = seg_bytes("v0", 1)
    origin.inject("seg1.ts", wrong_content_range=True, times=2)
    response = client.get(origin.url_for("v0/seg1.ts"), headers={"Range": "bytes=10-19"})
    assert response.status_code == 206
    assert response.content == data[10:20]
    assert response.headers["content-range"] == f"bytes 11-20/{len(data)}"
    whole = client.get(origin.url_for("v0/seg1.ts"))
    assert whole.status_code == 206
    assert whole.content == data
    assert not whole.headers["content-range"].startswith("bytes 0-")
    fine = client.get(origin.url_for("v0/seg1.ts"), headers={"Range": "bytes=10-19"})
    assert fine.headers["content-range"] == f"bytes 10-19/{len(data)}"


def test_faults_apply_to_live_paths(live: OriginServer, client: httpx.Client) -> None:
    live.inject("/live/v0/index.m3u8", status=500, times=1)
    live.inject("/live/v0/seg_1.ts", truncate_to=5, times=1)
    assert client.get(live.url_for("live/v0/index.m3u8")).status_code == 500
    assert client.get(live.url_for("live/v0/index.m3u8")).status_code == 200
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(live.url_for("live/v0/seg_1.ts"))
    assert client.get(live.url_for("v0/seg1.ts")).status_code == 200  # the VOD path is not affected


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"status": 99}, {"status": 600}, {"truncate_to": -1}, {"delay": -1.0}, {"status": 500, "times": 0}],
)
def test_inject_validation(origin: OriginServer, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        origin.inject("seg0.ts", **kwargs)


# ------------------------------------------------------------------------------------------------
# Stats


def test_stats_split_segment_playlist_and_other_bytes(
    origin: OriginServer, client: httpx.Client, root: Path
) -> None:
    playlist = client.get(origin.url_for("v0/index.m3u8")).content
    segment = client.get(origin.url_for("v0/seg0.ts")).content
    init = client.get(origin.url_for("fmp4/init.mp4")).content
    key = client.get(origin.url_for("keys/key.bin")).content
    missing = client.get(origin.url_for("v0/nope.ts")).content
    client.head(origin.url_for("v0/seg1.ts"))
    ranged = client.get(origin.url_for("v0/seg1.ts"), headers={"Range": "bytes=0-9"}).content
    assert len(ranged) == 10
    stats = origin.statistics()
    assert stats.requests == 7
    assert stats.playlist_bytes_sent == len(playlist) == (root / "v0" / "index.m3u8").stat().st_size
    assert stats.segment_bytes_sent == len(segment) + len(init) + 10
    assert stats.other_bytes_sent == len(key) + len(missing)
    assert stats.bytes_sent == stats.segment_bytes_sent + stats.playlist_bytes_sent + stats.other_bytes_sent
    assert (stats.segment_requests, stats.playlist_requests) == (4, 1)
    assert stats.path_requests == {
        "/v0/index.m3u8": 1,
        "/v0/seg0.ts": 1,
        "/fmp4/init.mp4": 1,
        "/keys/key.bin": 1,
        "/v0/nope.ts": 1,
        "/v0/seg1.ts": 2,
    }
    assert stats.requests_for("/v0/seg1.ts") == 2
    assert stats.requests_for("/never") == 0
    origin.reset_statistics()
    assert origin.statistics() == OriginStatistics()


def test_stats_live(live: OriginServer, client: httpx.Client) -> None:
    text = client.get(live.url_for("live/v0/index.m3u8")).content
    segment = client.get(live.url_for("live/v0/seg_2.ts")).content
    stats = live.statistics()
    assert (stats.playlist_bytes_sent, stats.segment_bytes_sent) == (len(text), len(segment))
    assert stats.path_requests == {"/live/v0/index.m3u8": 1, "/live/v0/seg_2.ts": 1}


def test_stats_snapshot_is_immutable(origin: OriginServer, client: httpx.Client) -> None:
    client.get(origin.url_for("v0/seg0.ts"))
    stats = origin.statistics()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        stats.requests = 0  # type: ignore[misc]
    with pytest.raises(TypeError):
        stats.path_requests["/x"] = 1  # type: ignore[index]
    client.get(origin.url_for("v0/seg0.ts"))
    assert stats.requests == 1  # a snapshot does not move
    assert origin.statistics().requests == 2


def test_stats_are_thread_safe(origin: OriginServer) -> None:
    sizes = [len(seg_bytes("v0", i)) for i in range(SEGMENTS)]

    def worker(index: int) -> int:
        total = 0
        with httpx.Client(timeout=5.0, verify=TLS) as c:
            for n in range(20):
                total += len(c.get(origin.url_for(f"v0/seg{(index + n) % SEGMENTS}.ts")).content)
        return total

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        received = sum(pool.map(worker, range(8)))
    stats = origin.statistics()
    assert stats.requests == 160
    assert stats.segment_requests == 160
    assert stats.segment_bytes_sent == received == 32 * sum(sizes)
    assert sum(stats.path_requests.values()) == 160


def test_log_is_quiet(origin: OriginServer, client: httpx.Client, capfd: pytest.CaptureFixture[str]) -> None:
    client.get(origin.url_for("v0/seg0.ts"))
    client.get(origin.url_for("nope"))
    raw_request(origin, "/../x")
    assert capfd.readouterr() == ("", "")


def test_root_may_be_a_symlink(tmp_path: Path, root: Path, client: httpx.Client) -> None:
    link = tmp_path / "root-link"
    os.symlink(root, link, target_is_directory=True)
    with OriginServer(link) as server:
        assert client.get(server.url_for("v0/seg0.ts")).content == seg_bytes("v0", 0)


# -- CORS: off unless asked ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["master.m3u8", "v0/seg0.ts", "keys/key.bin", "missing.ts"])
def test_no_cors_header_by_default(origin: OriginServer, client: httpx.Client, path: str) -> None:
    # With "*" any website the user visits could read every file under root through the browser.
    response = client.get(origin.url_for(path), headers={"Origin": "https://elsewhere.example"})
    assert "access-control-allow-origin" not in response.headers


def test_cors_when_asked(root: Path, client: httpx.Client) -> None:
    with OriginServer(root, cors=True) as server:
        for path in ("master.m3u8", "v0/seg0.ts", "missing.ts"):
            response = client.get(server.url_for(path), headers={"Origin": "https://elsewhere.example"})
            assert response.headers["access-control-allow-origin"] == "*"


def _serve_with_cli(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> httpx.Response:
    """Run ``p2ploader <argv>`` as typed, GET its VOD master once it serves, then Ctrl-C it."""
    from p2ploader.app.cli import main

    got: list[httpx.Response] = []

    def instead_of_waiting(seconds: float) -> None:
        url = capsys.readouterr().out.split("VOD:", 1)[1].split()[0]
        got.append(httpx.get(url, headers={"Origin": "https://elsewhere.example"}))
        raise KeyboardInterrupt

    monkeypatch.setattr(time, "sleep", instead_of_waiting)
    assert main(argv) == 0
    (response,) = got
    assert response.status_code == 200
    return response


@pytest.mark.parametrize(
    ("options", "cors"),
    [
        (["--root", "{root}"], False),
        (["--root", "{root}", "--cors"], True),
        (["--root", "{root}", "--no-cors"], False),
        ([], True),  # the bundled sample: public test video (see docs/origin.md)
        (["--sample", "fmp4", "--no-cors"], False),
    ],
    ids=["root", "root-cors", "root-no-cors", "sample", "sample-no-cors"],
)
def test_the_origin_command_sends_cors_only_when_asked_or_for_a_sample(
    root: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    options: list[str],
    cors: bool,
) -> None:
    argv = ["origin", "--port", "0", *(o.replace("{root}", str(root)) for o in options)]
    response = _serve_with_cli(argv, capsys, monkeypatch)
    assert ("access-control-allow-origin" in response.headers) is cors
