"""Link rates and their distributions, as ``--uplink 1-20mbit`` spells them.

A distribution is one rate (``30mbit``) or a range (``1-20mbit``, ``500kbit-2mbit``) drawn uniformly
per viewer, the same rule as the simulator's ``uplink_mbps = [1, 20]``
(:class:`p2ploader.sim.scenario.Scenario`). Units are ``tc``'s: ``bit``, ``kbit``, ``mbit``,
``gbit`` (decimal: 1 mbit = 1,000,000 bit/s); a bare number is Mbit/s.
"""

from __future__ import annotations

import random
import re

import attrs

from p2ploader.errors import ConfigError

__all__ = ["RateRange", "format_rate", "parse_rate", "parse_rate_range"]

_UNITS = {"bit": 1.0, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9}
_RATE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*$")


def parse_rate(text: str, *, default_unit: str = "mbit") -> float:
    """``"1.5mbit"`` as bits per second (1,500,000.0); a bare number is in ``default_unit``."""
    match = _RATE.match(text.lower())
    unit = (match.group(2) or default_unit) if match else ""
    if match is None or unit not in _UNITS:
        raise ConfigError(
            f"not a link rate: {text!r} (write e.g. 20mbit, 500kbit; units: {', '.join(_UNITS)})"
        )
    bits = float(match.group(1)) * _UNITS[unit]
    if bits <= 0:
        raise ConfigError(f"a link rate must be positive, got {text!r}")
    return bits


def format_rate(bits_per_second: float) -> str:
    """A rate for people: ``1.5mbit``, ``800kbit``."""
    for unit in ("gbit", "mbit", "kbit"):
        if bits_per_second >= _UNITS[unit]:
            return f"{bits_per_second / _UNITS[unit]:.4g}{unit}"
    return f"{bits_per_second:g}bit"


@attrs.frozen
class RateRange:
    """Rates drawn uniformly between ``low`` and ``high`` bits per second (equal for one rate)."""

    low: float
    high: float

    def __attrs_post_init__(self) -> None:
        if not 0 < self.low <= self.high:
            raise ConfigError(f"a link range needs 0 < low <= high, got {self.low:g}-{self.high:g} bit/s")

    @property
    def mbps(self) -> tuple[float, float]:
        """``(low, high)`` in Mbit/s, the simulator's unit (``Scenario.uplink_mbps``)."""
        return (self.low / 1e6, self.high / 1e6)

    @classmethod
    def from_mbps(cls, value: tuple[float, float]) -> RateRange:
        return cls(value[0] * 1e6, value[1] * 1e6)

    def draw(self, rng: random.Random) -> float:
        """One rate in bits per second."""
        return self.low if self.low == self.high else rng.uniform(self.low, self.high)

    def __str__(self) -> str:
        if self.low == self.high:
            return format_rate(self.low)
        return f"{format_rate(self.low)}-{format_rate(self.high)}"


def parse_rate_range(text: str) -> RateRange:
    """``"1-20mbit"`` (the unit after the high end applies to a low end without one),
    ``"500kbit-2mbit"`` or ``"30mbit"``."""
    low_text, sep, high_text = text.partition("-")
    if not sep:
        rate = parse_rate(text)
        return RateRange(rate, rate)
    high_match = _RATE.match(high_text.lower())
    unit = high_match.group(2) if high_match and high_match.group(2) else "mbit"
    return RateRange(parse_rate(low_text, default_unit=unit), parse_rate(high_text))
