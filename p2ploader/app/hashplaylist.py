"""``p2ploader hash-playlist``: publish per-segment SHA-256 digests in a stream's media playlists.

Given a master or media playlist on disk, every media playlist it names gets one
``#EXT-X-P2PLOADER-SHA256:<hex>`` tag right before each segment URI (the format is documented in
:mod:`p2ploader.core.integrity` and ``docs/security.md``). Tags already present are replaced, so
running it again after segments changed brings the digests up to date. Loaders then reject any
P2P segment whose bytes differ (``integrity_sha256`` is on by default wherever digests are
published; only ``integrity_sha256=False`` turns it off).

Safety: nothing is written until every digest of a playlist was computed; each playlist is written
to a temporary file next to it and moved over the original in one ``os.replace``, so an interrupted
run leaves either the old or the new playlist, never half of one. Segments must be local files
under the playlist's folder tree (a digest of a remote segment would be a guess).

With ``check=True`` nothing is written: the published tags are compared with the files instead.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import attrs

from p2ploader.core.integrity import SegmentUri, add_hash_tags, parse_hash_tags, segment_uri_lines
from p2ploader.errors import UsageError
from p2ploader.hls import parse_playlist

__all__ = ["HashPlaylistError", "HashReport", "hash_playlists"]

_READ_CHUNK = 1 << 20


class HashPlaylistError(UsageError):
    """The playlists cannot be hashed as asked: a missing or unreadable file, a segment that is not
    a local file, a byte range past the end of its file, or (with ``check``) a stale digest."""


@attrs.frozen(kw_only=True)
class HashReport:
    """What :func:`hash_playlists` did: the media playlists it wrote (or checked) and how many
    segments they have."""

    playlists: tuple[Path, ...]
    segments: int
    written: bool


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise HashPlaylistError(f"{path}: no such file") from exc
    except UnicodeDecodeError as exc:
        raise HashPlaylistError(f"{path}: not UTF-8 text") from exc
    except OSError as exc:
        raise HashPlaylistError(f"{path}: {exc.strerror or exc}") from exc


def _local_path(url: str, what: str) -> Path:
    parts = urlsplit(url)
    if parts.scheme != "file":
        raise HashPlaylistError(f"{what} {url!r} is not a local file; hash-playlist reads segments from disk")
    return Path(unquote(parts.path))


def _segment_digest(playlist: Path, segment: SegmentUri) -> bytes:
    url = (playlist.resolve().parent / "x").as_uri()
    target = _local_path(urljoin(url, segment.uri), "segment")
    digest = hashlib.sha256()
    try:
        with target.open("rb") as file:
            if segment.offset is not None:
                file.seek(segment.offset)
            remaining = segment.length
            while remaining is None or remaining > 0:
                chunk = file.read(_READ_CHUNK if remaining is None else min(_READ_CHUNK, remaining))
                if not chunk:
                    break
                digest.update(chunk)
                if remaining is not None:
                    remaining -= len(chunk)
    except FileNotFoundError as exc:
        raise HashPlaylistError(f"{playlist}: segment file {target} does not exist") from exc
    except OSError as exc:
        raise HashPlaylistError(f"{playlist}: cannot read segment {target}: {exc.strerror or exc}") from exc
    if remaining:
        raise HashPlaylistError(f"{playlist}: byte range of {segment.uri!r} goes past the end of {target}")
    return digest.digest()


def _media_playlists(path: Path) -> list[Path]:
    """The media playlists a master names (or ``[path]`` for a media playlist), in order."""
    text = _read_text(path)
    url = path.resolve().as_uri()
    master = parse_playlist(text, url)  # PlaylistError for a malformed playlist
    if master.is_synthetic:
        return [path]
    urls = [v.url for v in master.variants] + [r.url for r in master.renditions if r.url is not None]
    out: list[Path] = []
    for media_url in dict.fromkeys(urls):
        out.append(_local_path(media_url, "media playlist"))
    return out


def _write_atomically(path: Path, text: str) -> None:
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def hash_playlists(path: Path | str, *, check: bool = False) -> HashReport:
    """Add (or, with ``check``, verify) SHA-256 tags in the media playlists of ``path``.

    Raises :class:`HashPlaylistError` or :class:`~p2ploader.errors.PlaylistError`; with ``check``,
    :class:`HashPlaylistError` names the first segment whose published digest is missing or stale.
    """
    path = Path(path)
    playlists = _media_playlists(path)
    # Every digest of every playlist first: a failure leaves all files as they were.
    updated: list[tuple[Path, str, str]] = []
    segments = 0
    for media in playlists:
        text = _read_text(media)
        url = media.resolve().as_uri()
        parse_playlist(text, url)  # a malformed media playlist is refused before anything is hashed
        uris = segment_uri_lines(text, str(media))
        segments += len(uris)
        new_text = add_hash_tags(text, functools.partial(_segment_digest, media), str(media))
        updated.append((media, text, new_text))
    if check:
        for media, text, new_text in updated:
            published = parse_hash_tags(text, str(media))
            wanted = parse_hash_tags(new_text, str(media))
            for sequence, digest in wanted.items():
                if published.get(sequence) != digest:
                    state = "missing" if sequence not in published else "stale"
                    raise HashPlaylistError(f"{media}: the digest of segment {sequence} is {state}")
        return HashReport(playlists=tuple(playlists), segments=segments, written=False)
    for media, text, new_text in updated:
        if new_text != text:
            try:
                _write_atomically(media, new_text)
            except OSError as exc:
                raise HashPlaylistError(f"{media}: cannot write: {exc.strerror or exc}") from exc
    return HashReport(playlists=tuple(playlists), segments=segments, written=True)
