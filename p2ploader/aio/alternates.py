"""The audio and subtitles companions of a loader: EXT-X-MEDIA renditions loaded with the variant.

A stream that keeps its audio apart (``#EXT-X-MEDIA:TYPE=AUDIO`` groups, a video-only variant) only
plays when the player loads both. :class:`AlternateTracks` gives a
:class:`~p2ploader.aio.loader.HybridLoader` one companion loader per extra media type:

* **Own swarm.** The audio companion is a loader of its own (scheduler, cache, tracker client, peer
  id), announcing with the info hash P2P Media Loader 2.3.1 gives that audio track (a
  ``secondary`` stream, :func:`p2ploader.core.swarm.hlsjs_streams`), so browser peers playing the
  same track share it. 2.3.1 also gives each stream its own peer id. Everything else is shared
  with the parent: the HTTP client (with its headers, cookies and user agent), the settings, and
  the bans: a peer banned in the parent's swarms is refused in the companion's, and the other way
  round, by the same identity (the link's certificate, else the bare peer id; see
  :mod:`p2ploader.core.reputation`), and links it already holds there are closed.
* **Same timeline.** Its segments' ``start`` times are aligned on the variant's by media sequence
  number (as a rendition switch aligns two variants), and the parent hands every reported playback
  position on, so both prioritise the segments around the same playhead.
* **Switches.** A variant switch to one naming another audio group moves the companion to the
  matching rendition of that group (same language and name; see
  :func:`p2ploader.renditions.equivalent_in_group`); its segments go on from the same sequence.
* **Subtitles** are loaded over HTTP only: a cue file is a few hundred bytes, and P2P Media Loader
  never puts subtitles in a swarm, so there would be no browser peers to share them with.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Generic, Protocol, Self, TypeVar

import attrs
import httpx

from p2ploader.aio.statistics import LoaderStatistics, MediaKind, MediaStatistics
from p2ploader.config import LoaderConfig
from p2ploader.core import notifications as nt
from p2ploader.core.upload_control import UploadController, UploadHold
from p2ploader.errors import RenditionNotFoundError, UsageError
from p2ploader.hls import AlternateRendition, MasterPlaylist, MediaPlaylist, Variant
from p2ploader.renditions import MediaChoice, MediaType, choose_alternate, equivalent_in_group

__all__ = ["AlternateTracks", "TrackLoader", "as_track", "open_companion", "sequence_at"]


class TrackLoader(Protocol):
    """What the companions ask of a loader, the parent and each companion alike.
    :class:`~p2ploader.aio.loader.HybridLoader` is the one implementation; this module names the
    protocol instead of the class because the loader imports this module (no import circle, not
    even for type checking). The underscored members are the loader's internals the companions
    share (its HTTP client, random generator, listeners and upload control) or drive (following a
    rendition)."""

    url: str
    config: LoaderConfig
    media_type: MediaKind
    _rng: random.Random
    _client: httpx.AsyncClient
    _listeners: list[Callable[[nt.Notification], None]]
    _variant: Variant | None
    _upload_control: UploadController | None
    _upload_hold: UploadHold | None

    def __init__(
        self,
        url: str,
        *,
        config: LoaderConfig | None = ...,
        seed: int | None = ...,
        http_client: httpx.AsyncClient | None = ...,
    ) -> None: ...

    @property
    def master(self) -> MasterPlaylist: ...

    @property
    def playlist(self) -> MediaPlaylist: ...

    def add_listener(self, listener: Callable[[nt.Notification], None]) -> Callable[[], None]: ...

    def report_playback(self, position: float, *, stalled: bool = False) -> None: ...

    async def aclose(self) -> None: ...

    def _own_statistics(self) -> LoaderStatistics: ...

    async def _follow(self, variant: Variant, *, align_with: MediaPlaylist | None = ...) -> None: ...

    async def _start_following(
        self, master: MasterPlaylist, track: Variant, *, align_with: MediaPlaylist | None
    ) -> None: ...

    def _share_bans_with(self, other: Self) -> None: ...


Loader = TypeVar("Loader", bound=TrackLoader)

_KINDS: dict[MediaType, MediaKind] = {"AUDIO": "audio", "SUBTITLES": "subtitles"}


def _added(current: MediaStatistics, earlier: MediaStatistics) -> MediaStatistics:
    """``current``'s figures plus those of an ``earlier`` (closed) loader of the same media type;
    the rendition and peers are ``current``'s."""
    return attrs.evolve(
        current,
        http_bytes=current.http_bytes + earlier.http_bytes,
        p2p_bytes=current.p2p_bytes + earlier.p2p_bytes,
        p2p_uploaded_bytes=current.p2p_uploaded_bytes + earlier.p2p_uploaded_bytes,
        http_segments=current.http_segments + earlier.http_segments,
        p2p_segments=current.p2p_segments + earlier.p2p_segments,
    )


