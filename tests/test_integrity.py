"""Integrity building blocks: the hash-tag format, ``p2ploader hash-playlist``, spot-check plans and
the checker against a real origin (and respx for the origin's error paths), peer bans."""

from __future__ import annotations

import hashlib
import random
import shutil
from pathlib import Path

import httpx
import pytest
import respx
from hypothesis import given, settings
from hypothesis import strategies as st

from p2ploader.aio.integrity import IntegrityChecker, integrity_enabled
from p2ploader.app.cli import main
from p2ploader.app.hashplaylist import HashPlaylistError, hash_playlists
from p2ploader.config import LoaderConfig
from p2ploader.core.actions import PeerByteRange, ValidateSegment
from p2ploader.core.bans import STRIKES_BEFORE_BAN, CommandRate, PeerBans
from p2ploader.core.integrity import (
    HASH_TAG,
    add_hash_tags,
    parse_hash_tags,
    plan_spot_checks,
    segment_uri_lines,
)
from p2ploader.core.segments import ByteRange, Segment, SegmentId
from p2ploader.errors import PlaylistError, UsageError
from p2ploader.hls import parse_media
from p2ploader.sample import sample_path, vod_segment_bytes
from p2ploader.testing.origin import LiveSettings, OriginServer

DIGEST = bytes(range(32))
HEX = DIGEST.hex()


# --------------------------------------------------------------------------- the tag format


def test_tags_are_keyed_by_media_sequence() -> None:
    text = (
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:40\n"
        f"#EXTINF:2,\n{HASH_TAG}:{HEX}\na.ts\n#EXTINF:2,\nb.ts\n"
        f"#EXTINF:2,\n{HASH_TAG}:{HEX.upper()}\nc.ts\n"
    )
    assert parse_hash_tags(text) == {40: DIGEST, 42: DIGEST}
    # Players' parser ignores the tag: the playlist still parses to three segments.
    assert len(parse_media(text, "http://o/p.m3u8", rendition="v0").segments) == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"#EXTM3U\n{HASH_TAG}:abc\na.ts\n", "64 hexadecimal digits"),
        (f"#EXTM3U\n{HASH_TAG}\na.ts\n", "64 hexadecimal digits"),
        (f"#EXTM3U\n{HASH_TAG}X:{HEX}\na.ts\n", "64 hexadecimal digits"),
        (f"#EXTM3U\n{HASH_TAG}:{HEX}\n{HASH_TAG}:{HEX}\na.ts\n", "two"),
        (f"#EXTM3U\na.ts\n{HASH_TAG}:{HEX}\n", "after the last segment"),
        (f"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:x\n{HASH_TAG}:{HEX}\na.ts\n", "MEDIA-SEQUENCE"),
    ],
)
def test_malformed_tags_are_playlist_errors(text: str, message: str) -> None:
    with pytest.raises(PlaylistError, match=message):
        parse_hash_tags(text, "p.m3u8")


def test_add_hash_tags_replaces_old_tags_and_is_idempotent() -> None:
    text = f"#EXTM3U\n#EXTINF:2,\n{HASH_TAG}:{'0' * 64}\na.ts\n#EXTINF:2,\n#EXT-X-BYTERANGE:10@5\nb.ts\n"
    seen = []

    def digest(segment: object) -> bytes:
        seen.append(segment)
        return DIGEST

    once = add_hash_tags(text, digest)
    assert once.count(HASH_TAG) == 2 and "0" * 64 not in once
    assert add_hash_tags(once, digest) == once
    assert parse_hash_tags(once) == {0: DIGEST, 1: DIGEST}
    with pytest.raises(ValueError, match="32"):
        add_hash_tags(text, lambda s: b"short")


