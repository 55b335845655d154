"""Download policies: the pluggable part of the scheduler that decides, per segment, HTTP or peer.

- :mod:`~p2ploader.core.policies.base`: :class:`DownloadPolicy`, the base class, and what a policy
  sees (:class:`SchedulingContext`, :class:`QueueEntry`, :class:`P2PProgress`), and
  :func:`settings_from_mapping` for a policy's own settings.
- :mod:`~p2ploader.core.policies.registry`: the names (:func:`register_policy`,
  :func:`available_policies`, :func:`create_policy`). It knows no concrete policy.
- One module per built-in policy: :mod:`~p2ploader.core.policies.p2pml06` (the default),
  :mod:`~p2ploader.core.policies.p2pml22` and :mod:`~p2ploader.core.policies.live`.

This package is the one place that wires the built-ins: importing it (as any lookup by name does)
registers them. A policy of one's own registers itself the same way, with ``@register_policy``.
"""

from __future__ import annotations

# The built-in policies register themselves on import (each imports the base and the registry it
# needs); this is the one place that imports them.
from p2ploader.core.policies import live, p2pml06, p2pml22  # noqa: F401
from p2ploader.core.policies.base import (
    DownloadPolicy,
    P2PProgress,
    QueueEntry,
    SchedulingContext,
    settings_from_mapping,
)
from p2ploader.core.policies.registry import available_policies, create_policy, register_policy

__all__ = [
    "DownloadPolicy",
    "P2PProgress",
    "QueueEntry",
    "SchedulingContext",
    "available_policies",
    "create_policy",
    "register_policy",
    "settings_from_mapping",
]
