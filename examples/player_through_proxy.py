"""Play a stream with ffplay, mpv or any HLS player through the hybrid loader's local proxy.

    python examples/player_through_proxy.py [URL] [--player ffplay|mpv|check]

Without a URL it serves the bundled sample from a local origin. ``--player check`` (what CI runs)
decodes the stream with ``ffmpeg -f null`` instead of opening a window, and fails on any error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import sys
from collections.abc import Iterator

from p2ploader import LoaderConfig
from p2ploader.proxy import open_proxy
from p2ploader.sample import sample_path
from p2ploader.testing.origin import OriginServer

PLAYERS = {
    "ffplay": ["ffplay", "-autoexit", "-loglevel", "error"],
    "mpv": ["mpv", "--really-quiet"],
    "check": ["ffmpeg", "-v", "error", "-i", "{url}", "-map", "0", "-f", "null", "-"],
}


@contextlib.contextmanager
def stream_url(url: str | None) -> Iterator[str]:
    if url is not None:
        yield url
        return
    with OriginServer(sample_path("ts")) as origin:
        yield origin.url_for("master.m3u8")


async def play(url: str, player: str) -> int:
    # No tracker here: the loader works alone over HTTP. Pass tracker_announce to share a swarm.
    async with open_proxy(url, config=LoaderConfig(tracker_announce=()), pin_rendition=True) as proxy:
        command = [part.replace("{url}", proxy.url) for part in PLAYERS[player]]
        if "{url}" not in " ".join(PLAYERS[player]):
            command.append(proxy.url)
        if shutil.which(command[0]) is None:
            print(f"{command[0]} is not installed", file=sys.stderr)
            return 1
        print("running:", " ".join(command), flush=True)
        process = await asyncio.create_subprocess_exec(*command, stderr=asyncio.subprocess.PIPE)
        _, err = await process.communicate()
        stats = proxy.statistics()
        print(f"player exit {process.returncode}; proxy statistics: {stats}")
        if err:
            print(err.decode(errors="replace"), file=sys.stderr)
        return 0 if process.returncode == 0 and not err else 1


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("url", nargs="?", help="master playlist (default: the bundled sample)")
    parser.add_argument("--player", choices=sorted(PLAYERS), default="ffplay")
    args = parser.parse_args()
    with stream_url(args.url) as url:
        return asyncio.run(play(url, args.player))


if __name__ == "__main__":
    sys.exit(main())
