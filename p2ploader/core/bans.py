"""Peer scores and bans of one swarm, sans-IO (time is an argument).

A peer caught sending bytes that fail an integrity check is banned at once: it lied about content,
which no honest implementation does. Protocol violations (a wrong size, garbage frames, no answer)
only cost it a *strike*; honest peers of another version or on a bad link can trip over those, so
a peer is banned only after :data:`STRIKES_BEFORE_BAN` strikes within one ban period. A banned
peer's connections are refused even when a tracker introduces it again.

**Who is banned.** Peer ids are self-chosen: anyone can claim an honest peer's id, so a ban on the
id alone lets an attacker get an honest peer banned (framing). Strikes and bans therefore fall on
the DTLS certificate of the connection that misbehaved, which the peer manager reports with
:meth:`PeerBans.bind` when it creates a link: :func:`certificate_identity` of the remote SDP's
``a=fingerprint`` lines. An attacker cannot present another peer's certificate (the DTLS handshake
checks every fingerprint the SDP declares), so the honest peer, connecting separately under the same
id with its own certificate, is not refused. The trade-off: an attacker also escapes its ban with a
fresh certificate (browsers and aiortc make one per connection) and a fresh id; a ban is a cost to
the attacker, not a wall. What keeps slots for honest peers is the admission policy
(:mod:`p2ploader.core.admission`). A peer id never bound to a certificate (tests without WebRTC) is
its own identity.

Memory is bounded: at most ``max_entries`` peers are remembered, expired entries go first, then the
ones that expire soonest.
"""

from __future__ import annotations

from typing import Final

import attrs

__all__ = ["STRIKES_BEFORE_BAN", "CommandRate", "PeerBans", "certificate_identity"]

# The digests aiortc checks a remote certificate against (lines with another algorithm are ignored
# by the DTLS handshake, so they must not count as identity either).
_CHECKED_DIGESTS: Final = frozenset({"sha-1", "sha-224", "sha-256", "sha-384", "sha-512"})


def certificate_identity(sdp: str) -> str | None:
    """The DTLS certificate an SDP declares, as a canonical string of its ``a=fingerprint`` lines
    (digest algorithms the handshake checks, values upper-cased, sorted, de-duplicated); ``None``
    when it declares none (such an SDP cannot connect)."""
    found: set[str] = set()
    for line in sdp.splitlines():
        if not line.startswith("a=fingerprint:"):
            continue
        fields = line[len("a=fingerprint:") :].split()
        if len(fields) == 2 and fields[0].lower() in _CHECKED_DIGESTS:
            found.add(f"{fields[0].lower()} {fields[1].upper()}")
    return "|".join(sorted(found)) if found else None


STRIKES_BEFORE_BAN: Final = 3
"""Protocol violations within one ban period that get a peer banned."""


@attrs.define
class _Record:
    strikes: int = 0
    first_strike_at: float = 0.0
    banned_until: float | None = None
    reason: str = ""


