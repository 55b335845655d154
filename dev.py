#!/usr/bin/env python3
"""The project's two commands, on a fresh machine with only Python 3.11+.

    python3 dev.py demo [options]   # run the demo (see `python3 dev.py demo --help`)
    python3 dev.py test [pytest args]  # ruff, ruff format --check, mypy --strict, mkdocs --strict, pytest
                                       # (on four worker processes; pass `-n 0` for one;
                                       # tests marked `alone` afterwards, in one process)

Both create ``.venv`` and install the package into it with every optional extra and the dev tools
(``.[dev,all]``) on first use, and again whenever ``pyproject.toml`` changes. Standard library only.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".p2ploader-installed"
# mypy's incremental cache, kept per user rather than per checkout: a fresh clone then type-checks
# in about 1 s instead of about 20 CPU-seconds (typeshed, aiortc, httpx... are the same files in
# every clone). mypy checks each cached module's hash and options and redoes what changed, so a
# cache written by another checkout or version is never trusted blindly.
MYPY_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "p2ploader" / "mypy"


def _run(*cmd: str | Path, quiet: bool = False, env: dict[str, str] | None = None) -> int:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    # Material for MkDocs prints a banner about its end of life on every build; it is not a warning.
    env = {**(os.environ if env is None else env), "NO_MKDOCS_2_WARNING": "1"}
    out = subprocess.DEVNULL if quiet else None
    return subprocess.call([str(c) for c in cmd], cwd=ROOT, env=env, stdout=out)


def _pytest_env() -> dict[str, str]:
    """The environment of the pytest steps: Python may write bytecode (``__pycache__``, gitignored),
    even where ``PYTHONDONTWRITEBYTECODE`` is set. Without it every pytest process (four workers,
    the `alone` phase, every viewer or command a test starts) compiles the package and rewrites the
    asserts of all test modules again: about 17 CPU-seconds per pytest process instead of 5."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def ensure_venv() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this script may be started by an older Python
        sys.exit(f"p2ploader needs Python 3.11 or newer, this is {sys.version.split()[0]}")
    if not (BIN / "python").exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text().strip() == wanted:
        return
    python = BIN / "python"
    if _run(python, "-m", "pip", "install", "--quiet", "--upgrade", "pip") != 0:
        sys.exit("pip upgrade failed")
    if _run(python, "-m", "pip", "install", "--quiet", "-e", ".[dev,all]") != 0:
        sys.exit("installing p2ploader and its dev dependencies failed")
    STAMP.write_text(wanted + "\n")


# pytest runs on four worker processes (pytest-xdist), two per core on the two-core machine the
# suite is timed on: most tests wait on real time (live playback, swarms on loopback), so the load
# average of a run stays near 3.5 and four workers finish in about 0.7 x the time of two. Each test
# file runs whole on one worker (--dist loadfile): a module's fixtures (an encoded stream, a built
# wheel, a browser set-up) are made once, and the tests of a file that share a resource never run at
# the same time. The files go out in collection order, slowest first (tests/conftest.py,
# SLOWEST_FIRST): --no-loadscope-reorder keeps pytest-xdist (3.8+) from sorting them by their number
# of tests instead, which started the long few-test files (simulator stress runs, the fidelity
# check, the soak) last. Arguments after `test` come later on the command line and win:
# `dev.py test -n 0` runs in one process.
PYTEST_WORKERS = ("-n", "4", "--dist", "loadfile", "--no-loadscope-reorder", "-m", "not alone")
PYTEST_ALONE = ("-m", "alone")
NOTHING_COLLECTED = 5


def test(extra: list[str]) -> int:
    # The docs site is built into a throw-away directory: --strict makes every warning (a broken
    # link or anchor, a page missing from the nav, a config field without a docstring) an error.
    # No --quiet: it hides warnings from the strict-mode count, and the build would then pass.
    with tempfile.TemporaryDirectory(prefix="p2ploader-site-") as site:
        steps: list[tuple[str | Path, ...]] = [
            (BIN / "ruff", "check", "."),
            (BIN / "ruff", "format", "--check", "."),
            (BIN / "mypy", "--cache-dir", MYPY_CACHE),
            (BIN / "mkdocs", "build", "--strict", "--site-dir", site),
        ]
        for step in steps:
            code = _run(*step)
            if code != 0:
                print(f"FAILED: {' '.join(str(s) for s in step)} (exit {code})", flush=True)
                return code
    return _pytest_in_two_phases(extra)


def _pytest_in_two_phases(extra: list[str]) -> int:
    """Run the suite on four workers, then the tests marked `alone` in one process.

    One phase may select nothing (a run of one file), but pytest's exit 5 when both collected
    nothing is a failure: a suite that runs no test has not passed.
    """
    python = BIN / "python"
    env = _pytest_env()
    if not (ROOT / "tests" / "__pycache__").exists():
        # A fresh clone: collect once, in one process, so that the four workers, which start
        # together, load the compiled and assert-rewritten test modules instead of each making
        # them. (A collection error is reported by the run itself.)
        _run(python, "-m", "pytest", "--collect-only", "-q", *extra, quiet=True, env=env)
    codes = []
    for phase in (PYTEST_WORKERS, PYTEST_ALONE):
        step = (python, "-m", "pytest", *phase, *extra)
        code = _run(*step, env=env)
        if code not in (0, NOTHING_COLLECTED):
            print(f"FAILED: {' '.join(str(s) for s in step)} (exit {code})", flush=True)
            return code
        codes.append(code)
    if all(code == NOTHING_COLLECTED for code in codes):
        print("FAILED: pytest collected no test", flush=True)
        return NOTHING_COLLECTED
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "test"):
        print(__doc__)
        return 2
    ensure_venv()
    if argv[0] == "demo":
        return _run(BIN / "p2ploader", "demo", *argv[1:])
    return test(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
