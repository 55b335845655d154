"""The WebTorrent tracker wire format, written once for the client, the server and the swarm ids.

Theory of operation
-------------------
A WebTorrent tracker speaks one JSON object per WebSocket frame. Requests go from a peer to the
tracker (:class:`Announce`, :class:`Answer`, :class:`Scrape`); the tracker answers or relays
(:class:`AnnounceResponse`, :class:`RelayedOffer`, :class:`RelayedAnswer`, :class:`ScrapeResponse`,
:class:`Failure`). The 20-byte ids (``info_hash``, ``peer_id``, ``to_peer_id``, ``offer_id``)
travel as *binary strings*: one character per byte, U+0000 to U+00FF, which is what a JavaScript
peer gets from ``Buffer.toString("binary")`` and what Python calls latin-1
(:func:`encode_id` / :func:`decode_id`). Messages here carry the raw bytes.

Two decoders, because the two sides are lenient in different places, each as its upstream peers
are (npm ``bittorrent-tracker`` and ``Novage/wt-tracker``):

* :func:`decode_request` (the server's view) raises :class:`TrackerRequestError` with the
  ``failure reason`` the server answers; ``info_hash`` set when the refusal names a swarm, and
  ``request`` saying what kind of request was recognised before the error (the server counts it).
  Offers with a bad id or no SDP are skipped, not refused; at most ``max_offers`` are kept.
* :func:`decode_response` (the client's view) raises :class:`TrackerMessageError` with why the
  frame is ignored. Fields a client only reads when they make sense (``interval`` not positive,
  counts not integers) decode to ``None``.

Encoding (:func:`encode`) writes like ``JSON.stringify``: ids' bytes 0x80-0xFF as plain characters
(``ensure_ascii=False``), control characters escaped, compact separators. Every frame is bounded
by ``max_size`` (characters) before it is parsed.

Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, Final

import attrs

from p2ploader.errors import TrackerMessageError, TrackerRequestError, TrackerWireError

__all__ = [
    "ACCEPTED_EVENTS",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "ID_LENGTH",
    "Announce",
    "AnnounceResponse",
    "Answer",
    "Failure",
    "OfferEntry",
    "RelayedAnswer",
    "RelayedOffer",
    "Request",
    "Response",
    "Scrape",
    "ScrapeCounts",
    "ScrapeResponse",
    "TrackerMessageError",
    "TrackerRequestError",
    "TrackerWireError",
    "binary_string",
    "decode_id",
    "decode_request",
    "decode_response",
    "encode",
    "encode_id",
    "from_binary_string",
    "is_wire_id",
    "to_json",
]

ID_LENGTH: Final = 20
"""Bytes in every WebTorrent id (info hash, peer id, offer id)."""
DEFAULT_MAX_MESSAGE_SIZE: Final = 256 * 1024
"""Characters per frame the decoders accept by default (the tracker client's limit)."""
ACCEPTED_EVENTS: Final = frozenset({"started", "stopped", "completed", "update", "paused", "empty"})
"""Announce events bittorrent-tracker accepts (P2P Media Loader sends ``started``, ``stopped`` and
none; wt-tracker rejects ``update``)."""
_NUMWANT_DIGITS: Final = 9  # a longer digit string is not a count any client sends


# ----------------------------------------------------------------------------------------- ids


def binary_string(data: bytes) -> str:
    """Bytes as a WebTorrent *binary string* (one character per byte, as latin-1)."""
    return data.decode("latin-1")


def from_binary_string(text: str) -> bytes:
    """The bytes of a binary string. Raises :class:`ValueError` (:class:`UnicodeEncodeError`) for a
    character above U+00FF."""
    return text.encode("latin-1")


def encode_id(raw: bytes) -> str:
    """A 20-byte id as the 20-character binary string WebTorrent trackers carry in JSON."""
    if len(raw) != ID_LENGTH:
        raise ValueError(f"ids are {ID_LENGTH} bytes, not {len(raw)}")
    return binary_string(raw)


def decode_id(value: object) -> bytes | None:
    """The 20 raw bytes of a JSON id string, or ``None`` if it is not a 20-character binary string."""
    if not isinstance(value, str) or len(value) != ID_LENGTH:
        return None
    try:
        return from_binary_string(value)
    except UnicodeEncodeError:
        return None


def is_wire_id(value: object) -> bool:
    """Whether ``value`` is a 20-character binary string (an id as it travels)."""
    return decode_id(value) is not None


def _check_id(instance: object, attribute: attrs.Attribute[bytes], value: bytes) -> None:
    if not isinstance(value, bytes) or len(value) != ID_LENGTH:
        raise ValueError(f"{attribute.name} must be {ID_LENGTH} bytes, not {value!r}")


def _check_optional_id(
    instance: object, attribute: attrs.Attribute[bytes | None], value: bytes | None
) -> None:
    if value is not None:
        _check_id(instance, attribute, value)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------- messages


@attrs.frozen(kw_only=True)
class OfferEntry:
    """One complete (non-trickle) WebRTC offer inside an announce."""

    offer_id: bytes = attrs.field(validator=_check_id)
    sdp: str


@attrs.frozen(kw_only=True)
class Announce:
    """A peer joins, refreshes or leaves a swarm, carrying offers for the tracker to relay.

    ``numwant`` ``None`` means "as many as there are offers". ``left`` ``0`` (or ``event
    "completed"``) makes the peer a seed. ``extra`` holds further top-level fields (the ``p2ploader``
    extension), written after the standard ones; the decoder keeps only ``p2ploader`` there.
    """

    info_hash: bytes = attrs.field(validator=_check_id)
    peer_id: bytes = attrs.field(validator=_check_id)
    event: str | None = None
    numwant: int | None = None
    offers: tuple[OfferEntry, ...] = ()
    uploaded: int | None = 0
    downloaded: int | None = 0
    left: float | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def seed(self) -> bool:
        return self.event == "completed" or self.left == 0


@attrs.frozen(kw_only=True)
class Answer:
    """A peer's answer to the offer ``offer_id`` of ``to_peer_id`` (an announce carrying ``answer``)."""

    info_hash: bytes = attrs.field(validator=_check_id)
    peer_id: bytes = attrs.field(validator=_check_id)
    to_peer_id: bytes = attrs.field(validator=_check_id)
    offer_id: bytes = attrs.field(validator=_check_id)
    sdp: str


@attrs.frozen(kw_only=True)
class Scrape:
    """Swarm counts asked for by info hash."""

    info_hashes: tuple[bytes, ...]


@attrs.frozen(kw_only=True)
class AnnounceResponse:
    """The tracker's reply to an announce. ``interval``/``min_interval`` in seconds (``None`` when
    absent or not a positive number); ``complete``/``incomplete`` both set or both ``None``."""

    info_hash: bytes = attrs.field(validator=_check_id)
    interval: float | None = None
    min_interval: float | None = None
    complete: int | None = None
    incomplete: int | None = None
    warning: str | None = None
    extension: Mapping[str, Any] | None = None
    """The ``p2ploader`` object (host/client topology), when there is one."""


@attrs.frozen(kw_only=True)
class RelayedOffer:
    """Another peer's offer, relayed: ``peer_id`` is the offerer."""

    info_hash: bytes = attrs.field(validator=_check_id)
    peer_id: bytes = attrs.field(validator=_check_id)
    offer_id: bytes = attrs.field(validator=_check_id)
    sdp: str
    warning: str | None = None


@attrs.frozen(kw_only=True)
class RelayedAnswer:
    """The answer to one of our offers, relayed: ``peer_id`` is the answerer."""

    info_hash: bytes = attrs.field(validator=_check_id)
    peer_id: bytes = attrs.field(validator=_check_id)
    offer_id: bytes = attrs.field(validator=_check_id)
    sdp: str
    warning: str | None = None


@attrs.frozen(kw_only=True)
class ScrapeCounts:
    complete: int
    incomplete: int
    downloaded: int


@attrs.frozen(kw_only=True)
class ScrapeResponse:
    files: Mapping[bytes, ScrapeCounts]
    min_request_interval: float | None = None


@attrs.frozen(kw_only=True)
class Failure:
    """``failure reason``. Without ``action`` (``about_swarm`` false) the request was malformed and
    JS clients reconnect; with it, a refusal of an announce for ``info_hash`` (a full swarm, a rate
    limit) that the client retries later on the same socket. ``info_hash`` is ``None`` when absent
    or not an id."""

    reason: str
    about_swarm: bool = False
    info_hash: bytes | None = attrs.field(default=None, validator=_check_optional_id)
    names_other_value: bool = False
    """The failure carried an ``info_hash`` that is not an id (so it is about no swarm of ours)."""


Request = Announce | Answer | Scrape
Response = AnnounceResponse | RelayedOffer | RelayedAnswer | ScrapeResponse | Failure


# ----------------------------------------------------------------------------------- encoding


def _dumps(message: Mapping[str, Any]) -> str:
    # Like JSON.stringify: ids' bytes 0x80-0xFF as plain characters, control characters escaped.
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


def _seconds_for_wire(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def to_json(message: Request | Response) -> dict[str, Any]:
    """The JSON object of ``message`` (keys in the order upstream peers write them)."""
    if isinstance(message, Announce):
        data: dict[str, Any] = {
            "action": "announce",
            "info_hash": encode_id(message.info_hash),
            "peer_id": encode_id(message.peer_id),
            "numwant": message.numwant if message.numwant is not None else len(message.offers),
        }
        if message.uploaded is not None:
            data["uploaded"] = message.uploaded
        if message.downloaded is not None:
            data["downloaded"] = message.downloaded
        if message.left is not None:
            data["left"] = message.left
        if message.event is not None:
            data["event"] = message.event
        data.update((key, value) for key, value in message.extra.items() if key not in data)
        if message.event != "stopped":
            data["offers"] = [
                {"offer": {"type": "offer", "sdp": entry.sdp}, "offer_id": encode_id(entry.offer_id)}
                for entry in message.offers
            ]
        return data
    if isinstance(message, Answer):
        return {
            "action": "announce",
            "info_hash": encode_id(message.info_hash),
            "peer_id": encode_id(message.peer_id),
            "to_peer_id": encode_id(message.to_peer_id),
            "answer": {"type": "answer", "sdp": message.sdp},
            "offer_id": encode_id(message.offer_id),
        }
    if isinstance(message, Scrape):
        hashes = [encode_id(info_hash) for info_hash in message.info_hashes]
        return {"action": "scrape", "info_hash": hashes[0] if len(hashes) == 1 else hashes}
    if isinstance(message, AnnounceResponse):
        data = {"action": "announce"}
        if message.interval is not None:
            data["interval"] = _seconds_for_wire(message.interval)
        if message.min_interval is not None:
            data["min interval"] = _seconds_for_wire(message.min_interval)
        data["info_hash"] = encode_id(message.info_hash)
        if message.complete is not None and message.incomplete is not None:
            data["complete"] = message.complete
            data["incomplete"] = message.incomplete
        if message.warning is not None:
            data["warning message"] = message.warning
        if message.extension is not None:
            data["p2ploader"] = dict(message.extension)
        return data
    if isinstance(message, RelayedOffer):
        return {
            "action": "announce",
            "offer": {"type": "offer", "sdp": message.sdp},
            "offer_id": encode_id(message.offer_id),
            "peer_id": encode_id(message.peer_id),
            "info_hash": encode_id(message.info_hash),
        }
    if isinstance(message, RelayedAnswer):
        return {
            "action": "announce",
            "answer": {"type": "answer", "sdp": message.sdp},
            "offer_id": encode_id(message.offer_id),
            "peer_id": encode_id(message.peer_id),
            "info_hash": encode_id(message.info_hash),
        }
    if isinstance(message, ScrapeResponse):
        scrape: dict[str, Any] = {
            "action": "scrape",
            "files": {
                encode_id(info_hash): {
                    "complete": counts.complete,
                    "incomplete": counts.incomplete,
                    "downloaded": counts.downloaded,
                }
                for info_hash, counts in message.files.items()
            },
        }
        if message.min_request_interval is not None:
            scrape["flags"] = {"min_request_interval": _seconds_for_wire(message.min_request_interval)}
        return scrape
    if isinstance(message, Failure):
        if not message.about_swarm:
            return {"failure reason": message.reason}
        failure: dict[str, Any] = {"action": "announce", "failure reason": message.reason}
        if message.info_hash is not None:
            failure["info_hash"] = encode_id(message.info_hash)
        return failure
    raise TypeError(f"not a tracker message: {message!r}")


def encode(message: Request | Response) -> str:
    """``message`` as the text of one WebSocket frame."""
    return _dumps(to_json(message))


# ----------------------------------------------------------------------------------- decoding


def _load_object(frame: str | bytes, max_size: int) -> dict[str, Any] | str:
    """The JSON object of a frame, or why there is none (a reason string)."""
    if len(frame) > max_size:
        return f"message too large ({len(frame)} > {max_size})"
    try:
        data = json.loads(frame)
    except (ValueError, RecursionError):  # includes UnicodeDecodeError of a binary frame
        return "invalid JSON"
    if not isinstance(data, dict):
        return "invalid request: not a JSON object"
    return data


def _sdp_of(value: object) -> str | None:
    if isinstance(value, dict):
        sdp = value.get("sdp")
        if isinstance(sdp, str):
            return sdp
    return None


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _numwant(value: object, info_hash: str) -> int | None:
    """``numwant`` as a count, ``None`` when absent. A negative, fractional, boolean or non-numeric
    value, or a digit string longer than nine digits, is a malformed request."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer() and 0 <= value < 10**_NUMWANT_DIGITS:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        text = value.strip()
        if 0 < len(text) <= _NUMWANT_DIGITS and text.isascii() and text.isdigit():
            return int(text)
    raise TrackerRequestError("invalid numwant", info_hash=info_hash, request="announce")


def _left(value: object) -> float | None:
    """``left`` as a number (numeric strings too, as bittorrent-tracker reads them); else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return None if math.isnan(number) else number
    return None


def _request_id(request: Mapping[str, Any], key: str, reason: str | None = None) -> bytes:
    raw = decode_id(request.get(key))
    if raw is None:
        raise TrackerRequestError(reason or f"invalid {key}")
    return raw


def _offers(value: object, info_hash: str, max_offers: int) -> tuple[OfferEntry, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise TrackerRequestError("invalid offers", info_hash=info_hash, request="announce")
    parsed: list[OfferEntry] = []
    for entry in value:
        if len(parsed) >= max_offers:
            break
        if not isinstance(entry, dict):
            continue
        offer_id = decode_id(entry.get("offer_id"))
        sdp = _sdp_of(entry.get("offer"))
        if offer_id is not None and sdp is not None:
            parsed.append(OfferEntry(offer_id=offer_id, sdp=sdp))
    return tuple(parsed)


def decode_request(
    frame: str | bytes,
    *,
    max_offers: int = 10,
    max_scrape_hashes: int = 100,
    max_size: int = DEFAULT_MAX_MESSAGE_SIZE,
) -> Request:
    """A peer's request as the tracker reads it; :class:`TrackerRequestError` names the failure
    reason to answer. ``event: "stopped"`` skips reading offers and ``numwant`` (leaving is
    accepted whatever else the frame holds); an ``event`` of ``""`` reads as none."""
    data = _load_object(frame, max_size)
    if isinstance(data, str):
        raise TrackerRequestError(data)
    action = data.get("action")
    if action == "announce":
        info_hash = _request_id(data, "info_hash")
        peer_id = _request_id(data, "peer_id")
        wire_hash = binary_string(info_hash)
        if data.get("answer") is not None:
            to_peer_id = _request_id(data, "to_peer_id", "invalid `to_peer_id` (required with `answer`)")
            offer_id = _request_id(data, "offer_id")
            sdp = _sdp_of(data.get("answer"))
            if sdp is None:
                raise TrackerRequestError("invalid answer", info_hash=wire_hash)
            return Answer(
                info_hash=info_hash, peer_id=peer_id, to_peer_id=to_peer_id, offer_id=offer_id, sdp=sdp
            )
        event = data.get("event")
        if event is not None and event != "" and event not in ACCEPTED_EVENTS:
            raise TrackerRequestError("invalid event", info_hash=wire_hash, request="announce")
        extension = data.get("p2ploader")
        extra = {"p2ploader": extension} if extension is not None else {}
        left = _left(data.get("left"))
        if event == "stopped":
            return Announce(info_hash=info_hash, peer_id=peer_id, event="stopped", left=left, extra=extra)
        offers = _offers(data.get("offers"), wire_hash, max_offers)
        return Announce(
            info_hash=info_hash,
            peer_id=peer_id,
            event=event or None,
            numwant=_numwant(data.get("numwant"), wire_hash),
            offers=offers,
            left=left,
            extra=extra,
        )
    if action == "scrape":
        wanted = data.get("info_hash")
        if wanted is None:
            # bittorrent-tracker lists every swarm here; that hands anyone the info hashes (and so
            # the streams) of other viewers. A scrape names what it asks about.
            raise TrackerRequestError(
                "scrape needs info_hash: listing every swarm is not offered", request="scrape"
            )
        if isinstance(wanted, str):
            values: list[object] = [wanted]
        elif isinstance(wanted, list):
            if len(wanted) > max_scrape_hashes:
                raise TrackerRequestError(
                    f"too many info_hash values (at most {max_scrape_hashes})", request="scrape"
                )
            values = wanted
        else:
            raise TrackerRequestError("invalid info_hash", request="scrape")
        hashes: list[bytes] = []
        for value in values:
            raw = decode_id(value)
            if raw is None:
                raise TrackerRequestError("invalid info_hash", request="scrape")
            hashes.append(raw)
        return Scrape(info_hashes=tuple(hashes))
    raise TrackerRequestError(f"invalid action in WS request: {_short(action)}")


def _positive_seconds(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        return None
    return float(value)


def _count(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _scrape_files(value: object) -> dict[bytes, ScrapeCounts]:
    files: dict[bytes, ScrapeCounts] = {}
    if not isinstance(value, dict):
        return files
    for key, counts in value.items():
        raw = decode_id(key)
        if raw is None or not isinstance(counts, dict):
            continue
        complete, incomplete = _count(counts.get("complete")), _count(counts.get("incomplete"))
        downloaded = _count(counts.get("downloaded"))
        if complete is not None and incomplete is not None:
            files[raw] = ScrapeCounts(
                complete=complete,
                incomplete=incomplete,
                downloaded=downloaded if downloaded is not None else 0,
            )
    return files


def decode_response(frame: str | bytes, *, max_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> Response:
    """A tracker's message as a client reads it; :class:`TrackerMessageError` says why it is
    ignored. A relayed offer or answer wins over the announce-response fields of the same frame."""
    data = _load_object(frame, max_size)
    if isinstance(data, str):
        raise TrackerMessageError(
            "not JSON" if data == "invalid JSON" else data.replace("invalid request: ", "")
        )
    action = data.get("action")
    failure = data.get("failure reason")
    if failure is not None:
        named = data.get("info_hash")
        info_hash = decode_id(named)
        return Failure(
            reason=str(failure),
            about_swarm=action is not None,
            info_hash=info_hash,
            names_other_value=named is not None and info_hash is None,
        )
    if action == "scrape":
        flags = data.get("flags")
        interval = _positive_seconds(flags.get("min_request_interval")) if isinstance(flags, dict) else None
        return ScrapeResponse(files=_scrape_files(data.get("files")), min_request_interval=interval)
    if action != "announce":
        raise TrackerMessageError("unknown action")
    info_hash = decode_id(data.get("info_hash"))
    if info_hash is None:
        raise TrackerMessageError("another swarm")
    warning_value = data.get("warning message")
    warning = str(warning_value) if warning_value is not None else None
    if data.get("offer") is not None or data.get("answer") is not None:
        kind = "offer" if data.get("offer") is not None else "answer"
        peer_id = decode_id(data.get("peer_id"))
        offer_id = decode_id(data.get("offer_id"))
        sdp = _sdp_of(data.get(kind))
        if peer_id is None or offer_id is None or sdp is None:
            raise TrackerMessageError(f"malformed {kind}")
        relayed = RelayedOffer if kind == "offer" else RelayedAnswer
        return relayed(info_hash=info_hash, peer_id=peer_id, offer_id=offer_id, sdp=sdp, warning=warning)
    complete, incomplete = _count(data.get("complete")), _count(data.get("incomplete"))
    if complete is None or incomplete is None:
        complete = incomplete = None
    extension = data.get("p2ploader")
    return AnnounceResponse(
        info_hash=info_hash,
        interval=_positive_seconds(data.get("interval")),
        min_interval=_positive_seconds(data.get("min interval")),
        complete=complete,
        incomplete=incomplete,
        warning=warning,
        extension=extension if isinstance(extension, dict) else None,
    )