def test_segment_uri_lines_resolve_implicit_byte_range_offsets() -> None:
    text = "#EXTM3U\n#EXT-X-BYTERANGE:10@5\nm.ts\n#EXT-X-BYTERANGE:7\nm.ts\nother.ts\n"
    got = [(s.uri, s.offset, s.length) for s in segment_uri_lines(text)]
    assert got == [("m.ts", 5, 10), ("m.ts", 15, 7), ("other.ts", None, None)]
    with pytest.raises(PlaylistError, match="without an offset"):
        segment_uri_lines("#EXTM3U\n#EXT-X-BYTERANGE:7\nm.ts\n")
    with pytest.raises(PlaylistError, match="bad EXT-X-BYTERANGE"):
        segment_uri_lines("#EXTM3U\n#EXT-X-BYTERANGE:x@1\nm.ts\n")


@settings(max_examples=200, derandomize=True, database=None, deadline=None)
@given(st.integers(0, 10**7), st.integers(0, 64), st.integers(1, 4096), st.integers(0, 2**32))
def test_spot_check_plans_stay_inside_the_segment(size: int, count: int, length: int, seed: int) -> None:
    plan = plan_spot_checks(size, count=count, length=length, rng=random.Random(seed))
    if size == 0 or count == 0:
        assert plan == ()
        return
    assert 1 <= len(plan) <= count
    assert all(r.offset >= 0 and r.end <= size and r.length >= 1 for r in plan)
    assert plan[-1].end == size  # the last byte is always checked (the size check)
    assert sum(r.length for r in plan) <= max(size, count * length)


@settings(max_examples=200, derandomize=True, database=None, deadline=None)
@given(
    st.integers(2000, 10**7),
    st.integers(2, 16),
    st.integers(1, 256),
    st.integers(0, 2**32),
    st.floats(0.0, 0.99),
    st.integers(1, 600),
)
def test_focused_spot_checks_cover_the_peers_bytes(
    size: int, count: int, length: int, seed: int, where: float, peer_bytes: int
) -> None:
    # A peer sent peer_bytes bytes from `start` (a prefix continued over HTTP, or a moved download).
    start = int(where * (size - peer_bytes))
    plan = plan_spot_checks(
        size, count=count, length=length, rng=random.Random(seed), focus=[(start, peer_bytes)]
    )
    if size <= count * length:
        return
    assert plan[-1].end == size
    drawn = [r for r in plan if r.end != size]
    assert all(r.offset >= 0 and r.end <= size for r in plan)
    assert all(r.offset < start + peer_bytes and r.end > start for r in drawn), "each covers a peer byte"


def test_focused_spot_checks_catch_a_flipped_prefix_byte_far_more_often() -> None:
    # 1 MB segment, 640 bytes from a peer: 3 ranges of 64 bytes. Unfocused: about 3 * 64 / 2**20.
    size, flipped = 2**20, 100
    rng = random.Random(7)

    def caught(focus: list[tuple[int, int]]) -> float:
        hits = 0
        for _ in range(2000):
            plan = plan_spot_checks(size, count=3, length=64, rng=rng, focus=focus)
            hits += any(r.offset <= flipped < r.end for r in plan)
        return hits / 2000

    assert caught([(0, 640)]) > 0.15  # about 2 * 64 / 640 = 0.2
    assert caught([]) < 0.01


# --------------------------------------------------------------------------- hash-playlist


@pytest.fixture
def stream(tmp_path: Path) -> Path:
    root = tmp_path / "ts"
    shutil.copytree(sample_path("ts"), root)
    return root


def test_hash_playlist_publishes_every_segments_sha256(stream: Path) -> None:
    report = hash_playlists(stream / "master.m3u8")
    assert report.written and len(report.playlists) == 3 and report.segments == 30
    for media in report.playlists:
        published = parse_hash_tags(media.read_text())
        want = [hashlib.sha256(b).digest() for b in vod_segment_bytes(media)]
        assert published == dict(enumerate(want))
    assert hash_playlists(stream / "master.m3u8", check=True).written is False


def test_hash_playlist_handles_byte_ranges(tmp_path: Path) -> None:
    root = tmp_path / "br"
    shutil.copytree(sample_path("byterange"), root)
    hash_playlists(root / "index.m3u8")  # a media playlist directly
    want = [hashlib.sha256(b).digest() for b in vod_segment_bytes(root / "index.m3u8")]
    assert parse_hash_tags((root / "index.m3u8").read_text()) == dict(enumerate(want))


