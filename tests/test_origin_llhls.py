"""The local origin's Low-Latency HLS mode (``/llhls/``, :mod:`p2ploader.testing.llhls`).

The source is real ffmpeg fMP4 (:func:`tests.ffmpeg_streams.make_llhls_stream`: 2 s segments of
four 0.5 s fragments, video and audio muxed, two variants). Most tests drive the origin's clock by
hand and speak real HTTP to it; two run on the real clock (ffmpeg playing the stream, and the
``p2ploader origin --llhls`` command).
"""

from __future__ import annotations

import concurrent.futures
import itertools
import re
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import attrs
import httpx
import m3u8
import pytest

from p2ploader.errors import ConfigError
from p2ploader.sample import sample_path
from p2ploader.testing.llhls import (
    MAX_QUERY_CHARS,
    DirectiveError,
    FragmentedMp4Error,
    LowLatencySegment,
    LowLatencyTimeline,
    advance_part_limit,
    fragments_of,
    group_fragments,
    parse_directives,
    parse_init,
)
from p2ploader.testing.origin import LiveSettings, LowLatencySettings, OriginServer
from tests.ffmpeg_streams import (
    LLHLS_PART_SECONDS,
    LLHLS_SEGMENT_SECONDS,
    ffmpeg_or_skip,
    llhls_stream,  # noqa: F401
    make_llhls_stream,
)

TLS = ssl.create_default_context()
PARTS_PER_SEGMENT = round(LLHLS_SEGMENT_SECONDS / LLHLS_PART_SECONDS)
INITIAL = 2  # segments that exist at clock 0 in the driven-clock tests
PLAYLIST = "llhls/high/index.m3u8"


