"""p2ploader: load HLS segments over HTTP and from other viewers over WebRTC.

The curated public API. Everything else is reachable through its module (``p2ploader.core.*`` for
the sans-IO scheduler, ``p2ploader.hls`` for the playlist model, ``p2ploader.testing.origin`` for the local
test origin) but only the names below are promised to stay.

The asyncio names (``open_loader``, ``HybridLoader``, ``play``, ...) are imported on first use, so
``import p2ploader.core`` or the simulator never pulls in httpx or aiortc. None of these names
needs an extra: ``pip install p2ploader`` is enough (see :mod:`p2ploader.extras`).

Everything a policy author uses is here too (``DownloadPolicy``, ``SchedulingContext``,
``QueueEntry``, ``P2PProgress``, ``register_policy``, ``settings_from_mapping``, ``PolicyError``,
``FetchRetryPolicy`` for a policy that sets the attempts of its HTTP fetches);
tests/test_public_api.py keeps ``__all__`` complete and sorted.
"""

# No ``from __future__ import annotations`` and private aliases for the helpers: every public
# name of this module is in ``__all__`` (checked by tests/test_public_api.py).
import importlib as _importlib
import typing as _typing

from p2ploader.config import PRESETS, LoaderConfig
from p2ploader.core.low_latency import PreloadHint, RenditionReport, ServerControl, SkippedSegments
from p2ploader.core.policies import (
    DownloadPolicy,
    P2PProgress,
    QueueEntry,
    SchedulingContext,
    available_policies,
    register_policy,
    settings_from_mapping,
)
from p2ploader.core.retries import FetchRetryPolicy
from p2ploader.core.scheduler import Scheduler
from p2ploader.core.segments import ByteRange, InitSection, KeyInfo, Part, PartId, Segment, SegmentId
from p2ploader.errors import (
    BindError,
    ConfigError,
    ConfigFileError,
    DecryptionError,
    DeltaPlaylistError,
    HoldBackError,
    HttpStatusError,
    LivePlaylistStuckError,
    LoaderClosedError,
    LowLatencyPlaylistError,
    MissingExtraError,
    OfferRefusedError,
    P2PLoaderError,
    PartVanishedError,
    PlaylistError,
    PlaylistTooLargeError,
    PlaylistWentBackwardsError,
    PolicyError,
    RemoteError,
    RenditionNotFoundError,
    RenditionReportError,
    ResponseTooLargeError,
    SegmentUnavailableError,
    TestbedError,
    TestbedUnavailableError,
    TransportError,
    UnsupportedEncryptionError,
    UsageError,
)
from p2ploader.playback import PlaybackModel, PlaybackReport

if _typing.TYPE_CHECKING:
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


def __getattr__(name: str) -> _typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'p2ploader' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "PRESETS",
    "BindError",
    "ByteRange",
    "ConfigError",
    "ConfigFileError",
    "DecryptionError",
    "DeltaPlaylistError",
    "DownloadPolicy",
    "FetchRetryPolicy",
    "HoldBackError",
    "HttpStatusError",
    "HybridLoader",
    "InitSection",
    "KeyInfo",
    "LivePlaylistStuckError",
    "LoadedSegment",
    "LoaderClosedError",
    "LoaderConfig",
    "LoaderStatistics",
    "LowLatencyPlaylistError",
    "MediaStatistics",
    "MissingExtraError",
    "OfferRefusedError",
    "P2PLoaderError",
    "P2PProgress",
    "Part",
    "PartId",
    "PartVanishedError",
    "PlaybackModel",
    "PlaybackReport",
    "PlaylistError",
    "PlaylistTooLargeError",
    "PlaylistWentBackwardsError",
    "PolicyError",
    "PreloadHint",
    "QueueEntry",
    "RemoteError",
    "RenditionNotFoundError",
    "RenditionReport",
    "RenditionReportError",
    "ResponseTooLargeError",
    "Scheduler",
    "SchedulingContext",
    "Segment",
    "SegmentId",
    "SegmentUnavailableError",
    "ServerControl",
    "SkippedSegments",
    "TestbedError",
    "TestbedUnavailableError",
    "TransportError",
    "UnsupportedEncryptionError",
    "UsageError",
    "__version__",
    "available_policies",
    "open_loader",
    "play",
    "register_policy",
    "settings_from_mapping",
]