def test_hash_playlist_check_finds_stale_and_missing_digests(stream: Path) -> None:
    with pytest.raises(HashPlaylistError, match="missing"):
        hash_playlists(stream / "master.m3u8", check=True)
    hash_playlists(stream / "master.m3u8")
    segment = stream / "360p" / "seg_00003.ts"
    segment.write_bytes(segment.read_bytes()[:-1] + b"\x00")
    with pytest.raises(HashPlaylistError, match="segment 3 is stale"):
        hash_playlists(stream / "master.m3u8", check=True)


def test_hash_playlist_errors_are_typed_and_write_nothing(stream: Path) -> None:
    before = {p: p.read_bytes() for p in stream.rglob("*.m3u8")}
    (stream / "480p" / "seg_00009.ts").unlink()  # the last playlist cannot be completed
    with pytest.raises(HashPlaylistError, match="does not exist"):
        hash_playlists(stream / "master.m3u8")
    assert {p: p.read_bytes() for p in stream.rglob("*.m3u8")} == before  # no playlist was touched
    with pytest.raises(HashPlaylistError, match="no such file"):
        hash_playlists(stream / "nope.m3u8")
    remote = stream / "remote.m3u8"
    remote.write_text(
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nhttps://cdn.example/a.ts\n#EXT-X-ENDLIST\n"
    )
    with pytest.raises(HashPlaylistError, match="not a local file"):
        hash_playlists(remote)
    past_end = stream / "past.m3u8"
    past_end.write_text(
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n#EXT-X-BYTERANGE:99999999@0\n360p/seg_00000.ts\n#EXT-X-ENDLIST\n"
    )
    with pytest.raises(HashPlaylistError, match="past the end"):
        hash_playlists(past_end)
    garbage = stream / "garbage.m3u8"
    garbage.write_text("not a playlist")
    with pytest.raises(PlaylistError):
        hash_playlists(garbage)
    assert issubclass(HashPlaylistError, UsageError)


