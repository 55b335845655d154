"""The words a peer may declare about itself (device class, operating system, client kind), each
with its one-character code in the peer id.

A leaf module: the config checks ``peer_device``, ``peer_os`` and ``peer_client`` against these
words, and :mod:`p2ploader.core.topology` (which takes a config) classifies peers by them, so both
import the facts from here instead of from each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = ["CLIENT_KINDS", "DEVICES", "OPERATING_SYSTEMS"]

# One character each in the peer id (see core/topology.py, encode_peer_id_attributes); the dicts
# fix the codes.
DEVICES: Final[Mapping[str, str]] = {"desktop": "d", "mobile": "m", "unknown": "u"}
OPERATING_SYSTEMS: Final[Mapping[str, str]] = {
    "windows": "w",
    "macos": "m",
    "linux": "l",
    "android": "a",
    "ios": "i",
    "other": "o",
    "unknown": "u",
}
CLIENT_KINDS: Final[Mapping[str, str]] = {
    "chrome": "c",
    "safari": "s",
    "firefox": "f",
    "edge": "e",
    "p2ploader": "p",
    "other": "o",
    "unknown": "u",
}