class Clock:
    """A clock the test moves by hand (seconds since the live stream started)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def part_due(msn: int, part: int) -> float:
    """When part ``part`` of segment ``msn`` is published on the driven clock (seconds)."""
    return (msn - INITIAL) * LLHLS_SEGMENT_SECONDS + (part + 1) * LLHLS_PART_SECONDS


# --------------------------------------------------------------------------------------------------
# A small reader of what the origin writes (independent of the loader's parser, on purpose)


@attrs.define
class ListedPart:
    duration: float
    uri: str
    independent: bool


@attrs.define
class ListedSegment:
    msn: int
    parts: list[ListedPart]
    date: str | None
    duration: float | None = None  # None: in progress (parts only)
    uri: str | None = None


@attrs.define
class Listed:
    version: int
    target_duration: int
    server_control: dict[str, str]
    part_target: float
    media_sequence: int
    segments: list[ListedSegment]
    hint: str | None
    reports: list[dict[str, str]]
    skipped: int | None
    ended: bool


def attributes(text: str) -> dict[str, str]:
    return {m.group(1): m.group(2).strip('"') for m in re.finditer(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)', text)}


def read_playlist(text: str) -> Listed:
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U"
    values: dict[str, str] = {}
    segments: list[ListedSegment] = []
    reports: list[dict[str, str]] = []
    hint: str | None = None
    skipped: int | None = None
    current: ListedSegment | None = None
    msn = None

    def open_segment() -> ListedSegment:
        nonlocal current
        if current is None:
            assert msn is not None
            current = ListedSegment(msn=msn + len(segments) + (skipped or 0), parts=[], date=None)
        return current

    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name == "#EXT-X-MEDIA-SEQUENCE":
            msn = int(value)
        elif name in ("#EXT-X-VERSION", "#EXT-X-TARGETDURATION", "#EXT-X-SERVER-CONTROL", "#EXT-X-PART-INF"):
            values[name] = value
        elif name == "#EXT-X-SKIP":
            skipped = int(attributes(value)["SKIPPED-SEGMENTS"])
        elif name == "#EXT-X-PROGRAM-DATE-TIME":
            open_segment().date = value
        elif name == "#EXT-X-PART":
            part = attributes(value)
            open_segment().parts.append(
                ListedPart(float(part["DURATION"]), part["URI"], part.get("INDEPENDENT") == "YES")
            )
        elif name == "#EXTINF":
            open_segment().duration = float(value.rstrip(","))
        elif line and not line.startswith("#"):
            segment = open_segment()
            segment.uri = line
            segments.append(segment)
            current = None
        elif name == "#EXT-X-PRELOAD-HINT":
            hint_attributes = attributes(value)
            assert hint_attributes["TYPE"] == "PART"
            hint = hint_attributes["URI"]
        elif name == "#EXT-X-RENDITION-REPORT":
            reports.append(attributes(value))
    if current is not None:
        segments.append(current)
    return Listed(
        version=int(values["#EXT-X-VERSION"]),
        target_duration=int(values["#EXT-X-TARGETDURATION"]),
        server_control=attributes(values["#EXT-X-SERVER-CONTROL"]),
        part_target=float(attributes(values["#EXT-X-PART-INF"])["PART-TARGET"]),
        media_sequence=msn if msn is not None else -1,
        segments=segments,
        hint=hint,
        reports=reports,
        skipped=skipped,
        ended="#EXT-X-ENDLIST" in lines,
    )


# --------------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10.0, verify=TLS) as c:
        yield c


def make_origin(root: Path, clock: Clock, **settings: Any) -> OriginServer:
    """An origin (not started) on the driven clock: ``INITIAL`` segments at clock 0, a window of
    ``window_segments`` (4), ``live`` more :class:`LiveSettings`, the rest :class:`LowLatencySettings`."""
    window = settings.pop("window_segments", 4)
    live = LiveSettings(window_segments=window, initial_segments=INITIAL, **settings.pop("live", {}))
    return OriginServer(root, live=live, clock=clock, low_latency=LowLatencySettings(**settings))


@pytest.fixture
def origin(llhls_stream: Path, clock: Clock) -> Iterator[OriginServer]:  # noqa: F811
    with make_origin(llhls_stream, clock) as server:
        yield server


def get_playlist(client: httpx.Client, origin: OriginServer, query: str = "") -> Listed:
    response = client.get(origin.url_for(PLAYLIST + query))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/vnd.apple.mpegurl"
    return read_playlist(response.text)


def in_background(call: Any) -> concurrent.futures.Future[Any]:
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    future = pool.submit(call)
    pool.shutdown(wait=False)
    return future


# --------------------------------------------------------------------------------------------------
# Parts and segments


def test_parts_concatenate_to_the_segment_and_their_durations_add_up(
    origin: OriginServer,
    clock: Clock,
    client: httpx.Client,
    llhls_stream: Path,  # noqa: F811
) -> None:
    clock.now = 2 * LLHLS_SEGMENT_SECONDS  # segments 0..3 complete
    listed = get_playlist(client, origin)
    complete = [segment for segment in listed.segments if segment.uri is not None]
    assert [segment.msn for segment in complete] == [0, 1, 2, 3]
    with_parts = [segment for segment in complete if segment.parts]
    assert with_parts  # the last three target durations carry their parts
    for segment in with_parts:
        assert segment.uri is not None and segment.duration is not None
        whole = client.get(origin.url_for(f"llhls/high/{segment.uri}"))
        assert whole.status_code == 200
        vod = (llhls_stream / "high" / f"seg_{segment.msn % 6:03d}.m4s").read_bytes()
        assert whole.content == vod
        bodies = []
        for part in segment.parts:
            response = client.get(origin.url_for(f"llhls/high/{part.uri}"))
            assert response.status_code == 200
            assert response.headers["content-type"] == "video/mp4"
            bodies.append(response.content)
        assert b"".join(bodies) == vod
        assert all(body[4:8] == b"moof" for body in bodies)  # each part is whole fragments
        assert len(segment.parts) == PARTS_PER_SEGMENT
        assert sum(part.duration for part in segment.parts) == pytest.approx(segment.duration, abs=1e-4)
        # A key frame starts each segment (GOP = segment) and nothing else: read from the trun flags.
        assert [part.independent for part in segment.parts] == [True] + [False] * (PARTS_PER_SEGMENT - 1)


def test_parts_are_the_fragments_found_in_the_boxes(llhls_stream: Path) -> None:  # noqa: F811
    tracks = parse_init((llhls_stream / "high" / "init.mp4").read_bytes())
    assert sorted(track.handler for track in tracks.values()) == ["soun", "vide"]
    data = (llhls_stream / "high" / "seg_001.m4s").read_bytes()
    fragments = fragments_of(data, tracks)
    assert [fragment.duration for fragment in fragments] == [Fraction(1, 2)] * PARTS_PER_SEGMENT
    assert fragments[0].offset == 0
    for before, after in itertools.pairwise(fragments):
        assert before.offset + before.length == after.offset
    assert fragments[-1].offset + fragments[-1].length == len(data)


def box(kind: bytes, payload: bytes) -> bytes:
    return (8 + len(payload)).to_bytes(4, "big") + kind + payload


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "no moof"),
        (box(b"mdat", b"x"), "no moof in front"),
        (b"\x00\x00\x00\x10moof", "declares 16 bytes"),
        (b"\x00\x00\x00\x04moof", "declares 4 bytes"),
        (b"\x00\x00\x00", "truncated box header"),
        (b"\x00\x00\x00\x01mdat\x00\x00", "truncated 64-bit"),
        (box(b"moof", box(b"traf", b"")), "has no tfhd"),
        (box(b"moof", b""), "has no traf"),
        (box(b"moof", box(b"traf", box(b"tfhd", bytes(4) + (9).to_bytes(4, "big")))), "track 9"),
        (box(b"moof", box(b"traf", box(b"tfhd", bytes(8)))) + box(b"moof", b""), "follows a moof"),
    ],
)
def test_malformed_segments_raise_a_typed_error(data: bytes, message: str) -> None:
    tracks = {0: parse_init_track()}
    with pytest.raises(FragmentedMp4Error, match=message):
        fragments_of(data, tracks)


def parse_init_track() -> Any:
    from p2ploader.testing.llhls import TrackInfo

    return TrackInfo(track_id=0, timescale=1000)


def test_a_trun_larger_than_its_box_is_refused() -> None:
    tfhd = box(b"tfhd", (0x08).to_bytes(4, "big") + bytes(4) + (10).to_bytes(4, "big"))
    trun = box(b"trun", (0x100).to_bytes(4, "big") + (1000).to_bytes(4, "big") + bytes(8))
    data = box(b"moof", box(b"traf", tfhd + trun)) + box(b"mdat", b"")
    with pytest.raises(FragmentedMp4Error, match="ends before its sample table"):
        fragments_of(data, {0: parse_init_track()})


def test_an_init_section_without_moov_is_refused() -> None:
    with pytest.raises(FragmentedMp4Error, match="no moov"):
        parse_init(box(b"ftyp", b"isom"))


def test_a_segment_in_progress_is_not_served_whole_but_its_published_parts_are(
    origin: OriginServer, clock: Clock, client: httpx.Client
) -> None:
    clock.now = part_due(INITIAL, 1)  # parts 0 and 1 of segment 2
    assert client.get(origin.url_for("llhls/high/seg_2.m4s")).status_code == 404
    assert client.get(origin.url_for("llhls/high/seg_2.1.m4s")).status_code == 200
    assert client.get(origin.url_for("llhls/high/seg_2.3.m4s")).status_code == 404  # not the hinted one
    assert client.get(origin.url_for("llhls/high/seg_2.9.m4s")).status_code == 404  # no such part
    assert client.get(origin.url_for("llhls/high/seg_2.1.ts")).status_code == 404  # wrong suffix


def test_a_vod_playlist_that_is_not_fragmented_mp4_says_why(clock: Clock) -> None:
    with make_origin(sample_path("ts"), clock) as origin, httpx.Client(verify=TLS) as client:
        response = client.get(origin.url_for("llhls/240p/index.m3u8"))
    assert response.status_code == 404
    assert "no EXT-X-MAP" in response.text


# --------------------------------------------------------------------------------------------------
# The playlist over time


@pytest.mark.parametrize("tenths", range(0, 100, 3))
def test_the_playlist_is_what_rfc_8216bis_requires(
    origin: OriginServer, clock: Clock, client: httpx.Client, tenths: int
) -> None:
    clock.now = tenths / 10
    listed = get_playlist(client, origin)
    control = listed.server_control
    assert listed.version >= 9
    assert control["CAN-BLOCK-RELOAD"] == "YES"
    assert float(control["CAN-SKIP-UNTIL"]) >= 6 * listed.target_duration
    assert float(control["PART-HOLD-BACK"]) >= 2 * listed.part_target
    assert float(control["PART-HOLD-BACK"]) == pytest.approx(3 * listed.part_target)  # the default
    assert listed.part_target == LLHLS_PART_SECONDS
    parts = [part for segment in listed.segments for part in segment.parts]
    assert all(part.duration <= listed.part_target for part in parts)
    assert all(
        round(segment.duration) <= listed.target_duration
        for segment in listed.segments
        if segment.duration is not None
    )
    # The edge the clock says: complete segments, then the published parts of the next one.
    elapsed = clock.now
    complete = INITIAL + int(elapsed // LLHLS_SEGMENT_SECONDS)
    published_parts = int((elapsed % LLHLS_SEGMENT_SECONDS) // LLHLS_PART_SECONDS)
    whole = [segment.msn for segment in listed.segments if segment.uri is not None]
    assert whole == list(range(max(complete - 4, 0), complete))
    assert listed.media_sequence == whole[0]
    last = listed.segments[-1]
    if published_parts:
        assert last.uri is None and last.msn == complete and len(last.parts) == published_parts
        expected_hint = f"seg_{complete}.{published_parts}.m4s"
    else:
        assert last.uri is not None
        expected_hint = f"seg_{complete}.0.m4s"
    assert listed.hint == expected_hint  # the next part, of this segment or the next one
    # Parts are listed for the segments that end within three target durations of the end.
    end = elapsed // LLHLS_PART_SECONDS * LLHLS_PART_SECONDS  # the end of the last part
    for segment in listed.segments:
        segment_end = (segment.msn - INITIAL + 1) * LLHLS_SEGMENT_SECONDS
        if segment.uri is not None:
            assert bool(segment.parts) == (segment_end > end - 3 * listed.target_duration), segment.msn
    # Program date-times advance with the segments.
    assert all(segment.date is not None for segment in listed.segments)
    # The other variant of the master is reported at the same edge.
    assert listed.reports == [
        {
            "URI": "../low/index.m3u8",
            "LAST-MSN": str(complete if published_parts else complete - 1),
            "LAST-PART": str(published_parts - 1 if published_parts else PARTS_PER_SEGMENT - 1),
        }
    ]
    # The m3u8 package (another reader) accepts it and sees the same parts.
    parsed = m3u8.loads(client.get(origin.url_for(PLAYLIST)).text)
    assert parsed.part_inf.part_target == listed.part_target
    assert len([p for s in parsed.segments for p in s.parts]) == len(parts)


def test_program_date_times_follow_the_clock(
    origin: OriginServer, clock: Clock, client: httpx.Client
) -> None:

    clock.now = 5.0
    listed = get_playlist(client, origin)
    dates = [
        datetime.fromisoformat(segment.date.replace("Z", "+00:00"))
        for segment in listed.segments
        if segment.date
    ]
    steps = {(after - before).total_seconds() for before, after in itertools.pairwise(dates)}
    assert steps == {float(LLHLS_SEGMENT_SECONDS)}


def test_the_master_playlist_points_at_the_llhls_copies(origin: OriginServer, client: httpx.Client) -> None:
    response = client.get(origin.url_for("llhls/master.m3u8"))
    assert response.status_code == 200
    uris = [line for line in response.text.splitlines() if line and not line.startswith("#")]
    assert uris == ["high/index.m3u8", "low/index.m3u8"]


def test_an_ended_stream_lists_no_hint_and_never_blocks(
    llhls_stream: Path,  # noqa: F811
    clock: Clock,
    client: httpx.Client,
) -> None:
    with make_origin(llhls_stream, clock, live={"loop": False}) as origin:
        clock.now = 100.0
        listed = get_playlist(client, origin, "?_HLS_msn=6&_HLS_part=0")
        assert listed.ended and listed.hint is None
        assert listed.segments[-1].msn == 5 and listed.segments[-1].uri is not None


def test_a_looping_stream_marks_the_wrap_as_a_discontinuity(
    origin: OriginServer, clock: Clock, client: httpx.Client
) -> None:
    clock.now = part_due(6, 0)  # segment 6 (VOD segment 0 again) has its first part
    text = client.get(origin.url_for(PLAYLIST)).text
    wrap = text.index("#EXT-X-DISCONTINUITY\n")
    assert text.index('URI="seg_6.0.m4s"') > wrap > text.index("seg_5.m4s")
    assert '#EXT-X-MAP:URI="../../high/init.mp4"' in text[wrap:]


# --------------------------------------------------------------------------------------------------
# Blocking reload


def test_a_blocking_reload_returns_as_soon_as_the_clock_publishes_the_part(
    origin: OriginServer, clock: Clock, client: httpx.Client
) -> None:
    clock.now = part_due(3, 0)
    query = "?_HLS_msn=3&_HLS_part=2"
    future = in_background(lambda: client.get(origin.url_for(PLAYLIST + query)))
    time.sleep(0.3)
    clock.now = part_due(3, 1)  # one part later: still not the one asked for
    origin.clock_changed()
    time.sleep(0.3)
    assert not future.done()
    clock.now = part_due(3, 2)
    started = time.monotonic()
    origin.clock_changed()
    response = future.result(timeout=5)
    assert time.monotonic() - started < 0.25
    assert response.status_code == 200
    listed = read_playlist(response.text)
    assert listed.segments[-1].msn == 3 and len(listed.segments[-1].parts) == 3
    assert listed.hint == "seg_3.3.m4s"


def test_a_held_request_notices_a_driven_clock_nobody_reported(
    origin: OriginServer, clock: Clock, client: httpx.Client
) -> None:
    clock.now = part_due(3, 0)
    future = in_background(lambda: client.get(origin.url_for(PLAYLIST + "?_HLS_msn=3&_HLS_part=1")))
    time.sleep(0.2)
    assert not future.done()
    clock.now = part_due(3, 1)  # no clock_changed(): the held request re-reads the clock itself
    assert future.result(timeout=2).status_code == 200


def test_a_blocking_reload_for_a_segment_waits_for_the_whole_segment(
    origin: OriginServer, clock: Clock, client: httpx.Client
) -> None:
    clock.now = part_due(3, 0)
    future = in_background(lambda: client.get(origin.url_for(PLAYLIST + "?_HLS_msn=3")))
    clock.now = part_due(3, 2)
    origin.clock_changed()
    time.sleep(0.3)
    assert not future.done()
    clock.now = part_due(3, 3)  # the last part completes segment 3
    origin.clock_changed()
    listed = read_playlist(future.result(timeout=5).text)
    assert listed.segments[-1].msn == 3 and listed.segments[-1].uri == "seg_3.m4s"


def test_a_published_part_or_an_older_segment_is_answered_at_once(
    origin: OriginServer, clock: Clock, client: httpx.Client
) -> None:
    clock.now = part_due(3, 1)
    started = time.monotonic()
    for query in ("?_HLS_msn=3&_HLS_part=1", "?_HLS_msn=1", "?_HLS_msn=0&_HLS_part=7"):
        assert client.get(origin.url_for(PLAYLIST + query)).status_code == 200
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("?_HLS_msn=6", "too far"),  # the last segment is 2: more than two beyond it
        ("?_HLS_msn=3&_HLS_part=7", "too far"),  # 7 parts past the last one (limit: 6)
        ("?_HLS_part=1", "needs _HLS_msn"),
        ("?_HLS_msn=abc", "decimal integer"),
        ("?_HLS_msn=-1", "decimal integer"),
        ("?_HLS_msn=01", "decimal integer"),
        ("?_HLS_msn=1&_HLS_msn=2", "twice"),
        ("?_HLS_skip=NO", "YES or v2"),
        ("?x=" + "a" * MAX_QUERY_CHARS, "longer than"),
        ("?" + "&".join(f"f{i}=1" for i in range(20)), "more than 16 fields"),
    ],
)
def test_bad_or_too_far_directives_get_400(
    origin: OriginServer, clock: Clock, client: httpx.Client, query: str, reason: str
) -> None:
    clock.now = part_due(3, 0) - LLHLS_PART_SECONDS  # segments 0..2 complete, no part of 3 yet
    started = time.monotonic()
    response = client.get(origin.url_for(PLAYLIST + query))
    assert response.status_code == 400
    assert reason in response.text
    assert time.monotonic() - started < 1.0


def test_the_advance_part_limit_is_three_seconds_of_parts() -> None:
    assert advance_part_limit(Fraction(1, 2)) == 6
    assert advance_part_limit(Fraction(1)) == 3
    assert advance_part_limit(Fraction(2)) == 3


def test_a_part_at_the_advance_limit_is_held_not_refused(
    llhls_stream: Path,  # noqa: F811
    clock: Clock,
    client: httpx.Client,
) -> None:
    with make_origin(llhls_stream, clock, block_timeout=0.2) as origin:
        clock.now = part_due(3, 0) - LLHLS_PART_SECONDS  # last part: 2.3
        response = client.get(origin.url_for(PLAYLIST + "?_HLS_msn=4&_HLS_part=1"))  # 6 parts on
        assert response.status_code == 503  # held, then timed out: not a 400


def test_a_blocking_reload_not_satisfied_in_time_gets_503(
    llhls_stream: Path,  # noqa: F811
    clock: Clock,
    client: httpx.Client,
) -> None:
    with make_origin(llhls_stream, clock, block_timeout=0.3) as origin:
        clock.now = part_due(3, 0)
        started = time.monotonic()
        response = client.get(origin.url_for(PLAYLIST + "?_HLS_msn=3&_HLS_part=1"))
        elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert 0.3 <= elapsed < 2.0


def test_by_default_a_request_is_held_three_target_durations(
    origin: OriginServer, clock: Clock, client: httpx.Client
) -> None:
    assert LowLatencySettings().hold_limit(LLHLS_SEGMENT_SECONDS) == 3 * LLHLS_SEGMENT_SECONDS
    clock.now = part_due(3, 0)
    started = time.monotonic()
    response = client.get(origin.url_for(PLAYLIST + "?_HLS_msn=3&_HLS_part=1"))
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert 3 * LLHLS_SEGMENT_SECONDS <= elapsed < 3 * LLHLS_SEGMENT_SECONDS + 2


def test_held_requests_are_bounded(llhls_stream: Path, clock: Clock) -> None:  # noqa: F811
    assert LowLatencySettings().max_held_requests == 64
    with (
        make_origin(llhls_stream, clock, max_held_requests=1) as origin,
        httpx.Client(verify=TLS, timeout=10) as first,
        httpx.Client(verify=TLS, timeout=10) as second,
    ):
        clock.now = part_due(3, 0)
        held = in_background(lambda: first.get(origin.url_for(PLAYLIST + "?_HLS_msn=3&_HLS_part=1")))
        time.sleep(0.3)
        refused = second.get(origin.url_for("llhls/low/index.m3u8?_HLS_msn=3&_HLS_part=1"))
        assert refused.status_code == 503 and "too many held requests" in refused.text
        assert not held.done()
        clock.now = part_due(3, 1)
        origin.clock_changed()
        assert held.result(timeout=5).status_code == 200


def test_stopping_the_origin_releases_held_requests(llhls_stream: Path, clock: Clock) -> None:  # noqa: F811
    origin = make_origin(llhls_stream, clock)
    origin.start()
    with httpx.Client(verify=TLS, timeout=10) as client:
        clock.now = part_due(3, 0)
        held = in_background(lambda: client.get(origin.url_for(PLAYLIST + "?_HLS_msn=3&_HLS_part=1")))
        time.sleep(0.2)
        started = time.monotonic()
        origin.stop()
        try:
            response = held.result(timeout=5)
        except httpx.HTTPError:
            pass  # the connection was closed first
        else:
            assert response.status_code == 503
        assert time.monotonic() - started < 3.0


def test_the_hinted_part_is_held_until_published_then_served(
    origin: OriginServer, clock: Clock, client: httpx.Client
) -> None:
    clock.now = part_due(3, 1)
    listed = get_playlist(client, origin)
    assert listed.hint == "seg_3.2.m4s"
    future = in_background(lambda: client.get(origin.url_for(f"llhls/high/{listed.hint}")))
    time.sleep(0.3)
    assert not future.done()
    clock.now = part_due(3, 2)
    origin.clock_changed()
    held = future.result(timeout=5)
    assert held.status_code == 200
    clock.now = part_due(4, 0)
    parts = [client.get(origin.url_for(f"llhls/high/seg_3.{k}.m4s")).content for k in range(4)]
    assert parts[2] == held.content
    assert b"".join(parts) == client.get(origin.url_for("llhls/high/seg_3.m4s")).content


# --------------------------------------------------------------------------------------------------
# Delta updates


def test_a_delta_update_skips_what_is_older_than_can_skip_until(
    llhls_stream: Path,  # noqa: F811
    clock: Clock,
    client: httpx.Client,
) -> None:
    with make_origin(llhls_stream, clock, window_segments=10) as origin:
        clock.now = part_due(12, 1)  # segments 2..11 listed, segment 12 in progress (1 s of it)
        full = get_playlist(client, origin)
        delta = get_playlist(client, origin, "?_HLS_skip=YES")
        skip_until = float(full.server_control["CAN-SKIP-UNTIL"])
    assert full.skipped is None
    assert delta.media_sequence == full.media_sequence == 2
    # The playlist ends 1 s into segment 12 (t = 21 s); segments starting more than 12 s before
    # that (segments 2..5, starting at 0, 2, 4 and 6 s... and 8 s is 13 s before) are skipped.
    end = 21.0
    expected = [s.msn for s in full.segments if end - (s.msn - INITIAL) * LLHLS_SEGMENT_SECONDS > skip_until]
    assert delta.skipped == len(expected) == 5
    assert [s.msn for s in delta.segments] == [s.msn for s in full.segments][len(expected) :]
    assert delta.segments == full.segments[len(expected) :]
    assert delta.hint == full.hint and delta.version >= 9


def test_a_delta_update_of_a_short_playlist_skips_nothing(
    origin: OriginServer, clock: Clock, client: httpx.Client
) -> None:
    clock.now = 3.0
    assert get_playlist(client, origin, "?_HLS_skip=YES").skipped == 0


def test_directive_parsing_ignores_other_parameters() -> None:
    directives = parse_directives("token=abc&_HLS_msn=5&_HLS_part=0&_HLS_skip=v2&_HLS_other=1")
    assert (directives.msn, directives.part, directives.skip) == (5, 0, "v2")
    with pytest.raises(DirectiveError):
        parse_directives("_HLS_part=0")


# --------------------------------------------------------------------------------------------------
# Settings


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"part_hold_back_parts": 1.5}, "part_hold_back_parts"),
        ({"part_hold_back_parts": True}, "part_hold_back_parts"),
        ({"block_timeout": 0}, "block_timeout"),
        ({"block_timeout": float("inf")}, "block_timeout"),
        ({"max_held_requests": 0}, "max_held_requests"),
        ({"part_duration": 0}, "part_duration"),
        ({"part_duration": float("nan")}, "part_duration"),
    ],
)
def test_bad_settings_are_a_config_error(settings: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        LowLatencySettings(**settings)
    assert raised.value.key == key


def test_part_hold_back_follows_its_setting(llhls_stream: Path, clock: Clock, client: httpx.Client) -> None:  # noqa: F811
    with make_origin(llhls_stream, clock, part_hold_back_parts=2) as origin:
        listed = get_playlist(client, origin)
    assert float(listed.server_control["PART-HOLD-BACK"]) == 2 * listed.part_target


def test_part_durations_are_scaled_to_the_segment_duration() -> None:
    fragments = tuple(
        attrs.evolve(fragment_template(), offset=i, duration=Fraction(d))
        for i, d in enumerate(("0.4", "0.6"))
    )
    segment = LowLatencySegment(
        duration=Fraction(3),
        extinf="#EXTINF:3,",
        ext=".m4s",
        discontinuity=False,
        init=None,
        extra=(),
        parts=fragments,
    )
    assert segment.part_ends == (Fraction(6, 5), Fraction(3))
    timeline = LowLatencyTimeline(segments=(segment,), initial=1, limit=None)
    assert timeline.edge(1.2).parts == 1 and timeline.edge(1.19).parts == 0
    assert timeline.edge(3.0).complete == 2


def fragment_template() -> Any:
    from p2ploader.testing.llhls import Fragment

    return Fragment(offset=0, length=1, duration=Fraction(1), independent=True)


# --------------------------------------------------------------------------------------------------
# Real clock: ffmpeg plays it, and the command serves it


def test_ffmpeg_plays_the_llhls_stream_in_real_time(llhls_stream: Path) -> None:  # noqa: F811
    ffmpeg = ffmpeg_or_skip()
    live = LiveSettings(window_segments=4, initial_segments=1)
    with OriginServer(llhls_stream, live=live, low_latency=LowLatencySettings()) as origin:
        started = time.monotonic()
        result = subprocess.run(
            [
                ffmpeg,
                "-v",
                "error",
                "-i",
                origin.url_for("llhls/high/index.m3u8"),
                "-t",
                "4",
                "-f",
                "null",
                "-",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        elapsed = time.monotonic() - started
        requested = origin.statistics().path_requests
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    # One segment exists at the start: the rest of the 4 s had to be published while it played.
    assert elapsed >= 2.0
    assert requested.get("/llhls/high/seg_1.m4s", 0) >= 1


def test_the_origin_command_serves_llhls_with_blocking_reload(tmp_path: Path, llhls_stream: Path) -> None:  # noqa: F811
    root = tmp_path / "stream"
    shutil.copytree(llhls_stream, root)
    code = "import sys; from p2ploader.app.cli import main; sys.exit(main(sys.argv[1:]))"
    process = subprocess.Popen(
        [sys.executable, "-u", "-c", code, "origin", "--root", str(root), "--port", "0", "--llhls"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = None
        for _ in range(4):
            line = process.stdout.readline()
            if line.startswith("LL-HLS: "):
                url = line.removeprefix("LL-HLS: ").strip()
                break
        assert url is not None and url.endswith("/llhls/master.m3u8")
        media = url.replace("master.m3u8", "high/index.m3u8")
        with httpx.Client(verify=TLS, timeout=10) as client:
            listed = read_playlist(client.get(media).text)
            assert listed.hint is not None
            msn, part = (int(n) for n in listed.hint.removeprefix("seg_").removesuffix(".m4s").split("."))
            started = time.monotonic()
            response = client.get(f"{media}?_HLS_msn={msn}&_HLS_part={part}")
            elapsed = time.monotonic() - started
        assert response.status_code == 200
        assert elapsed < LLHLS_PART_SECONDS + 0.5  # held until the next part, not a target duration
        after = read_playlist(response.text)
        assert after.segments[-1].parts and after.segments[-1].parts[-1].uri == listed.hint
    finally:
        process.terminate()
        process.wait(timeout=10)


# --------------------------------------------------------------------------------------------------
# Box parsing corners (synthetic boxes: what ffmpeg does not write here)


def full_box(kind: bytes, flags: int, fields: bytes) -> bytes:
    return box(kind, flags.to_bytes(4, "big") + fields)


def word(value: int) -> bytes:
    return value.to_bytes(4, "big")


NON_SYNC = 0x0001_0000


def init_with_trex(default_duration: int, default_flags: int) -> bytes:
    tkhd = full_box(b"tkhd", 0, bytes(8) + word(1) + bytes(60))
    mdhd = full_box(b"mdhd", 0, bytes(8) + word(1000) + bytes(8))
    hdlr = full_box(b"hdlr", 0, bytes(4) + b"vide" + bytes(13))
    trak = box(b"trak", tkhd + box(b"mdia", mdhd + hdlr))
    trex = full_box(b"trex", 0, word(1) + word(1) + word(default_duration) + word(0) + word(default_flags))
    return box(b"ftyp", b"iso6") + box(b"moov", trak + box(b"mvex", trex))


def test_durations_and_flags_fall_back_on_the_trex_defaults() -> None:
    tracks = parse_init(init_with_trex(40, NON_SYNC))
    assert tracks[1].handler == "vide" and tracks[1].default_duration == 40
    tfhd = full_box(b"tfhd", 0, word(1))  # no defaults of its own
    trun = full_box(b"trun", 0, word(5))  # five samples, nothing per sample
    fragment = box(b"moof", box(b"traf", tfhd + trun)) + box(b"mdat", b"x")
    (only,) = fragments_of(fragment, tracks)
    assert only.duration == Fraction(200, 1000)
    assert not only.independent  # the trex says every sample is a non-sync sample


def test_per_sample_flags_and_durations_are_read() -> None:
    tracks = parse_init(init_with_trex(0, NON_SYNC))
    tfhd = full_box(b"tfhd", 0, word(1))
    # duration (0x100) and flags (0x400) per sample: a sync sample first, then a non-sync one
    samples = word(30) + word(0) + word(50) + word(NON_SYNC)
    trun = full_box(b"trun", 0x500, word(2) + samples)
    fragment = box(b"moof", box(b"traf", tfhd + trun)) + box(b"mdat", b"")
    (only,) = fragments_of(fragment, tracks)
    assert only.duration == Fraction(80, 1000) and only.independent


def test_large_and_open_ended_box_sizes_are_understood() -> None:
    tracks = parse_init(init_with_trex(10, 0))
    moof = box(b"moof", box(b"traf", full_box(b"tfhd", 0, word(1)) + full_box(b"trun", 0, word(1))))
    large_mdat = (1).to_bytes(4, "big") + b"mdat" + (16 + 3).to_bytes(8, "big") + b"abc"
    open_ended = (0).to_bytes(4, "big") + b"mdat" + b"to the end"
    fragments = fragments_of(box(b"styp", b"msdh") + moof + large_mdat + moof + open_ended, tracks)
    assert [(f.offset, f.independent) for f in fragments] == [(0, True), (len(moof) + 12 + 19, True)]
    assert fragments[1].offset + fragments[1].length == 12 + 2 * len(moof) + 19 + 18


def test_the_segment_in_progress_counts_for_the_msn_limit_once_it_has_a_part(
    llhls_stream: Path,  # noqa: F811
    clock: Clock,
    client: httpx.Client,
) -> None:
    with make_origin(llhls_stream, clock, block_timeout=0.2) as origin:
        clock.now = part_due(3, 0)  # segments 0..2 complete, segment 3 has its first part
        assert client.get(origin.url_for(PLAYLIST + "?_HLS_msn=5")).status_code == 503  # held
        assert client.get(origin.url_for(PLAYLIST + "?_HLS_msn=6")).status_code == 400


def test_a_forced_segment_duration_scales_the_parts_and_the_extinf(
    llhls_stream: Path,  # noqa: F811
    clock: Clock,
    client: httpx.Client,
) -> None:
    with make_origin(llhls_stream, clock, live={"segment_duration": 4.0}) as origin:
        clock.now = 4.0 + 1.0  # segment 2 done at 4 s, segment 3 has its first part at 5 s
        listed = get_playlist(client, origin)
    assert listed.part_target == 1.0
    assert listed.segments[-1].msn == 3 and len(listed.segments[-1].parts) == 1
    for segment in listed.segments:
        if segment.uri is not None:
            assert segment.duration == 4.0
            if segment.parts:
                assert sum(part.duration for part in segment.parts) == pytest.approx(4.0)


# --------------------------------------------------------------------------------------------------
# Parts of several fragments


def test_fragments_are_joined_into_parts_of_the_asked_duration(
    llhls_stream: Path,  # noqa: F811
    clock: Clock,
    client: httpx.Client,
) -> None:
    assert LowLatencySettings().part_duration is None  # the default: one part per fragment
    with make_origin(llhls_stream, clock, part_duration=1.0) as origin:
        clock.now = part_due(4, 0)  # segments 0..3 complete; 0.5 s into segment 4: no part yet
        listed = get_playlist(client, origin)
        assert listed.part_target == 1.0
        assert listed.hint == "seg_4.0.m4s"
        segment = next(segment for segment in listed.segments if segment.msn == 3)
        assert [part.duration for part in segment.parts] == [1.0, 1.0]
        assert [part.independent for part in segment.parts] == [True, False]
        bodies = [client.get(origin.url_for(f"llhls/high/{part.uri}")).content for part in segment.parts]
        assert b"".join(bodies) == client.get(origin.url_for("llhls/high/seg_3.m4s")).content
        clock.now = part_due(4, 1)  # two fragments: the first part of segment 4
        assert len(get_playlist(client, origin).segments[-1].parts) == 1


def test_grouping_keeps_key_frames_at_part_starts_and_long_fragments_alone() -> None:
    def fragment(offset: int, duration: str, independent: bool = False) -> Any:
        return attrs.evolve(
            fragment_template(), offset=offset, length=1, duration=Fraction(duration), independent=independent
        )

    fragments = [fragment(0, "0.2", True), fragment(1, "0.2"), fragment(2, "0.2", True), fragment(3, "0.9")]
    parts = group_fragments(fragments, 0.5)
    assert [(p.offset, p.length, p.duration, p.independent) for p in parts] == [
        (0, 2, Fraction("0.4"), True),
        (2, 1, Fraction("0.2"), True),  # a key frame starts a part even when it would fit
        (3, 1, Fraction("0.9"), False),  # longer than the part duration: alone
    ]
    assert group_fragments(fragments, None) == tuple(fragments)


def test_a_source_cut_at_every_frame_is_served_in_parts_of_part_duration(
    tmp_path: Path, clock: Clock, client: httpx.Client
) -> None:
    # Low-latency CMAF encoders write a fragment per frame: 48 fragments per 2 s segment here.
    root = make_llhls_stream(tmp_path / "per_frame", seconds=4, part_seconds=0.04)
    data = (root / "high" / "seg_001.m4s").read_bytes()
    assert len(fragments_of(data, parse_init((root / "high" / "init.mp4").read_bytes()))) == 48
    with make_origin(root, clock, part_duration=LLHLS_PART_SECONDS) as origin:
        clock.now = 0.0  # segments 0 and 1 complete
        listed = get_playlist(client, origin)
        segment = listed.segments[-1]
        assert segment.msn == 1 and len(segment.parts) == PARTS_PER_SEGMENT
        assert {part.duration for part in segment.parts} == {LLHLS_PART_SECONDS}
        assert listed.part_target == LLHLS_PART_SECONDS
        bodies = [client.get(origin.url_for(f"llhls/high/{part.uri}")).content for part in segment.parts]
    assert b"".join(bodies) == data


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--part-duration", "0.5"], "--part-duration needs --llhls"),
        (["--llhls", "--part-duration", "0"], "part_duration must be None or a finite number > 0"),
    ],
)
def test_the_origin_command_refuses_bad_llhls_options_in_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from p2ploader.app.cli import main

    assert main(["origin", "--port", "0", *argv]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("p2ploader origin: ") and message in line


def two_track_init() -> bytes:
    """An init section with video track 1 (timescale 1000) and audio track 2 (timescale 1000)."""
    traks = b""
    for track_id, handler in ((1, b"vide"), (2, b"soun")):
        tkhd = full_box(b"tkhd", 0, bytes(8) + word(track_id) + bytes(60))
        mdhd = full_box(b"mdhd", 0, bytes(8) + word(1000) + bytes(8))
        hdlr = full_box(b"hdlr", 0, bytes(4) + handler + bytes(13))
        traks += box(b"trak", tkhd + box(b"mdia", mdhd + hdlr))
    return box(b"moov", traks)


def traf(track_id: int, duration: int, first_flags: int) -> bytes:
    tfhd = full_box(b"tfhd", 0x08, word(track_id) + word(duration))
    return box(b"traf", tfhd + full_box(b"trun", 0x004, word(1) + word(first_flags)))


def test_a_fragment_of_audio_alone_in_a_stream_with_video_lasts_0_s_and_is_not_independent() -> None:
    tracks = parse_init(two_track_init())
    video_key = box(b"moof", traf(1, 500, 0) + traf(2, 520, 0)) + box(b"mdat", b"")
    audio_only = box(b"moof", traf(2, 480, 0)) + box(b"mdat", b"")
    video_delta = box(b"moof", traf(1, 500, NON_SYNC) + traf(2, 500, 0)) + box(b"mdat", b"")
    fragments = fragments_of(video_key + audio_only + video_delta, tracks)
    assert [(f.duration, f.independent) for f in fragments] == [
        (Fraction(1, 2), True),  # the video's duration, not the audio's longer one
        (Fraction(0), False),
        (Fraction(1, 2), False),
    ]
    # Joined into parts, the audio-only fragment never starts a part of its own.
    assert [p.duration for p in group_fragments(fragments, 1.0)] == [Fraction(1)]
