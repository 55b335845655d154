"""Optional dependencies: the extras table, the typed error and the commands' one-line message.

A missing extra is simulated in-process with ``sys.modules[name] = None``: ``importlib.util.find_spec``
then answers ``None`` and ``import name`` raises, as when the package is not installed.
tests/test_install.py checks the same on a real install without extras.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from p2ploader.app.cli import EXIT_ERROR, main
from p2ploader.errors import MissingExtraError, P2PLoaderError, UsageError
from p2ploader.extras import EXTRAS, missing_modules, require_extras

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
#: The modules no extra-free feature may import.
EXTRA_MODULES = sorted({module for modules in EXTRAS.values() for module in modules})


def _requirement_name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower()


def _forget(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Drop ``modules`` and their submodules from ``sys.modules`` until the test ends, so the next
    import runs them again."""
    for name in list(sys.modules):
        if any(name == m or name.startswith(m + ".") for m in modules):
            monkeypatch.delitem(sys.modules, name)


def _hide(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Make ``modules`` look not installed until the test ends."""
    _forget(monkeypatch, *modules)
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)


# --------------------------------------------------------------------------------------------------
# The table agrees with pyproject.toml


def test_the_extras_table_is_pyprojects() -> None:
    optional = PYPROJECT["project"]["optional-dependencies"]
    for extra, modules in EXTRAS.items():
        # Each of these distributions installs a top-level module of the same name.
        assert sorted(_requirement_name(r) for r in optional[extra]) == sorted(modules), extra
    assert optional["all"] == [f"p2ploader[{','.join(sorted(EXTRAS))}]"]


def test_the_plain_install_holds_what_a_player_needs_and_nothing_of_an_extra() -> None:
    base = {_requirement_name(r) for r in PYPROJECT["project"]["dependencies"]}
    assert base == {"httpx", "aiortc", "m3u8", "anyio", "attrs", "websockets", "cryptography"}
    assert not base & set(EXTRA_MODULES)


# --------------------------------------------------------------------------------------------------
# The check and its error


def test_an_installed_extra_passes_the_check() -> None:
    # The test environment installs every extra (dev.py installs .[dev,all]).
    for extra in EXTRAS:
        assert missing_modules(extra) == ()
    require_extras("everything", *EXTRAS)


def test_a_missing_extra_is_a_typed_error_naming_the_pip_line(monkeypatch: pytest.MonkeyPatch) -> None:
    _hide(monkeypatch, "starlette")
    assert missing_modules("proxy") == ("starlette",)
    with pytest.raises(MissingExtraError) as raised:
        require_extras("open_proxy", "cli", "proxy")
    error = raised.value
    assert str(error) == "open_proxy needs the 'proxy' extra: pip install 'p2ploader[proxy]'"
    assert (error.feature, error.extras, error.modules) == ("open_proxy", ("proxy",), ("starlette",))
    # Caught as the project's usage error and as the ImportError an optional import raises.
    assert isinstance(error, UsageError) and isinstance(error, P2PLoaderError)
    assert isinstance(error, ImportError)


def test_two_missing_extras_are_named_together(monkeypatch: pytest.MonkeyPatch) -> None:
    _hide(monkeypatch, "rich", "matplotlib")
    with pytest.raises(MissingExtraError) as raised:
        require_extras("demo", "cli", "plot", "cli")
    assert str(raised.value) == "demo needs the 'cli' and 'plot' extras: pip install 'p2ploader[cli,plot]'"
    assert raised.value.modules == ("rich", "matplotlib")


def test_an_unknown_extra_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown extra 'gui'"):
        require_extras("x", "gui")


def test_the_proxy_without_its_extra_raises_missing_extra_on_import(monkeypatch: pytest.MonkeyPatch) -> None:
    _forget(monkeypatch, "p2ploader.proxy")
    _hide(monkeypatch, "starlette", "uvicorn")
    with pytest.raises(MissingExtraError, match=r"p2ploader\.proxy needs the 'proxy' extra"):
        from p2ploader.proxy import open_proxy  # noqa: F401


def test_plots_without_matplotlib_raise_missing_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from p2ploader.app.plots import plot_swarm
    from p2ploader.app.sim_plots import plot_sweep

    _hide(monkeypatch, "matplotlib")
    with pytest.raises(MissingExtraError, match="plot_swarm needs the 'plot' extra"):
        plot_swarm(None, tmp_path / "x.png")  # type: ignore[arg-type]  # refused before it is read
    with pytest.raises(MissingExtraError, match="plot_sweep needs the 'plot' extra"):
        plot_sweep([], "viewers", tmp_path / "y.png")
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "y.png").exists()


# --------------------------------------------------------------------------------------------------
# The commands


@pytest.mark.parametrize(
    ("argv", "hidden", "line"),
    [
        (
            ["play", "http://127.0.0.1:9/x.m3u8"],
            ["rich"],
            "play needs the 'cli' extra: pip install 'p2ploader[cli]'",
        ),
        (
            ["view", "http://127.0.0.1:9/x.m3u8"],
            ["rich"],
            "view needs the 'cli' extra: pip install 'p2ploader[cli]'",
        ),
        (
            ["swarm", "http://127.0.0.1:9/x.m3u8"],
            ["rich"],
            "swarm needs the 'cli' extra: pip install 'p2ploader[cli]'",
        ),
        (
            ["swarm", "http://127.0.0.1:9/x.m3u8", "--plot", "p.png"],
            ["matplotlib"],
            "swarm needs the 'plot' extra: pip install 'p2ploader[plot]'",
        ),
        # demo plots by default.
        (
            ["demo"],
            ["rich", "matplotlib"],
            "demo needs the 'cli' and 'plot' extras: pip install 'p2ploader[cli,plot]'",
        ),
        (
            ["proxy", "http://127.0.0.1:9/x.m3u8"],
            ["uvicorn"],
            "proxy needs the 'proxy' extra: pip install 'p2ploader[proxy]'",
        ),
        (
            ["simulate", "small-live", "--sweep", "viewers=2,3"],
            ["matplotlib"],
            "simulate needs the 'plot' extra: pip install 'p2ploader[plot]'",
        ),
    ],
    ids=["play", "view", "swarm", "swarm-plot", "demo", "proxy", "simulate-sweep"],
)
def test_a_command_without_its_extra_says_which_to_install(
    argv: list[str],
    hidden: list[str],
    line: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.chdir(tmp_path)  # whatever a command that did start would write
    _hide(monkeypatch, *hidden)
    assert main(argv) == EXIT_ERROR
    captured = capsys.readouterr()
    # One line, nothing else: no traceback, and the command did not start (no output).
    assert captured.err == f"p2ploader: error: {line}\n"
    assert captured.out == ""


def test_swarm_without_plot_needs_no_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    from p2ploader.app.cli import _needed_extras, build_parser

    _hide(monkeypatch, "matplotlib")
    args = build_parser().parse_args(["swarm", "http://127.0.0.1:9/x.m3u8"])
    assert _needed_extras(args) == ("cli",)
    args = build_parser().parse_args(["demo", "--plot", ""])
    assert _needed_extras(args) == ("cli",)
    for argv in (["origin"], ["tracker"], ["hash-playlist", "x.m3u8"], ["simulate", "small-live"]):
        assert _needed_extras(build_parser().parse_args(argv)) == (), argv


# --------------------------------------------------------------------------------------------------
# What the plain install imports


_BLOCKER = """
import sys
# As if not installed: find_spec answers None and an import raises ModuleNotFoundError.
for name in {blocked!r}:
    sys.modules[name] = None
"""


def test_the_library_imports_nothing_of_an_extra() -> None:
    # A fresh interpreter where the extras' modules cannot be imported: the library, its loader,
    # player, origin, tracker, viewer process, swarm runner and the command's parser all load.
    code = _BLOCKER.format(blocked=EXTRA_MODULES) + (
        "import p2ploader\n"
        "from p2ploader import open_loader, play, HybridLoader, LoadedSegment, LoaderStatistics\n"
        "import p2ploader.testing.origin, p2ploader.tracker, p2ploader.app.viewer, p2ploader.app.swarmrun\n"
        "import p2ploader.decryption, p2ploader.app.hashplaylist, p2ploader.app.simulate\n"
        "from p2ploader.app.cli import build_parser\n"
        "build_parser()\n"
        "for name in p2ploader.__all__: getattr(p2ploader, name)\n"
        "try:\n"
        "    import p2ploader.proxy\n"
        "except p2ploader.MissingExtraError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "p2ploader.proxy needs the 'proxy' extra: pip install 'p2ploader[proxy]'\n"
