#!/usr/bin/env python3
"""(Re)generate the bundled HLS sample streams in ``p2ploader/sample/``.

The streams are small but real: ffmpeg renders ``testsrc2`` video (with a burnt-in
rendition label, frame counter and timestamp when a font is available) plus a ``sine``
audio tone, encodes them with libx264 + AAC and packages them as HLS in four flavours:

* ``ts/``         three MPEG-TS renditions (240p, 360p, 480p) and a master playlist
* ``byterange/``  one 360p rendition in a single ``.ts`` file addressed by EXT-X-BYTERANGE
* ``fmp4/``       one 360p rendition as fragmented MP4 (EXT-X-MAP init segment)
* ``aes/``        one 240p rendition encrypted with AES-128 under a fixed, public test key

Only the four stream folders and ``README.md`` are rewritten; ``__init__.py`` is left
alone. Every ffmpeg command is printed before it runs. Requires ffmpeg (with libx264)
on ``PATH`` or passed via ``--ffmpeg``; uses the standard library only.

Usage::

    python scripts/make_sample.py [--ffmpeg /path/to/ffmpeg] [--output DIR]
"""

from __future__ import annotations

import argparse
import math
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO_ROOT / "p2ploader" / "sample"

# --- encoding parameters -------------------------------------------------------------
FPS = 24
SEGMENT_SECONDS = 2
GOP_FRAMES = FPS * SEGMENT_SECONDS  # keyframe exactly every 2 s
DURATION_SECONDS = 20
AUDIO_KBPS = 64
AUDIO_RATE = 48_000
SINE_HZ = 440
# H.264 Main profile, level 3.0 (pinned below) and AAC-LC. The script double-checks the
# video part against the avcC box of the generated fMP4 init segment.
CODECS = "avc1.4d401e,mp4a.40.2"
H264_PROFILE = "main"
H264_LEVEL = "3.0"

# Public, deliberately well-known AES-128 test key and IV. NOT secrets.
TEST_KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
# An explicit, non-zero IV written into the playlist (IV=0x...). Without one, ffmpeg 5.1
# encrypts every segment with an all-zero IV (and writes IV=0x000...), which would not
# catch a loader that ignores the IV attribute.
TEST_IV = bytes.fromhex("0f0e0d0c0b0a09080706050403020100")

STREAM_NAMES = ("ts", "byterange", "fmp4", "aes")

# Fonts looked for (in this order) for the burnt-in overlay; no font, no overlay.
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationMono-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeMono.ttf",
    "/usr/share/fonts/dejavu/DejaVuSansMono.ttf",  # Fedora / Alpine layout
    "/System/Library/Fonts/Menlo.ttc",  # macOS
    "/Library/Fonts/Arial.ttf",
    "C:/Windows/Fonts/consola.ttf",
)


@dataclass(frozen=True)
class Rendition:
    """One video rendition of the ladder."""

    name: str
    width: int
    height: int
    video_kbps: int

    @property
    def resolution(self) -> str:
        return f"{self.width}x{self.height}"


# Video bit rates are half of the nominal 160/400/900 kbit/s ladder so that the whole
# sample folder (six renditions of 20 s each, plus MPEG-TS overhead) stays under ~5 MB.
R240 = Rendition("240p", 426, 240, 80)
R360 = Rendition("360p", 640, 360, 200)
R480 = Rendition("480p", 854, 480, 450)


@dataclass
class MediaSegment:
    uri: str
    duration: float
    size: int  # bytes actually transferred for this segment


@dataclass
class MediaPlaylist:
    path: Path
    version: int
    segments: list[MediaSegment] = field(default_factory=list)
    map_uri: str | None = None
    key_uri: str | None = None

    @property
    def total_duration(self) -> float:
        return sum(s.duration for s in self.segments)

    @property
    def files(self) -> list[Path]:
        names = {s.uri for s in self.segments}
        if self.map_uri:
            names.add(self.map_uri)
        if self.key_uri:
            names.add(self.key_uri)
        return [self.path.parent / n for n in sorted(names)]


