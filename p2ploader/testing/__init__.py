"""A public testing kit for code built on p2ploader, as ``trio.testing`` is for trio.

- :mod:`~p2ploader.testing.origin`: :class:`~p2ploader.testing.origin.OriginServer`, a local HLS
  origin on 127.0.0.1 (VOD, emulated live, injected faults, byte counts), also the ``p2ploader
  origin`` command.
- :mod:`~p2ploader.testing.harness`: :class:`~p2ploader.testing.harness.Harness`, which drives the
  sans-IO scheduler by hand with an explicit clock, for policy and scheduler tests that never sleep.
- :mod:`~p2ploader.testing.wait`: :func:`~p2ploader.testing.wait.wait_until`, the one bounded
  polling wait for real-socket tests.

Submodules are imported explicitly (the origin and the wait helper are I/O; the harness is not).
Nothing in the library imports this package. See ``docs/testing.md``.
"""
