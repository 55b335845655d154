"""Token buckets for the tracker's rate limits (sans-IO: the caller passes the time).

A bucket holds up to ``capacity`` tokens and gains ``rate`` tokens per second; an action that takes
a token is allowed, one that finds the bucket empty is refused. ``capacity`` is the burst an honest
client may need at once (joining several swarms), ``rate`` its sustained pace.
"""

from __future__ import annotations

import attrs

__all__ = ["TokenBucket"]


@attrs.define(eq=False)
class TokenBucket:
    """``capacity`` tokens (the burst), refilled at ``rate`` tokens per second from time ``now``."""

    capacity: float
    rate: float
    tokens: float
    updated: float  # seconds, on the caller's clock

    @classmethod
    def full(cls, capacity: float, rate: float, now: float) -> TokenBucket:
        return cls(capacity=capacity, rate=rate, tokens=capacity, updated=now)

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = max(self.updated, now)  # a clock that goes back adds nothing

    def available(self, now: float) -> float:
        """Tokens in the bucket at ``now``."""
        self._refill(now)
        return self.tokens

    def take(self, now: float, count: float = 1.0) -> bool:
        """Take ``count`` tokens if there are that many; ``False`` (and nothing taken) otherwise."""
        self._refill(now)
        if self.tokens < count:
            return False
        self.tokens -= count
        return True

    def wait_for(self, now: float, count: float = 1.0) -> float:
        """Seconds until ``count`` tokens are available (0 when they are now)."""
        self._refill(now)
        missing = count - self.tokens
        return 0.0 if missing <= 0 else missing / self.rate

    def is_full(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= self.capacity
