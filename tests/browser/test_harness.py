"""The browser harness's own parts that need no browser: the static server only serves the page and
the three player packages, .ci/run installs exactly the pinned npm versions, and the origin sends
the CORS header a page on another port needs."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from p2ploader.sample import sample_path
from p2ploader.testing.origin import OriginServer
from tests.browser.harness import NPM_PACKAGES, StaticServer, browser_setup, page_config

CI_RUN = Path(__file__).resolve().parents[2] / ".ci" / "run"


@pytest.fixture
def node_modules(tmp_path: Path) -> Path:
    root = tmp_path / "node_modules"
    for name in ("p2p-media-loader-core", "playwright-core"):
        (root / name / "dist").mkdir(parents=True)
        (root / name / "dist" / "x.js").write_text("export {}\n")
    (tmp_path / "secret.txt").write_text("not served\n")
    return root


def test_the_static_server_serves_the_page_and_player_modules_only(node_modules: Path) -> None:
    with StaticServer(node_modules) as static, httpx.Client(base_url=static.url) as client:
        page = client.get("/web/index.html")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "importmap" in page.text
        module = client.get("/npm/p2p-media-loader-core/dist/x.js")
        assert module.status_code == 200 and module.headers["content-type"].startswith("text/javascript")
        assert client.get("/web/player.mjs").headers["content-type"].startswith("text/javascript")
        for path in (
            "/npm/playwright-core/dist/x.js",  # installed, but not a player package
            "/npm/p2p-media-loader-core/../../secret.txt",
            "/npm/p2p-media-loader-core/%2e%2e/%2e%2e/secret.txt",
            "/web/../harness.py",
            "/elsewhere/index.html",
            "/web/missing.html",
        ):
            assert client.get(path).status_code == 404, path


def test_page_config_round_trips_through_the_url(node_modules: Path) -> None:
    config = page_config("http://127.0.0.1:1/live/master.m3u8", ["ws://127.0.0.1:2"], level=1, core={"a": 1})
    assert config["core"]["rtcConfig"] == {"iceServers": []}
    assert config["hls"]["startLevel"] == 1
    with StaticServer(node_modules) as static:
        url = static.page_url(config)
    assert json.loads(parse_qs(urlsplit(url).query)["cfg"][0]) == config


def test_ci_installs_the_pinned_npm_packages() -> None:
    text = CI_RUN.read_text()
    installed = dict(re.findall(r"\s((?:hls\.js|p2p-media-loader-\w+|playwright-core))@([0-9][\w.-]*)", text))
    assert installed == NPM_PACKAGES


def test_a_missing_package_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not on PATH: browser_setup reports that first")
    monkeypatch.setenv("P2PLOADER_BROWSER_DIR", str(tmp_path))
    monkeypatch.setenv("P2PLOADER_CHROMIUM", "/bin/true")
    found = browser_setup()
    assert isinstance(found, str) and "hls.js@1.7.4" in found


def test_the_origin_lets_a_page_on_another_port_read_the_stream() -> None:
    # Without this header the browser hides every playlist and segment response from the player;
    # the browser tests ask for it (cors=True), as it is off by default.
    with OriginServer(sample_path("ts"), cors=True) as origin:
        response = httpx.get(origin.url_for("master.m3u8"))
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
