"""Each example runs (as a user would run it) and does what it says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_minimal_player_plays_the_sample() -> None:
    out = run_example("minimal_player.py")
    assert out.count(" bytes from ") == 10  # "http", or "cache" when the random-HTTP timer prefetched it
    assert "P2P 0 B" in out


def test_faq_config_example() -> None:
    out = run_example("faq_config.py")
    assert "requiredSegmentsPriority" in out


def test_pyav_decodes_every_frame_of_the_sample() -> None:
    out = run_example("pyav_decode.py")
    assert "decoded 480 video frames" in out  # 20 s at 24 fps
    assert out.count(", clear)") == 10  # decryption on leaves a clear stream as it is


def test_pyav_decodes_every_frame_of_the_encrypted_sample() -> None:
    out = run_example("pyav_decode.py", "--sample", "aes")
    assert out.count(", decrypted)") == 10  # every AES-128 segment was handed over as plaintext
    assert "decoded 480 video frames" in out  # the same 20 s at 24 fps as the clear TS sample


def test_settings_from_a_toml_file() -> None:
    out = run_example("settings_from_file.py")
    assert "required_segments_priority=2 http_download_ranges=True p2p_stall_timeout=2.0s" in out


def test_a_player_plays_through_the_proxy() -> None:
    import shutil

    import pytest

    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    out = run_example("player_through_proxy.py", "--player", "check")
    assert "player exit 0" in out and "segments_served=10" in out
