"""Rendering the playlists a player gets from the proxy (pure functions, no I/O).

The proxy does not edit the origin's text: it renders new playlists from the loader's validated
model (:mod:`p2ploader.hls`), so only what the model understood reaches the player and every URI in
the output is one of the proxy's own paths (:mod:`p2ploader.proxy.paths`).

Master playlist
    Every variant (EXT-X-STREAM-INF with BANDWIDTH, AVERAGE-BANDWIDTH, RESOLUTION, FRAME-RATE,
    CODECS and its AUDIO/VIDEO/SUBTITLES/CLOSED-CAPTIONS groups) points at ``/r/v<i>/index.m3u8``;
    every EXT-X-MEDIA rendition with a URI points at ``/r/m<i>/index.m3u8``; renditions carried in
    the variant streams (no URI, closed captions) are copied without one. I-frame playlists,
    session keys and content steering are left out: they would send the player around the proxy.

Media playlist
    The same media sequence, discontinuity sequence, target duration, playlist type and durations
    as the loader's current playlist (for a live stream the loader refreshes it), ``EXT-X-ENDLIST``
    once the stream has ended, ``EXT-X-DISCONTINUITY`` where the discontinuity count steps,
    ``EXT-X-KEY`` (METHOD, IV, KEYFORMAT; an implicit IV stays implicit, which is correct because
    the media sequence numbers are kept) and ``EXT-X-MAP`` whenever they change, and
    ``EXT-X-GAP`` before every segment the model marks as a gap (its URI is a proxy path too, which
    answers 404: a gap has no media). No
    ``EXT-X-BYTERANGE``: the proxy serves exactly each segment's bytes, and an init section with a
    byte range whole. Key and init URIs that are not http(s) (``skd:``, ``data:``: for a CDM, not
    for HTTP) are copied as they are.

Tags the model does not keep (EXT-X-PROGRAM-DATE-TIME, EXT-X-DATERANGE, EXT-X-START,
KEYFORMATVERSIONS, ...) are not passed on.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from p2ploader.core.segments import InitSection, KeyInfo, Segment
from p2ploader.hls import AlternateRendition, MasterPlaylist, MediaPlaylist, Variant
from p2ploader.proxy import paths
from p2ploader.proxy.paths import Token
from p2ploader.proxy.resources import ResourceTable

__all__ = ["render_master", "render_media"]


def _quoted(value: str) -> str:
    # The model only holds values parsed from quoted strings, which cannot hold these; refuse
    # rather than emit a playlist a player would misread.
    if any(c in value for c in '"\r\n'):
        raise ValueError(f"cannot write {value!r} as an HLS quoted string")
    return f'"{value}"'


def _attributes(pairs: Iterable[tuple[str, str | None]]) -> str:
    return ",".join(f"{name}={value}" for name, value in pairs if value is not None)


def _yes(flag: bool) -> str:
    return "YES" if flag else "NO"


def _media_tag(index: int, rendition: AlternateRendition) -> str:
    uri = None if rendition.url is None else _quoted(paths.playlist_path(Token("m", index)))
    return "#EXT-X-MEDIA:" + _attributes(
        [
            ("TYPE", rendition.type),
            ("GROUP-ID", _quoted(rendition.group_id)),
            ("NAME", _quoted(rendition.name)),
            ("LANGUAGE", None if rendition.language is None else _quoted(rendition.language)),
            ("DEFAULT", _yes(rendition.default)),
            ("AUTOSELECT", _yes(rendition.autoselect)),
            ("FORCED", _yes(rendition.forced) if rendition.type == "SUBTITLES" else None),
            ("INSTREAM-ID", None if rendition.instream_id is None else _quoted(rendition.instream_id)),
            ("CHANNELS", None if rendition.channels is None else _quoted(rendition.channels)),
            ("URI", uri),
        ]
    )


def _stream_inf(variant: Variant) -> str:
    resolution = variant.resolution
    return "#EXT-X-STREAM-INF:" + _attributes(
        [
            ("BANDWIDTH", str(variant.bandwidth)),
            (
                "AVERAGE-BANDWIDTH",
                None if variant.average_bandwidth is None else str(variant.average_bandwidth),
            ),
            ("RESOLUTION", None if resolution is None else f"{resolution[0]}x{resolution[1]}"),
            ("FRAME-RATE", None if variant.frame_rate is None else f"{variant.frame_rate:.3f}"),
            ("CODECS", None if variant.codecs is None else _quoted(variant.codecs)),
            ("AUDIO", None if variant.audio is None else _quoted(variant.audio)),
            ("VIDEO", None if variant.video is None else _quoted(variant.video)),
            ("SUBTITLES", None if variant.subtitles is None else _quoted(variant.subtitles)),
            (
                "CLOSED-CAPTIONS",
                None if variant.closed_captions is None else _quoted(variant.closed_captions),
            ),
        ]
    )


def render_master(master: MasterPlaylist, *, only: Variant | None = None) -> str:
    """The proxy's master playlist for the origin's ``master`` (with ``only``: that variant alone)."""
    lines = ["#EXTM3U"]
    if any((r.instream_id or "").startswith("SERVICE") for r in master.renditions):
        lines.append("#EXT-X-VERSION:7")  # INSTREAM-ID SERVICEn needs version 7
    lines.extend(_media_tag(index, rendition) for index, rendition in enumerate(master.renditions))
    for variant in master.variants:
        if only is not None and variant.index != only.index:
            continue
        lines.append(_stream_inf(variant))
        lines.append(paths.playlist_path(Token("v", variant.index)))
    return "\n".join(lines) + "\n"


def _is_http(url: str) -> bool:
    return urlsplit(url).scheme in ("http", "https")


def _duration(seconds: float) -> str:
    return f"{seconds:.6f}"


def _key_tag(token: Token, key: KeyInfo | None, resources: ResourceTable) -> str:
    if key is None:
        return "#EXT-X-KEY:METHOD=NONE"
    uri: str | None = None
    if key.url is not None:
        uri = paths.key_path(token, resources.key_number(key)) if _is_http(key.url) else key.url
    return "#EXT-X-KEY:" + _attributes(
        [
            ("METHOD", key.method),
            ("URI", None if uri is None else _quoted(uri)),
            ("IV", key.iv),
            ("KEYFORMAT", None if key.key_format is None else _quoted(key.key_format)),
        ]
    )


def _map_tag(token: Token, init: InitSection, resources: ResourceTable) -> str:
    if not _is_http(init.url):
        uri = init.url
        byte_range = init.byte_range
        suffix = "" if byte_range is None else f',BYTERANGE="{byte_range.length}@{byte_range.offset}"'
        return f"#EXT-X-MAP:URI={_quoted(uri)}{suffix}"
    return f"#EXT-X-MAP:URI={_quoted(paths.init_path(token, resources.init_number(init), init))}"


def _version(segments: Iterable[Segment]) -> int:
    version = 3  # decimal EXTINF durations
    for segment in segments:
        if segment.init_section is not None:
            version = max(version, 6)
        if segment.key is not None and segment.key.key_format is not None:
            version = max(version, 5)
    return version


def render_media(playlist: MediaPlaylist, token: Token, resources: ResourceTable) -> str:
    """The proxy's copy of ``playlist`` (a rendition's current media playlist) for ``token``."""
    segments = playlist.segments
    first_discontinuity = segments[0].discontinuity_sequence if segments else playlist.discontinuity_sequence
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{_version(segments)}",
        f"#EXT-X-TARGETDURATION:{playlist.target_duration}",
        f"#EXT-X-MEDIA-SEQUENCE:{playlist.media_sequence}",
        f"#EXT-X-DISCONTINUITY-SEQUENCE:{first_discontinuity}",
    ]
    if playlist.playlist_type is not None:
        lines.append(f"#EXT-X-PLAYLIST-TYPE:{playlist.playlist_type}")
    previous: Segment | None = None
    for segment in segments:
        discontinuity = previous is not None and (
            segment.discontinuity_sequence != previous.discontinuity_sequence
        )
        if discontinuity:
            lines.append("#EXT-X-DISCONTINUITY")
        init = segment.init_section
        if init is not None and (previous is None or discontinuity or init != previous.init_section):
            lines.append(_map_tag(token, init, resources))
        if (previous is None and segment.key is not None) or (
            previous is not None and segment.key != previous.key
        ):
            lines.append(_key_tag(token, segment.key, resources))
        if segment.gap:
            lines.append("#EXT-X-GAP")
        lines.append(f"#EXTINF:{_duration(segment.duration)},")
        lines.append(paths.segment_path(token, segment))
        previous = segment
    if playlist.end_list:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"
