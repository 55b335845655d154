"""A WebSocket client on a raw socket that completes the handshake, sends what it is told, and
never reads again: its small kernel receive buffer fills, then the server's socket buffer, then the
server's outbox. Used by the tracker's slow-reader test and by ``benchmarks/tracker_capacity.py``."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
from typing import Any


class NonReader:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, url: str, *, step_seconds: float = 10.0) -> NonReader:
        """Connect to ``ws://HOST:PORT`` and finish the handshake, each step within ``step_seconds``."""
        host, port = url.removeprefix("ws://").split(":")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: fills sooner
        sock.setblocking(False)
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (host, int(port))), step_seconds)
        reader, writer = await asyncio.open_connection(sock=sock)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), step_seconds)
        if not head.startswith(b"HTTP/1.1 101"):
            writer.transport.abort()
            raise ConnectionError(f"WebSocket handshake refused: {head[:80]!r}")
        return cls(reader, writer)

    def send(self, message: dict[str, Any] | str) -> None:
        """One masked text frame (clients must mask): a JSON object, or text as it is."""
        payload = (message if isinstance(message, str) else json.dumps(message)).encode()
        mask = os.urandom(4)
        if len(payload) < 126:
            header = struct.pack("!BB", 0x81, 0x80 | len(payload))
        else:
            header = struct.pack("!BBH", 0x81, 0x80 | 126, len(payload))
        self.writer.write(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def close(self) -> None:
        self.writer.transport.abort()
