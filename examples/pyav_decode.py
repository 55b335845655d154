"""Decode segments straight from the loader with PyAV: no player, no temporary files.

    python examples/pyav_decode.py [URL | --sample fmp4|aes]

Without a URL it plays a bundled sample from a local origin: fMP4 by default, or with
``--sample aes`` the AES-128 encrypted MPEG-TS one. Decryption is on (``LoaderConfig(decrypt=True)``),
so an encrypted stream's segments arrive as plaintext; clear ones are unchanged. Each segment is
decoded with its init section (EXT-X-MAP) in front, as a player's demuxer would see it; the script
prints the frames decoded per segment and where the bytes came from.
"""

from __future__ import annotations

import asyncio
import io
import sys

import av

from p2ploader import LoaderConfig, open_loader
from p2ploader.sample import sample_path
from p2ploader.testing.origin import OriginServer


def decode(data: bytes) -> tuple[int, int]:
    """(video frames, audio frames) decoded from one self-contained piece of media."""
    video = audio = 0
    with av.open(io.BytesIO(data)) as container:
        for frame in container.decode(*container.streams):
            if isinstance(frame, av.VideoFrame):
                video += 1
            elif isinstance(frame, av.AudioFrame):
                audio += 1
    return video, audio


async def run(url: str) -> int:
    total = 0
    # decrypt=True: AES-128 segments come out as plaintext (the loader fetches each key once, over
    # HTTP); what it caches and would share with peers stays encrypted.
    async with open_loader(url, config=LoaderConfig(use_p2p=False, decrypt=True)) as loader:
        async for loaded in loader.segments():
            if loaded.gap:  # EXT-X-GAP: no media to decode; a player skips its duration
                loader.report_playback(loaded.segment.end)
                print(f"{loaded.id}: gap of {loaded.segment.duration:.3f} s")
                continue
            init = await loader.fetch_init_section(loaded.segment) or b""
            video, audio = decode(init + loaded.data)
            total += video
            loader.report_playback(loaded.segment.end)
            state = "decrypted" if loaded.decrypted else "clear"
            print(f"{loaded.id}: {video:3d} video / {audio:3d} audio frames ({loaded.source}, {state})")
    print(f"decoded {total} video frames")
    return total


def main() -> None:
    args = sys.argv[1:]
    if args and args[0] != "--sample":
        asyncio.run(run(args[0]))
        return
    sample = args[1] if len(args) > 1 else "fmp4"
    with OriginServer(sample_path(sample)) as origin:
        asyncio.run(run(origin.url_for("master.m3u8")))


if __name__ == "__main__":
    main()
