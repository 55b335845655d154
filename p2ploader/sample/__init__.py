"""Small, real HLS sample streams bundled with p2ploader, for tests, examples and benchmarks.

The media was generated with ffmpeg by ``scripts/make_sample.py``; see ``README.md`` in this
folder for what each stream contains. Each stream folder holds a ``master.m3u8``:

* ``"ts"``: MPEG-TS, three renditions (``240p/``, ``360p/``, ``480p/``)
* ``"byterange"``: one rendition in a single ``.ts`` file with ``EXT-X-BYTERANGE``
* ``"fmp4"``: one fragmented-MP4 rendition with an ``EXT-X-MAP`` init segment
* ``"aes"``: one AES-128 encrypted rendition (``key.bin`` is a public test key)

Example::

    from p2ploader.sample import sample_path

    master = sample_path("ts") / "master.m3u8"
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

__all__ = ["SAMPLE_NAMES", "SAMPLE_ROOT", "sample_path", "vod_segment_bytes"]

SAMPLE_ROOT: Final[Path] = Path(__file__).resolve().parent
"""The folder holding all sample streams (this package's directory)."""

SAMPLE_NAMES: Final[tuple[str, ...]] = ("ts", "byterange", "fmp4", "aes")
"""The valid stream names accepted by :func:`sample_path`."""


def sample_path(name: str) -> Path:
    """Return the folder of the sample stream called ``name``.

    Args:
        name: One of ``"ts"``, ``"byterange"``, ``"fmp4"`` or ``"aes"``.

    Returns:
        The stream's folder; its master playlist is ``sample_path(name) / "master.m3u8"``.

    Raises:
        ValueError: If ``name`` is not a known stream name.
    """
    if name not in SAMPLE_NAMES:
        valid = ", ".join(repr(n) for n in SAMPLE_NAMES)
        raise ValueError(f"unknown sample stream {name!r}; valid names are {valid}")
    return SAMPLE_ROOT / name


def vod_segment_bytes(playlist: Path) -> list[bytes]:
    """The bytes of each segment of a VOD media playlist on disk, byte ranges applied: what an
    origin serving that folder sends for each segment (tests and benchmarks compare against it)."""
    from p2ploader.hls import parse_media

    parsed = parse_media(playlist.read_text(encoding="utf-8"), playlist.resolve().as_uri(), rendition="vod")
    out = []
    for segment in parsed.segments:
        data = Path(segment.url.removeprefix("file://")).read_bytes()
        if segment.byte_range is not None:
            data = data[segment.byte_range.offset : segment.byte_range.end]
        out.append(data)
    return out
