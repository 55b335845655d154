"""Streams made here with ffmpeg, shaped like those real services publish.

The bundled sample (``p2ploader/sample``) muxes audio into every variant. Real services often keep
audio apart (``EXT-X-MEDIA`` groups in several languages), add subtitles, and decorate live playlists
with tags. :func:`make_av_stream` encodes, once per test session and directory, a folder with

* ``video/index.m3u8``: video only, H.264 in MPEG-TS, 2 s segments;
* ``audio_en/index.m3u8`` and ``audio_fr/index.m3u8``: AAC-only renditions (440 Hz and 660 Hz tones);
* ``subs_en/index.m3u8``: WebVTT subtitles, one cue per 2 s segment (written here: subtitles are text);
* ``master.m3u8``: one variant referring to audio group ``aud`` (English default, French) and
  subtitles group ``subs``.

Tests that need a tag (gaps, program date-time, date ranges, a start offset, an I-frame playlist)
rewrite a copy of these playlists with :func:`rewrite_media` rather than encoding again.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

SEGMENT_SECONDS = 2
FPS = 24
AUDIO_TONES = {"en": 440, "fr": 660}

MASTER = """#EXTM3U
#EXT-X-VERSION:3
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="English",LANGUAGE="en",DEFAULT=YES,AUTOSELECT=YES,URI="audio_en/index.m3u8"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="Francais",LANGUAGE="fr",DEFAULT=NO,AUTOSELECT=YES,URI="audio_fr/index.m3u8"
#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="English",LANGUAGE="en",DEFAULT=NO,AUTOSELECT=YES,URI="subs_en/index.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=400000,RESOLUTION=320x180,CODECS="avc1.4d400d,mp4a.40.2",AUDIO="aud",SUBTITLES="subs"
video/index.m3u8
"""


def ffmpeg_or_skip() -> str:
    """The ffmpeg binary; the test is skipped where there is none (CI installs it)."""
    binary = shutil.which("ffmpeg")
    if binary is None:
        pytest.skip("ffmpeg is not installed")
    return binary


def _run(*parts: list[str]) -> None:
    args = [arg for part in parts for arg in part]
    subprocess.run(args, check=True, capture_output=True, timeout=120)


def _hls_args(folder: Path) -> list[str]:
    return [
        "-f",
        "hls",
        "-hls_time",
        str(SEGMENT_SECONDS),
        "-hls_playlist_type",
        "vod",
        "-hls_segment_filename",
        str(folder / "seg_%03d.ts"),
        str(folder / "index.m3u8"),
    ]


def _encode_video(ffmpeg: str, folder: Path, seconds: int) -> None:
    folder.mkdir(parents=True)
    gop = FPS * SEGMENT_SECONDS
    _run(
        [ffmpeg, "-v", "error", "-f", "lavfi", "-i", f"testsrc2=size=320x180:rate={FPS}", "-t", str(seconds)],
        ["-c:v", "libx264", "-preset", "veryfast", "-threads", "1", "-profile:v", "main"],
        ["-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", "-b:v", "200k"],
        _hls_args(folder),
    )


def _encode_audio(ffmpeg: str, folder: Path, seconds: int, tone: int) -> None:
    folder.mkdir(parents=True)
    _run(
        [ffmpeg, "-v", "error", "-f", "lavfi", "-i", f"sine=frequency={tone}:sample_rate=48000"],
        # A hair short of ``seconds``: AAC frames (1024 samples) would otherwise spill a last,
        # 21 ms segment past the video's end.
        ["-t", f"{seconds - 0.02:.2f}", "-c:a", "aac", "-b:a", "64k", "-ac", "1"],
        _hls_args(folder),
    )


def _write_subtitles(folder: Path, seconds: int) -> None:
    folder.mkdir(parents=True)
    lines = [
        "#EXTM3U",
        f"#EXT-X-TARGETDURATION:{SEGMENT_SECONDS}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:VOD",
    ]
    for index in range(seconds // SEGMENT_SECONDS):
        start = index * SEGMENT_SECONDS
        cue = (
            "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:126000,LOCAL:00:00:00.000\n\n"
            f"00:00:{start:02d}.000 --> 00:00:{start + SEGMENT_SECONDS:02d}.000\nsegment {index}\n"
        )
        (folder / f"seg_{index:03d}.vtt").write_text(cue)
        lines += [f"#EXTINF:{SEGMENT_SECONDS}.000,", f"seg_{index:03d}.vtt"]
    lines.append("#EXT-X-ENDLIST")
    (folder / "index.m3u8").write_text("\n".join(lines) + "\n")


def make_av_stream(root: Path, *, seconds: int = 12) -> Path:
    """Encode the separate-audio stream described above into ``root`` (made if missing) once; later
    calls with the same ``root`` return it as it is. Returns ``root``."""
    if (root / "master.m3u8").exists():
        return root
    ffmpeg = ffmpeg_or_skip()
    root.mkdir(parents=True, exist_ok=True)
    _encode_video(ffmpeg, root / "video", seconds)
    for language, tone in AUDIO_TONES.items():
        _encode_audio(ffmpeg, root / f"audio_{language}", seconds, tone)
    _write_subtitles(root / "subs_en", seconds)
    (root / "master.m3u8").write_text(MASTER)
    return root


def rewrite_media(path: Path, rewrite: Callable[[list[str]], list[str]]) -> None:
    """Rewrite a media playlist's lines in place (to add the tags a test is about)."""
    lines = path.read_text().splitlines()
    path.write_text("\n".join(rewrite(lines)) + "\n")


