"""End to end, on two real local servers on different ports: ``http_headers`` and ``http_cookies``
go to the stream's host only. A playlist on host A naming segments on host B, or a redirect from A
to B, does not hand B the credentials, unless ``http_headers_hosts`` allows B."""

from __future__ import annotations

import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2ploader import LoaderConfig, open_loader
from p2ploader.sample import sample_path
from p2ploader.testing import origin as origin_module
from p2ploader.testing.origin import OriginServer

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

CREDENTIALS = LoaderConfig(
    http_retry_backoff=0.01,
    use_p2p=False,
    http_headers={"X-Token": "t0k3n"},
    http_cookies={"session": "s1"},
    user_agent="VLC/3.0.20 LibVLC/3.0.20",
)

Seen = list[tuple[str, str, dict[str, str]]]  # (host:port, path, headers with lower-case names)


@pytest.fixture
def requests_seen(monkeypatch: pytest.MonkeyPatch) -> Seen:
    """Every request any OriginServer of the test receives, with the port it came in on."""
    seen: Seen = []
    serve = origin_module._Handler._serve

    def recording(self: origin_module._Handler, *, head: bool) -> None:
        port = self.server.server_address[1]
        seen.append((f"127.0.0.1:{port}", self.path, {k.lower(): v for k, v in self.headers.items()}))
        serve(self, head=head)

    monkeypatch.setattr(origin_module._Handler, "_serve", recording)
    return seen


@pytest.fixture
def stream_root(tmp_path: Path) -> Path:
    root = tmp_path / "ts"
    shutil.copytree(sample_path("ts"), root)
    return root


def _cross_host_playlist(root: Path, segments_at: OriginServer) -> None:
    """``cross.m3u8`` on A: the 240p media playlist with every segment URI absolute on ``segments_at``."""
    lines = (root / "240p" / "index.m3u8").read_text().splitlines()
    rewritten = [
        segments_at.url_for(f"240p/{line}") if line and not line.startswith("#") else line for line in lines
    ]
    (root / "cross.m3u8").write_text("\n".join(rewritten) + "\n")


def _at(seen: Seen, server: OriginServer) -> list[tuple[str, dict[str, str]]]:
    netloc = f"127.0.0.1:{server.port}"
    return [(path, headers) for where, path, headers in seen if where == netloc]


def _carries_credentials(headers: dict[str, str]) -> bool:
    return headers.get("x-token") == "t0k3n" and "session=s1" in headers.get("cookie", "")


def _has_no_credentials(headers: dict[str, str]) -> bool:
    return "x-token" not in headers and "session=s1" not in headers.get("cookie", "")


async def test_segments_on_another_host_get_no_credentials(stream_root: Path, requests_seen: Seen) -> None:
    with OriginServer(stream_root) as host_a, OriginServer(stream_root) as host_b:
        _cross_host_playlist(stream_root, host_b)
        async with open_loader(host_a.url_for("cross.m3u8"), config=CREDENTIALS) as loader:
            got = [s async for s in loader.segments()]
        on_a, on_b = _at(requests_seen, host_a), _at(requests_seen, host_b)
    assert len(got) == 10
    assert {path for path, _ in on_a} == {"/cross.m3u8"}  # read as the stream, then as its media playlist
    assert all(_carries_credentials(headers) for _, headers in on_a)
    assert len(on_b) == 10 and all(path.endswith(".ts") for path, _ in on_b)
    for path, headers in on_b:
        assert _has_no_credentials(headers), path
        assert headers["user-agent"] == "VLC/3.0.20 LibVLC/3.0.20", path  # not a credential


async def test_a_host_allowed_by_http_headers_hosts_gets_them(stream_root: Path, requests_seen: Seen) -> None:
    with OriginServer(stream_root) as host_a, OriginServer(stream_root) as host_b:
        _cross_host_playlist(stream_root, host_b)
        config = CREDENTIALS.evolve(http_headers_hosts=(f"http://127.0.0.1:{host_b.port}",))
        async with open_loader(host_a.url_for("cross.m3u8"), config=config) as loader:
            got = [s async for s in loader.segments()]
        on_b = _at(requests_seen, host_b)
    assert len(got) == 10 and len(on_b) == 10
    assert all(_carries_credentials(headers) for _, headers in on_b)


