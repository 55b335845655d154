"""The one exception tree of p2ploader, split by who is at fault.

* :class:`UsageError` — the caller misused the API or gave a bad setting. Fix the calling code.
* :class:`RemoteError` — something outside misbehaved: the origin answered with an error status or a
  malformed playlist, a peer broke the protocol. Retrying later may help; the input was bad.
* :class:`TransportError` — the network failed: connection refused, timeout, reset.

Third-party exceptions (httpx, aiortc, m3u8) are mapped to these at the boundary; no other exception
type escapes the public API on purpose. A misbehaving *peer* never raises into the caller: the
scheduler disconnects it and loads the segment over HTTP instead.

This module is part of the sans-IO core's vocabulary and imports nothing but the standard library.
"""

from __future__ import annotations

import errno
from typing import Literal

__all__ = [
    "BindError",
    "ConfigError",
    "ConfigFileError",
    "DecryptionError",
    "DeltaPlaylistError",
    "DirectiveError",
    "FragmentedMp4Error",
    "HoldBackError",
    "HttpStatusError",
    "LivePlaylistStuckError",
    "LoaderClosedError",
    "LowLatencyPlaylistError",
    "MissingExtraError",
    "OfferRefusedError",
    "P2PLoaderError",
    "PartVanishedError",
    "PeerProtocolError",
    "PlaylistError",
    "PlaylistTooLargeError",
    "PlaylistWentBackwardsError",
    "PolicyError",
    "RemoteError",
    "RenditionNotFoundError",
    "ResponseTooLargeError",
    "SegmentUnavailableError",
    "TestbedError",
    "TestbedUnavailableError",
    "TrackerMessageError",
    "TrackerRequestError",
    "TrackerWireError",
    "TransportError",
    "UnsupportedEncryptionError",
    "UsageError",
]


class P2PLoaderError(Exception):
    """Root of every error p2ploader raises on purpose."""


class UsageError(P2PLoaderError):
    """The caller misused the API (wrong argument, wrong state)."""


