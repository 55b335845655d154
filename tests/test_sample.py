"""Checks on the bundled HLS sample streams in ``p2ploader/sample`` (no network, no ffmpeg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import m3u8
import pytest

from p2ploader.sample import SAMPLE_ROOT, sample_path

STREAMS = ("ts", "byterange", "fmp4", "aes")
SEGMENT_SECONDS = 2.0
TOTAL_SECONDS = 20.0
TS_SYNC = 0x47
TS_PACKET = 188


def _load(path: Path) -> Any:
    assert path.is_file(), f"missing playlist {path}"
    return m3u8.load(str(path))


def _is_relative(uri: str) -> bool:
    return "://" not in uri and not uri.startswith("/")


def _media_playlists(name: str) -> list[tuple[Path, Any]]:
    """(path, parsed playlist) of every media playlist referenced by a stream's master."""
    master_path = sample_path(name) / "master.m3u8"
    master = _load(master_path)
    return [(master_path.parent / v.uri, _load(master_path.parent / v.uri)) for v in master.playlists]


def _top_level_boxes(data: bytes) -> list[str]:
    """Types of the top-level ISO-BMFF boxes in ``data``; asserts that they tile it exactly."""
    types: list[str] = []
    pos = 0
    while pos < len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8].decode("latin-1")
        if size == 1:  # 64-bit largesize
            size = int.from_bytes(data[pos + 8 : pos + 16], "big")
        assert size >= 8, f"bad box size {size} at {pos}"
        types.append(kind)
        pos += size
    assert pos == len(data), "boxes overrun the data"
    return types


def _parse_byterange(value: str, previous_end: int) -> tuple[int, int]:
    length, _, offset = value.partition("@")
    return int(length), int(offset) if offset else previous_end


# --- the p2ploader.sample API ---------------------------------------------------------


def test_sample_root_is_the_package_folder() -> None:
    assert SAMPLE_ROOT.is_dir()
    assert (SAMPLE_ROOT / "__init__.py").is_file()
    assert (SAMPLE_ROOT / "README.md").is_file()


@pytest.mark.parametrize("name", STREAMS)
def test_sample_path(name: str) -> None:
    assert sample_path(name) == SAMPLE_ROOT / name
    assert sample_path(name).is_dir()


def test_sample_path_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown sample stream 'dash'") as excinfo:
        sample_path("dash")
    for name in STREAMS:
        assert repr(name) in str(excinfo.value)


def test_sample_stays_small() -> None:
    total = sum(p.stat().st_size for p in SAMPLE_ROOT.rglob("*") if p.is_file())
    assert total < 5_500_000


# --- playlists ------------------------------------------------------------------------


@pytest.mark.parametrize("name", STREAMS)
def test_master_playlist_parses(name: str) -> None:
    master = _load(sample_path(name) / "master.m3u8")
    assert master.is_variant
    assert len(master.playlists) == (3 if name == "ts" else 1)
    for variant in master.playlists:
        assert _is_relative(variant.uri)
        info = variant.stream_info
        assert info.bandwidth > 0
        assert info.resolution is not None
        assert info.codecs.startswith("avc1.")
        assert "mp4a.40.2" in info.codecs


def test_ts_master_lists_the_three_renditions() -> None:
    master = _load(sample_path("ts") / "master.m3u8")
    got = [(v.uri, v.stream_info.resolution) for v in master.playlists]
    assert got == [
        ("240p/index.m3u8", (426, 240)),
        ("360p/index.m3u8", (640, 360)),
        ("480p/index.m3u8", (854, 480)),
    ]
    bandwidths = [v.stream_info.bandwidth for v in master.playlists]
    assert bandwidths == sorted(bandwidths)


@pytest.mark.parametrize("name", STREAMS)
def test_media_playlist_references_exist(name: str) -> None:
    for path, playlist in _media_playlists(name):
        assert playlist.segments, path
        referenced = {seg.uri for seg in playlist.segments}
        referenced |= {seg.init_section.uri for seg in playlist.segments if seg.init_section}
        referenced |= {key.uri for key in playlist.keys if key is not None and key.uri}
        for uri in referenced:
            assert _is_relative(uri), f"{path}: absolute URI {uri}"
            assert (path.parent / uri).is_file(), f"{path}: {uri} does not exist"


