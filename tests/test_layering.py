"""The layering the architecture promises, checked on the source and on a fresh interpreter."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import p2ploader

PACKAGE = Path(p2ploader.__file__).parent
FORBIDDEN_IN_CORE = {"asyncio", "httpx", "aiortc", "websockets", "anyio", "trio", "time", "socket"}
UPPER_LAYERS = {
    "p2ploader.aio",
    "p2ploader.sim",
    "p2ploader.proxy",
    "p2ploader.tracker",
    "p2ploader.app",
    "p2ploader.testing.origin",
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_core_imports_no_io_clock_or_upper_layer() -> None:
    core_files = sorted((PACKAGE / "core").rglob("*.py"))
    assert core_files
    for path in core_files:
        for name in imported_modules(path):
            top = name.split(".")[0]
            assert top not in FORBIDDEN_IN_CORE, f"{path.name} imports {name}"
            assert not any(name == up or name.startswith(up + ".") for up in UPPER_LAYERS), (
                f"{path.name} imports {name}"
            )


def test_the_driver_imports_no_io_library() -> None:
    # The simulator hosts this same driver on a virtual-time loop.
    for name in imported_modules(PACKAGE / "core" / "driver.py"):
        assert name.split(".")[0] not in {"asyncio", "httpx", "aiortc", "websockets", "socket"}, name


def test_importing_the_core_and_config_pulls_in_no_network_library() -> None:
    code = (
        "import sys, p2ploader, p2ploader.core.scheduler, p2ploader.config\n"
        "import p2ploader.hls, p2ploader.playback\n"
        "bad = [m for m in ('httpx', 'aiortc', 'websockets') if m in sys.modules]\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_public_api_is_curated_and_sorted() -> None:
    assert len(set(p2ploader.__all__)) == len(p2ploader.__all__)
    for name in p2ploader.__all__:
        assert getattr(p2ploader, name) is not None, name
    assert not any(name.startswith("_") and name != "__version__" for name in p2ploader.__all__)
