"""Real I/O around the sans-IO core: the httpx executor, the tracker client's and the peers'
sockets, playlist refresh and the :class:`~p2ploader.aio.loader.HybridLoader` facade, which hosts
the :class:`~p2ploader.core.driver.Driver` on asyncio's loop.

Submodules are imported explicitly. The driver lives in the core (it imports no I/O library) so
that the simulator hosts the very same driver on its virtual-time loop without importing ``aio``.
"""