async def test_star_sends_them_everywhere(stream_root: Path, requests_seen: Seen) -> None:
    with OriginServer(stream_root) as host_a, OriginServer(stream_root) as host_b:
        _cross_host_playlist(stream_root, host_b)
        async with open_loader(
            host_a.url_for("cross.m3u8"), config=CREDENTIALS.evolve(http_headers_hosts="*")
        ) as loader:
            await anext(aiter(loader.segments()))
        on_b = _at(requests_seen, host_b)
    assert on_b and all(_carries_credentials(headers) for _, headers in on_b)


class _Redirector(http.server.ThreadingHTTPServer):
    """Answers every GET with a 302 to the same path on ``target`` and records its headers."""

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.seen: list[dict[str, str]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.seen.append({k.lower(): v for k, v in self.headers.items()})
                self.send_response(302)
                self.send_header("Location", server.target + self.path)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def redirector_to() -> Iterator[type[_Redirector]]:
    started: list[_Redirector] = []

    class Started(_Redirector):
        def __init__(self, target: str) -> None:
            super().__init__(target)
            threading.Thread(target=self.serve_forever, daemon=True).start()
            started.append(self)

    yield Started
    for server in started:
        server.shutdown()
        server.server_close()


async def test_a_redirect_to_another_host_drops_them(
    stream_root: Path, requests_seen: Seen, redirector_to: type[_Redirector]
) -> None:
    with OriginServer(stream_root) as host_b:
        host_a = redirector_to(host_b.url_for(""))
        async with open_loader(f"{host_a.url}/master.m3u8", config=CREDENTIALS, rendition="v0") as loader:
            got = [s async for s in loader.segments()]
        on_b = _at(requests_seen, host_b)
    assert len(got) == 10
    # Every request went to A first (the stream's host: credentials on), then hopped to B.
    assert len(host_a.seen) == len(on_b) == 12  # master, media playlist, 10 segments
    assert all(_carries_credentials(headers) for headers in host_a.seen)
    for path, headers in on_b:
        assert _has_no_credentials(headers), path
        assert headers["user-agent"] == "VLC/3.0.20 LibVLC/3.0.20", path


async def test_a_redirect_to_an_allowed_host_keeps_them(
    stream_root: Path, requests_seen: Seen, redirector_to: type[_Redirector]
) -> None:
    with OriginServer(stream_root) as host_b:
        host_a = redirector_to(host_b.url_for(""))
        config = CREDENTIALS.evolve(http_headers_hosts=(f"http://127.0.0.1:{host_b.port}",))
        async with open_loader(f"{host_a.url}/master.m3u8", config=config, rendition="v0") as loader:
            await anext(aiter(loader.segments()))
        on_b = _at(requests_seen, host_b)
    assert on_b and all(_carries_credentials(headers) for _, headers in on_b)


async def test_the_proxy_sends_no_credentials_to_an_alternate_rendition_on_another_host(
    stream_root: Path, requests_seen: Seen
) -> None:
    """The master on A names an audio rendition on B: the proxy's loader for that rendition is
    scoped to the stream's host (A), not to the host the master names."""
    import re

    import httpx

    from p2ploader.proxy import open_proxy

    with OriginServer(stream_root) as host_a, OriginServer(stream_root) as host_b:
        audio = host_b.url_for("240p/index.m3u8")  # any media playlist will do as the "audio"
        (stream_root / "alt.m3u8").write_text(
            "#EXTM3U\n#EXT-X-VERSION:6\n"
            f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="English",LANGUAGE="en",URI="{audio}"\n'
            '#EXT-X-STREAM-INF:BANDWIDTH=400000,AUDIO="aud"\n240p/index.m3u8\n'
        )
        async with (
            open_proxy(host_a.url_for("alt.m3u8"), config=CREDENTIALS) as proxy,
            httpx.AsyncClient(timeout=30) as player,
        ):
            master = await player.get(proxy.url)
            match = re.search(r'TYPE=AUDIO[^\n]*URI="([^"]+)"', master.text)
            assert match is not None, master.text
            playlist = await player.get(str(master.url.join(match.group(1))))
            assert playlist.status_code == 200
            uri = next(line for line in playlist.text.splitlines() if line and not line.startswith("#"))
            segment = await player.get(str(playlist.url.join(uri)))
            assert segment.status_code == 200 and segment.content
        on_a, on_b = _at(requests_seen, host_a), _at(requests_seen, host_b)
    assert on_a and all(_carries_credentials(headers) for _, headers in on_a)
    assert any(path.endswith(".ts") for path, _ in on_b)
    for path, headers in on_b:
        assert _has_no_credentials(headers), path
