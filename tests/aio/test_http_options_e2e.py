"""End to end: ``http_headers``, ``http_cookies`` and ``user_agent`` reach the real local origin on
every request the loader makes (playlists, segments, keys, init sections), through the loader and
through the proxy; without them the loader sends httpx's usual headers."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from p2ploader import LoaderConfig, open_loader
from p2ploader.sample import sample_path
from p2ploader.testing import origin as origin_module
from p2ploader.testing.origin import OriginServer

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

OPTIONS = LoaderConfig(
    http_retry_backoff=0.01,
    use_p2p=False,
    http_headers={"X-Token": "t0k3n", "Referer": "https://site.example/player"},
    http_cookies={"session": "s1", "cdn_auth": "exp=1~hmac=ab"},
    user_agent="VLC/3.0.20 LibVLC/3.0.20",
)


@pytest.fixture
def requests_seen(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, str]]]:
    """(path, headers with lower-case names) of every request the origin receives."""
    seen: list[tuple[str, dict[str, str]]] = []
    serve = origin_module._Handler._serve

    def recording(self: origin_module._Handler, *, head: bool) -> None:
        seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
        serve(self, head=head)

    monkeypatch.setattr(origin_module._Handler, "_serve", recording)
    return seen


def _assert_options_on_every_request(seen: list[tuple[str, dict[str, str]]]) -> None:
    assert seen
    for path, headers in seen:
        assert headers.get("x-token") == "t0k3n", path
        assert headers.get("referer") == "https://site.example/player", path
        assert headers.get("user-agent") == "VLC/3.0.20 LibVLC/3.0.20", path
        assert headers.get("cookie") == "session=s1; cdn_auth=exp=1~hmac=ab", path


async def test_playlists_and_segments_carry_the_options(
    requests_seen: list[tuple[str, dict[str, str]]],
) -> None:
    with OriginServer(sample_path("ts")) as origin:
        async with open_loader(origin.url_for("master.m3u8"), config=OPTIONS, rendition="v0") as loader:
            got = [s async for s in loader.segments()]
    assert got
    paths = [path for path, _ in requests_seen]
    assert "/master.m3u8" in paths and "/240p/index.m3u8" in paths
    assert sum(path.endswith(".ts") for path in paths) == len(got)
    _assert_options_on_every_request(requests_seen)


async def test_key_requests_carry_the_options(requests_seen: list[tuple[str, dict[str, str]]]) -> None:
    root = sample_path("aes")
    with OriginServer(root) as origin:
        async with open_loader(origin.url_for("master.m3u8"), config=OPTIONS) as loader:
            first = await anext(aiter(loader.segments()))
            assert await loader.fetch_key(first.segment) == (root / "key.bin").read_bytes()
    assert any(path.endswith("key.bin") for path, _ in requests_seen)
    _assert_options_on_every_request(requests_seen)


async def test_init_section_requests_carry_the_options(
    requests_seen: list[tuple[str, dict[str, str]]],
) -> None:
    root = sample_path("fmp4")
    with OriginServer(root) as origin:
        async with open_loader(origin.url_for("master.m3u8"), config=OPTIONS) as loader:
            first = await anext(aiter(loader.segments()))
            assert await loader.fetch_init_section(first.segment) == (root / "init.mp4").read_bytes()
    assert any(path.endswith("init.mp4") for path, _ in requests_seen)
    _assert_options_on_every_request(requests_seen)


async def test_default_sends_httpx_usual_headers(requests_seen: list[tuple[str, dict[str, str]]]) -> None:
    with OriginServer(sample_path("ts")) as origin:
        async with open_loader(origin.url_for("master.m3u8"), config=LoaderConfig(use_p2p=False)) as loader:
            await anext(aiter(loader.segments()))
    assert requests_seen
    for path, headers in requests_seen:
        assert headers["user-agent"] == f"python-httpx/{httpx.__version__}", path
        assert "cookie" not in headers and "x-token" not in headers, path


async def test_proxy_backend_requests_carry_the_options(
    requests_seen: list[tuple[str, dict[str, str]]],
) -> None:
    from p2ploader.proxy import open_proxy

    with OriginServer(sample_path("ts")) as origin:
        async with (
            open_proxy(origin.url_for("master.m3u8"), config=OPTIONS) as proxy,
            httpx.AsyncClient(timeout=30) as player,
        ):
            # The player walks master -> media playlist -> first segment through the proxy.
            url = proxy.url
            for _ in range(2):
                response = await player.get(url)
                assert response.status_code == 200
                uri = next(line for line in response.text.splitlines() if line and not line.startswith("#"))
                url = str(response.url.join(uri))
            segment = await player.get(url)
            assert segment.status_code == 200 and segment.content
    paths = [path for path, _ in requests_seen]
    assert "/master.m3u8" in paths and any(path.endswith(".ts") for path in paths)
    _assert_options_on_every_request(requests_seen)


async def test_viewer_process_requests_carry_the_options(
    requests_seen: list[tuple[str, dict[str, str]]],
) -> None:
    """``swarm`` hands its viewer processes the config in the FAQ spelling; the options survive it."""
    from p2ploader.app.viewer import ViewerSpec, start_viewer_process

    with OriginServer(sample_path("ts")) as origin:
        spec = ViewerSpec(
            url=origin.url_for("master.m3u8"), config=OPTIONS.to_faq(), rendition="v0", duration=1.0
        )
        proc = await start_viewer_process(spec)
        _, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 0, err.decode()
    assert any(path.endswith(".ts") for path, _ in requests_seen)
    _assert_options_on_every_request(requests_seen)