@dataclass
class Variant:
    rendition: Rendition
    uri: str  # relative to the master playlist
    playlist: MediaPlaylist

    def bandwidths(self) -> tuple[int, int]:
        """Return (peak, average) bit rate in bit/s, per RFC 8216 section 4.3.4.2."""
        init = 0
        if self.playlist.map_uri:
            init = (self.playlist.path.parent / self.playlist.map_uri).stat().st_size
        segs = self.playlist.segments
        peak = max((s.size + init) * 8 / s.duration for s in segs)
        avg = sum(s.size for s in segs) * 8 / self.playlist.total_duration
        return math.ceil(peak), math.ceil(avg)


@dataclass
class StreamInfo:
    name: str
    description: str
    variants: list[Variant]


class SampleError(RuntimeError):
    """Raised when generation fails or produces something unexpected."""


# --- helpers --------------------------------------------------------------------------


def die(message: str) -> NoReturn:
    print(f"make_sample.py: error: {message}", file=sys.stderr)
    raise SystemExit(1)


class Runner:
    """Prints each ffmpeg command, runs it, and records it for the README."""

    def __init__(self, ffmpeg: str, root: Path) -> None:
        self.ffmpeg = ffmpeg
        self.root = root
        self.recorded: list[str] = []

    def run(self, cmd: list[str], cwd: Path) -> None:
        """Run ``cmd`` in ``cwd``; raise SampleError on failure."""
        print(f"(cd {shlex.quote(str(cwd))} && {shlex.join(cmd)})", flush=True)
        # README copy: plain "ffmpeg", folder relative to the sample root, placeholder for temp files.
        shown = ["ffmpeg", *cmd[1:]] if cmd[0] == self.ffmpeg else list(cmd)
        shown = ["$TMPDIR/key.keyinfo" if a.endswith(".keyinfo") else a for a in shown]
        where = cwd.relative_to(self.root).as_posix() if cwd.is_relative_to(self.root) else str(cwd)
        self.recorded.append(f"# in {self.root.name}/{where}/\n{shlex.join(shown)}\n")
        proc = subprocess.run(cmd, cwd=cwd, check=False)
        if proc.returncode != 0:
            raise SampleError(f"command failed with exit code {proc.returncode}: {shlex.join(cmd)}")


def ffmpeg_version(ffmpeg: str) -> str:
    out = subprocess.run([ffmpeg, "-hide_banner", "-version"], capture_output=True, text=True, check=True)
    first = out.stdout.splitlines()[0] if out.stdout else "ffmpeg (unknown version)"
    return first.split(" Copyright")[0].strip()


def ffmpeg_has(ffmpeg: str, listing: str, name: str) -> bool:
    out = subprocess.run([ffmpeg, "-hide_banner", listing], capture_output=True, text=True, check=False)
    return re.search(rf"\s{re.escape(name)}\s", out.stdout) is not None


def find_font() -> str | None:
    """Return a usable font file path, or None. Never installs anything."""
    candidates: list[str] = list(FONT_CANDIDATES)
    fc_match = shutil.which("fc-match")
    if fc_match:
        out = subprocess.run(
            [fc_match, "-f", "%{file}", "monospace"], capture_output=True, text=True, check=False
        )
        if out.returncode == 0 and out.stdout.strip():
            candidates.append(out.stdout.strip())
    for candidate in candidates:
        # Skip paths that would need filtergraph escaping; plenty of fonts don't.
        if Path(candidate).is_file() and not re.search(r"[\\':,;\[\]=]", candidate.replace("C:/", "")):
            return candidate
    return None