def test_hash_playlist_command(stream: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hash-playlist", str(stream / "master.m3u8")]) == 0
    assert "30 segments in 3 media playlists hashed" in capsys.readouterr().out
    assert main(["hash-playlist", "--check", str(stream / "master.m3u8")]) == 0
    assert main(["hash-playlist", str(stream / "missing.m3u8")]) == 1
    assert "no such file" in capsys.readouterr().err


def test_the_live_origin_serves_the_published_tags(stream: Path) -> None:
    hash_playlists(stream / "master.m3u8")
    want = [hashlib.sha256(b).digest() for b in vod_segment_bytes(stream / "360p" / "index.m3u8")]
    with OriginServer(stream, live=LiveSettings(window_segments=4, initial_segments=14)) as origin:
        text = httpx.get(origin.url_for("live/360p/index.m3u8")).text
    published = parse_hash_tags(text)
    assert sorted(published) == [10, 11, 12, 13]  # live sequence numbers, VOD segment msn % 10
    assert all(published[msn] == want[msn % 10] for msn in published)


# --------------------------------------------------------------------------- the checker

SEGMENT_BYTES = bytes(random.Random(7).randbytes(10_000))


def _segment(url: str, byte_range: ByteRange | None = None) -> Segment:
    return Segment(id=SegmentId("v0", 0), url=url, duration=2.0, byte_range=byte_range)


def _checker(client: httpx.AsyncClient, **changes: object) -> tuple[IntegrityChecker, list[tuple[str, str]]]:
    failures: list[tuple[str, str]] = []
    config = LoaderConfig(integrity_spot_checks=3, integrity_spot_check_bytes=16, **changes)  # type: ignore[arg-type]
    checker = IntegrityChecker(
        client,
        config,
        rng=random.Random(1),
        on_failure=lambda seg, peer, check, why: failures.append((check, why)),
    )
    return checker, failures


@pytest.mark.anyio
async def test_spot_checks_against_the_real_origin(tmp_path: Path) -> None:
    (tmp_path / "seg.ts").write_bytes(SEGMENT_BYTES)
    with OriginServer(tmp_path) as origin:
        url = origin.url_for("seg.ts")
        async with httpx.AsyncClient() as client:
            checker, failures = _checker(client)
            assert await checker.check(_segment(url), SEGMENT_BYTES, "peer")
            # The ranges are random, but the last byte is always among them.
            assert not await checker.check(_segment(url), SEGMENT_BYTES[:-1] + b"?", "peer")
            assert failures and failures[0][0] == "spot-check"
            assert not await checker.check(_segment(url), SEGMENT_BYTES + b"extra", "peer")
            assert "the origin has 10000 bytes" in failures[-1][1]
            # The origin's faults prove nothing against the peer: inconclusive, accepted.
            origin.inject("seg.ts", wrong_content_range=True, times=3)
            assert await checker.check(_segment(url), SEGMENT_BYTES, "peer")
            origin.inject("seg.ts", status=503, times=3)
            assert await checker.check(_segment(url), SEGMENT_BYTES, "peer")
            stats = checker.statistics()
            assert stats.inconclusive == 2 and stats.spot_check_bytes <= stats.spot_check_requests * 17
            # A segment that is a byte range of its file is checked at the right offsets.
            inner = SEGMENT_BYTES[1000:3000]
            ranged = _segment(url, ByteRange(offset=1000, length=2000))
            assert await checker.check(ranged, inner, "peer")
            assert not await checker.check(ranged, inner[:-1] + b"?", "peer")


@pytest.mark.anyio
@respx.mock
async def test_an_origin_that_ignores_range_is_read_only_as_far_as_needed() -> None:
    respx.get("http://origin.test/seg.ts").mock(return_value=httpx.Response(200, content=SEGMENT_BYTES))
    async with httpx.AsyncClient() as client:
        checker, failures = _checker(client)
        assert await checker.check(_segment("http://origin.test/seg.ts"), SEGMENT_BYTES, "peer")
        assert not await checker.check(_segment("http://origin.test/seg.ts"), SEGMENT_BYTES[:-3], "peer")
        assert "the origin has 10000 bytes" in failures[0][1]


@pytest.mark.anyio
@respx.mock
async def test_unreachable_origin_is_inconclusive() -> None:
    respx.get("http://origin.test/seg.ts").mock(side_effect=httpx.ConnectTimeout("slow"))
    async with httpx.AsyncClient() as client:
        checker, failures = _checker(client)
        assert await checker.check(_segment("http://origin.test/seg.ts"), SEGMENT_BYTES, "peer")
        assert failures == [] and checker.statistics().inconclusive == 1


@pytest.mark.anyio
async def test_sha256_needs_no_request_and_probability_zero_skips_spot_checks() -> None:
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(lambda r: pytest.fail("no request expected"))
    ) as client:
        checker, failures = _checker(client, integrity_sha256=True, integrity_spot_check_probability=0.0)
        checker.publish("v0", {0: hashlib.sha256(SEGMENT_BYTES).digest()})
        assert await checker.check(_segment("http://o/s.ts"), SEGMENT_BYTES, "peer")
        assert not await checker.check(_segment("http://o/s.ts"), SEGMENT_BYTES[::-1], "peer")
        assert failures[0][0] == "sha256"
        other = Segment(id=SegmentId("v0", 1), url="http://o/s.ts", duration=2.0)
        assert await checker.check(other, b"anything", "peer")  # no hash, spot checks drawn out
        assert checker.statistics().unchecked == 1
        checker.publish("v0", {i: b"\x00" * 32 for i in range(20_000)})
        assert checker.digests_held <= 8192  # bounded on a long live stream


def _validation(
    segment: Segment, data: bytes, ranges: tuple[tuple[str, int, int], ...], *, method: str = "p2p"
) -> ValidateSegment:
    return ValidateSegment(
        request_id=1,
        segment=segment,
        data=data,
        method=method,  # type: ignore[arg-type]
        peer_id=ranges[0][0] if ranges else None,
        peer_ranges=tuple(PeerByteRange(peer_id=p, offset=o, length=n) for p, o, n in ranges),
    )


