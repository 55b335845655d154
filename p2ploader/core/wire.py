"""The P2P Media Loader 2.x binary data-channel protocol: a sans-IO codec.

Theory of operation (after ``p2p-media-loader-core`` 2.x, ``src/p2p/commands/*`` and
``peer-protocol.ts``; unchanged since 1.0.0 per the project's reference, checked against 2.3.1):

* **One data channel, two kinds of message.** A message that starts with ``cstr`` or ``dstr`` *and*
  ends with ``cend`` or ``dend`` is a *command chunk*; every other message is raw segment data
  (:class:`DataChunk`). There is no escaping: a data chunk that happens to carry those markers is
  taken for a command, by the browser and by :class:`WireDecoder` alike (see below).
* **A command** is one code byte (0..5) followed by ``(field name, value)`` pairs. Field names are
  single ASCII letters; each value announces its own type in the high nibble of its first byte:
  ``0`` Int, ``1`` SimilarIntArray, ``2`` String (defined upstream, never used by any command).

  - *Int*: ``[n] [n bytes]``, a big-endian magnitude of the smallest size that leaves the top bit
    of the first byte free; that bit is the sign. ``n <= 15``.
  - *SimilarIntArray*: ``0x10 G`` then ``G`` groups, each ``Int(high | count)`` followed by
    ``count`` low bytes; members are ``high | low``. Groups come in order of first appearance.

  Serialisation follows upstream byte for byte: fields in upstream's order (``i r b``,
  ``i s r``, ``i r``, ``l p``), ``b`` only when non-zero, ``l`` / ``p`` only when non-empty.
* **Framing.** A serialised command of ``L`` bytes that fits (``L + 8 <= max_message_size``) is
  sent as ``cstr`` + command + ``cend``. A longer one is cut into ``c`` slices of ``ceil(L / c)``
  bytes (the last may be shorter), framed ``cstr…dend`` (first), ``dstr…dend`` (middle),
  ``dstr…cend`` (last). The receiver strips the markers, ``cstr`` starts a buffer, ``dstr``
  appends, a ``cend`` ending completes the command.
* **SimilarIntArray overflow.** Upstream writes a group's member count and the group count in one
  byte each and does not guard either: a 256-member group goes out with count 0 and 300 groups go
  out as 44. This encoder never does that. A block of more than 255 ids is split into several
  groups with the same high part (255 + 1 for a full block); the upstream decoder concatenates
  them. If an id list still needs more than 255 groups, the groups of the **lowest-numbered**
  256-id blocks (the oldest segments) are dropped until 255 remain; :func:`trim_announced_ids`
  says which ids survive. Callers who prefer other ids (for example the ones nearest the
  playhead) should choose them before encoding.
* **Decoding is strict and bounded.** :class:`WireDecoder` raises
  :class:`~p2ploader.errors.PeerProtocolError`, and nothing else, for an unknown command code,
  field or type nibble, a truncated value, a missing or duplicate field, a negative value, a group
  with count 0 (the signature of the upstream overflow), framing out of order, a command longer
  than ``max_command_size`` (checked before buffering, so memory stays bounded) and an
  announcement with more than ``max_announced_ids`` ids. After an error the decoder has dropped any
  partial command and can go on: a caller may disconnect the peer, or, like the browser does for a
  bad announcement, ignore the command and keep the peer's previous announcement.
* **The classification hazard.** A data chunk that begins with ``cstr``/``dstr`` and ends with
  ``cend``/``dend`` is taken for a command chunk; :class:`WireDecoder` classifies exactly as the
  browser does (the browser never refuses command chunks during a transfer, so neither can we).
  Upstream's uploader does nothing to avoid producing such a chunk. :func:`chunk_segment_data`
  does: chunk boundaries carry no meaning to the receiver, so when a chunk would look like a
  command it is made one byte shorter (its last four bytes then end in ``n``, never a marker).

No I/O, no clock: the caller feeds received messages in and sends the returned ones out.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import ClassVar, Final, TypeAlias, cast

import attrs

from p2ploader.errors import PeerProtocolError, UsageError

__all__ = [
    "CEND",
    "CSTR",
    "DEFAULT_MAX_ANNOUNCED_IDS",
    "DEFAULT_MAX_COMMAND_SIZE",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEND",
    "DSTR",
    "FRAME_OVERHEAD",
    "MAX_GROUPS",
    "MAX_GROUP_SIZE",
    "MAX_INT",
    "CancelSegmentRequest",
    "Command",
    "DataChunk",
    "SegmentAbsent",
    "SegmentData",
    "SegmentDataSendingCompleted",
    "SegmentRequest",
    "SegmentsAnnouncement",
    "WireDecoder",
    "chunk_segment_data",
    "decode_command_body",
    "decode_int",
    "decode_similar_int_array",
    "encode_command",
    "encode_command_body",
    "encode_int",
    "encode_similar_int_array",
    "frame_command_body",
    "is_command_chunk",
    "trim_announced_ids",
]

CSTR: Final = b"cstr"
CEND: Final = b"cend"
DSTR: Final = b"dstr"
DEND: Final = b"dend"
_MARKER = 4
FRAME_OVERHEAD: Final = 2 * _MARKER
"""Bytes the start and end markers add to every command chunk."""

DEFAULT_MAX_MESSAGE_SIZE: Final = 65535
"""Upstream's ``webRtcMaxMessageSize`` default."""
DEFAULT_MAX_COMMAND_SIZE: Final = 1 << 20
DEFAULT_MAX_ANNOUNCED_IDS: Final = 20_000
MAX_GROUP_SIZE: Final = 255
"""Most members one SimilarIntArray group can carry (the count is the Int's low byte)."""
MAX_GROUPS: Final = 255
"""Most groups one SimilarIntArray can carry (the count is one byte)."""
MAX_INT: Final = 2**119 - 1
"""Largest magnitude an Int can carry (15 bytes, minus the sign bit). Browser peers hold numbers as
JavaScript doubles, so only values up to ``2**53`` survive a round trip through them exactly."""

