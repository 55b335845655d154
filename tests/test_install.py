"""The package as users get it: the wheel, installed without extras into a fresh virtual environment.

The session fixture builds the wheel from this checkout (``pip wheel --no-deps``: hatchling in pip's
isolated build environment), creates a virtual environment that does not see this one's packages
(no ``--system-site-packages``; no pip of its own either: this pip installs into it with
``--python``, which spares seeding pip into it) and installs the wheel there with its dependencies
from the package index and nothing else. In that environment a script loads the bundled sample end
to end from a real local origin started here (P2P off): what an embedding player does. The command
line there names the extra a command needs instead of a traceback.

The environment is built once per session and its cost is reported (``-rP`` shows it). On a 2-core
machine this file takes about 23 s of CPU (34 s while pip was seeded into the environment); the
wall time is mostly pip's, and longer the first time (an empty pip cache).
``-m "not install"`` leaves these tests out where no package index is reachable.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import attrs
import pytest

from p2ploader.decryption import decrypt_segment
from p2ploader.extras import EXTRAS
from p2ploader.hls import parse_media
from p2ploader.sample import sample_path, vod_segment_bytes
from p2ploader.testing.origin import OriginServer

pytestmark = [pytest.mark.install, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parent.parent
EXTRA_MODULES = sorted({module for modules in EXTRAS.values() for module in modules})

# Runs in the fresh environment: argv[1] is a JSON object {"ts": url, "aes": url}.
LOAD_SCRIPT = r"""
import asyncio, hashlib, importlib.util, json, sys

import p2ploader
from p2ploader import LoaderConfig, open_loader

EXTRA_MODULES = {extra_modules!r}


async def load(url, decrypt):
    config = LoaderConfig(use_p2p=False, http_retry_backoff=0.01)
    async with open_loader(url, config=config, rendition="v0") as loader:
        segments = [
            [loaded.source, loaded.decrypted, hashlib.sha256(loaded.data).hexdigest()]
            async for loaded in loader.segments(decrypt=decrypt)
        ]
        stats = loader.statistics()
    return {{"segments": segments, "http_bytes": stats.http_bytes, "p2p_bytes": stats.p2p_bytes}}


async def main(urls):
    return {{"ts": await load(urls["ts"], False), "aes": await load(urls["aes"], True)}}


result = asyncio.run(main(json.loads(sys.argv[1])))
try:
    from p2ploader.proxy import open_proxy
except p2ploader.MissingExtraError as exc:
    result["proxy_import"] = [type(exc).__name__, str(exc), isinstance(exc, ImportError)]
result["package"] = p2ploader.__file__
result["installed_extra_modules"] = [m for m in EXTRA_MODULES if importlib.util.find_spec(m) is not None]
result["imported_extra_modules"] = [m for m in EXTRA_MODULES if m in sys.modules]
print(json.dumps(result))
"""


@attrs.frozen
class PlainInstall:
    """A virtual environment holding the wheel and its required dependencies only."""

    python: Path
    command: Path  # the `p2ploader` console script
    seconds: dict[str, float]


# The fresh environment must not see this checkout or this environment: no PYTHONPATH (the test
# command may set it to the checkout), no PYTHONHOME, no VIRTUAL_ENV.
CLEAN_ENV = {
    name: value
    for name, value in os.environ.items()
    if name not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONUSERBASE"}
}


def _fresh(
    argv: list[str | Path], *, timeout: float, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` with :data:`CLEAN_ENV`, from ``cwd`` (so the checkout is not on ``sys.path``)."""
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=CLEAN_ENV
    )


def _run(
    argv: list[str | Path], *, timeout: float, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    done = _fresh(argv, timeout=timeout, cwd=cwd)
    assert done.returncode == 0, f"{argv}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="session")
def plain_install(tmp_path_factory: pytest.TempPathFactory) -> PlainInstall:
    base = tmp_path_factory.mktemp("plain-install")
    seconds: dict[str, float] = {}
    started = time.monotonic()
    _run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", base / "wheel", ROOT],
        timeout=600,
    )
    (wheel,) = (base / "wheel").glob("p2ploader-*.whl")
    seconds["wheel"] = time.monotonic() - started
    started = time.monotonic()
    environment = base / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", environment], timeout=300)
    bin_dir = environment / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / "python"
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet", wheel], timeout=600)
    seconds["venv_and_install"] = time.monotonic() - started
    return PlainInstall(python=python, command=bin_dir / "p2ploader", seconds=seconds)


