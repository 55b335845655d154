"""A local HLS proxy: any player (ffplay, mpv, VLC, ffmpeg) plays a stream through the hybrid loader.

Example::

    from p2ploader.proxy import open_proxy

    async with open_proxy("https://example.com/master.m3u8", config=config) as proxy:
        print("open", proxy.url)  # http://127.0.0.1:<port>/master.m3u8
        ...
        print(proxy.statistics())

Modules, one job each: :mod:`~p2ploader.proxy.server` (lifecycle: :class:`HlsProxy`,
:func:`open_proxy`, :func:`run_proxy_forever`), :mod:`~p2ploader.proxy.app` (the Starlette app),
:mod:`~p2ploader.proxy.backend` (what is served, through loaders), :mod:`~p2ploader.proxy.playlists`
(rendering), :mod:`~p2ploader.proxy.paths` (the URL layout), :mod:`~p2ploader.proxy.resources`
(key and init numbering), :mod:`~p2ploader.proxy.gate` (rendition switches),
:mod:`~p2ploader.proxy.playhead` (the inferred playback position) and
:mod:`~p2ploader.proxy.security` (loopback bind, Host check). See docs/proxy.md.
"""

from __future__ import annotations

from p2ploader.extras import require_extras

# Before the imports below, which need starlette and uvicorn: without them, importing the proxy
# raises MissingExtraError (an ImportError) naming the 'proxy' extra instead of a bare
# ModuleNotFoundError.
require_extras("p2ploader.proxy", "proxy")

from p2ploader.proxy.backend import ProxyStatistics, ServedSegment  # noqa: E402
from p2ploader.proxy.server import HlsProxy, open_proxy, run_proxy_forever  # noqa: E402

__all__ = ["HlsProxy", "ProxyStatistics", "ServedSegment", "open_proxy", "run_proxy_forever"]
