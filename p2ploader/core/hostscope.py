"""Which hosts may receive the user's HTTP credentials (``http_headers``, ``http_cookies``).

A token given for a stream belongs to the stream's host. A playlist (or a redirect) can name any
other host for a segment, a key or an init section; sending the token there would hand it to
whoever wrote the playlist. So credentials go to the *origin* of the URL the user gave (scheme,
host and port, as browsers define an origin) and to the origins ``http_headers_hosts`` adds, or
everywhere when it holds ``"*"``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final
from urllib.parse import urlsplit

import attrs

__all__ = ["ANY_HOST", "HostScope", "http_origin", "origin_problem"]

ANY_HOST: Final = "*"
"""The ``http_headers_hosts`` entry that sends the credentials to every host."""

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def http_origin(url: str) -> str | None:
    """``scheme://host:port`` of an http(s) URL (lower case, default port written out), or ``None``
    when it is not an absolute http(s) URL with a host."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:  # a port that is not a number, or out of range
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    if ":" in host:  # IPv6 literal: brackets keep the port apart
        host = f"[{host}]"
    return f"{scheme}://{host}:{port if port is not None else _DEFAULT_PORTS[scheme]}"


def origin_problem(entry: str) -> str | None:
    """Why ``entry`` is not a valid ``http_headers_hosts`` entry (``None`` when it is): ``"*"``, or
    an origin ``scheme://host[:port]`` with scheme http or https and no path, query or credentials."""
    if entry == ANY_HOST:
        return None
    if http_origin(entry) is None:
        return "is not '*' or an http(s) origin such as 'https://cdn.example.com' or 'http://host:8080'"
    parts = urlsplit(entry.strip())
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return "names a path, query or fragment; give only scheme://host[:port]"
    if parts.username is not None or parts.password is not None:
        return "carries credentials; give only scheme://host[:port]"
    return None


@attrs.frozen
class HostScope:
    """The origins credentials may go to. ``everywhere`` is ``"*"``."""

    origins: frozenset[str]
    everywhere: bool = False

    @classmethod
    def for_stream(cls, stream_url: str, extra: Iterable[str] = ()) -> HostScope:
        """The stream's own origin plus ``extra`` entries (origins, or ``"*"``)."""
        entries = tuple(extra)
        origins = {origin for origin in map(http_origin, (stream_url, *entries)) if origin is not None}
        return cls(frozenset(origins), everywhere=ANY_HOST in entries)

    def allows(self, url: str) -> bool:
        """Whether a request to ``url`` may carry the credentials."""
        if self.everywhere:
            return True
        origin = http_origin(url)
        return origin is not None and origin in self.origins