def drawtext_filter(font: str, r: Rendition) -> str:
    size = max(12, r.height // 14)
    pad = max(2, r.height // 60)
    return (
        f"drawtext=fontfile={font}"
        f":text='{r.name}  frame %{{frame_num}}  %{{pts\\:hms}}'"
        f":fontsize={size}:fontcolor=white:box=1:boxcolor=black@0.6:boxborderw={pad}"
        f":x=(w-text_w)/2:y=h-text_h-{pad * 3}"
    )


def encode_cmd(ffmpeg: str, r: Rendition, font: str | None, hls_args: list[str]) -> list[str]:
    """Build the ffmpeg command for one HLS rendition (output in the current directory)."""
    video_src = f"testsrc2=size={r.resolution}:rate={FPS}:duration={DURATION_SECONDS}"
    audio_src = f"sine=frequency={SINE_HZ}:beep_factor=4:sample_rate={AUDIO_RATE}:duration={DURATION_SECONDS}"
    cmd = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
    cmd += ["-f", "lavfi", "-i", video_src, "-f", "lavfi", "-i", audio_src]
    cmd += ["-filter_threads", "1"]
    if font is not None:
        cmd += ["-vf", drawtext_filter(font, r)]
    cmd += ["-map", "0:v:0", "-map", "1:a:0", "-t", str(DURATION_SECONDS)]
    cmd += [
        "-c:v", "libx264", "-preset", "veryfast", "-threads", "1",
        "-profile:v", H264_PROFILE, "-level:v", H264_LEVEL, "-pix_fmt", "yuv420p",
        "-b:v", f"{r.video_kbps}k", "-maxrate", f"{r.video_kbps * 11 // 10}k",
        "-bufsize", f"{r.video_kbps * 2}k",
        "-g", str(GOP_FRAMES), "-keyint_min", str(GOP_FRAMES), "-sc_threshold", "0",
        "-c:a", "aac", "-b:a", f"{AUDIO_KBPS}k", "-ac", "1", "-ar", str(AUDIO_RATE),
        "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact",
        "-f", "hls", "-hls_time", str(SEGMENT_SECONDS), "-hls_playlist_type", "vod",
    ]  # fmt: skip
    return cmd + hls_args


def parse_media_playlist(path: Path) -> MediaPlaylist:
    """Minimal parser for the media playlists ffmpeg writes (stdlib only)."""
    version = 1
    pl = MediaPlaylist(path=path, version=version)
    duration: float | None = None
    byterange_len: int | None = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#EXT-X-VERSION:"):
            pl.version = int(line.split(":", 1)[1])
        elif line.startswith("#EXTINF:"):
            duration = float(line.split(":", 1)[1].split(",", 1)[0])
        elif line.startswith("#EXT-X-BYTERANGE:"):
            byterange_len = int(line.split(":", 1)[1].split("@", 1)[0])
        elif line.startswith("#EXT-X-MAP:"):
            m = re.search(r'URI="([^"]+)"', line)
            pl.map_uri = m.group(1) if m else None
        elif line.startswith("#EXT-X-KEY:"):
            m = re.search(r'URI="([^"]+)"', line)
            pl.key_uri = m.group(1) if m else None
        elif not line.startswith("#"):
            if duration is None:
                raise SampleError(f"{path}: segment {line!r} without #EXTINF")
            size = byterange_len if byterange_len is not None else (path.parent / line).stat().st_size
            pl.segments.append(MediaSegment(uri=line, duration=duration, size=size))
            duration = None
            byterange_len = None
    return pl


def check_media_playlist(pl: MediaPlaylist) -> None:
    expected = DURATION_SECONDS // SEGMENT_SECONDS
    if len(pl.segments) != expected:
        raise SampleError(f"{pl.path}: expected {expected} segments, got {len(pl.segments)}")
    for seg in pl.segments:
        if abs(seg.duration - SEGMENT_SECONDS) > 0.05:
            raise SampleError(f"{pl.path}: segment {seg.uri} lasts {seg.duration} s, not {SEGMENT_SECONDS}")
    for f in pl.files:
        if not f.is_file():
            raise SampleError(f"{pl.path}: referenced file {f.name} is missing")
    text = pl.path.read_text(encoding="utf-8")
    if "://" in text or re.search(r"^/", text, re.MULTILINE) or 'URI="/' in text:
        raise SampleError(f"{pl.path}: contains a non-relative URI")


def write_master(path: Path, variants: list[Variant]) -> None:
    version = max(v.playlist.version for v in variants)
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{version}", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for v in variants:
        peak, avg = v.bandwidths()
        lines.append(
            f"#EXT-X-STREAM-INF:BANDWIDTH={peak},AVERAGE-BANDWIDTH={avg},"
            f'RESOLUTION={v.rendition.resolution},FRAME-RATE={FPS:.3f},CODECS="{CODECS}"'
        )
        lines.append(v.uri)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def avcc_codec(init_mp4: Path) -> str:
    """Return the RFC 6381 ``avc1.PPCCLL`` string from an MP4's avcC box."""
    data = init_mp4.read_bytes()
    i = data.find(b"avcC")
    if i < 0:
        raise SampleError(f"{init_mp4}: no avcC box")
    profile, compat, level = data[i + 5], data[i + 6], data[i + 7]
    return f"avc1.{profile:02x}{compat:02x}{level:02x}"


# --- streams --------------------------------------------------------------------------


def make_rendition(
    runner: Runner, font: str | None, r: Rendition, out_dir: Path, hls_args: list[str]
) -> MediaPlaylist:
    out_dir.mkdir(parents=True, exist_ok=True)
    runner.run(encode_cmd(runner.ffmpeg, r, font, hls_args), out_dir)
    pl = parse_media_playlist(out_dir / "index.m3u8")
    check_media_playlist(pl)
    return pl


def make_ts(runner: Runner, font: str | None) -> StreamInfo:
    base = runner.root / "ts"
    variants: list[Variant] = []
    for r in (R240, R360, R480):
        pl = make_rendition(
            runner,
            font,
            r,
            base / r.name,
            ["-hls_flags", "independent_segments", "-hls_segment_filename", "seg_%05d.ts", "index.m3u8"],
        )
        variants.append(Variant(r, f"{r.name}/index.m3u8", pl))
    write_master(base / "master.m3u8", variants)
    return StreamInfo("ts", "MPEG-TS, three renditions, one segment file each", variants)


def make_byterange(runner: Runner, font: str | None) -> StreamInfo:
    base = runner.root / "byterange"
    hls = [
        "-hls_flags", "single_file+independent_segments", "-hls_segment_filename", "media.ts", "index.m3u8",
    ]  # fmt: skip
    pl = make_rendition(runner, font, R360, base, hls)
    # Ranges must tile the single file exactly.
    text = pl.path.read_text(encoding="utf-8")
    if "#EXT-X-BYTERANGE" not in text:
        raise SampleError(f"{pl.path}: no EXT-X-BYTERANGE tags")
    if sum(s.size for s in pl.segments) != (base / "media.ts").stat().st_size:
        raise SampleError(f"{pl.path}: byte ranges do not cover media.ts exactly")
    variants = [Variant(R360, "index.m3u8", pl)]
    write_master(base / "master.m3u8", variants)
    return StreamInfo("byterange", "MPEG-TS, one rendition in a single file (EXT-X-BYTERANGE)", variants)


def make_fmp4(runner: Runner, font: str | None) -> StreamInfo:
    base = runner.root / "fmp4"
    hls = [
        "-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", "init.mp4",
        "-hls_flags", "independent_segments", "-hls_segment_filename", "seg_%05d.m4s", "index.m3u8",
    ]  # fmt: skip
    pl = make_rendition(runner, font, R360, base, hls)
    if pl.map_uri != "init.mp4":
        raise SampleError(f"{pl.path}: expected EXT-X-MAP URI init.mp4, got {pl.map_uri!r}")
    got = avcc_codec(base / "init.mp4")
    if not CODECS.startswith(got + ","):
        raise SampleError(f"init.mp4 says {got}, but CODECS is {CODECS!r}; update CODECS")
    variants = [Variant(R360, "index.m3u8", pl)]
    write_master(base / "master.m3u8", variants)
    return StreamInfo("fmp4", "fragmented MP4 (CMAF-style), one rendition, EXT-X-MAP init.mp4", variants)


def make_aes(runner: Runner, font: str | None) -> StreamInfo:
    base = runner.root / "aes"
    base.mkdir(parents=True, exist_ok=True)
    key_file = base / "key.bin"
    key_file.write_bytes(TEST_KEY)
    with tempfile.TemporaryDirectory(prefix="make_sample_") as tmp:
        # Key info file: key URI written into the playlist, key file path, IV (hex).
        key_info = Path(tmp) / "key.keyinfo"
        key_info.write_text(f"key.bin\n{key_file.resolve()}\n{TEST_IV.hex()}\n", encoding="utf-8")
        hls = [
            "-hls_key_info_file", str(key_info),
            "-hls_flags", "independent_segments", "-hls_segment_filename", "seg_%05d.ts", "index.m3u8",
        ]  # fmt: skip
        pl = make_rendition(runner, font, R240, base, hls)
    if pl.key_uri != "key.bin":
        raise SampleError(f"{pl.path}: expected key URI key.bin, got {pl.key_uri!r}")
    if not re.search(rf"IV=0x{TEST_IV.hex()}\b", pl.path.read_text(encoding="utf-8"), re.IGNORECASE):
        raise SampleError(f"{pl.path}: expected IV=0x{TEST_IV.hex()} in #EXT-X-KEY")
    variants = [Variant(R240, "index.m3u8", pl)]
    write_master(base / "master.m3u8", variants)
    return StreamInfo("aes", "MPEG-TS, one rendition, AES-128 encrypted (public test key)", variants)


# --- README ---------------------------------------------------------------------------


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def write_readme(root: Path, streams: list[StreamInfo], version: str, font: str | None, cmds: str) -> None:
    total = sum(dir_size(root / s.name) for s in streams)
    overlay = (
        f"a burnt-in `<rendition>  frame N  HH:MM:SS.mmm` overlay (drawtext, font `{Path(font).name}`)"
        if font
        else "no text overlay (no font was available when it was generated)"
    )
    out: list[str] = [
        "# HLS sample streams",
        "",
        "Small, real HLS streams for tests, examples and benchmarks. **Generated** by",
        "`scripts/make_sample.py` — do not edit the media or this file by hand; run",
        "",
        "```sh",
        "python scripts/make_sample.py",
        "```",
        "",
        "from the repository root to regenerate everything (it needs `ffmpeg` with libx264).",
        "Use `p2ploader.sample.sample_path(name)` to locate a stream folder from code.",
        "",
        f"Generated with **{version}**.",
        "",
        "## Common properties",
        "",
        f"- Video: ffmpeg `testsrc2` pattern with {overlay};",
        f"  H.264 {H264_PROFILE.capitalize()} profile, level {H264_LEVEL} (libx264, `-preset veryfast`,",
        f"  `-threads 1`), {FPS} fps, a keyframe (IDR) exactly every {SEGMENT_SECONDS} s",
        f"  (`-g {GOP_FRAMES} -keyint_min {GOP_FRAMES} -sc_threshold 0`), closed GOPs.",
        f"- Audio: `sine` {SINE_HZ} Hz tone with a beep every second, AAC-LC mono {AUDIO_KBPS} kbit/s,",
        f"  {AUDIO_RATE} Hz.",
        f"- {DURATION_SECONDS} s long, `-hls_time {SEGMENT_SECONDS}`, so every media playlist has"
        f" {DURATION_SECONDS // SEGMENT_SECONDS}",
        f"  segments of {SEGMENT_SECONDS}.000 s; `#EXT-X-PLAYLIST-TYPE:VOD` with `#EXT-X-ENDLIST`.",
        f'- `CODECS="{CODECS}"` in every master playlist. `BANDWIDTH` is the measured peak',
        "  segment bit rate and `AVERAGE-BANDWIDTH` the measured average (RFC 8216 §4.3.4.2).",
        "- All URIs are relative. Each folder has a `master.m3u8`.",
        "- Video bit rates are half of a typical 160/400/900 kbit/s ladder to keep the folder",
        f"  small; the whole sample is {total:,} bytes ({total / 1_000_000:.2f} MB) of media.",
        "",
        "## Streams",
        "",
    ]
    for s in streams:
        size = dir_size(root / s.name)
        out += [f"### `{s.name}/` — {s.description}", ""]
        out += [
            "| variant URI | resolution | video target | audio | segments | duration "
            "| peak / avg bit rate | media bytes |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for v in s.variants:
            peak, avg = v.bandwidths()
            media = sum(f.stat().st_size for f in v.playlist.files if f.suffix != ".bin")
            out.append(
                f"| `{v.uri}` | {v.rendition.resolution} | {v.rendition.video_kbps} kbit/s "
                f"| {AUDIO_KBPS} kbit/s AAC mono | {len(v.playlist.segments)} "
                f"| {v.playlist.total_duration:.3f} s | {peak / 1000:.0f} / {avg / 1000:.0f} kbit/s "
                f"| {media:,} |"
            )
        out += ["", f"Folder size: {size:,} bytes.", ""]
        if s.name == "ts":
            out.append(
                "Layout: `master.m3u8`, and `240p/`, `360p/`, `480p/` each with `index.m3u8` and"
                " `seg_00000.ts` … `seg_00009.ts`."
            )
        elif s.name == "byterange":
            out.append(
                "Layout: `master.m3u8`, `index.m3u8` and one `media.ts`; every segment is an"
                " `#EXT-X-BYTERANGE:<length>@<offset>` slice, and the slices are contiguous and"
                " end exactly at the end of `media.ts` (`-hls_flags single_file`)."
            )
        elif s.name == "fmp4":
            out.append(
                'Layout: `master.m3u8`, `index.m3u8` with `#EXT-X-MAP:URI="init.mp4"`, `init.mp4`'
                " (ftyp+moov) and `seg_00000.m4s` … `seg_00009.m4s` (moof+mdat)."
            )
        elif s.name == "aes":
            out += [
                "Layout: `master.m3u8`, `index.m3u8` with one"
                f' `#EXT-X-KEY:METHOD=AES-128,URI="key.bin",IV=0x{TEST_IV.hex()}`,'
                " `key.bin` and `seg_00000.ts` … `seg_00009.ts`.",
                "",
                "Every segment is AES-128-CBC encrypted (PKCS#7 padding) with that key and that",
                "explicit IV (the same IV for all segments, as the single `EXT-X-KEY` tag says; the",
                "media-sequence-number IV of RFC 8216 §5.2 applies only when `IV` is absent).",
                "Decrypted, the segments are byte-identical to `ts/240p/` (same encode settings).",
                "",
                f"**`key.bin` is a public test key** (`{TEST_KEY.hex()}`), committed on purpose so",
                "tests can decrypt the segments. It protects nothing; never reuse it.",
            ]
        out.append("")
    out += [
        "## Exact ffmpeg commands",
        "",
        "As printed by the script (the AES key info file lives in a temporary directory that",
        "is deleted afterwards):",
        "",
        "```sh",
        cmds.rstrip(),
        "```",
        "",
    ]
    (root / "README.md").write_text("\n".join(out), encoding="utf-8")


# --- main -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="(Re)generate the HLS sample streams in p2ploader/sample/.")
    parser.add_argument("--ffmpeg", default="ffmpeg", help="ffmpeg executable (default: from PATH)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="sample folder to (re)create")
    args = parser.parse_args(argv)

    ffmpeg = shutil.which(args.ffmpeg)
    if ffmpeg is None:
        die(
            f"ffmpeg not found ({args.ffmpeg!r} is not an executable on PATH). "
            "Install it first, e.g. `apt-get install ffmpeg` or `brew install ffmpeg`, "
            "or pass --ffmpeg /path/to/ffmpeg."
        )
    if not ffmpeg_has(ffmpeg, "-encoders", "libx264"):
        die(f"{ffmpeg} was built without libx264; install a build with --enable-libx264.")
    version = ffmpeg_version(ffmpeg)
    print(f"# using {version} ({ffmpeg})", flush=True)

    font = find_font() if ffmpeg_has(ffmpeg, "-filters", "drawtext") else None
    print(f"# overlay font: {font or 'none (plain testsrc2)'}", flush=True)

    root: Path = args.output.resolve()
    root.mkdir(parents=True, exist_ok=True)
    for name in STREAM_NAMES:  # only the generated folders; __init__.py etc. stay
        shutil.rmtree(root / name, ignore_errors=True)

    runner = Runner(ffmpeg, root)
    try:
        streams = [
            make_ts(runner, font),
            make_byterange(runner, font),
            make_fmp4(runner, font),
            make_aes(runner, font),
        ]
    except SampleError as exc:
        die(str(exc))

    write_readme(root, streams, version, font, "\n".join(runner.recorded))
    for s in streams:
        print(f"# {s.name}/: {dir_size(root / s.name):,} bytes", flush=True)
    total = sum(dir_size(root / s.name) for s in streams)
    print(f"# total media: {total:,} bytes ({total / 1_000_000:.2f} MB) in {root}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