@pytest.mark.parametrize("name", STREAMS)
def test_segment_durations(name: str) -> None:
    for path, playlist in _media_playlists(name):
        assert playlist.playlist_type == "vod", path
        assert playlist.is_endlist, path
        assert playlist.target_duration == SEGMENT_SECONDS, path
        durations = [seg.duration for seg in playlist.segments]
        assert len(durations) == round(TOTAL_SECONDS / SEGMENT_SECONDS), path
        assert durations == [pytest.approx(SEGMENT_SECONDS, abs=0.05)] * len(durations), path
        assert sum(durations) == pytest.approx(TOTAL_SECONDS, abs=0.1), path


# --- container formats ----------------------------------------------------------------


@pytest.mark.parametrize("rendition", ["240p", "360p", "480p"])
def test_ts_segments_are_mpegts(rendition: str) -> None:
    path = sample_path("ts") / rendition / "index.m3u8"
    for seg in _load(path).segments:
        data = (path.parent / seg.uri).read_bytes()
        assert len(data) % TS_PACKET == 0, seg.uri
        assert data[0] == TS_SYNC, seg.uri
        assert data[TS_PACKET] == TS_SYNC, seg.uri


def test_fmp4_init_has_ftyp_and_segments_have_moof() -> None:
    path = sample_path("fmp4") / "index.m3u8"
    playlist = _load(path)
    init_uris = {seg.init_section.uri for seg in playlist.segments}
    assert init_uris == {"init.mp4"}
    init = (path.parent / "init.mp4").read_bytes()
    assert init[4:8] == b"ftyp"
    init_boxes = _top_level_boxes(init)
    assert init_boxes[0] == "ftyp"
    assert "moov" in init_boxes
    for seg in playlist.segments:
        boxes = _top_level_boxes((path.parent / seg.uri).read_bytes())
        assert "moof" in boxes, (seg.uri, boxes)
        assert boxes[-1] == "mdat", (seg.uri, boxes)


def test_fmp4_codecs_attribute_matches_init_segment() -> None:
    init = (sample_path("fmp4") / "init.mp4").read_bytes()
    at = init.index(b"avcC")
    profile, compat, level = init[at + 5], init[at + 6], init[at + 7]
    master = _load(sample_path("fmp4") / "master.m3u8")
    video_codec = master.playlists[0].stream_info.codecs.split(",")[0]
    assert video_codec == f"avc1.{profile:02x}{compat:02x}{level:02x}"


def test_byterange_ranges_are_contiguous_and_cover_the_file() -> None:
    path = sample_path("byterange") / "index.m3u8"
    playlist = _load(path)
    files = {seg.uri for seg in playlist.segments}
    assert len(files) == 1
    media = path.parent / files.pop()
    data = media.read_bytes()
    end = 0
    for seg in playlist.segments:
        assert seg.byterange, seg.uri
        length, offset = _parse_byterange(seg.byterange, end)
        assert offset == end, f"gap or overlap at {seg.byterange}"
        assert length > 0
        assert data[offset] == TS_SYNC, seg.byterange
        end = offset + length
    assert end == len(data) == media.stat().st_size


# --- AES-128 --------------------------------------------------------------------------


def _aes_playlist() -> tuple[Path, Any]:
    path = sample_path("aes") / "index.m3u8"
    return path, _load(path)


def test_aes_segments_are_encrypted() -> None:
    path, playlist = _aes_playlist()
    assert (path.parent / "key.bin").stat().st_size == 16
    for seg in playlist.segments:
        assert seg.key is not None
        assert seg.key.method == "AES-128"
        assert seg.key.uri == "key.bin"
        data = (path.parent / seg.uri).read_bytes()
        assert len(data) % 16 == 0, seg.uri
        assert data[0] != TS_SYNC, f"{seg.uri} looks like clear MPEG-TS"


def test_aes_segments_decrypt() -> None:
    pytest.importorskip("cryptography")
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    path, playlist = _aes_playlist()
    key = (path.parent / "key.bin").read_bytes()
    clear_dir = sample_path("ts") / "240p"  # same encode settings, so identical plaintext
    for number, seg in enumerate(playlist.segments, start=playlist.media_sequence or 0):
        if seg.key.iv:
            iv = bytes.fromhex(seg.key.iv.removeprefix("0x").removeprefix("0X"))
        else:  # RFC 8216 §5.2: the media sequence number is the IV
            iv = number.to_bytes(16, "big")
        decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
        padded = decryptor.update((path.parent / seg.uri).read_bytes()) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        clear = unpadder.update(padded) + unpadder.finalize()
        assert clear[0] == TS_SYNC, seg.uri
        assert len(clear) % TS_PACKET == 0, seg.uri
        assert clear == (clear_dir / seg.uri).read_bytes(), seg.uri
