"""p2ploader: load HLS segments over HTTP and from other viewers over WebRTC.

The curated public API. Everything else is reachable through its module (``p2ploader.core.*`` for
the sans-IO scheduler, ``p2ploader.hls`` for the playlist model, ``p2ploader.origin`` for the local
test origin) but only the names below are promised to stay.

The asyncio names (``open_loader``, ``HybridLoader``, ``play``, ...) are imported on first use, so
``import p2ploader.core`` or the simulator never pulls in httpx or aiortc.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from p2ploader.config import PRESETS, LoaderConfig
from p2ploader.core.policy import DownloadPolicy, available_policies, register_policy
from p2ploader.core.scheduler import Scheduler
from p2ploader.core.segments import ByteRange, InitSection, KeyInfo, Segment, SegmentId
from p2ploader.errors import (
    BindError,
    ConfigError,
    ConfigFileError,
    HttpStatusError,
    LoaderClosedError,
    P2PLoaderError,
    PlaylistError,
    PlaylistTooLargeError,
    RemoteError,
    RenditionNotFoundError,
    ResponseTooLargeError,
    SegmentUnavailableError,
    TransportError,
    UsageError,
)
from p2ploader.playback import PlaybackModel, PlaybackReport

if TYPE_CHECKING:
    from p2ploader.aio.loader import (
        HybridLoader,
        LoadedSegment,
        LoaderStatistics,
        MediaStatistics,
        open_loader,
    )
    from p2ploader.aio.player import play

__version__ = "0.1.0.dev0"

_LAZY = {
    "HybridLoader": "p2ploader.aio.loader",
    "LoadedSegment": "p2ploader.aio.loader",
    "LoaderStatistics": "p2ploader.aio.loader",
    "MediaStatistics": "p2ploader.aio.loader",
    "open_loader": "p2ploader.aio.loader",
    "play": "p2ploader.aio.player",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'p2ploader' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "PRESETS",
    "BindError",
    "ByteRange",
    "ConfigError",
    "ConfigFileError",
    "DownloadPolicy",
    "HttpStatusError",
    "HybridLoader",
    "InitSection",
    "KeyInfo",
    "LoadedSegment",
    "LoaderClosedError",
    "LoaderConfig",
    "LoaderStatistics",
    "MediaStatistics",
    "P2PLoaderError",
    "PlaybackModel",
    "PlaybackReport",
    "PlaylistError",
    "PlaylistTooLargeError",
    "RemoteError",
    "RenditionNotFoundError",
    "ResponseTooLargeError",
    "Scheduler",
    "Segment",
    "SegmentId",
    "SegmentUnavailableError",
    "TransportError",
    "UsageError",
    "__version__",
    "available_policies",
    "open_loader",
    "play",
    "register_policy",
]