_TYPE_INT = 0
_TYPE_ARRAY = 1
_TYPE_STRING = 2

_CODE_ANNOUNCEMENT = 0
_CODE_REQUEST = 1
_CODE_DATA = 2
_CODE_COMPLETED = 3
_CODE_ABSENT = 4
_CODE_CANCEL = 5


# --------------------------------------------------------------------------- commands


def _check_wire_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise UsageError(f"{name} must be an int, got {value!r}")
    if not 0 <= value <= MAX_INT:
        raise UsageError(f"{name} must be in 0..{MAX_INT}, got {value}")


def _wire_int(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    _check_wire_int(attribute.name, value)


def _all_wire_ints(values: Sequence[object]) -> bool:
    """Whether every value is a plain int in ``0..MAX_INT``: the common case checked in a few C
    loops (announcements carry hundreds of ids, validated for every neighbour)."""
    if not values:
        return True
    if set(map(type, values)) != {int}:  # bool and other subclasses take the slow path
        return False
    ints = cast("Sequence[int]", values)
    return min(ints) >= 0 and max(ints) <= MAX_INT


def _check_wire_ints(name: str, values: Sequence[object]) -> None:
    if not _all_wire_ints(values):
        for value in values:  # the one at fault, named
            _check_wire_int(name, value)


def _wire_ids(_instance: object, attribute: attrs.Attribute[tuple[int, ...]], value: tuple[int, ...]) -> None:
    _check_wire_ints(f"{attribute.name} item", value)


def _as_id_tuple(values: Iterable[int]) -> tuple[int, ...]:
    if isinstance(values, (str, bytes)):
        raise UsageError(f"expected a collection of ints, got {values!r}")
    try:
        return tuple(values)
    except TypeError:
        raise UsageError(f"expected a collection of ints, got {values!r}") from None


@attrs.frozen(kw_only=True)
class SegmentsAnnouncement:
    """Command 0: a full snapshot of the segments the sender holds (``l``) and is loading over HTTP
    (``p``). Receivers should treat both as sets: decoding returns them in group order."""

    code: ClassVar[int] = _CODE_ANNOUNCEMENT
    loaded: tuple[int, ...] = attrs.field(default=(), converter=_as_id_tuple, validator=_wire_ids)
    loading_by_http: tuple[int, ...] = attrs.field(default=(), converter=_as_id_tuple, validator=_wire_ids)


@attrs.frozen(kw_only=True)
class SegmentRequest:
    """Command 1: please send segment ``i``, starting at byte ``b``; ``r`` tags the replies."""

    code: ClassVar[int] = _CODE_REQUEST
    segment_id: int = attrs.field(validator=_wire_int)
    request_id: int = attrs.field(validator=_wire_int)
    byte_offset: int = attrs.field(default=0, validator=_wire_int)


@attrs.frozen(kw_only=True)
class SegmentData:
    """Command 2: the uploader's header; ``size`` bytes of raw data chunks follow."""

    code: ClassVar[int] = _CODE_DATA
    segment_id: int = attrs.field(validator=_wire_int)
    request_id: int = attrs.field(validator=_wire_int)
    size: int = attrs.field(validator=_wire_int)


@attrs.frozen(kw_only=True)
class SegmentDataSendingCompleted:
    """Command 3: the uploader sent the last data chunk of request ``r``."""

    code: ClassVar[int] = _CODE_COMPLETED
    segment_id: int = attrs.field(validator=_wire_int)
    request_id: int = attrs.field(validator=_wire_int)


@attrs.frozen(kw_only=True)
class SegmentAbsent:
    """Command 4: the uploader does not have the segment (or does not upload)."""

    code: ClassVar[int] = _CODE_ABSENT
    segment_id: int = attrs.field(validator=_wire_int)
    request_id: int = attrs.field(validator=_wire_int)


@attrs.frozen(kw_only=True)
class CancelSegmentRequest:
    """Command 5: the downloader aborts request ``r``."""

    code: ClassVar[int] = _CODE_CANCEL
    segment_id: int = attrs.field(validator=_wire_int)
    request_id: int = attrs.field(validator=_wire_int)


Command: TypeAlias = (
    SegmentsAnnouncement
    | SegmentRequest
    | SegmentData
    | SegmentDataSendingCompleted
    | SegmentAbsent
    | CancelSegmentRequest
)

_COMMAND_TYPES: Final = (
    SegmentsAnnouncement,
    SegmentRequest,
    SegmentData,
    SegmentDataSendingCompleted,
    SegmentAbsent,
    CancelSegmentRequest,
)


def _bytes_repr(data: bytes) -> str:
    return f"<{len(data)} bytes>"


@attrs.frozen(kw_only=True)
class DataChunk:
    """A message that is not a command chunk: raw segment bytes for the current download."""

    data: bytes = attrs.field(repr=_bytes_repr)


# --------------------------------------------------------------------------- values


def encode_int(value: int) -> bytes:
    """Serialise an Int: ``[n]`` then ``n`` big-endian bytes with the sign in the top bit."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise UsageError(f"an Int must be an int, got {value!r}")
    magnitude = abs(value)
    if magnitude > MAX_INT:
        raise UsageError(f"{value} does not fit in an Int (|value| <= 2**119 - 1)")
    n = (max(magnitude.bit_length(), 1) + 1 + 7) // 8
    if value >= 0:  # the common case: the sign bit is already clear (n leaves room for it)
        return bytes((_TYPE_INT << 4 | n,)) + magnitude.to_bytes(n, "big")
    body = bytearray(magnitude.to_bytes(n, "big"))
    if value < 0:
        body[0] |= 0x80
    return bytes((_TYPE_INT << 4 | n,)) + bytes(body)


class _Reader:
    """Bounds-checked cursor over one command body; every shortfall is a PeerProtocolError."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        if pos < 0:
            raise UsageError(f"offset must be >= 0, got {pos}")
        self.data = data
        self.pos = pos

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def peek(self, what: str) -> int:
        if self.pos >= len(self.data):
            raise PeerProtocolError(f"truncated command: {what} missing at offset {self.pos}")
        return self.data[self.pos]

    def byte(self, what: str) -> int:
        value = self.peek(what)
        self.pos += 1
        return value

    def take(self, n: int, what: str) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise PeerProtocolError(
                f"truncated command: {what} needs {n} bytes at offset {self.pos}, "
                f"{len(self.data) - self.pos} left"
            )
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def read_int(self, what: str) -> int:
        head = self.byte(what)
        if head >> 4 != _TYPE_INT:
            raise PeerProtocolError(f"{what}: expected an Int, found type nibble {head >> 4}")
        n = head & 0x0F
        if n == 0:
            raise PeerProtocolError(f"{what}: Int with zero length")
        raw = self.take(n, what)
        magnitude = int.from_bytes(bytes((raw[0] & 0x7F,)) + raw[1:], "big")
        return -magnitude if raw[0] & 0x80 else magnitude

    def read_array(self, what: str, budget: int) -> tuple[int, ...]:
        head = self.byte(what)
        if head >> 4 != _TYPE_ARRAY:
            raise PeerProtocolError(f"{what}: expected a SimilarIntArray, found type nibble {head >> 4}")
        # The low nibble is ignored, as upstream does (it always sends 0).
        groups = self.byte(f"{what} group count")
        ids: list[int] = []
        for index in range(groups):
            header = self.read_int(f"{what} group {index} header")
            if header < 0:
                raise PeerProtocolError(f"{what} group {index}: negative header {header}")
            count = header & 0xFF
            if count == 0:
                raise PeerProtocolError(
                    f"{what} group {index}: empty group (a sender's 256-member count overflow?)"
                )
            if len(ids) + count > budget:
                raise PeerProtocolError(f"{what}: more ids than the announcement limit allows")
            high = header & ~0xFF
            ids.extend(high | low for low in self.take(count, f"{what} group {index} members"))
        return tuple(ids)


def decode_int(data: bytes, offset: int = 0) -> tuple[int, int]:
    """Read one Int at ``offset``; returns ``(value, offset after it)``. The value may be negative."""
    reader = _Reader(data, offset)
    value = reader.read_int("Int")
    return value, reader.pos


def _plan_groups(ids: Sequence[int]) -> list[tuple[int, list[tuple[int, int]]]]:
    """Upstream's grouping, split at 255 members and capped at 255 groups.

    Returns ``(high, [(input position, low byte), ...])`` per group, in emission order.
    """
    _check_wire_ints("a SimilarIntArray member", ids)
    blocks: dict[int, list[tuple[int, int]]] = {}
    for position, value in enumerate(ids):
        blocks.setdefault(value & ~0xFF, []).append((position, value & 0xFF))
    groups = [
        (high, members[start : start + MAX_GROUP_SIZE])
        for high, members in blocks.items()
        for start in range(0, len(members), MAX_GROUP_SIZE)
    ]
    if len(groups) > MAX_GROUPS:
        # Keep the highest blocks (the newest segments); among a split block's groups, the first.
        keep = sorted(range(len(groups)), key=lambda k: (-groups[k][0], k))[:MAX_GROUPS]
        groups = [groups[k] for k in sorted(keep)]
    return groups


def trim_announced_ids(ids: Sequence[int]) -> tuple[int, ...]:
    """The ids, in input order, that :func:`encode_similar_int_array` actually sends for ``ids``.

    Equal to ``tuple(ids)`` unless they need more than :data:`MAX_GROUPS` groups; then the ids of
    the lowest-numbered 256-id blocks are dropped.
    """
    kept = sorted(position for _high, members in _plan_groups(ids) for position, _low in members)
    return tuple(ids[position] for position in kept)


def encode_similar_int_array(ids: Sequence[int]) -> bytes:
    """Serialise a SimilarIntArray as upstream does, without its count overflows.

    A 256-id block becomes two groups with the same high part (255 + 1); beyond 255 groups the
    lowest blocks are dropped (see :func:`trim_announced_ids`). Ids must be ``0..MAX_INT``.
    """
    groups = _plan_groups(ids)
    out = bytearray((_TYPE_ARRAY << 4, len(groups)))
    for high, members in groups:
        out += encode_int(high | len(members))
        out += bytes(low for _position, low in members)
    return bytes(out)


def decode_similar_int_array(
    data: bytes, offset: int = 0, *, max_ids: int = DEFAULT_MAX_ANNOUNCED_IDS
) -> tuple[tuple[int, ...], int]:
    """Read one SimilarIntArray at ``offset``; returns ``(ids in group order, offset after it)``."""
    reader = _Reader(data, offset)
    ids = reader.read_array("SimilarIntArray", max_ids)
    return ids, reader.pos


# --------------------------------------------------------------------------- commands on the wire


def encode_command_body(command: Command) -> bytes:
    """Serialise a command without framing (code byte and fields, in upstream's field order)."""
    if not isinstance(command, _COMMAND_TYPES):
        raise UsageError(f"not a wire command: {command!r}")
    out = bytearray((command.code,))

    def add_int(name: bytes, value: int) -> None:
        out.extend(name)
        out.extend(encode_int(value))

    match command:
        case SegmentsAnnouncement():
            if command.loaded:
                out += b"l" + encode_similar_int_array(command.loaded)
            if command.loading_by_http:
                out += b"p" + encode_similar_int_array(command.loading_by_http)
        case SegmentRequest():
            add_int(b"i", command.segment_id)
            add_int(b"r", command.request_id)
            if command.byte_offset:
                add_int(b"b", command.byte_offset)
        case SegmentData():
            add_int(b"i", command.segment_id)
            add_int(b"s", command.size)
            add_int(b"r", command.request_id)
        case SegmentDataSendingCompleted() | SegmentAbsent() | CancelSegmentRequest():
            add_int(b"i", command.segment_id)
            add_int(b"r", command.request_id)
    return bytes(out)


def _check_max_message_size(max_message_size: int, minimum: int) -> None:
    if not isinstance(max_message_size, int) or isinstance(max_message_size, bool):
        raise UsageError(f"max_message_size must be an int, got {max_message_size!r}")
    if max_message_size < minimum:
        raise UsageError(f"max_message_size must be >= {minimum}, got {max_message_size}")


def frame_command_body(body: bytes, *, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> list[bytes]:
    """Frame a serialised command into data-channel messages of at most ``max_message_size`` bytes.

    Same slicing as upstream (``c = ceil(L / M)``, one more if the slices plus markers do not fit).
    Upstream adds at most one slice, which is always enough at its 65535 default for any command
    below ~470 MB but can overshoot a small ``M``; here ``c`` grows until every message fits, which
    gives upstream's exact output whenever upstream's output respects ``M``.
    """
    _check_max_message_size(max_message_size, FRAME_OVERHEAD + 1)
    if not body:
        raise UsageError("cannot frame an empty command")
    length = len(body)
    if length + FRAME_OVERHEAD <= max_message_size:
        return [CSTR + body + CEND]
    count = -(-length // max_message_size)
    while -(-length // count) + FRAME_OVERHEAD > max_message_size:
        count += 1
    size = -(-length // count)
    messages: list[bytes] = []
    for index in range(count):
        start = DSTR if index else CSTR
        end = CEND if index == count - 1 else DEND
        messages.append(start + body[index * size : (index + 1) * size] + end)
    return messages


def encode_command(command: Command, *, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> list[bytes]:
    """Serialise and frame ``command``; send the returned messages in order.

    An announcement whose id lists need more than :data:`MAX_GROUPS` groups is trimmed as
    :func:`trim_announced_ids` describes (the oldest blocks go first).
    """
    if isinstance(command, SegmentsAnnouncement):
        return list(_encode_announcement(command, max_message_size))
    return frame_command_body(encode_command_body(command), max_message_size=max_message_size)


@functools.lru_cache(maxsize=64)
def _encode_announcement(command: SegmentsAnnouncement, max_message_size: int) -> tuple[bytes, ...]:
    # One announcement goes to every neighbour: encoded once (commands are immutable values).
    return tuple(frame_command_body(encode_command_body(command), max_message_size=max_message_size))


def chunk_segment_data(data: bytes, *, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> list[bytes]:
    """Cut segment bytes into data messages of at most ``max_message_size`` bytes.

    Like upstream, except that no chunk is ever a lookalike command chunk: such a chunk is made one
    byte shorter and the byte moves to the next chunk. Empty data gives no chunk.
    """
    _check_max_message_size(max_message_size, 1)
    chunks: list[bytes] = []
    view = memoryview(data)
    pos = 0
    while pos < len(view):
        chunk = bytes(view[pos : pos + max_message_size])
        if is_command_chunk(chunk):
            chunk = chunk[:-1]  # now ends in "n" (from "cend"/"dend"), so never in a marker
        chunks.append(chunk)
        pos += len(chunk)
    return chunks


def is_command_chunk(message: bytes) -> bool:
    """Upstream's classification: starts with ``cstr``/``dstr`` and ends with ``cend``/``dend``."""
    return (
        len(message) >= FRAME_OVERHEAD
        and message[:_MARKER] in (CSTR, DSTR)
        and message[-_MARKER:] in (CEND, DEND)
    )


_INT_FIELDS: Final[dict[int, tuple[bytes, ...]]] = {
    _CODE_REQUEST: (b"i", b"r", b"b"),
    _CODE_DATA: (b"i", b"s", b"r"),
    _CODE_COMPLETED: (b"i", b"r"),
    _CODE_ABSENT: (b"i", b"r"),
    _CODE_CANCEL: (b"i", b"r"),
}
_FIELD_NAMES: Final = {ord(name): name for name in "irbslp"}


def _field_label(name_byte: int) -> str:
    return repr(chr(name_byte)) if 0x20 < name_byte < 0x7F else f"0x{name_byte:02x}"


_MEMO_BODY_BYTES: Final = 1024
"""Bodies up to this size (bytes) are decoded through the memo: a peer's announcements of a live
window are far smaller, and the memo's memory stays bounded (256 entries of at most about a
thousand ids) whatever peers send."""


@functools.lru_cache(maxsize=256)
def _decode_body(body: bytes, max_announced_ids: int) -> Command:
    # A swarm's announcements are the same bytes for every neighbour: decoded once (the result is
    # an immutable value; a malformed body raises, and exceptions are not cached).
    return decode_command_body(body, max_announced_ids=max_announced_ids)


@functools.lru_cache(maxsize=256)
def _decode_message(message: bytes, max_announced_ids: int) -> Command:
    # A whole command framed in one message (cstr ... cend), as _decode_body.
    return decode_command_body(message[_MARKER:-_MARKER], max_announced_ids=max_announced_ids)


def decode_command_body(body: bytes, *, max_announced_ids: int = DEFAULT_MAX_ANNOUNCED_IDS) -> Command:
    """Decode one unframed command; raises :class:`PeerProtocolError` if it is malformed."""
    reader = _Reader(bytes(body))
    code = reader.byte("command code")
    if code == _CODE_ANNOUNCEMENT:
        allowed: tuple[bytes, ...] = (b"l", b"p")
    elif code in _INT_FIELDS:
        allowed = _INT_FIELDS[code]
    else:
        raise PeerProtocolError(f"unknown command code {code}")
    ints: dict[str, int] = {}
    arrays: dict[str, tuple[int, ...]] = {}
    budget = max_announced_ids
    while not reader.at_end():
        name_byte = reader.byte("field name")
        name = _FIELD_NAMES.get(name_byte)
        if name is None or name.encode() not in allowed:
            raise PeerProtocolError(f"command {code}: unknown field {_field_label(name_byte)}")
        if name in ints or name in arrays:
            raise PeerProtocolError(f"command {code}: duplicate field {name!r}")
        value_type = reader.peek(f"value of field {name!r}") >> 4
        if value_type > _TYPE_STRING:
            raise PeerProtocolError(f"command {code}: field {name!r} has unknown type nibble {value_type}")
        if code == _CODE_ANNOUNCEMENT:
            if value_type != _TYPE_ARRAY:
                raise PeerProtocolError(f"field {name!r} must be a SimilarIntArray (type {value_type})")
            ids = reader.read_array(f"field {name!r}", budget)
            budget -= len(ids)
            arrays[name] = ids
        else:
            if value_type != _TYPE_INT:
                raise PeerProtocolError(f"command {code}: field {name!r} must be an Int (type {value_type})")
            value = reader.read_int(f"field {name!r}")
            if value < 0:
                raise PeerProtocolError(f"command {code}: field {name!r} is negative ({value})")
            ints[name] = value
    if code == _CODE_ANNOUNCEMENT:
        return SegmentsAnnouncement(loaded=arrays.get("l", ()), loading_by_http=arrays.get("p", ()))
    required = ("i", "s", "r") if code == _CODE_DATA else ("i", "r")
    missing = [name for name in required if name not in ints]
    if missing:
        raise PeerProtocolError(f"command {code}: missing field(s) {', '.join(missing)}")
    segment_id, request_id = ints["i"], ints["r"]
    if code == _CODE_REQUEST:
        return SegmentRequest(segment_id=segment_id, request_id=request_id, byte_offset=ints.get("b", 0))
    if code == _CODE_DATA:
        return SegmentData(segment_id=segment_id, request_id=request_id, size=ints["s"])
    if code == _CODE_COMPLETED:
        return SegmentDataSendingCompleted(segment_id=segment_id, request_id=request_id)
    if code == _CODE_ABSENT:
        return SegmentAbsent(segment_id=segment_id, request_id=request_id)
    return CancelSegmentRequest(segment_id=segment_id, request_id=request_id)


def _positive_int(name: str, value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise UsageError(f"{name} must be a positive int, got {value!r}")
    return value


class WireDecoder:
    """Turns one connection's incoming messages into commands and data chunks.

    Feed every received message, in order, to :meth:`receive`. A multi-message command is buffered
    (at most ``max_command_size`` bytes) until its ``cend`` chunk arrives; data chunks may arrive in
    between and are returned at once. Every malformed input raises :class:`PeerProtocolError`;
    the decoder then holds no partial command and may be used further.
    """

    def __init__(
        self,
        *,
        max_command_size: int = DEFAULT_MAX_COMMAND_SIZE,
        max_announced_ids: int = DEFAULT_MAX_ANNOUNCED_IDS,
    ) -> None:
        self._max_command_size = _positive_int("max_command_size", max_command_size)
        self._max_announced_ids = _positive_int("max_announced_ids", max_announced_ids)
        self._partial: bytearray | None = None

    @property
    def max_announced_ids(self) -> int:
        """Most ids (both lists) an announcement may carry; more is a :class:`PeerProtocolError`,
        raised while the ids are read, before they are all built. Settable (a playlist window
        that grows raises it)."""
        return self._max_announced_ids

    @max_announced_ids.setter
    def max_announced_ids(self, value: int) -> None:
        self._max_announced_ids = _positive_int("max_announced_ids", value)

    @property
    def pending_command_bytes(self) -> int | None:
        """Bytes buffered for a command whose last chunk has not arrived, or ``None``."""
        return None if self._partial is None else len(self._partial)

    def receive(self, message: bytes) -> list[Command | DataChunk]:
        """Process one data-channel message; returns at most one command or data chunk."""
        if type(message) is not bytes:
            if isinstance(message, (bytearray, memoryview)):
                message = bytes(message)
            elif not isinstance(message, bytes):
                # aiortc hands text messages over as str; the protocol has none.
                raise PeerProtocolError(f"unexpected non-binary message ({type(message).__name__})")
        # is_command_chunk, inline: every data chunk of every download passes here.
        head = message[:_MARKER]
        if (head != CSTR and head != DSTR) or len(message) < FRAME_OVERHEAD:
            return [DataChunk(data=message)]
        tail = message[-_MARKER:]
        if tail != CEND and tail != DEND:
            return [DataChunk(data=message)]
        if (
            tail == CEND
            and head == CSTR
            and self._partial is None
            and FRAME_OVERHEAD < len(message) <= _MEMO_BODY_BYTES + FRAME_OVERHEAD
            and len(message) - FRAME_OVERHEAD <= self._max_command_size
        ):
            # A whole small command in one message, the usual case: decoded through the memo by
            # its message (the same announcement reaches us from every neighbour).
            return [_decode_message(message, self._max_announced_ids)]
        body = message[_MARKER:-_MARKER]
        if head == CSTR:
            if self._partial is not None:
                self._partial = None
                raise PeerProtocolError("framing: cstr chunk while a command was still incomplete")
            buffer = bytearray()
        else:
            if self._partial is None:
                raise PeerProtocolError("framing: dstr chunk without a preceding cstr chunk")
            buffer = self._partial
        if len(buffer) + len(body) > self._max_command_size:
            self._partial = None
            raise PeerProtocolError(f"command longer than {self._max_command_size} bytes")
        buffer += body
        if tail == DEND:
            self._partial = buffer
            return []
        self._partial = None
        if not buffer:
            raise PeerProtocolError("empty command")
        body = bytes(buffer)
        if len(body) <= _MEMO_BODY_BYTES:
            return [_decode_body(body, self._max_announced_ids)]
        return [decode_command_body(body, max_announced_ids=self._max_announced_ids)]
