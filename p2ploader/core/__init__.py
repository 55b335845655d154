"""The sans-IO core: segment scheduling with no I/O, no clock and no global randomness.

Inputs are events passed with the time (:mod:`.events`), outputs are actions to perform
(:mod:`.actions`), notifications for the application (:mod:`.notifications`) and one timer
deadline. See :mod:`p2ploader.core.scheduler` for the theory of operation.

This package imports nothing of :mod:`p2ploader.aio` or any I/O library; a test enforces it.
Submodules are imported explicitly (``from p2ploader.core.scheduler import Scheduler``) to keep
this package free of import cycles with :mod:`p2ploader.config`.
"""
