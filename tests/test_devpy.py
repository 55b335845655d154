"""`dev.py test` hands pytest-xdist the test files in the order tests/conftest.py gives them (the
slowest first), and lets the pytest steps write bytecode."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _dev() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dev_script", ROOT / "dev.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_workers_take_the_files_in_the_order_the_conftest_gives(tmp_path: Path) -> None:
    # Two files: many quick tests, and one long test that the conftest puts first (as SLOWEST_FIRST
    # does). pytest-xdist 3.8 sorts files by their number of tests unless told not to.
    (tmp_path / "test_many.py").write_text("".join(f"def test_{i}():\n    pass\n\n" for i in range(5)))
    (tmp_path / "test_long.py").write_text("def test_long():\n    pass\n")
    (tmp_path / "conftest.py").write_text(
        "def pytest_collection_modifyitems(items):\n"
        "    items.sort(key=lambda item: 'test_long' not in item.nodeid)\n"
    )
    workers = [arg for arg in _dev().PYTEST_WORKERS if arg not in ("-m", "not alone")]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *workers, "-n", "1", "-v", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    ran = [line.split("::")[0].split()[-1] for line in done.stdout.splitlines() if " PASSED " in line]
    assert ran and ran[0] == "test_long.py", ran


def test_the_pytest_steps_may_write_bytecode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    monkeypatch.setenv("P2PLOADER_KEPT", "yes")
    env = _dev()._pytest_env()
    assert "PYTHONDONTWRITEBYTECODE" not in env
    assert env["P2PLOADER_KEPT"] == "yes"