def base_dir(install: PlainInstall) -> Path:
    """A folder outside the checkout to run the fresh interpreter from."""
    return install.python.parent.parent.parent


def test_the_environment_is_fresh_and_holds_no_extra(plain_install: PlainInstall) -> None:
    print(f"plain install built in {plain_install.seconds}")  # shown with -rP
    code = (
        "import importlib.util, json, sys\n"
        f"print(json.dumps([sys.prefix != sys.base_prefix, "
        f"[m for m in {EXTRA_MODULES!r} if importlib.util.find_spec(m) is not None]]))"
    )
    done = _run([plain_install.python, "-c", code], timeout=60, cwd=base_dir(plain_install))
    in_venv, extra_modules = json.loads(done.stdout)
    assert in_venv and extra_modules == []
    # Not this checkout's package: the one installed from the wheel.
    done = _run(
        [plain_install.python, "-c", "import p2ploader; print(p2ploader.__file__)"],
        timeout=60,
        cwd=base_dir(plain_install),
    )
    assert "site-packages" in done.stdout and str(ROOT) not in done.stdout


def test_a_plain_install_loads_a_stream_end_to_end(plain_install: PlainInstall, tmp_path: Path) -> None:
    script = tmp_path / "load.py"
    script.write_text(LOAD_SCRIPT.format(extra_modules=EXTRA_MODULES), encoding="utf-8")
    with OriginServer(sample_path("ts")) as ts_origin, OriginServer(sample_path("aes")) as aes_origin:
        urls = {"ts": ts_origin.url_for("master.m3u8"), "aes": aes_origin.url_for("master.m3u8")}
        started = time.monotonic()
        # Run from tmp_path so this checkout is not on the fresh interpreter's path.
        done = _fresh([plain_install.python, script, json.dumps(urls)], timeout=120, cwd=tmp_path)
        elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    print(f"load script ran in {elapsed:.1f} s")

    assert "site-packages" in result["package"]
    assert result["installed_extra_modules"] == [] and result["imported_extra_modules"] == []

    # The clear stream: every segment, byte for byte as the origin serves it, over HTTP.
    want = [
        hashlib.sha256(data).hexdigest() for data in vod_segment_bytes(sample_path("ts") / "240p/index.m3u8")
    ]
    ts = result["ts"]
    assert [digest for _, _, digest in ts["segments"]] == want
    assert {source for source, _, _ in ts["segments"]} <= {"http", "cache"}
    assert ts["p2p_bytes"] == 0 and ts["http_bytes"] > 0

    # The AES-128 stream, decrypted there by cryptography (a required dependency).
    playlist = sample_path("aes") / "index.m3u8"
    media = parse_media(playlist.read_text(encoding="utf-8"), playlist.resolve().as_uri(), rendition="v0")
    key = (sample_path("aes") / "key.bin").read_bytes()
    plain = [
        hashlib.sha256(decrypt_segment(segment, data, key)).hexdigest()
        for segment, data in zip(media.segments, vod_segment_bytes(playlist), strict=True)
    ]
    aes = result["aes"]
    assert [digest for _, _, digest in aes["segments"]] == plain
    assert all(decrypted for _, decrypted, _ in aes["segments"])

    # The proxy is an extra: a typed error naming it, which is an ImportError too.
    assert result["proxy_import"] == [
        "MissingExtraError",
        "p2ploader.proxy needs the 'proxy' extra: pip install 'p2ploader[proxy]'",
        True,
    ]


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ["play", "http://127.0.0.1:9/master.m3u8", "--duration", "1"],
            "p2ploader: error: play needs the 'cli' extra: pip install 'p2ploader[cli]'",
        ),
        (
            ["proxy", "http://127.0.0.1:9/master.m3u8"],
            "p2ploader: error: proxy needs the 'proxy' extra: pip install 'p2ploader[proxy]'",
        ),
    ],
    ids=["play", "proxy"],
)
def test_a_command_of_a_plain_install_names_its_extra(
    plain_install: PlainInstall, argv: list[str], line: str, tmp_path: Path
) -> None:
    done = _fresh([plain_install.command, *argv], timeout=60, cwd=tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (1, "", line + "\n")


def test_the_command_line_itself_needs_no_extra(plain_install: PlainInstall, tmp_path: Path) -> None:
    done = _fresh([plain_install.command, "--help"], timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for command in ("play", "origin", "tracker", "proxy", "simulate"):
        assert command in done.stdout
