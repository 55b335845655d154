"""Who may talk to the proxy: the bind address rule and the request guard (Host header, request target).

Why loopback only. The proxy is an unauthenticated HTTP server that spends its user's bandwidth
(origin and P2P), acts with its user's identity towards the origin, and hands out decryption keys
(EXT-X-KEY) in the clear to whoever asks. On 127.0.0.1 only programs on this machine can reach it.
:func:`check_bind_host` refuses any other address unless the caller passes ``allow_remote=True``.

Why a Host check. A web page in the user's browser can make the browser send requests to
``127.0.0.1`` through a name it controls (DNS rebinding: ``evil.example`` first resolves to the
attacker's server, then to 127.0.0.1); the browser then lets the page read the answers, because to it
they come from ``evil.example``. Such requests carry ``Host: evil.example``, so :class:`RequestGuard`
answers 403 to any Host that is not a loopback name or address, the address the proxy is bound to,
or a name the caller allowed. With ``allow_remote`` on a wildcard address (0.0.0.0, ::) any IP literal
is accepted too (rebinding needs a name). A request without a Host header is refused as well.

The guard also refuses, with 400, request targets that are not a plain path (absolute-form
``GET http://host/...``, ``*``), and paths with ``.``/``..`` segments, backslashes or control
characters, raw or percent-encoded, before routing. The proxy never maps a path to a file or a
URL anyway (see :mod:`p2ploader.proxy.paths`), and sends no CORS headers.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from typing import Final
from urllib.parse import unquote

from starlette.types import ASGIApp, Receive, Scope, Send

from p2ploader.errors import UsageError

__all__ = ["HostPolicy", "RequestGuard", "check_bind_host", "is_loopback"]

_LOOPBACK_NAMES: Final = frozenset({"localhost", "localhost.", "ip6-localhost", "ip6-loopback"})
_WILDCARDS: Final = frozenset({"0.0.0.0", "::", ""})


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a bind address or a Host name, without port) is this machine's loopback:
    ``localhost`` or an address in 127.0.0.0/8 or ::1. No DNS lookup is made."""
    name = host.lower()
    if name in _LOOPBACK_NAMES:
        return True
    address = _ip(name)
    return address is not None and address.is_loopback


def check_bind_host(host: str, *, allow_remote: bool) -> None:
    """Refuse to listen on anything but loopback unless ``allow_remote`` (see the module docstring).

    Raises:
        UsageError: ``host`` is not a loopback name or address and ``allow_remote`` is false.
    """
    if allow_remote or is_loopback(host):
        return
    raise UsageError(
        f"refusing to bind the proxy to {host!r}: it would serve the stream, its decryption keys and "
        "your bandwidth to other machines without any authentication; bind 127.0.0.1, or pass "
        "allow_remote=True if you really mean it"
    )


class HostPolicy:
    """Which Host header values the proxy answers (see the module docstring)."""

    def __init__(
        self, bind_host: str, *, allow_remote: bool = False, extra_hosts: Iterable[str] = ()
    ) -> None:
        self._names = {h.lower().strip("[]") for h in extra_hosts}
        bound = bind_host.lower().strip("[]")
        if bound not in _WILDCARDS:
            self._names.add(bound)
        self._any_ip = allow_remote and bound in _WILDCARDS

    def allows(self, host_header: str | None) -> bool:
        if not host_header:
            return False
        host = _host_part(host_header.strip().lower())
        if host is None:
            return False
        if is_loopback(host) or host in self._names or host.rstrip(".") in self._names:
            return True
        return self._any_ip and _ip(host) is not None


def _host_part(value: str) -> str | None:
    """The host of a Host header value (``name``, ``name:port``, ``[v6]``, ``[v6]:port``)."""
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        rest = value[end + 1 :]
        if rest and not (rest.startswith(":") and rest[1:].isdigit()):
            return None
        return value[1:end]
    name, colon, port = value.partition(":")
    if colon and not port.isdigit():
        return None
    if not name or any(c in name for c in "/\\@ \t"):
        return None
    return name


def _bad_path(raw: bytes, decoded: str) -> str | None:
    if not raw.startswith(b"/"):
        return "the request target must be a path"
    for text in (raw.decode("latin-1"), unquote(raw.decode("latin-1")), decoded):
        if "\\" in text or any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
            return "backslashes and control characters are refused"
        if any(part in (".", "..") for part in text.split("/")):
            return "dot segments are refused"
    return None


class RequestGuard:
    """ASGI middleware: 403 for a Host the :class:`HostPolicy` refuses, 400 for a request target
    that is not a plain path, before the request reaches any route."""

    def __init__(
        self, app: ASGIApp, *, policy: HostPolicy, on_refused: Callable[[int], None] | None = None
    ) -> None:
        self._app = app
        self._policy = policy
        self._on_refused = on_refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), None)
        if not self._policy.allows(host):
            await self._refuse(send, 403, "forbidden: this proxy only answers requests for localhost")
            return
        raw = scope.get("raw_path") or scope["path"].encode("utf-8")
        problem = _bad_path(raw, scope["path"])
        if problem is not None:
            await self._refuse(send, 400, f"bad request: {problem}")
            return
        await self._app(scope, receive, send)

    async def _refuse(self, send: Send, status: int, message: str) -> None:
        if self._on_refused is not None:
            self._on_refused(status)
        body = (message + "\n").encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-content-type-options", b"nosniff"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
