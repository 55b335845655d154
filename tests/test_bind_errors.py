"""Servers that cannot listen raise :class:`BindError` (a :class:`P2PLoaderError`), never a bare OSError."""

from __future__ import annotations

import errno

import pytest

from p2ploader import BindError, P2PLoaderError, TransportError
from p2ploader.sample import sample_path
from p2ploader.testing.origin import OriginServer
from p2ploader.tracker import TrackerServer


def _assert_port_in_use(error: BindError, port: int) -> None:
    assert isinstance(error, TransportError) and isinstance(error, P2PLoaderError)
    assert (error.host, error.port, error.errno) == ("127.0.0.1", port, errno.EADDRINUSE)
    assert error.reason == "address already in use"
    assert str(error) == f"127.0.0.1:{port}: address already in use"
    assert isinstance(error.__cause__, OSError)


def test_origin_on_a_port_in_use_raises_bind_error(busy_port: int) -> None:
    origin = OriginServer(sample_path("ts"), port=busy_port)
    with pytest.raises(BindError) as info:
        origin.start()
    _assert_port_in_use(info.value, busy_port)


@pytest.mark.anyio
async def test_tracker_on_a_port_in_use_raises_bind_error(busy_port: int) -> None:
    with pytest.raises(BindError) as info:
        async with TrackerServer(port=busy_port):
            pytest.fail("the tracker started on a port in use")
    _assert_port_in_use(info.value, busy_port)


def test_bind_error_reasons() -> None:
    denied = BindError.from_os_error("127.0.0.1", 80, PermissionError(errno.EACCES, "Permission denied"))
    assert denied.reason == "permission denied" and denied.url == "127.0.0.1:80"
    other = BindError.from_os_error("::1", 1, OSError(errno.EINVAL, "Invalid argument"))
    assert other.reason == "Invalid argument" and str(other) == "[::1]:1: Invalid argument"
    assert BindError.from_os_error("h", 1, OSError()).reason == "OSError"
