"""The proxy's HTTP face: a Starlette ASGI app over a :class:`~p2ploader.proxy.backend.ProxyBackend`.

Routes (GET and HEAD only; any other path is 404, any other method 405)::

    /master.m3u8                      application/vnd.apple.mpegurl
    /r/<token>/index.m3u8             application/vnd.apple.mpegurl
    /r/<token>/seg/<sequence>.<ext>   video/mp2t, video/mp4, audio/aac, ... by extension
    /r/<token>/key/<n>                application/octet-stream (Cache-Control: no-store)
    /r/<token>/init/<n>.<ext>         video/mp4 (or the init section's type)
    /r/<token>/part/<sequence>.<k>.<ext>  an LL-HLS part (or a preload hint's, held until published)

A media playlist request's query string carries LL-HLS delivery directives (``_HLS_msn``,
``_HLS_part``, ``_HLS_skip``; :mod:`p2ploader.proxy.low_latency`).

A path part that does not have the shape the proxy builds is 400 (:mod:`p2ploader.proxy.paths`);
errors from the backend keep their status (404, 502, 503, 504). Every request first passes the
:class:`~p2ploader.proxy.security.RequestGuard` (Host header, request target). Bodies are sent
whole; a single ``Range: bytes=...`` is honoured with 206 (416 when unsatisfiable), as players
sometimes ask for one.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Literal

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from p2ploader.proxy import paths
from p2ploader.proxy.backend import Body, ProxyBackend, ProxyError
from p2ploader.proxy.security import HostPolicy, RequestGuard

__all__ = ["create_app"]

_RANGE = re.compile(r"bytes=([0-9]{0,19})-([0-9]{0,19})", re.ASCII)
_COMMON_HEADERS = {"X-Content-Type-Options": "nosniff"}

Handler = Callable[[Request], Awaitable[Body]]


def _byte_range(header: str | None, size: int) -> tuple[int, int] | Literal[False] | None:
    """``(first, last)`` for a satisfiable single range, None to send everything (no header, or one
    we do not honour: several ranges, bad syntax), False when unsatisfiable."""
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None or (not match[1] and not match[2]):
        return None
    if not match[1]:  # suffix range: the last N bytes
        length = int(match[2])
        if length == 0 or size == 0:
            return False
        return max(0, size - length), size - 1
    first = int(match[1])
    if first >= size:
        return False
    last = int(match[2]) if match[2] else size - 1
    if last < first:
        return None
    return first, min(last, size - 1)


def _response(request: Request, body: Body) -> Response:
    headers = dict(_COMMON_HEADERS)
    headers["Accept-Ranges"] = "bytes"
    if body.cache_control is not None:
        headers["Cache-Control"] = body.cache_control
    data = body.data
    wanted = _byte_range(request.headers.get("range"), len(data))
    if wanted is False:
        headers["Content-Range"] = f"bytes */{len(data)}"
        return Response(b"", status_code=416, headers=headers)
    if isinstance(wanted, tuple):
        first, last = wanted
        headers["Content-Range"] = f"bytes {first}-{last}/{len(data)}"
        return Response(
            data[first : last + 1], status_code=206, headers=headers, media_type=body.content_type
        )
    return Response(data, headers=headers, media_type=body.content_type)


def create_app(backend: ProxyBackend, policy: HostPolicy) -> Starlette:
    """The proxy's ASGI app: routes over ``backend``, guarded by ``policy``."""

    def endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                body = await handler(request)
            except paths.MalformedPathError as exc:
                backend.count_error()
                return PlainTextResponse(f"bad request: {exc}\n", status_code=400, headers=_COMMON_HEADERS)
            except ProxyError as exc:
                backend.count_error()
                return PlainTextResponse(exc.message + "\n", status_code=exc.status, headers=_COMMON_HEADERS)
            return _response(request, body)

        return run

    async def master(request: Request) -> Body:
        return backend.master()

    async def media_playlist(request: Request) -> Body:
        query = request.scope.get("query_string", b"").decode("latin-1")
        return await backend.media_playlist(paths.parse_token(request.path_params["token"]), query)

    async def segment(request: Request) -> Body:
        token = paths.parse_token(request.path_params["token"])
        sequence, extension = paths.parse_segment_name(request.path_params["name"])
        return await backend.segment(token, sequence, extension)

    async def key(request: Request) -> Body:
        token = paths.parse_token(request.path_params["token"])
        return await backend.key(token, paths.parse_key_name(request.path_params["name"]))

    async def init(request: Request) -> Body:
        token = paths.parse_token(request.path_params["token"])
        number, extension = paths.parse_init_name(request.path_params["name"])
        return await backend.init_section(token, number, extension)

    async def part(request: Request) -> Body:
        token = paths.parse_token(request.path_params["token"])
        sequence, index, extension = paths.parse_part_name(request.path_params["name"])
        return await backend.part(token, sequence, index, extension)

    routes = [
        Route(paths.MASTER_PATH, endpoint(master), methods=["GET"]),
        Route("/r/{token}/index.m3u8", endpoint(media_playlist), methods=["GET"]),
        Route("/r/{token}/seg/{name}", endpoint(segment), methods=["GET"]),
        Route("/r/{token}/key/{name}", endpoint(key), methods=["GET"]),
        Route("/r/{token}/init/{name}", endpoint(init), methods=["GET"]),
        Route("/r/{token}/part/{name}", endpoint(part), methods=["GET"]),
    ]

    async def no_route(request: Request, exc: Exception) -> Response:
        backend.count_error()
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        headers = dict(_COMMON_HEADERS)
        if isinstance(exc, HTTPException) and exc.headers:
            headers.update(exc.headers)  # Allow: on 405
        message = "not found" if status == 404 else "method not allowed" if status == 405 else "error"
        return PlainTextResponse(message + "\n", status_code=status, headers=headers)

    return Starlette(
        routes=routes,
        middleware=[Middleware(RequestGuard, policy=policy, on_refused=backend.count_refused)],
        exception_handlers={404: no_route, 405: no_route},
    )
