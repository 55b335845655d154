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

__all__ = [
    "BindError",
    "ConfigError",
    "ConfigFileError",
    "HttpStatusError",
    "LoaderClosedError",
    "P2PLoaderError",
    "PeerProtocolError",
    "PlaylistError",
    "PlaylistTooLargeError",
    "RemoteError",
    "RenditionNotFoundError",
    "ResponseTooLargeError",
    "SegmentUnavailableError",
    "TransportError",
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


class PeerProtocolError(RemoteError):
    """A peer sent bytes that break the wire protocol. The peer is disconnected; this never reaches
    the caller of the public API."""


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
