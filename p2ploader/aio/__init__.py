"""Real I/O around the sans-IO core: the asyncio driver, the httpx executor, playlist refresh and the
:class:`~p2ploader.aio.loader.HybridLoader` facade.

Submodules are imported explicitly; :mod:`p2ploader.aio.driver` imports no I/O library so that the
simulator can host the very same driver on its virtual-time loop.
"""
