"""Numbers for the keys and init sections a rendition's playlists name.

The proxy never puts an origin URL in a path: when it renders a media playlist it gives each
distinct EXT-X-KEY (by key URL) and EXT-X-MAP (by URL and byte range) a small number, and the
player asks for ``/r/<token>/key/<n>`` or ``/r/<token>/init/<n>.<ext>``. The numbers only ever grow,
so a URL a player already holds keeps naming the same resource while a live playlist slides. At
most ``limit`` entries of each kind are remembered (a live stream that rotates keys forever would
otherwise grow the table without end); the oldest are forgotten first and then answer 404.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

from p2ploader.core.segments import ByteRange, InitSection, KeyInfo

__all__ = ["ResourceTable"]

_K = TypeVar("_K")
_V = TypeVar("_V")


class _Numbering(Generic[_K, _V]):
    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._by_identity: OrderedDict[_K, int] = OrderedDict()
        self._by_number: dict[int, _V] = {}
        self._next = 0

    def number(self, identity: _K, value: _V) -> int:
        found = self._by_identity.get(identity)
        if found is not None:
            self._by_identity.move_to_end(identity)
            return found
        number = self._next
        self._next += 1
        self._by_identity[identity] = number
        self._by_number[number] = value
        while len(self._by_identity) > self._limit:
            _, old = self._by_identity.popitem(last=False)
            del self._by_number[old]
        return number

    def get(self, number: int) -> _V | None:
        return self._by_number.get(number)


class ResourceTable:
    """The key and init-section numbers of one rendition of the proxy."""

    def __init__(self, *, limit: int = 1024) -> None:
        self._keys: _Numbering[str, KeyInfo] = _Numbering(limit)
        self._inits: _Numbering[tuple[str, ByteRange | None], InitSection] = _Numbering(limit)

    def key_number(self, key: KeyInfo) -> int:
        """The number of ``key`` (which must have a URL): the same for every key with that URL."""
        if key.url is None:
            raise ValueError("a key without a URL has no number")
        return self._keys.number(key.url, key)

    def init_number(self, init: InitSection) -> int:
        return self._inits.number((init.url, init.byte_range), init)

    def key(self, number: int) -> KeyInfo | None:
        return self._keys.get(number)

    def init(self, number: int) -> InitSection | None:
        return self._inits.get(number)
