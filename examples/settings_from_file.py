"""Tune the loader from a JSON or TOML file in P2P Media Loader's FAQ spelling.

python examples/settings_from_file.py [examples/settings.toml | settings.json]
"""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

from p2ploader import LoaderConfig


def load(path: Path) -> LoaderConfig:
    text = path.read_text(encoding="utf-8")
    data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    return LoaderConfig.from_faq(data)  # unknown keys and bad values raise ConfigError naming the key


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("settings.toml")
    config = load(path)
    print(
        f"required_segments_priority={config.required_segments_priority} "
        f"http_download_ranges={config.http_download_ranges} p2p_stall_timeout={config.p2p_stall_timeout}s"
    )
