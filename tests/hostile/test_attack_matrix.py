"""``benchmarks/attack_matrix.py --quick`` as a user types it: two cheap cases, real sockets.

The benchmark's own numbers are today's code's (they change as defences land); what this test holds
is that it runs, cleans up after itself, and prints one parseable RESULT line per case, and that the
honest baseline hands the player nothing wrong.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

PROJECT = Path(__file__).resolve().parents[2]
RESULT = re.compile(
    r"^RESULT attack case=(?P<case>[a-z0-9-]+) wrong_segments=(?P<wrong>-?\d+) stalls=(?P<stalls>-?\d+)"
    r" p2p_vs_honest=(?P<ratio>\d+\.\d+|nan|-) victim_cpu_s=(?P<cpu>\d+\.\d+|nan)"
    r" victim_rss_mb=(?P<rss>\d+\.\d+|nan)$"
)


def run_matrix(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    return subprocess.run(
        [sys.executable, "benchmarks/attack_matrix.py", *args],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_quick_run_prints_one_parseable_line_per_case() -> None:
    done = run_matrix("--quick", "--case", "honest", "--case", "liar-sha256", timeout=100)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    parsed = {}
    for line in lines:
        match = RESULT.match(line)
        assert match, line
        parsed[match["case"]] = match
    assert list(parsed) == ["honest", "liar-sha256"], done.stdout
    # The RESULT lines end the output, one per case.
    assert done.stdout.splitlines()[-len(lines) :] == lines
    honest, liar = parsed["honest"], parsed["liar-sha256"]
    assert honest["wrong"] == "0" and honest["stalls"] == "0"
    assert honest["ratio"] == "1.00"  # the baseline got P2P bytes from its honest seeder
    assert float(honest["cpu"]) > 0 and float(honest["rss"]) > 10
    assert liar["ratio"] == "-"  # no honest peer in that case
    assert liar["wrong"] == "0"  # held: the published SHA-256 stops a plain liar
    assert float(liar["cpu"]) > 0
    assert "error=" not in done.stdout, done.stdout


def test_unknown_case_is_refused_with_the_list_hint() -> None:
    done = run_matrix("--quick", "--case", "no-such-case", timeout=60)
    assert done.returncode == 2
    assert "unknown case(s) no-such-case" in done.stderr and "--list" in done.stderr


def test_list_names_every_finding() -> None:
    done = run_matrix("--list", timeout=60)
    assert done.returncode == 0, done.stderr
    names = {line.split()[0] for line in done.stdout.splitlines()}
    for name in (
        "honest",
        "liar-sha256",
        "prefix-stall-defaults-digests-ranges",
        "prefix-stall-faq-vod-spot-noranges",
        "non-reader",
        "request-flood",
        "announce-flood",
        "oversized-segment",
        "bytes-after-cancel",
        "silent-startup-faq-vod",
        "sybils-20",
        "offer-spam",
        "impersonator",
    ):
        assert name in names, name
