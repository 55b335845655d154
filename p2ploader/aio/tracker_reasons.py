"""Why a tracker connection failed or ended, in words a user acts on: "DNS failure", "connection
refused", "TLS: certificate verify failed", "rate limited (HTTP 429)", "closed by server (code 1008:
too many invalid requests)"... rather than an exception's ``repr``."""

from __future__ import annotations

import errno
import socket
import ssl

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

__all__ = ["describe_close", "describe_connect_error", "describe_connection_closed"]

_HTTP_REASONS = {
    401: "unauthorized",
    403: "forbidden",
    404: "not found: is the URL a WebSocket tracker?",
    429: "rate limited",
    502: "bad gateway",
    503: "service unavailable",
}


def describe_connect_error(exc: BaseException, *, timeout: float) -> str:
    """A failed WebSocket connection attempt (``timeout``: the open timeout, seconds)."""
    if isinstance(exc, socket.gaierror):
        return f"DNS failure ({exc.strerror or exc})"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: {exc.verify_message or 'certificate verify failed'}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}"
    if isinstance(exc, TimeoutError):
        return f"timed out after {timeout:g} s"
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        why = _HTTP_REASONS.get(status)
        return f"{why} (HTTP {status})" if why else f"HTTP {status} instead of a WebSocket handshake"
    if isinstance(exc, InvalidURI):
        return f"invalid URL ({exc})"
    if isinstance(exc, InvalidHandshake):
        return f"not a WebSocket tracker ({exc})"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, OSError):
        if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return "network or host unreachable"
        return exc.strerror or str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def describe_close(code: int | None, reason: str, *, received: bool) -> str:
    """A connection that ended: ``code``/``reason`` from the close frame, ``received`` whether the
    server sent one (no frame: the connection was lost)."""
    if not received or code is None:
        return "connection lost (no close frame from the server)"
    if code == 1008 and "rate" in reason.lower():
        return f"rate limited: closed by server (code 1008: {reason})"
    return f"closed by server (code {code}{': ' + reason if reason else ''})"


def describe_connection_closed(exc: ConnectionClosed) -> str:
    """:func:`describe_close` for a websockets :class:`ConnectionClosed`."""
    received = exc.rcvd
    if received is None:
        return describe_close(None, "", received=False)
    return describe_close(received.code, received.reason, received=True)