class ConfigError(UsageError, ValueError):
    """A configuration key or value is invalid.

    ``key`` names the offending setting as the caller spelled it; ``suggestion`` is the closest valid
    key when the key itself was unknown.
    """

    def __init__(self, message: str, *, key: str | None = None, suggestion: str | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.suggestion = suggestion


class ConfigFileError(ConfigError):
    """A configuration file could not be read or parsed. ``path`` names it, ``reason`` says why
    (``"no such file"``, ``"permission denied"``, a parser's message)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"config file {path}: {reason}")
        self.path = path
        self.reason = reason


class RenditionNotFoundError(UsageError):
    """No rendition of the stream matches what the caller asked for (a variant, an audio or a
    subtitles rendition). ``wanted`` is what was asked; ``choices`` the rendition ids there are
    (empty when the variant has no group of that type)."""

    def __init__(self, message: str, *, wanted: str, choices: tuple[str, ...]) -> None:
        super().__init__(message)
        self.wanted = wanted
        self.choices = choices


class LoaderClosedError(UsageError):
    """The loader was used after :meth:`aclose`."""


class PolicyError(UsageError):
    """A download policy was misused: an unknown policy name, a name registered twice, a policy
    class that is not a :class:`~p2ploader.core.policies.base.DownloadPolicy`, or a policy setting it does
    not accept. ``policy`` names the policy when there is one."""

    def __init__(self, message: str, *, policy: str | None = None) -> None:
        super().__init__(message)
        self.policy = policy


class HoldBackError(UsageError, ValueError):
    """A hold-back the application gave (how far behind the live edge to play, seconds) is not a
    finite number > 0, or is below what RFC 8216bis lets a server publish for the playlist
    followed: ``PART-HOLD-BACK`` at least twice ``PART-TARGET`` with parts (§4.4.3.8), ``HOLD-BACK``
    at least three target durations without. ``hold_back`` is the value given, ``minimum`` the
    least accepted (0.0 when the value was refused before any playlist was read: it must be > 0)."""

    def __init__(self, hold_back: float, minimum: float, reason: str) -> None:
        super().__init__(f"hold_back {hold_back!r} s refused: {reason}")
        self.hold_back = hold_back
        self.minimum = minimum
        self.reason = reason


class MissingExtraError(UsageError, ImportError):
    """A feature needs an optional dependency group (an *extra*) that is not installed.

    ``feature`` names what was asked for (``"p2ploader.proxy"``, ``"play"``), ``extras`` the extras
    to install (``("proxy",)``) and ``modules`` the importable names that are missing
    (``("starlette", "uvicorn")``). The message says the ``pip install`` line. It is also an
    :class:`ImportError`, so ``except ImportError`` around an optional import keeps working.
    """

    def __init__(self, feature: str, extras: tuple[str, ...], modules: tuple[str, ...]) -> None:
        noun = (
            f"the '{extras[0]}' extra"
            if len(extras) == 1
            else ("the " + " and ".join(f"'{e}'" for e in extras) + " extras")
        )
        super().__init__(f"{feature} needs {noun}: pip install 'p2ploader[{','.join(extras)}]'")
        self.feature = feature
        self.extras = extras
        self.modules = modules


class RemoteError(P2PLoaderError):
    """A remote party (origin, tracker, peer) sent something wrong."""


class PlaylistError(RemoteError):
    """A playlist is malformed or unexpected. ``url`` names it, ``reason`` says what was wrong."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason


class HttpStatusError(RemoteError):
    """The origin answered with an error status or an inconsistent response."""

    def __init__(self, url: str, status: int, reason: str = "") -> None:
        detail = f" ({reason})" if reason else ""
        super().__init__(f"{url}: HTTP {status}{detail}")
        self.url = url
        self.status = status
        self.reason = reason


class TransportError(P2PLoaderError):
    """The network failed (connect error, timeout, reset, truncated body)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason


class SegmentUnavailableError(P2PLoaderError):
    """A segment could not be loaded from any source; ``reason`` carries the last failure."""

    def __init__(self, segment: str, reason: str) -> None:
        super().__init__(f"segment {segment} unavailable: {reason}")
        self.segment = segment
        self.reason = reason


class OfferRefusedError(RemoteError):
    """A peer declined our WebRTC offer (its answer was none): its swarm is full, or it bans us.
    ``peer_id`` names the offering peer (hex). Raised by the testing kit's
    :meth:`~p2ploader.testing.rtcpeer.RtcScriptedPeer.connect`."""

    def __init__(self, peer_id: str) -> None:
        super().__init__(f"the offer of peer {peer_id} was declined")
        self.peer_id = peer_id


class PeerProtocolError(RemoteError):
    """A peer sent bytes that break the wire protocol. The peer is disconnected; this never reaches
    the caller of the public API."""


class TrackerWireError(RemoteError):
    """A tracker frame that breaks the WebTorrent tracker wire format
    (:mod:`p2ploader.core.tracker_wire`); ``reason`` says how. The tracker client ignores such a
    frame and the tracker server answers it with a failure: this never reaches the caller of the
    public API."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TrackerRequestError(TrackerWireError):
    """A request the tracker answers with ``failure reason: <reason>``.

    ``info_hash`` (the wire string) is set when the failure names a swarm (it then carries
    ``"action": "announce"``). ``request`` is what the frame was recognised as before the error
    (``"announce"``, ``"answer"``, ``"scrape"``), ``None`` when not even that.
    """

    def __init__(
        self,
        reason: str,
        *,
        info_hash: str | None = None,
        request: Literal["announce", "answer", "scrape"] | None = None,
    ) -> None:
        super().__init__(reason)
        self.info_hash = info_hash
        self.request = request


class TrackerMessageError(TrackerWireError):
    """A frame from a tracker that a client ignores (not JSON, unknown action, malformed relay)."""


class ResponseTooLargeError(HttpStatusError):
    """A response body (a decryption key, an init section) passed its size cap. Reading stopped at
    the cap: nothing past it was read, whatever ``Content-Length`` said. ``limit`` is in bytes."""

    def __init__(self, url: str, status: int, *, what: str, limit: int) -> None:
        super().__init__(url, status, f"{what} larger than its cap of {limit} bytes")
        self.what = what
        self.limit = limit


class PlaylistTooLargeError(PlaylistError):
    """A playlist passed a size cap: ``limit`` ``unit`` (``"bytes"``, read no further, or
    ``"segments"``, counted before parsing)."""

    def __init__(self, url: str, *, limit: int, unit: str) -> None:
        super().__init__(url, f"playlist larger than its cap of {limit} {unit}")
        self.limit = limit
        self.unit = unit


class DeltaPlaylistError(PlaylistError):
    """A delta playlist update (LL-HLS ``EXT-X-SKIP``, asked with ``_HLS_skip``) skips segments the
    client does not have: reload the full playlist (without ``_HLS_skip``)."""


class DecryptionError(RemoteError):
    """An encrypted segment could not be decrypted: its key is not 16 bytes, its length is not a
    whole number of AES blocks, or its PKCS#7 padding is wrong (a wrong key or IV, or corrupt
    bytes). ``segment`` names it, ``reason`` says why. No byte of it reaches the player."""

    def __init__(self, segment: str, reason: str) -> None:
        super().__init__(f"segment {segment} cannot be decrypted: {reason}")
        self.segment = segment
        self.reason = reason


class UnsupportedEncryptionError(DecryptionError):
    """Decryption was asked for a segment encrypted in a way p2ploader does not decrypt: ``method``
    is ``SAMPLE-AES`` or ``SAMPLE-AES-CTR`` (encryption inside the media samples, for a DRM-capable
    player), or ``AES-128`` with a ``KEYFORMAT`` other than ``identity`` (``key_format``)."""

    def __init__(self, segment: str, method: str, key_format: str | None = None) -> None:
        shown = method if key_format in (None, "identity") else f"{method} with KEYFORMAT {key_format!r}"
        super().__init__(segment, f"{shown} is not supported (only AES-128 with an identity key)")
        self.method = method
        self.key_format = key_format


class LowLatencyPlaylistError(PlaylistError):
    """A live LL-HLS playlist refresh is inconsistent with what was seen before; it was ignored
    (:class:`~p2ploader.core.ll_follower.LowLatencyFollower`)."""


class PlaylistWentBackwardsError(LowLatencyPlaylistError):
    """A refresh has a lower media sequence, fewer segments, or fewer parts of the segment in
    progress than one seen before (a stale cache copy, a restarted packager)."""


class PartVanishedError(LowLatencyPlaylistError):
    """A part seen before is gone from, or has another URI or byte range in, a refresh that
    still lists its segment's parts."""


class RenditionReportError(LowLatencyPlaylistError):
    """An ``EXT-X-RENDITION-REPORT`` is inconsistent with the playlist carrying it (a
    ``LAST-MSN`` far outside the playlist's segments, an absurd ``LAST-PART``, no ``LAST-PART``
    to fill in from the carrying playlist though it has parts; an omitted attribute is the
    carrying playlist's own, RFC 8216bis §4.4.5.4): a rendition switch does not use it
    (:func:`~p2ploader.core.ll_switch.check_rendition_report`)."""


class LivePlaylistStuckError(PlaylistError):
    """A live media playlist (no ``EXT-X-ENDLIST``) stopped changing: ``unchanged_reloads`` reloads
    in a row, over about ``seconds`` seconds, found it the same, so no new segment will come (an
    encoder that stopped, a VOD playlist cut before its end). Raised by ``segments()`` and by the
    waits for segments past the end of the playlist once ``live_playlist_stuck_reloads`` is reached."""

    def __init__(self, url: str, *, unchanged_reloads: int, seconds: float) -> None:
        super().__init__(
            url,
            f"live playlist stuck: unchanged after {unchanged_reloads} reloads ({seconds:.1f} s)"
            " and no EXT-X-ENDLIST",
        )
        self.unchanged_reloads = unchanged_reloads
        self.seconds = seconds


# Reasons worded for a person; anything else falls back to the OS's own text (strerror).
_BIND_REASONS = {
    errno.EADDRINUSE: "address already in use",
    errno.EACCES: "permission denied",
    errno.EADDRNOTAVAIL: "address not available on this machine",
}


class BindError(TransportError):
    """A server (origin, tracker, proxy) could not listen on ``host``:``port``; ``reason`` says why,
    e.g. ``"address already in use"``. ``errno`` is the OS error number when there was one."""

    def __init__(self, host: str, port: int, reason: str, *, errno: int | None = None) -> None:
        shown = f"[{host}]" if ":" in host else host
        super().__init__(f"{shown}:{port}", reason)
        self.host = host
        self.port = port
        self.errno = errno

    @classmethod
    def from_os_error(cls, host: str, port: int, exc: OSError) -> BindError:
        """The bind error for ``exc``, raised by ``bind()`` or ``listen()`` on ``host``:``port``."""
        reason = _BIND_REASONS.get(exc.errno or 0) or exc.strerror or str(exc) or type(exc).__name__
        return cls(host, port, reason, errno=exc.errno)


class FragmentedMp4Error(RemoteError, ValueError):
    """A file is not the fragmented MP4 that the local origin's LL-HLS mode cuts into parts
    (:mod:`p2ploader.testing.llhls`); the message says which box is wrong and where. The origin
    answers ``404`` with it and never raises it to a client."""


class DirectiveError(RemoteError, ValueError):
    """A playlist request's LL-HLS delivery directives (``_HLS_msn``, ``_HLS_part``, ``_HLS_skip``)
    are malformed; the local origin answers ``400`` with the message."""


class TestbedError(P2PLoaderError):
    """The network testbed (:mod:`p2ploader.testbed`) could not be set up or a command in it failed;
    the message names the command and what it printed."""

    __test__ = False  # not a pytest test class, despite the name


class TestbedUnavailableError(TestbedError, UsageError):
    """The testbed cannot run here: it needs root (it creates network namespaces and shapes links
    in the kernel) and the ``ip`` and ``tc`` commands (iproute2). The message says which is missing."""