def as_track(master: MasterPlaylist, rendition: AlternateRendition, variant: Variant) -> Variant:
    """``rendition`` as the variant-like record a loader follows. Its bandwidth is ``variant``'s,
    which covers all of the variant's media: it only bounds the segment size a peer may send."""
    assert rendition.url is not None  # only renditions with a URI are chosen
    return Variant(
        index=master.renditions.index(rendition),
        rendition_id=rendition.rendition_id,
        url=rendition.url,
        bandwidth=variant.bandwidth,
    )


class AlternateTracks(Generic[Loader]):
    """The audio and subtitles companions of ``parent`` (see the module docstring); they are
    loaders of ``parent``'s class."""

    def __init__(self, parent: Loader) -> None:
        self._parent = parent
        self._loaders: dict[MediaType, Loader] = {}
        self._chosen: dict[MediaType, AlternateRendition] = {}  # loaded now
        self._last: dict[MediaType, AlternateRendition] = {}  # loaded last, kept after a drop
        self._wanted: dict[MediaType, MediaChoice] = {}  # the caller's choice
        # Figures of companions already closed (dropped by a switch, or the parent closed): the
        # totals never go down.
        self._retired: list[LoaderStatistics] = []

    @property
    def audio(self) -> Loader | None:
        return self._loaders.get("AUDIO")

    @property
    def subtitles(self) -> Loader | None:
        return self._loaders.get("SUBTITLES")

    async def open(self, variant: Variant, *, audio: MediaChoice, subtitles: MediaChoice) -> None:
        """Choose and start the renditions of ``variant``'s groups (a bad choice raises
        :class:`~p2ploader.errors.RenditionNotFoundError` before anything starts)."""
        master = self._parent.master
        choices: dict[MediaType, MediaChoice] = {"AUDIO": audio, "SUBTITLES": subtitles}
        self._wanted = dict(choices)
        chosen = {
            media_type: choose_alternate(master, variant, media_type, choice)
            for media_type, choice in choices.items()
        }
        for media_type, rendition in chosen.items():
            if rendition is not None:
                await self._load(media_type, rendition, variant)

    async def select(self, media_type: MediaType, choice: MediaChoice) -> None:
        """Load another rendition of ``media_type`` (or none, with ``False``)."""
        variant = self._parent._variant
        assert variant is not None
        rendition = choose_alternate(self._parent.master, variant, media_type, choice)
        self._wanted[media_type] = choice
        if rendition is None:
            await self._drop(media_type)
        elif rendition != self._chosen.get(media_type):
            await self._load(media_type, rendition, variant)

    async def variant_changed(self, variant: Variant) -> None:
        """The parent switched to ``variant``: keep each media type going in its group, or pick
        it up again (a variant that carried its own audio, then one with an audio group again)."""
        master = self._parent.master
        for media_type in _KINDS:
            wanted = self._wanted.get(media_type)
            if wanted is False:
                continue
            previous = self._chosen.get(media_type) or self._last.get(media_type)
            if previous is not None:
                rendition = equivalent_in_group(master, variant, media_type, previous)
            else:
                try:
                    rendition = choose_alternate(master, variant, media_type, wanted)
                except RenditionNotFoundError:
                    rendition = None  # not in this variant's group: a switch must not fail for it
            if rendition is None:
                await self._drop(media_type)  # the new variant carries this media itself
            elif rendition != self._chosen.get(media_type):
                await self._load(media_type, rendition, variant)

    def report_playback(self, position: float) -> None:
        """The playhead moved (seconds on the shared timeline)."""
        for loader in self._loaders.values():
            loader.report_playback(position)

    def combine(self, own: LoaderStatistics) -> LoaderStatistics:
        """``own`` (the parent's figures) with the companions' added to the totals and
        ``by_media_type``."""
        parts = [own, *self._retired, *(loader._own_statistics() for loader in self._loaders.values())]
        uploaded: dict[str, int] = {}
        for part in parts:
            for peer, size in part.uploaded_bytes_by_peer.items():
                uploaded[peer] = uploaded.get(peer, 0) + size
        by_media_type: dict[MediaKind, MediaStatistics] = {}
        for part in parts:
            for kind, figures in part.by_media_type.items():
                have = by_media_type.get(kind)
                by_media_type[kind] = figures if have is None else _added(figures, have)
        return attrs.evolve(
            own,
            http_bytes=sum(p.http_bytes for p in parts),
            p2p_bytes=sum(p.p2p_bytes for p in parts),
            p2p_uploaded_bytes=sum(p.p2p_uploaded_bytes for p in parts),
            peers_connected=sum(p.peers_connected for p in parts),
            http_segments=sum(p.http_segments for p in parts),
            p2p_segments=sum(p.p2p_segments for p in parts),
            http_failures=sum(p.http_failures for p in parts),
            p2p_failures=sum(p.p2p_failures for p in parts),
            aborted_downloads=sum(p.aborted_downloads for p in parts),
            cached_segments=sum(p.cached_segments for p in parts),
            cached_bytes=sum(p.cached_bytes for p in parts),
            playlist_refresh_errors=sum(p.playlist_refresh_errors for p in parts),
            p2p_bytes_verified=sum(p.p2p_bytes_verified for p in parts),
            p2p_bytes_unverified=sum(p.p2p_bytes_unverified for p in parts),
            uploaded_bytes_by_peer=uploaded,
            by_media_type=by_media_type,
        )

    async def aclose(self) -> None:
        for media_type in list(self._loaders):
            await self._drop(media_type)

    # ------------------------------------------------------------------ internals

    async def _load(self, media_type: MediaType, rendition: AlternateRendition, variant: Variant) -> None:
        master = self._parent.master
        track = as_track(master, rendition, variant)
        loader = self._loaders.get(media_type)
        if loader is not None:
            # Another rendition of the same type: a switch within the companion (its own swarm
            # lingers and is left like a variant's; its segments go on from the same sequence).
            await loader._follow(track)
        else:
            loader = await open_companion(self._parent, rendition, variant)
            self._loaders[media_type] = loader
        self._chosen[media_type] = self._last[media_type] = rendition

    async def _drop(self, media_type: MediaType) -> None:
        self._chosen.pop(media_type, None)
        loader = self._loaders.pop(media_type, None)
        if loader is not None:
            await loader.aclose()
            self._retired.append(loader._own_statistics())


