"""Host scoping of the HTTP credentials (``http_headers``, ``http_cookies``): which origins get them
(:mod:`p2ploader.core.hostscope`), the ``http_headers_hosts`` setting and its CLI option, and the
client's request hook, hop by hop (redirects) and next to cookies the origin set."""

from __future__ import annotations

import httpx
import pytest

from p2ploader.aio.http import open_http_client
from p2ploader.app.cli import _load_config, build_parser
from p2ploader.config import LoaderConfig
from p2ploader.core.hostscope import HostScope, http_origin, origin_problem
from p2ploader.errors import ConfigError

# --- origins ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://CDN.example.com/a/b.m3u8?x=1", "https://cdn.example.com:443"),
        ("http://example.com/", "http://example.com:80"),
        ("http://example.com:80/x", "http://example.com:80"),
        ("HTTP://127.0.0.1:8080/master.m3u8", "http://127.0.0.1:8080"),
        ("http://[::1]:9000/a", "http://[::1]:9000"),
        ("http://user:pw@example.com/a", "http://example.com:80"),
        ("ftp://example.com/a", None),
        ("/relative/path.ts", None),
        ("http://example.com:99999/a", None),
        ("data:text/plain,hi", None),
    ],
)
def test_http_origin(url: str, origin: str | None) -> None:
    assert http_origin(url) == origin


def test_the_stream_origin_is_scheme_host_and_port() -> None:
    scope = HostScope.for_stream("https://origin.example.com/live/master.m3u8")
    assert scope.allows("https://origin.example.com/live/seg1.ts")
    assert scope.allows("https://origin.example.com:443/other/key.bin")
    assert not scope.allows("http://origin.example.com/live/seg1.ts")  # another scheme
    assert not scope.allows("https://origin.example.com:8443/seg1.ts")  # another port
    assert not scope.allows("https://evil.example.com/seg1.ts")
    assert not scope.allows("https://origin.example.com.evil.example/seg1.ts")


def test_extra_origins_and_star() -> None:
    scope = HostScope.for_stream("https://a.example/m.m3u8", ["https://cdn.example:8443"])
    assert scope.allows("https://cdn.example:8443/s.ts") and not scope.allows("https://cdn.example/s.ts")
    assert HostScope.for_stream("https://a.example/m.m3u8", ["*"]).allows("http://anything.example:1/x")


# --- the setting ------------------------------------------------------------------------------------


def test_default_is_the_stream_host_only() -> None:
    assert LoaderConfig().http_headers_hosts == ()


def test_setting_accepts_origins_and_star() -> None:
    config = LoaderConfig(http_headers_hosts=["https://cdn.example.com", "*", "http://10.0.0.1:8080/"])
    assert config.http_headers_hosts == ("https://cdn.example.com", "*", "http://10.0.0.1:8080/")
    assert LoaderConfig(http_headers_hosts="*").http_headers_hosts == ("*",)


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ("cdn.example.com", "is not '\\*' or an http\\(s\\) origin"),
        ("wss://cdn.example.com", "is not '\\*' or an http\\(s\\) origin"),
        ("https://cdn.example.com/path", "path, query or fragment"),
        ("https://cdn.example.com/?a=1", "path, query or fragment"),
        ("https://u:p@cdn.example.com", "credentials"),
    ],
)
def test_setting_refuses_what_is_not_an_origin(entry: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why) as info:
        LoaderConfig(http_headers_hosts=(entry,))
    assert info.value.key == "http_headers_hosts"
    assert origin_problem(entry) is not None


def test_setting_refuses_a_non_string() -> None:
    with pytest.raises(ConfigError, match="http_headers_hosts"):
        LoaderConfig(http_headers_hosts=42)  # type: ignore[arg-type]


def test_faq_spelling_round_trips() -> None:
    config = LoaderConfig(http_headers={"X-Token": "t"}, http_headers_hosts=("https://cdn.example.com",))
    faq = config.to_faq()
    assert faq["loader"]["httpHeadersHosts"] == ["https://cdn.example.com"]
    assert LoaderConfig.from_faq(faq) == config
    assert LoaderConfig.from_faq({"httpHeadersHosts": "*"}).http_headers_hosts == ("*",)
    with pytest.raises(ConfigError, match="httpHeadersHosts"):
        LoaderConfig.from_faq({"httpHeadersHosts": [1]})


def test_cli_option_adds_to_the_file_and_preset() -> None:
    args = build_parser().parse_args(
        [
            "play",
            "http://127.0.0.1:9/m.m3u8",
            "--http-header",
            "X-Token=t",
            "--http-headers-host",
            "https://cdn.example.com",
            "--http-headers-host",
            "http://127.0.0.1:8081",
        ]
    )
    config = _load_config(args)
    assert config.http_headers_hosts == ("https://cdn.example.com", "http://127.0.0.1:8081")
    assert _load_config(build_parser().parse_args(["play", "http://x/m.m3u8"])).http_headers_hosts == ()


# --- the client's hook --------------------------------------------------------------------------------

STREAM = "http://origin.invalid/live/master.m3u8"
OPTIONS = LoaderConfig(
    http_headers={"X-Token": "t", "Accept": "application/x-mpegurl"}, http_cookies={"s": "1"}
)


async def _requests(config: LoaderConfig, handler: httpx.MockTransport, *urls: str) -> None:
    client = open_http_client(config, stream_url=STREAM)
    client._transport = handler  # the same client (and its hook), its socket replaced
    async with client:
        for url in urls:
            await client.get(url)


@pytest.mark.anyio
async def test_hook_adds_on_the_stream_host_and_never_elsewhere() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    await _requests(OPTIONS, httpx.MockTransport(handler), STREAM, "http://evil.invalid/seg.ts")
    on_stream, elsewhere = seen[0].headers, seen[1].headers
    assert on_stream["X-Token"] == "t" and on_stream["Cookie"] == "s=1"
    assert on_stream["Accept"] == "application/x-mpegurl"
    assert "X-Token" not in elsewhere and "Cookie" not in elsewhere
    assert elsewhere["Accept"] == "*/*"  # httpx's own, not the user's


@pytest.mark.anyio
async def test_hook_keeps_the_origin_cookies_and_strips_ours_on_a_cross_host_redirect() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "origin.invalid" and request.url.path == "/live/master.m3u8":
            return httpx.Response(200, headers={"Set-Cookie": "jar=2; Path=/"})
        if request.url.host == "origin.invalid":
            return httpx.Response(302, headers={"Location": "http://evil.invalid/steal"})
        return httpx.Response(200)

    await _requests(OPTIONS, httpx.MockTransport(handler), STREAM, "http://origin.invalid/live/seg.ts")
    master, segment, redirected = (request.headers for request in seen)
    assert master["Cookie"] == "s=1"
    assert segment["Cookie"] == "jar=2; s=1"  # the origin's cookie, then ours
    assert str(seen[2].url) == "http://evil.invalid/steal"
    assert "X-Token" not in redirected and "s=1" not in redirected.get("Cookie", "")


def test_cli_refuses_a_host_that_is_not_an_origin_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from p2ploader.app.cli import EXIT_ERROR, main

    code = main(["play", "http://127.0.0.1:9/m.m3u8", "--http-headers-host", "cdn.example.com"])
    assert code == EXIT_ERROR
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("p2ploader play: error: ") and "http_headers_hosts" in err[0]
