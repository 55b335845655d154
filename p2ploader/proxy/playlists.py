"""Rendering the playlists a player gets from the proxy (pure functions, no I/O).

The proxy does not edit the origin's text: it renders new playlists from the loader's validated
model (:mod:`p2ploader.hls`), so only what the model understood reaches the player and every URI in
the output is one of the proxy's own paths (:mod:`p2ploader.proxy.paths`).

Master playlist
    Every variant (EXT-X-STREAM-INF with BANDWIDTH, AVERAGE-BANDWIDTH, RESOLUTION, FRAME-RATE,
    CODECS and its AUDIO/VIDEO/SUBTITLES/CLOSED-CAPTIONS groups) points at ``/r/v<i>/index.m3u8``;
    every EXT-X-MEDIA rendition with a URI points at ``/r/m<i>/index.m3u8``; renditions carried in
    the variant streams (no URI, closed captions) are copied without one. Every
    EXT-X-I-FRAME-STREAM-INF (BANDWIDTH, AVERAGE-BANDWIDTH, CODECS, RESOLUTION, VIDEO) points at
    ``/r/i<i>/index.m3u8``; EXT-X-START (TIME-OFFSET, PRECISE) is kept. Session keys and content
    steering are left out: they would send the player around the proxy.

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
    for HTTP) are copied as they are. ``EXT-X-PROGRAM-DATE-TIME`` on every segment once the origin
    dates any (the model's dates: given or extrapolated), every ``EXT-X-DATERANGE`` the model holds
    (its ``X-`` attributes copied as written: a URI in one, such as ``X-ASSET-URI``, is not
    rewritten and still names the origin), ``EXT-X-START`` and ``EXT-X-I-FRAMES-ONLY``. An I-frame
    playlist's byte-range segments become whole proxy segments, each exactly its range.

Low-Latency HLS (``low_latency=True``; :mod:`p2ploader.proxy.low_latency` serves it)
    ``EXT-X-SERVER-CONTROL`` with ``CAN-BLOCK-RELOAD=YES`` (the proxy holds ``_HLS_msn`` /
    ``_HLS_part`` requests itself, whatever the origin does), the origin's ``PART-HOLD-BACK``
    (three part targets when it gives none, as RFC 8216bis recommends) and ``HOLD-BACK``; never
    ``CAN-SKIP-UNTIL``: the proxy does not serve delta updates, so a client never asks for one
    (``_HLS_skip`` is ignored and the full playlist served). ``EXT-X-PART-INF``. Every
    ``EXT-X-PART`` (DURATION, INDEPENDENT, GAP) of the segments ending within three target
    durations of the end of the playlist and of the segment in progress, each with its own proxy
    path (``/r/<token>/part/<sequence>.<k>.<ext>``): a byte-range part is served as exactly its
    bytes, so no ``BYTERANGE`` is written. One ``EXT-X-PRELOAD-HINT:TYPE=PART`` naming the path of
    the part that follows the last one (the proxy holds that request until the part exists); a
    ``TYPE=MAP`` hint is not passed on (the proxy lists every init section with ``EXT-X-MAP``).
    An ``EXT-X-DISCONTINUITY`` before the parts of the segment in progress when the origin wrote
    one there. ``EXT-X-RENDITION-REPORT`` for every report whose rendition the proxy serves (its media
    playlist path, the origin's LAST-MSN and LAST-PART, which stay true because the proxy keeps
    media sequence numbers and part indices); a report of any other playlist is dropped.

Tags the model does not keep (KEYFORMATVERSIONS, ...) are not passed on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from p2ploader.core.low_latency import RenditionReport
from p2ploader.core.segments import InitSection, KeyInfo, Part, Segment
from p2ploader.errors import PlaylistError
from p2ploader.hls import (
    AlternateRendition,
    DateRange,
    IFrameVariant,
    MasterPlaylist,
    MediaPlaylist,
    StartOffset,
    Variant,
)
from p2ploader.proxy import paths
from p2ploader.proxy.paths import Token
from p2ploader.proxy.resources import ResourceTable

__all__ = ["PARTS_KEPT_TARGET_DURATIONS", "render_master", "render_media"]

#: Parts are listed for the segments that end within this many target durations of the end of the
#: playlist (RFC 8216bis §6.2.2 lets a server drop older ones; players only need them at the edge).
PARTS_KEPT_TARGET_DURATIONS = 3


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


def _number(value: float) -> str:
    """A decimal-floating-point attribute value, without trailing zeros (``4``, ``-4.5``)."""
    return f"{value:.6f}".rstrip("0").rstrip(".")


def _date(value: datetime) -> str:
    """An ISO 8601 date-time with milliseconds (microseconds when it has them), UTC as ``Z``."""
    text = value.isoformat(timespec="milliseconds" if value.microsecond % 1000 == 0 else "microseconds")
    return text.removesuffix("+00:00") + "Z" if value.utcoffset() == timedelta(0) else text


def _start_tag(start: StartOffset) -> str:
    return f"#EXT-X-START:TIME-OFFSET={_number(start.time_offset)}" + (
        ",PRECISE=YES" if start.precise else ""
    )


def _i_frame_stream_inf(variant: IFrameVariant) -> str:
    resolution = variant.resolution
    return "#EXT-X-I-FRAME-STREAM-INF:" + _attributes(
        [
            ("BANDWIDTH", str(variant.bandwidth)),
            (
                "AVERAGE-BANDWIDTH",
                None if variant.average_bandwidth is None else str(variant.average_bandwidth),
            ),
            ("CODECS", None if variant.codecs is None else _quoted(variant.codecs)),
            ("RESOLUTION", None if resolution is None else f"{resolution[0]}x{resolution[1]}"),
            ("VIDEO", None if variant.video is None else _quoted(variant.video)),
            ("URI", _quoted(paths.playlist_path(Token("i", variant.index)))),
        ]
    )


def _date_range_tag(date_range: DateRange) -> str:
    return "#EXT-X-DATERANGE:" + _attributes(
        [
            ("ID", _quoted(date_range.id)),
            ("CLASS", None if date_range.class_name is None else _quoted(date_range.class_name)),
            ("START-DATE", _quoted(_date(date_range.start_date))),
            ("END-DATE", None if date_range.end_date is None else _quoted(_date(date_range.end_date))),
            ("DURATION", None if date_range.duration is None else _number(date_range.duration)),
            (
                "PLANNED-DURATION",
                None if date_range.planned_duration is None else _number(date_range.planned_duration),
            ),
            # Client attributes as the origin wrote them (URIs in them are not rewritten).
            *date_range.client_attributes.items(),
            ("SCTE35-CMD", date_range.scte35_cmd),
            ("SCTE35-OUT", date_range.scte35_out),
            ("SCTE35-IN", date_range.scte35_in),
            ("END-ON-NEXT", "YES" if date_range.end_on_next else None),
        ]
    )


def render_master(master: MasterPlaylist, *, only: Variant | None = None) -> str:
    """The proxy's master playlist for the origin's ``master`` (with ``only``: that variant alone;
    the I-frame playlists are listed either way)."""
    lines = ["#EXTM3U"]
    if any((r.instream_id or "").startswith("SERVICE") for r in master.renditions):
        lines.append("#EXT-X-VERSION:7")  # INSTREAM-ID SERVICEn needs version 7
    if master.start is not None:
        lines.append(_start_tag(master.start))
    lines.extend(_media_tag(index, rendition) for index, rendition in enumerate(master.renditions))
    for variant in master.variants:
        if only is not None and variant.index != only.index:
            continue
        lines.append(_stream_inf(variant))
        lines.append(paths.playlist_path(Token("v", variant.index)))
    lines.extend(_i_frame_stream_inf(variant) for variant in master.i_frame_variants)
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
            ("IV", key.iv_hex),
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


def _version(segments: Iterable[Segment], *, i_frames_only: bool = False) -> int:
    version = 4 if i_frames_only else 3  # decimal EXTINF durations; EXT-X-I-FRAMES-ONLY needs 4
    for segment in segments:
        if segment.init_section is not None:
            version = max(version, 6)
        if segment.key is not None and segment.key.key_format is not None:
            version = max(version, 5)
    return version


def _server_control(playlist: MediaPlaylist) -> str:
    control = playlist.server_control
    part_target = playlist.part_target
    assert part_target is not None
    part_hold_back = 3 * part_target  # RFC 8216bis's recommendation when the origin gives none
    if control is not None and control.part_hold_back is not None:
        part_hold_back = control.part_hold_back
    hold_back = None if control is None or control.hold_back is None else _number(control.hold_back)
    return "#EXT-X-SERVER-CONTROL:" + _attributes(
        [("CAN-BLOCK-RELOAD", "YES"), ("HOLD-BACK", hold_back), ("PART-HOLD-BACK", _number(part_hold_back))]
    )


def _part_tag(token: Token, part: Part, extension: str) -> str:
    uri = paths.part_path(token, part.segment.sequence, part.id.index, paths.part_extension(part, extension))
    return "#EXT-X-PART:" + _attributes(
        [
            ("DURATION", _number(part.duration)),
            ("URI", _quoted(uri)),
            ("INDEPENDENT", "YES" if part.independent else None),
            ("GAP", "YES" if part.gap else None),
        ]
    )


def _check_parts(playlist: MediaPlaylist) -> None:
    """Raise :class:`~p2ploader.errors.PlaylistError` (the player would fetch the wrong media)
    unless every part is listed under its own segment with
    indices 0, 1, 2, ... and the pending parts are those of the segment after the last one."""
    listed: list[tuple[int, tuple[Part, ...]]] = [(s.id.sequence, s.parts) for s in playlist.segments]
    listed.append((playlist.last_sequence + 1, playlist.pending_parts))
    for sequence, parts in listed:
        if not parts:
            continue
        first = parts[0].id.index
        for offset, part in enumerate(parts):
            if part.segment.sequence != sequence or part.segment.rendition != playlist.rendition:
                raise PlaylistError(
                    playlist.url, f"part {part.id} is listed under segment {sequence} of {playlist.rendition}"
                )
            if part.id.index != first + offset:
                raise PlaylistError(
                    playlist.url, f"part {part.id} does not follow part {sequence}.{first + offset - 1}"
                )
        if sequence == playlist.last_sequence + 1 and first != 0:
            raise PlaylistError(
                playlist.url, f"the parts of segment {sequence} in progress start at {first}, not 0"
            )


def _next_part_extension(playlist: MediaPlaylist, default: str) -> str:
    """The extension of the part after the last one: the origin's PART hint's, else the last
    pending part's, else ``default`` (the last segment's), as the part will be listed with it."""
    for hint in playlist.preload_hints:
        if hint.type == "PART":
            return paths.url_extension(hint.url, default)
    if playlist.pending_parts:
        return paths.part_extension(playlist.pending_parts[-1], default)
    return default


def _report_tag(report: RenditionReport, token: Token) -> str:
    return "#EXT-X-RENDITION-REPORT:" + _attributes(
        [
            ("URI", _quoted(paths.playlist_path(token))),
            ("LAST-MSN", None if report.last_msn is None else str(report.last_msn)),
            ("LAST-PART", None if report.last_part is None else str(report.last_part)),
        ]
    )


def render_media(
    playlist: MediaPlaylist,
    token: Token,
    resources: ResourceTable,
    *,
    low_latency: bool = False,
    report_token: Callable[[str], Token | None] | None = None,
) -> str:
    """The proxy's copy of ``playlist`` (a rendition's current media playlist) for ``token``.

    With ``low_latency`` (and a playlist with ``EXT-X-PART-INF``) the LL-HLS tags are written as
    the module docstring says; ``report_token`` maps a rendition report's playlist URL to the
    proxy's token for it (None: the report is dropped). Raises
    :class:`~p2ploader.errors.PlaylistError` for parts that cannot be re-served."""
    low_latency = low_latency and playlist.part_target is not None
    if low_latency:
        _check_parts(playlist)
    segments = playlist.segments
    first_discontinuity = segments[0].discontinuity_sequence if segments else playlist.discontinuity_sequence
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{_version(segments, i_frames_only=playlist.i_frames_only)}",
        f"#EXT-X-TARGETDURATION:{playlist.target_duration}",
        f"#EXT-X-MEDIA-SEQUENCE:{playlist.media_sequence}",
        f"#EXT-X-DISCONTINUITY-SEQUENCE:{first_discontinuity}",
    ]
    if low_latency:
        lines.append(_server_control(playlist))
        lines.append(f"#EXT-X-PART-INF:PART-TARGET={_number(playlist.part_target or 0.0)}")
    if playlist.playlist_type is not None:
        lines.append(f"#EXT-X-PLAYLIST-TYPE:{playlist.playlist_type}")
    if playlist.i_frames_only:
        lines.append("#EXT-X-I-FRAMES-ONLY")
    if playlist.start is not None:
        lines.append(_start_tag(playlist.start))
    lines.extend(_date_range_tag(date_range) for date_range in playlist.date_ranges)
    previous: Segment | None = None
    end = segments[-1].end if segments else 0.0
    parts_from = end - PARTS_KEPT_TARGET_DURATIONS * playlist.target_duration
    extension = paths.segment_extension(segments[-1]) if segments else "m4s"
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
        if segment.program_date_time is not None:
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{_date(segment.program_date_time)}")
        if low_latency and segment.end > parts_from + 1e-6:  # ends inside the last 3 target durations
            own = paths.segment_extension(segment)
            lines.extend(_part_tag(token, part, own) for part in segment.parts)
        if segment.gap:
            lines.append("#EXT-X-GAP")
        lines.append(f"#EXTINF:{_duration(segment.duration)},")
        lines.append(paths.segment_path(token, segment))
        previous = segment
    if low_latency:
        if playlist.pending_parts and playlist.pending_discontinuity:
            lines.append("#EXT-X-DISCONTINUITY")  # the segment in progress starts one
        lines.extend(_part_tag(token, part, extension) for part in playlist.pending_parts)
        if not playlist.end_list:
            sequence = playlist.last_sequence + 1
            index = playlist.pending_parts[-1].id.index + 1 if playlist.pending_parts else 0
            hint = paths.part_path(token, sequence, index, _next_part_extension(playlist, extension))
            lines.append(f"#EXT-X-PRELOAD-HINT:TYPE=PART,URI={_quoted(hint)}")
        for report in playlist.rendition_reports:
            reported = None if report_token is None else report_token(report.url)
            if reported is not None:
                lines.append(_report_tag(report, reported))
    if playlist.end_list:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"