@pytest.fixture(scope="session")
def av_stream(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The separate-audio stream, encoded once per session. Copy it before rewriting playlists."""
    return make_av_stream(tmp_path_factory.mktemp("av_stream"))


def keyframe_ranges(segment: Path) -> list[tuple[int, int, float]]:
    """The video keyframes of an MPEG-TS ``segment`` found with ffprobe: ``(offset, length,
    pts_time)`` with ``offset`` the byte position of the keyframe's first TS packet and ``length``
    the bytes up to the next packet in decode order (the file's end for the last), in bytes."""
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        pytest.skip("ffprobe is not installed")
    args = [ffprobe, "-v", "error", "-select_streams", "v:0", "-show_packets"]
    args += ["-show_entries", "packet=pos,flags,pts_time", "-of", "json", str(segment)]
    probed = subprocess.run(args, check=True, capture_output=True, timeout=60)
    packets = json.loads(probed.stdout)["packets"]
    size = segment.stat().st_size
    ranges = []
    for index, packet in enumerate(packets):
        if "K" not in packet["flags"]:
            continue
        offset = int(packet["pos"])
        end = int(packets[index + 1]["pos"]) if index + 1 < len(packets) else size
        ranges.append((offset, end - offset, float(packet["pts_time"])))
    return ranges


def write_i_frame_playlist(video: Path, *, name: str = "iframes.m3u8") -> list[tuple[str, int, int]]:
    """Write ``video/<name>``, an I-frame playlist (EXT-X-I-FRAMES-ONLY) of the video-only TS
    playlist ``video/index.m3u8``: one EXT-X-BYTERANGE per keyframe, at the byte offsets ffprobe
    reports, each lasting until the next keyframe, after an EXT-X-MAP holding the first segment's
    PAT/PMT (the bytes in front of its first keyframe). Returns ``(file, offset, length)`` per
    I-frame, in playlist order."""
    files = [
        line for line in (video / "index.m3u8").read_text().splitlines() if line and not line.startswith("#")
    ]
    frames: list[tuple[str, int, int, float]] = []
    for file in files:
        frames += [(file, offset, length, pts) for offset, length, pts in keyframe_ranges(video / file)]
    header_bytes = frames[0][1]
    end_pts = frames[0][3] + SEGMENT_SECONDS * len(files)
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:4",
        f"#EXT-X-TARGETDURATION:{SEGMENT_SECONDS}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        "#EXT-X-I-FRAMES-ONLY",
        f'#EXT-X-MAP:URI="{files[0]}",BYTERANGE="{header_bytes}@0"',
    ]
    for index, (file, offset, length, pts) in enumerate(frames):
        following = frames[index + 1][3] if index + 1 < len(frames) else end_pts
        lines += [f"#EXTINF:{following - pts:.6f},", f"#EXT-X-BYTERANGE:{length}@{offset}", file]
    lines.append("#EXT-X-ENDLIST")
    (video / name).write_text("\n".join(lines) + "\n")
    return [(file, offset, length) for file, offset, length, _ in frames]


# --------------------------------------------------------------------------------------------------
# AES-128 with key rotation and no IV attribute

#: The two public test keys of :func:`make_rotating_aes_stream` (``key0.bin``, then ``key1.bin``).
ROTATING_AES_KEYS = (bytes(range(16)), bytes(range(16, 32)))


def _ffmpeg_iv(line: str) -> int:
    """The IV ffmpeg wrote on an ``#EXT-X-KEY`` line, as an integer."""
    return int(line.split("IV=0x", 1)[1].split(",", 1)[0], 16)


def make_rotating_aes_stream(root: Path, *, seconds: int = 12) -> Path:
    """Encode, with ffmpeg, an AES-128 stream whose key changes halfway and whose ``EXT-X-KEY`` tags
    carry no ``IV``: each segment's IV is its media sequence number (RFC 8216 §5.2). Once per
    ``root``; returns ``root``.

    ``video/index.m3u8`` lists ``seconds / 2`` segments of 2 s (video only, H.264 in MPEG-TS):
    the first half under ``key0.bin``, the second under ``key1.bin`` (:data:`ROTATING_AES_KEYS`);
    ``master.m3u8`` names it as the one variant. ffmpeg is given key info files whose IV line is
    empty and ``-hls_flags periodic_rekey``, so it encrypts every segment with its sequence
    number as IV; it also writes that IV into the playlist, and the attribute is dropped here
    (after checking it is the sequence number) to leave the derivation to the reader.
    """
    if (root / "master.m3u8").exists():
        return root
    ffmpeg = ffmpeg_or_skip()
    folder = root / "video"
    folder.mkdir(parents=True)
    half = seconds // 2
    per_half = half // SEGMENT_SECONDS
    gop = FPS * SEGMENT_SECONDS
    header: list[str] = []
    body: list[str] = []
    for part, key in enumerate(ROTATING_AES_KEYS):
        key_name = f"key{part}.bin"
        (folder / key_name).write_bytes(key)
        # Key info file: the URI written in the playlist, the key file, and an empty IV line.
        key_info = root / f"key{part}.keyinfo"
        key_info.write_text(f"{key_name}\n{folder / key_name}\n\n")
        part_playlist = root / f"part{part}.m3u8"
        _run(
            [
                ffmpeg,
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                f"testsrc2=size=320x180:rate={FPS}",
                "-t",
                str(half),
            ],
            ["-c:v", "libx264", "-preset", "veryfast", "-threads", "1", "-profile:v", "main"],
            ["-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", "-b:v", "200k"],
            ["-output_ts_offset", str(part * half)],  # the second encode continues the timeline
            ["-f", "hls", "-hls_time", str(SEGMENT_SECONDS), "-hls_playlist_type", "vod"],
            ["-start_number", str(part * per_half), "-hls_flags", "periodic_rekey"],
            ["-hls_key_info_file", str(key_info)],
            ["-hls_segment_filename", str(folder / "seg_%03d.ts"), str(part_playlist)],
        )
        lines = part_playlist.read_text().splitlines()
        first_entry = next(i for i, line in enumerate(lines) if line.startswith(("#EXT-X-KEY", "#EXTINF")))
        if not header:
            header = [line for line in lines[:first_entry] if not line.startswith("#EXT-X-MEDIA-SEQUENCE")]
        sequence = part * per_half
        key_written = False
        for line in lines[first_entry:]:
            if line.startswith("#EXT-X-KEY"):
                if _ffmpeg_iv(line) != sequence:
                    raise AssertionError(f"ffmpeg used IV {_ffmpeg_iv(line)} for segment {sequence}")
                if not key_written:  # one tag per key: it applies until the next one
                    body.append(f'#EXT-X-KEY:METHOD=AES-128,URI="{key_name}"')
                    key_written = True
            elif line.startswith("#EXT-X-ENDLIST"):
                continue
            else:
                body.append(line)
                if line and not line.startswith("#"):
                    sequence += 1
    (folder / "index.m3u8").write_text(
        "\n".join([*header, "#EXT-X-MEDIA-SEQUENCE:0", *body, "#EXT-X-ENDLIST"]) + "\n"
    )
    (root / "master.m3u8").write_text(
        "#EXTM3U\n#EXT-X-VERSION:3\n"
        '#EXT-X-STREAM-INF:BANDWIDTH=300000,RESOLUTION=320x180,CODECS="avc1.4d400d"\nvideo/index.m3u8\n'
    )
    return root


@pytest.fixture(scope="session")
def rotating_aes_stream(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The key-rotating AES-128 stream without IV attributes, encoded once per session."""
    return make_rotating_aes_stream(tmp_path_factory.mktemp("rotating_aes"))


def make_single_rendition_stream(
    root: Path, *, segment_seconds: int = 5, seconds: int = 30, video_kbps: int = 540
) -> Path:
    """A plain stream for swarms: one H.264 + AAC (64 kbit/s) rendition at 640x360, ``video_kbps``
    video, a key frame at each ``segment_seconds`` segment; ``master.m3u8`` names ``v0/index.m3u8``.
    Encoded once per ``root``; returns ``root``. The local origin loops it when serving it live."""
    master = root / "master.m3u8"
    if master.exists():
        return root
    ffmpeg = ffmpeg_or_skip()
    out = root / "v0"
    out.mkdir(parents=True, exist_ok=True)
    gop = str(FPS * segment_seconds)
    _run(
        [
            ffmpeg,
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size=640x360:rate={FPS}:duration={seconds}",
        ],
        ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"],
        ["-c:v", "libx264", "-preset", "veryfast", "-threads", "1", "-b:v", f"{video_kbps}k"],
        ["-maxrate", f"{video_kbps * 11 // 10}k", "-bufsize", f"{video_kbps * 2}k"],
        ["-g", gop, "-keyint_min", gop, "-sc_threshold", "0", "-c:a", "aac", "-b:a", "64k"],
        ["-f", "hls", "-hls_time", str(segment_seconds), "-hls_playlist_type", "vod"],
        ["-hls_segment_filename", str(out / "seg_%05d.ts"), str(out / "index.m3u8")],
    )
    bandwidth = (video_kbps + 64) * 1100
    master.write_text(f"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH={bandwidth},RESOLUTION=640x360\nv0/index.m3u8\n")
    return root


# --------------------------------------------------------------------------------------------------
# Low-Latency HLS source: fMP4 segments made of part-sized fragments

#: Segment and part (fragment) durations of :func:`make_llhls_stream`, in seconds.
LLHLS_SEGMENT_SECONDS = 2
LLHLS_PART_SECONDS = 0.5
#: The variants of :func:`make_llhls_stream`: folder, size, video kbit/s.
LLHLS_VARIANTS = (("high", "320x180", 200), ("low", "160x90", 80))


def _top_level_boxes(data: bytes) -> list[tuple[str, int, int]]:
    """``(type, start, end)`` of the top-level MP4 boxes of ``data`` (32-bit sizes only: enough for
    what ffmpeg writes here)."""
    boxes = []
    offset = 0
    while offset < len(data):
        size = int.from_bytes(data[offset : offset + 4], "big")
        if size < 8 or offset + size > len(data):
            raise AssertionError(f"bad MP4 box at byte {offset}")
        boxes.append((data[offset + 4 : offset + 8].decode("latin-1"), offset, offset + size))
        offset += size
    return boxes


def _child_boxes(data: bytes, start: int, end: int) -> list[tuple[str, int, int]]:
    """``(type, payload_start, end)`` of the boxes inside ``data[start:end]``."""
    children = []
    offset = start
    while offset + 8 <= end:
        size = int.from_bytes(data[offset : offset + 4], "big")
        children.append((data[offset + 4 : offset + 8].decode("latin-1"), offset + 8, offset + size))
        offset += size
    return children


def _first_track_timescale(data: bytes, moov: tuple[int, int]) -> tuple[int, int]:
    """``(track_id, timescale)`` of the first ``trak`` of a ``moov`` box (the video, muxed first)."""
    trak = next(box for box in _child_boxes(data, moov[0] + 8, moov[1]) if box[0] == "trak")
    track_id = timescale = 0
    for name, start, end in _child_boxes(data, trak[1], trak[2]):
        if name == "tkhd":
            version = data[start]
            track_id = int.from_bytes(data[start + (20 if version else 12) :][:4], "big")
        if name == "mdia":
            mdhd = next(box for box in _child_boxes(data, start, end) if box[0] == "mdhd")
            version = data[mdhd[1]]
            timescale = int.from_bytes(data[mdhd[1] + (20 if version else 12) :][:4], "big")
    return track_id, timescale


def _video_decode_time(data: bytes, moof: tuple[int, int], track_id: int) -> int | None:
    """The ``tfdt`` base media decode time of track ``track_id`` in a ``moof`` box, or None."""
    for name, start, end in _child_boxes(data, moof[0] + 8, moof[1]):
        if name != "traf":
            continue
        children = _child_boxes(data, start, end)
        tfhd = next(box for box in children if box[0] == "tfhd")
        if int.from_bytes(data[tfhd[1] + 4 : tfhd[1] + 8], "big") != track_id:
            continue
        tfdt = next(box for box in children if box[0] == "tfdt")
        wide = data[tfdt[1]] == 1
        return int.from_bytes(data[tfdt[1] + 4 : tfdt[1] + (12 if wide else 8)], "big")
    return None


def split_fragmented_mp4(
    source: Path, folder: Path, *, segment_seconds: float, seconds: float
) -> list[float]:
    """Cut the fragmented MP4 ``source`` into an HLS fMP4 folder: ``init.mp4`` (its ``ftyp`` and
    ``moov``) and ``seg_NNN.m4s`` files of whole ``moof``+``mdat`` fragments, a new segment at each
    fragment whose video decode time is a multiple of ``segment_seconds`` (where the encoder put a
    key frame), and ``index.m3u8`` listing them (VOD). Returns the segment durations in seconds
    (from the video track's decode times; the last one ends at ``seconds``)."""
    data = source.read_bytes()
    boxes = _top_level_boxes(data)
    moov = next((start, end) for name, start, end in boxes if name == "moov")
    track_id, timescale = _first_track_timescale(data, moov)
    init_end = moov[1]
    segments: list[list[tuple[int, int]]] = []
    starts: list[int] = []
    pending_moof: tuple[int, int] | None = None
    for name, start, end in boxes:
        if name == "moof":
            pending_moof = (start, end)
            decode_time = _video_decode_time(data, (start, end), track_id)
            boundary = decode_time is not None and decode_time % round(segment_seconds * timescale) == 0
            if boundary or not segments:
                segments.append([])
                starts.append(decode_time or 0)
        elif name == "mdat" and pending_moof is not None:
            segments[-1].append((pending_moof[0], end))
            pending_moof = None
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "init.mp4").write_bytes(data[:init_end])
    durations = []
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", f"#EXT-X-TARGETDURATION:{math.ceil(segment_seconds)}"]
    lines += ["#EXT-X-MEDIA-SEQUENCE:0", "#EXT-X-PLAYLIST-TYPE:VOD", '#EXT-X-MAP:URI="init.mp4"']
    for index, fragments in enumerate(segments):
        name = f"seg_{index:03d}.m4s"
        (folder / name).write_bytes(b"".join(data[start:end] for start, end in fragments))
        end_time = starts[index + 1] / timescale if index + 1 < len(starts) else seconds
        durations.append(end_time - starts[index] / timescale)
        lines += [f"#EXTINF:{durations[-1]:.6f},", name]
    lines.append("#EXT-X-ENDLIST")
    (folder / "index.m3u8").write_text("\n".join(lines) + "\n")
    return durations


def make_llhls_stream(
    root: Path,
    *,
    seconds: int = 12,
    segment_seconds: int = LLHLS_SEGMENT_SECONDS,
    part_seconds: float = LLHLS_PART_SECONDS,
) -> Path:
    """Encode, with ffmpeg, the source of a Low-Latency HLS stream into ``root`` once (later calls
    return it as it is); returns ``root``.

    Two variants (:data:`LLHLS_VARIANTS`: ``high/`` and ``low/``), each H.264 video and AAC audio
    muxed in fragmented MP4 (``init.mp4`` + ``seg_NNN.m4s``, ``index.m3u8``), named by
    ``master.m3u8``. Each ``segment_seconds`` segment starts with a key frame and holds several
    ``moof``+``mdat`` fragments of ``part_seconds`` each: the mp4 muxer cuts a fragment at every key
    frame and whenever one reaches ``frag_duration`` (``-movflags frag_keyframe -frag_duration``), and
    the fragmented file is cut into segments here (:func:`split_fragmented_mp4`), because this
    ffmpeg's ``hls`` muxer writes the first segment's fragments into ``init.mp4`` when given
    ``frag_duration``. An LL-HLS origin publishes each fragment as a part.
    """
    master = root / "master.m3u8"
    if master.exists():
        return root
    ffmpeg = ffmpeg_or_skip()
    root.mkdir(parents=True, exist_ok=True)
    gop = str(FPS * segment_seconds)
    variants = []
    for name, size, kbps in LLHLS_VARIANTS:
        source = root / f"{name}.fragmented.mp4"
        _run(
            [ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={FPS}"],
            # Audio 0.1 s short of ``seconds``: AAC frames (1024 samples, plus the encoder's
            # priming) would otherwise spill a last, audio-only fragment past the video's end.
            ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds - 0.1:.2f}"],
            ["-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-threads", "1"],
            ["-profile:v", "main", "-b:v", f"{kbps}k", "-g", gop, "-keyint_min", gop, "-sc_threshold", "0"],
            ["-c:a", "aac", "-b:a", "64k", "-ac", "1"],
            ["-movflags", "+frag_keyframe+empty_moov+default_base_moof"],
            ["-frag_duration", str(round(part_seconds * 1_000_000)), "-f", "mp4", str(source)],
        )
        split_fragmented_mp4(source, root / name, segment_seconds=segment_seconds, seconds=seconds)
        source.unlink()
        width, height = size.split("x")
        variants += [
            f"#EXT-X-STREAM-INF:BANDWIDTH={(kbps + 64) * 1100},RESOLUTION={width}x{height},"
            'CODECS="avc1.4d400d,mp4a.40.2"',
            f"{name}/index.m3u8",
        ]
    master.write_text(
        "\n".join(["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS", *variants]) + "\n"
    )
    return root


@pytest.fixture(scope="session")
def llhls_stream(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Low-Latency HLS source (:func:`make_llhls_stream`), encoded once per session."""
    return make_llhls_stream(tmp_path_factory.mktemp("llhls_stream"))
