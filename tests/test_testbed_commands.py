"""The testbed as the commands use it (root, ``ip``, ``tc``): a short swarm from a scenario file,
and no namespace left behind after SIGTERM or Ctrl-C.

Nothing here measures a rate or a time, so these run beside other tests (each testbed has its own
namespaces, bridge and addresses). What is measured, and the SIGKILL sweep (another testbed starting
meanwhile would sweep the killed run's leftovers first), is in tests/test_testbed_e2e.py, which runs
alone. Skipped, with the reason, without root or iproute2 (CI runs as root)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ffmpeg_streams import make_single_rendition_stream
from tests.test_testbed_e2e import _HOLD, _UNAVAILABLE, _ours

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(_UNAVAILABLE is not None, reason=f"testbed unavailable: {_UNAVAILABLE}"),
]


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT])
def test_a_testbed_killed_with_sigterm_or_ctrl_c_removes_its_namespaces(how: signal.Signals) -> None:
    proc = subprocess.Popen([sys.executable, "-c", _HOLD], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "up"
    assert len(_ours(proc.pid)) == 3
    proc.send_signal(how)
    proc.wait(timeout=30)
    assert _ours(proc.pid) == []


def test_swarm_command_runs_a_scenario_file_on_the_testbed(tmp_path: Path) -> None:
    # 30 s of a single-rendition stream in 5 s segments (about 650 kbit/s); the origin loops it.
    stream = make_single_rendition_stream(tmp_path / "live5s", segment_seconds=5, seconds=30)
    scenario = tmp_path / "two.toml"
    scenario.write_text(
        # What is checked is the command's output: a short swarm (the agreement test of
        # tests/test_testbed_e2e.py plays long).
        'name = "two"\nviewers = 2\nduration_s = 8\njoin_window_s = 2\nuplink_mbps = [2, 4]\n'
        'downlink_mbps = 30\nlatency_segments = 3\npolicy = "p2ploader-live"\n'
    )
    argv = [sys.executable, "-m", "p2ploader.app.cli", "swarm", str(stream), "--scenario", str(scenario)]
    proc = subprocess.Popen([*argv, "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-2000:] + stdout[-2000:]
    lines = stdout.splitlines()
    assert "testbed: origin http://198.18.0.1:8080/live/master.m3u8, tracker ws://198.18.0.2:8000" in lines
    uplinks = [
        float(line.split(" up ")[1].split("mbit")[0]) for line in lines if line.startswith("testbed: viewer")
    ]
    assert len(uplinks) == 2 and all(2 <= u <= 4 for u in uplinks)
    result = [line for line in lines if line.startswith("RESULT swarm ")]
    assert len(result) == 1 and "scenario=two policy=p2ploader-live viewers=2 " in result[0]
    assert _ours(proc.pid) == []