async def open_companion(parent: Loader, rendition: AlternateRendition, variant: Variant) -> Loader:
    """A started loader on ``rendition`` (AUDIO or SUBTITLES, with a URI) of ``parent``'s stream:
    its timeline aligned on ``parent``'s, ``parent``'s HTTP client and settings, the swarm P2P Media
    Loader 2.3.1 gives that audio track (subtitles: HTTP only), and ``parent``'s listeners hearing
    its notifications. ``variant``'s bandwidth bounds the segment size a peer may send. The caller
    closes it."""
    if rendition.type not in _KINDS:
        raise UsageError(f"{rendition.rendition_id} is {rendition.type}: only audio and subtitles are loaded")
    kind = _KINDS[rendition.type]
    # The shared client already sends the configured headers, cookies and user agent.
    config = attrs.evolve(parent.config, http_headers={}, http_cookies={}, user_agent=None)
    if kind == "subtitles":
        config = attrs.evolve(config, use_p2p=False)
    seed = parent._rng.randrange(2**32)
    loader = type(parent)(parent.url, config=config, seed=seed, http_client=parent._client)
    loader.media_type = kind
    loader._upload_control = parent._upload_control  # one uplink: one upload control
    loader._upload_hold = parent._upload_hold

    def forward(notification: nt.Notification) -> None:
        # The parent's listeners hear every media type (segment ids name the rendition).
        for listener in list(parent._listeners):
            listener(notification)

    loader.add_listener(forward)
    loader._share_bans_with(parent)  # a peer that lied about the video is not trusted with the audio
    master = parent.master
    try:
        await loader._start_following(
            master, as_track(master, rendition, variant), align_with=parent.playlist
        )
    except BaseException:
        await loader.aclose()
        raise
    return loader


def sequence_at(playlist: MediaPlaylist, position: float) -> int:
    """The media sequence number of ``playlist``'s segment that covers ``position`` (seconds on the
    shared timeline): where a companion starts so that its media plays with the variant's. Before
    the window: its first segment; past it: its last."""
    segments = playlist.segments
    if not segments:
        return playlist.media_sequence
    for segment in segments:
        if position < segment.start + segment.duration:
            return segment.id.sequence
    return segments[-1].id.sequence
