"""HTTP options (``http_headers``, ``http_cookies``, ``user_agent``): validation, the FAQ spelling and
the command line. What reaches the origin is tested end to end in tests/aio/test_http_options_e2e.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from p2ploader import ConfigError, LoaderConfig, open_loader
from p2ploader.aio.http import open_http_client
from p2ploader.app.cli import _load_config, build_parser, main
from p2ploader.config import FORBIDDEN_HTTP_HEADERS

# --- defaults and validation ----------------------------------------------------------------------


def test_defaults_add_nothing() -> None:
    config = LoaderConfig()
    assert dict(config.http_headers) == {}
    assert dict(config.http_cookies) == {}
    assert config.user_agent is None


def test_values_are_stored_read_only_and_compared_by_value() -> None:
    source = {"X-Token": "abc"}
    config = LoaderConfig(http_headers=source, http_cookies={"session": "s1"}, user_agent="VLC/3.0")
    source["X-Token"] = "changed"  # the config keeps its own copy
    assert dict(config.http_headers) == {"X-Token": "abc"}
    with pytest.raises(TypeError):
        config.http_headers["X-Other"] = "x"  # type: ignore[index]
    assert config == LoaderConfig(
        http_headers={"X-Token": "abc"}, http_cookies={"session": "s1"}, user_agent="VLC/3.0"
    )
    assert config != LoaderConfig(
        http_headers={"X-Token": "abd"}, http_cookies={"session": "s1"}, user_agent="VLC/3.0"
    )
    hash(config)  # hashable despite the mappings


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"http_headers": {"X-A": "one\r\nX-Injected: two"}}, "without CR or LF"),
        ({"http_headers": {"X-A": "line\nbreak"}}, "without CR or LF"),
        ({"http_headers": {"X-A": "caf\u00e9"}}, "printable ASCII"),
        ({"http_headers": {"Bad Name": "x"}}, "not a valid token"),
        ({"http_headers": {"": "x"}}, "not a valid token"),
        ({"http_headers": {"X-A:": "x"}}, "not a valid token"),
        ({"http_headers": {"X-A": 1}}, "must be a string"),
        ({"http_headers": {"X-A": "1", "x-a": "2"}}, "given twice"),
        ({"http_headers": ["X-A: 1"]}, "must be a mapping"),
        ({"http_headers": {"Range": "bytes=0-1"}}, "may not set 'Range'"),
        ({"http_headers": {"host": "evil.example"}}, "may not set 'host'"),
        ({"http_headers": {"Content-Length": "0"}}, "may not set"),
        ({"http_headers": {"Connection": "close"}}, "may not set"),
        ({"http_headers": {"Transfer-Encoding": "chunked"}}, "may not set"),
        ({"http_headers": {"Cookie": "a=b"}}, "use http_cookies"),
        ({"http_headers": {"User-Agent": "x"}}, "use user_agent"),
        ({"http_cookies": {"session": "a;b"}}, "semicolon"),
        ({"http_cookies": {"session": "a b"}}, "spaces"),
        ({"http_cookies": {"bad name": "x"}}, "not a valid token"),
        ({"user_agent": ""}, "non-empty"),
        ({"user_agent": "UA\r\nX-Injected: 1"}, "without CR or LF"),
        ({"user_agent": 3}, "non-empty string"),
    ],
)
def test_bad_values_raise_config_error_naming_the_setting(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        LoaderConfig(**changes)
    assert info.value.key == next(iter(changes))
    with pytest.raises(ConfigError, match=message):
        LoaderConfig().evolve(**changes)


def test_every_forbidden_header_is_refused_in_any_case() -> None:
    for name in FORBIDDEN_HTTP_HEADERS:
        for spelled in (name, name.upper(), name.title()):
            with pytest.raises(ConfigError, match="may not set"):
                LoaderConfig(http_headers={spelled: "x"})


def test_faq_spelling_round_trips() -> None:
    config = LoaderConfig(
        http_headers={"Referer": "https://site.example/"}, http_cookies={"a": "1"}, user_agent="UA/1"
    )
    faq = config.to_faq()
    assert faq["loader"]["httpHeaders"] == {"Referer": "https://site.example/"}
    assert faq["loader"]["httpCookies"] == {"a": "1"}
    assert faq["loader"]["userAgent"] == "UA/1"
    assert LoaderConfig.from_faq(faq) == config
    text = '{loader: {httpHeaders: {"X-Token": "t"}, userAgent: "UA/2"}}'
    parsed = LoaderConfig.from_faq_text(text)
    assert dict(parsed.http_headers) == {"X-Token": "t"} and parsed.user_agent == "UA/2"
    with pytest.raises(ConfigError, match="may not set 'Range'"):
        LoaderConfig.from_faq({"httpHeaders": {"Range": "bytes=0-"}})


# --- the client the loader builds -----------------------------------------------------------------


async def _sent_headers(config: LoaderConfig) -> httpx.Headers:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=b"ok")

    client = open_http_client(config, stream_url="http://origin.invalid/master.m3u8")
    client._transport = httpx.MockTransport(handler)  # the same client, its socket replaced
    async with client:
        await client.get("http://origin.invalid/a.ts", headers={"Range": "bytes=0-1"})
    return seen[0].headers


@pytest.mark.anyio
async def test_client_sends_the_options_with_per_request_headers() -> None:
    headers = await _sent_headers(
        LoaderConfig(
            http_headers={"X-Token": "t"}, http_cookies={"session": "s1", "b": "2"}, user_agent="UA/1"
        )
    )
    assert headers["X-Token"] == "t"
    assert headers["User-Agent"] == "UA/1"
    assert headers["Cookie"] == "session=s1; b=2"
    assert headers["Range"] == "bytes=0-1"  # the loader's own per-request headers still apply


@pytest.mark.anyio
async def test_client_default_headers_are_httpx_own() -> None:
    headers = await _sent_headers(LoaderConfig())
    assert headers["User-Agent"] == f"python-httpx/{httpx.__version__}"
    assert "Cookie" not in headers
    assert set(headers) == {"host", "accept", "accept-encoding", "connection", "user-agent", "range"}


@pytest.mark.anyio
async def test_own_client_with_http_options_is_refused() -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(ConfigError, match="set them on that client"):
            async with open_loader(
                "http://origin.invalid/x.m3u8", config=LoaderConfig(user_agent="UA"), http_client=client
            ):
                pass


# --- the command line -----------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["play", "view", "swarm", "proxy"])
def test_cli_options_reach_the_config(command: str) -> None:
    args = build_parser().parse_args(
        [
            command,
            "http://127.0.0.1:9/master.m3u8",
            "--http-header",
            "X-Token=a=b",
            "--http-header",
            "Referer=https://site.example/",
            "--http-cookie",
            "session=s1",
            "--user-agent",
            "VLC/3.0.20 LibVLC/3.0.20",
        ]
    )
    config = _load_config(args)
    assert dict(config.http_headers) == {"X-Token": "a=b", "Referer": "https://site.example/"}
    assert dict(config.http_cookies) == {"session": "s1"}
    assert config.user_agent == "VLC/3.0.20 LibVLC/3.0.20"


def test_cli_demo_takes_the_options_too() -> None:
    config = _load_config(build_parser().parse_args(["demo", "--user-agent", "UA/1"]))
    assert config.user_agent == "UA/1"


def test_cli_without_options_keeps_the_defaults() -> None:
    config = _load_config(build_parser().parse_args(["play", "http://127.0.0.1:9/master.m3u8"]))
    assert config == LoaderConfig()


def test_cli_options_refine_a_config_file(tmp_path: Path) -> None:
    path = tmp_path / "p2p.json"
    path.write_text('{"httpHeaders": {"X-From-File": "1"}, "httpCookies": {"a": "1"}, "userAgent": "File/1"}')
    args = build_parser().parse_args(
        [
            "play",
            "http://127.0.0.1:9/m.m3u8",
            "--config",
            str(path),
            "--http-header",
            "X-Cli=2",
            "--http-cookie",
            "a=2",
        ]
    )
    config = _load_config(args)
    assert dict(config.http_headers) == {"X-From-File": "1", "X-Cli": "2"}
    assert dict(config.http_cookies) == {"a": "2"}
    assert config.user_agent == "File/1"


def test_cli_forbidden_header_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["play", "http://127.0.0.1:9/master.m3u8", "--http-header", "Range=bytes=0-"])
    assert code == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "p2ploader play: error: http_headers may not set 'Range' (the HTTP client or the loader sets it)"
    ]


def test_cli_malformed_header_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["play", "http://127.0.0.1:9/master.m3u8", "--http-header", "X-Token"])
    assert info.value.code == 2
    assert "argument --http-header: expected NAME=VALUE, got 'X-Token'" in capsys.readouterr().err