class PeerBans:
    """Strikes and bans of one swarm's peers. ``duration`` is the ban time in seconds."""

    def __init__(self, *, duration: float, max_entries: int = 1024) -> None:
        if duration < 0 or max_entries < 1:
            raise ValueError("duration must be >= 0 and max_entries >= 1")
        self.duration = duration
        self.max_entries = max_entries
        self._records: dict[str, _Record] = {}  # by identity (certificate, or bare peer id)
        self._identities: dict[str, str] = {}  # peer id -> certificate of its latest link
        self.bans = 0
        """Bans imposed so far (a counter for statistics)."""

    def __len__(self) -> int:
        return len(self._records)

    def bind(self, peer_id: str, certificate: str | None) -> None:
        """``peer_id``'s link now uses ``certificate`` (:func:`certificate_identity`): strikes and
        bans reported under ``peer_id`` from now on fall on that certificate."""
        self._identities.pop(peer_id, None)  # re-inserted last: the oldest bindings go first
        if certificate is not None:
            if len(self._identities) >= self.max_entries:
                del self._identities[next(iter(self._identities))]
            self._identities[peer_id] = certificate

    def _identity(self, peer_id: str, certificate: str | None = None) -> str:
        if certificate is None:
            certificate = self._identities.get(peer_id)
        return f"cert {certificate}" if certificate is not None else f"id {peer_id}"

    def is_banned(self, peer_id: str, *, now: float, certificate: str | None = None) -> bool:
        """Whether ``peer_id`` is banned: its link with ``certificate``, or else with the
        certificate it was last bound to."""
        record = self._records.get(self._identity(peer_id, certificate))
        return record is not None and record.banned_until is not None and now < record.banned_until

    def bound_certificate(self, peer_id: str) -> str | None:
        """The certificate of ``peer_id``'s latest link (:meth:`bind`), or ``None``."""
        return self._identities.get(peer_id)

    def is_identity_banned(self, peer_id: str, *, now: float, certificate: str | None) -> bool:
        """Whether the identity ``certificate`` (else, when ``None``, the bare ``peer_id``) is
        banned, whatever this book has bound ``peer_id`` to: the question another swarm asks
        about its own link (a peer id names different links in different swarms, so this book's
        binding must not decide for them)."""
        identity = f"cert {certificate}" if certificate is not None else f"id {peer_id}"
        record = self._records.get(identity)
        return record is not None and record.banned_until is not None and now < record.banned_until

    def banned_until(self, peer_id: str) -> float | None:
        record = self._records.get(self._identity(peer_id))
        return record.banned_until if record is not None else None

    def ban(self, peer_id: str, *, now: float, reason: str) -> bool:
        """Ban ``peer_id`` (its bound certificate) until ``now + duration``. ``True`` if it was not
        banned already."""
        record = self._record(self._identity(peer_id), now=now)
        was_banned = record.banned_until is not None and now < record.banned_until
        record.banned_until = now + self.duration
        record.reason = reason
        if not was_banned:
            self.bans += 1
        return not was_banned

    def strike(self, peer_id: str, *, now: float, reason: str) -> bool:
        """Count one protocol violation; ``True`` when it got the peer banned now."""
        if self.is_banned(peer_id, now=now):
            return False
        record = self._record(self._identity(peer_id), now=now)
        if record.strikes == 0 or now - record.first_strike_at > self.duration:
            record.strikes = 0
            record.first_strike_at = now
        record.strikes += 1
        if record.strikes >= STRIKES_BEFORE_BAN:
            record.strikes = 0
            return self.ban(peer_id, now=now, reason=reason)
        return False

    def _record(self, identity: str, *, now: float) -> _Record:
        record = self._records.get(identity)
        if record is None:
            if len(self._records) >= self.max_entries:
                self._evict(now=now)
            record = self._records[identity] = _Record()
        return record

    def _evict(self, *, now: float) -> None:
        def expiry(item: tuple[str, _Record]) -> float:
            record = item[1]
            if record.banned_until is not None:
                return record.banned_until
            return record.first_strike_at + self.duration

        for identity, _record in [item for item in self._records.items() if expiry(item) <= now]:
            del self._records[identity]
        while len(self._records) >= self.max_entries:
            del self._records[min(self._records.items(), key=expiry)[0]]


class CommandRate:
    """A token bucket over one peer's commands: ``rate`` per second on average, bursts of ``burst``.

    Honest peers send a request per segment and an announcement per change, a few per second; a
    peer far above that floods us, and :meth:`allow` says so (the peer manager then drops it).
    """

    def __init__(self, *, rate: float = 100.0, burst: float = 400.0) -> None:
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._at: float | None = None

    def allow(self, *, now: float) -> bool:
        """Spend one token; ``False`` when the bucket is empty (the peer sends too fast)."""
        if self._at is not None:
            tokens = self._tokens + (now - self._at) * self._rate
            self._tokens = tokens if tokens < self._burst else self._burst  # min(), inline: per command
        self._at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True
