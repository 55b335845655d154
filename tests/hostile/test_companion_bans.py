"""A peer banned in one swarm of a stream is banned in its companions' swarms too, over real aiortc.

A loader and its audio companion are two swarms (P2P Media Loader 2.3.1 gives each its own info
hash and peer id), so a peer that lies about the video meets the audio as another peer id on
another link. What ties them is the identity bans fall on: the link's DTLS certificate. Here a
scripted peer lies in one swarm (wrong bytes, caught by the published SHA-256) and is banned; a
second scripted peer with the same certificate and another peer id, in the other swarm, is closed
at once if it was linked already, and its new offers are refused. Both directions. The sharing
itself (families of reputations, the identity rules) is tested without a socket in
``tests/core/test_reputation.py``.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from p2ploader import LoaderConfig, open_loader, play
from p2ploader.app.hashplaylist import hash_playlists
from p2ploader.core import notifications as nt
from p2ploader.core import wire
from p2ploader.errors import OfferRefusedError
from p2ploader.sample import vod_segment_bytes
from p2ploader.testing.origin import OriginServer
from p2ploader.testing.wait import wait_until
from p2ploader.tracker import TrackerServer
from tests.ffmpeg_streams import make_av_stream
from tests.hostile.scripted import ScriptedPeer

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.fixture
async def tracker(loopback: None) -> AsyncIterator[TrackerServer]:
    async with TrackerServer() as server:
        yield server


@pytest.fixture(scope="module")
def hashed_av(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The separate-audio stream with SHA-256 tags in every media playlist (audio included)."""
    source = make_av_stream(tmp_path_factory.mktemp("av_source"))
    root = tmp_path_factory.mktemp("hashed_av") / "av"
    shutil.copytree(source, root)
    hash_playlists(root / "master.m3u8")
    return root


def liar(peer: ScriptedPeer, request: wire.SegmentRequest) -> None:
    data = peer.data_for(request)
    assert data is not None
    peer.send_data(request, bytes(b ^ 0x5A for b in data))


@pytest.mark.parametrize("lied_in", ["video", "audio"])
async def test_a_liar_banned_in_one_swarm_is_shut_out_of_the_companions(
    tracker: TrackerServer, hashed_av: Path, lied_in: str
) -> None:
    video = dict(enumerate(vod_segment_bytes(hashed_av / "video/index.m3u8")))
    audio = dict(enumerate(vod_segment_bytes(hashed_av / "audio_en/index.m3u8")))
    config = LoaderConfig(
        tracker_announce=(tracker.url,),
        rtc_config={"iceServers": []},
        http_retry_backoff=0.05,
        integrity_sha256=True,
    )
    with OriginServer(hashed_av) as origin:
        async with open_loader(origin.url_for("master.m3u8"), config=config, seed=1) as loader:
            companion = loader.audio
            assert companion is not None
            events: list[nt.Notification] = []
            loader.add_listener(events.append)  # hears the companion's notifications too
            lying_loader, other_loader = (loader, companion) if lied_in == "video" else (companion, loader)
            lying = ScriptedPeer(lying_loader, video if lied_in == "video" else audio, liar)
            other = ScriptedPeer(other_loader, audio if lied_in == "video" else video)
            await lying.connect()
            # The same peer in the other swarm: the same certificate, another peer id (2.3.1).
            await other.connect(certificate_of=lying)
            await wait_until(lambda: loader.statistics().peers_connected == 2, what="both linked")
            assert other.is_open
            lying.announce_sequences(sorted(video if lied_in == "video" else audio))
            try:
                report = await play(loader, duration=6.0, forward_buffer=8.0, tick=0.1)
                await wait_until(lambda: [n for n in events if isinstance(n, nt.PeerBanned)], what="ban")
                (banned,) = [n for n in events if isinstance(n, nt.PeerBanned)]
                assert banned.peer_id == lying.hex_id
                # Its link in the other swarm is closed, though it did nothing wrong there...
                await wait_until(lambda: other.closed.is_set(), what="the other link closed")
                assert other_loader.is_banned(other.hex_id)
                assert not other_loader.is_banned(ScriptedPeer(other_loader, {}).hex_id)
                # ... and it cannot come back there under yet another id with that certificate.
                again = ScriptedPeer(other_loader, audio if lied_in == "video" else video)
                with pytest.raises(OfferRefusedError):
                    await again.connect(certificate_of=lying)
                assert report.stalls == 0
            finally:
                await lying.close()
                await other.close()