@pytest.mark.anyio
async def test_the_validation_hook_blames_a_lone_sender_and_says_what_it_verified() -> None:
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(lambda r: pytest.fail("no request expected"))
    ) as client:
        blamed: list[str] = []
        checker = IntegrityChecker(
            client, LoaderConfig(), rng=random.Random(1), on_failure=lambda s, p, c, w: blamed.append(p)
        )
        checker.publish("v0", {0: hashlib.sha256(SEGMENT_BYTES).digest()})
        user_calls: list[tuple[str, str | None]] = []
        validate = checker.validation(lambda s, d, m, p: user_calls.append((m, p)) is None)
        segment = _segment("http://o/s.ts")
        # A prefix from A, the rest from B (a moved download) and the origin (a Range request).
        mixed = (("A", 0, 3000), ("B", 3000, 4000))
        assert await validate(_validation(segment, SEGMENT_BYTES, mixed)) == (True, True)
        assert user_calls == [("p2p", "A")], "the application's validator runs after the checks"
        wrong = b"?" + SEGMENT_BYTES[1:]
        assert await validate(_validation(segment, wrong, mixed)) == (False, False)
        # Which of them lied cannot be told from the digest; blaming both would let a liar frame
        # an honest peer. The scheduler compares each one's bytes with the origin's instead.
        assert blamed == []
        assert await validate(_validation(segment, wrong, (("A", 0, 3000),))) == (False, False)
        assert blamed == ["A"], "a lone sender is blamed at once"
        # A segment without a published digest and no spot checks: accepted, not verified.
        other = Segment(id=SegmentId("v0", 1), url="http://o/s.ts", duration=2.0)
        assert await validate(_validation(other, b"x", (("A", 0, 1),))) == (True, False)
        # Wholly from the origin: no integrity check, only the application's validator.
        assert await validate(_validation(segment, wrong, (), method="http")) == (True, False)
        assert checker.statistics().sha256_checks == 3


@pytest.mark.anyio
async def test_integrity_sha256_false_ignores_published_digests() -> None:
    async with httpx.AsyncClient() as client:
        checker = IntegrityChecker(client, LoaderConfig(integrity_sha256=False), rng=random.Random(1))
        checker.publish("v0", {0: hashlib.sha256(SEGMENT_BYTES).digest()})
        assert await checker.verify(_segment("http://o/s.ts"), b"wrong", "A") == "unverified"
        assert not integrity_enabled(LoaderConfig(integrity_sha256=False))
        assert integrity_enabled(LoaderConfig()), "automatic: on whenever digests are published"


# --------------------------------------------------------------------------- bans and the flood guard


def test_a_ban_expires_and_refuses_meanwhile() -> None:
    bans = PeerBans(duration=60.0)
    assert bans.ban("p", now=0.0, reason="lied")
    assert not bans.ban("p", now=1.0, reason="again")  # already banned: no second count
    assert bans.is_banned("p", now=59.0) and bans.bans == 1
    assert not bans.is_banned("p", now=61.5)


def test_strikes_ban_only_when_they_pile_up() -> None:
    bans = PeerBans(duration=10.0)
    for _ in range(STRIKES_BEFORE_BAN - 1):
        assert not bans.strike("p", now=0.0, reason="x")
    assert not bans.strike("p", now=100.0, reason="x")  # the old strikes lapsed
    assert not bans.is_banned("p", now=100.0)
    assert [bans.strike("q", now=1.0, reason="x") for _ in range(STRIKES_BEFORE_BAN)][-1]
    assert bans.is_banned("q", now=2.0)


def test_bans_memory_is_bounded() -> None:
    bans = PeerBans(duration=10.0, max_entries=8)
    for i in range(1000):
        bans.ban(f"p{i}", now=float(i) / 100, reason="x")
    assert len(bans) <= 8
    assert bans.is_banned("p999", now=10.0)  # the newest ban survives eviction


def test_command_rate() -> None:
    guard = CommandRate(rate=10.0, burst=20.0)
    assert all(guard.allow(now=0.0) for _ in range(20))
    assert not guard.allow(now=0.0)
    assert guard.allow(now=0.2)  # refilled two tokens
