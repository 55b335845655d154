"""The tracker wire codec: ids, test vectors of each message, typed errors, size bounds."""

from __future__ import annotations

import json

import pytest

from p2ploader.core import swarm
from p2ploader.core.tracker_wire import (
    Announce,
    AnnounceResponse,
    Answer,
    Failure,
    OfferEntry,
    RelayedAnswer,
    RelayedOffer,
    Scrape,
    ScrapeCounts,
    ScrapeResponse,
    TrackerMessageError,
    TrackerRequestError,
    TrackerWireError,
    decode_id,
    decode_request,
    decode_response,
    encode,
    encode_id,
    is_wire_id,
)
from p2ploader.errors import RemoteError

BINARY = bytes.fromhex("ae9cd6bf657a583a6f33711f1cae11fa25c19b43")  # bytes 0x80-0xFF inside
HASH = b"L2uYwMcHhsstZuLv8ZqU"
PEER = b"-PM0203-abcdefghijkl"
OFFER = b"offer-id-0123456789x"


def test_ids_travel_as_binary_strings_and_the_swarm_ids_use_the_same_codec() -> None:
    text = encode_id(BINARY)
    assert len(text) == 20 and text == BINARY.decode("latin-1")
    assert decode_id(text) == BINARY
    assert swarm.latin1(BINARY) == text and swarm.from_latin1(text) == BINARY
    for bad in ("x" * 19, "x" * 21, "é" * 19 + "€", 20, None, b"x" * 20):
        assert decode_id(bad) is None and not is_wire_id(bad)
    with pytest.raises(ValueError, match="ids are 20 bytes, not 5"):
        encode_id(b"short")
    with pytest.raises(UnicodeEncodeError, match="latin-1"):
        swarm.from_latin1("€")


def test_an_announce_is_written_like_json_stringify() -> None:
    announce = Announce(
        info_hash=BINARY,
        peer_id=PEER,
        event="started",
        numwant=1,
        offers=(OfferEntry(offer_id=OFFER, sdp="v=0\r\n"),),
    )
    # Bytes 0x80-0xFF as plain characters, control characters escaped (as JSON.stringify writes them).
    wire_hash = BINARY.decode("latin-1")
    for control in "\x11\x1c\x1f":
        wire_hash = wire_hash.replace(control, f"\\u{ord(control):04x}")
    expected = (
        '{"action":"announce","info_hash":"' + wire_hash + '","peer_id":"-PM0203-abcdefghijkl",'
        '"numwant":1,"uploaded":0,"downloaded":0,"event":"started",'
        '"offers":[{"offer":{"type":"offer","sdp":"v=0\\r\\n"},"offer_id":"offer-id-0123456789x"}]}'
    )
    assert encode(announce) == expected
    decoded = decode_request(expected)
    assert decoded == Announce(
        info_hash=BINARY,
        peer_id=PEER,
        event="started",
        numwant=1,
        offers=(OfferEntry(offer_id=OFFER, sdp="v=0\r\n"),),
        uploaded=0,
        downloaded=0,
    )
    stopped = json.loads(encode(Announce(info_hash=HASH, peer_id=PEER, event="stopped", numwant=0)))
    assert "offers" not in stopped and stopped["event"] == "stopped" and stopped["numwant"] == 0


@pytest.mark.parametrize(
    "message",
    [
        Answer(info_hash=HASH, peer_id=PEER, to_peer_id=BINARY, offer_id=OFFER, sdp="answer"),
        Scrape(info_hashes=(HASH, BINARY)),
    ],
)
def test_requests_round_trip(message: Answer | Scrape) -> None:
    assert decode_request(encode(message)) == message


@pytest.mark.parametrize(
    "message",
    [
        AnnounceResponse(info_hash=HASH, interval=120.0, complete=1, incomplete=2),
        AnnounceResponse(info_hash=HASH, interval=2.5, min_interval=60.0, warning="slow down"),
        AnnounceResponse(info_hash=HASH, complete=0, incomplete=0, extension={"role": "host", "host": None}),
        RelayedOffer(info_hash=HASH, peer_id=PEER, offer_id=OFFER, sdp="offer"),
        RelayedAnswer(info_hash=BINARY, peer_id=PEER, offer_id=OFFER, sdp="answer"),
        ScrapeResponse(
            files={HASH: ScrapeCounts(complete=1, incomplete=2, downloaded=1)}, min_request_interval=120
        ),
        Failure(reason="invalid JSON"),
        Failure(reason="swarm is full", about_swarm=True, info_hash=HASH),
    ],
)
def test_responses_round_trip(message: object) -> None:
    assert decode_response(encode(message)) == message  # type: ignore[arg-type]


def _request(**fields: object) -> str:
    return json.dumps({"action": "announce", "info_hash": HASH.decode(), "peer_id": PEER.decode(), **fields})


@pytest.mark.parametrize(
    ("frame", "reason", "names_swarm", "kind"),
    [
        ("{", "invalid JSON", False, None),
        (b"\xff\xfe", "invalid JSON", False, None),
        ("[1]", "invalid request: not a JSON object", False, None),
        ('{"action":"connect"}', "invalid action in WS request: 'connect'", False, None),
        ('{"action":"announce","info_hash":"short"}', "invalid info_hash", False, None),
        (_request(peer_id="€" * 20), "invalid peer_id", False, None),
        (_request(answer={"sdp": "a"}), "invalid `to_peer_id` (required with `answer`)", False, None),
        (_request(answer={"sdp": "a"}, to_peer_id=PEER.decode()), "invalid offer_id", False, None),
        (
            _request(answer={"x": 1}, to_peer_id=PEER.decode(), offer_id=OFFER.decode()),
            "invalid answer",
            True,
            None,
        ),
        (_request(event="bogus"), "invalid event", True, "announce"),
        (_request(offers={}), "invalid offers", True, "announce"),
        (_request(numwant=-1), "invalid numwant", True, "announce"),
        (_request(numwant="9" * 10), "invalid numwant", True, "announce"),
        (
            '{"action":"scrape"}',
            "scrape needs info_hash: listing every swarm is not offered",
            False,
            "scrape",
        ),
        ('{"action":"scrape","info_hash":5}', "invalid info_hash", False, "scrape"),
        ('{"action":"scrape","info_hash":["' + "x" * 20 + '"]' + "}", None, False, None),
    ],
)
def test_malformed_requests_get_typed_errors(
    frame: str | bytes, reason: str | None, names_swarm: bool, kind: str | None
) -> None:
    if reason is None:
        assert isinstance(decode_request(frame), Scrape)
        return
    with pytest.raises(TrackerRequestError) as caught:
        decode_request(frame)
    error = caught.value
    assert isinstance(error, TrackerWireError) and isinstance(error, RemoteError)
    assert error.reason == reason
    assert (error.info_hash == HASH.decode()) is names_swarm
    assert error.request == kind


def test_request_bounds_offers_scrapes_and_size() -> None:
    offers = [{"offer": {"sdp": f"s{n}"}, "offer_id": f"{n:020d}"} for n in range(12)]
    offers.insert(3, {"offer": {"sdp": "bad id"}, "offer_id": "short"})  # skipped, not refused
    announce = decode_request(_request(offers=offers), max_offers=10)
    assert isinstance(announce, Announce) and len(announce.offers) == 10
    assert announce.numwant is None  # absent: as many as there are offers
    stopped = decode_request(_request(event="stopped", numwant="garbage", offers=5))
    assert isinstance(stopped, Announce) and stopped.event == "stopped"  # leaving is always accepted
    assert decode_request(_request(left="0")).seed  # type: ignore[union-attr]
    assert not decode_request(_request(left=True)).seed  # type: ignore[union-attr]
    with pytest.raises(TrackerRequestError, match="too many info_hash values"):
        decode_request(
            json.dumps({"action": "scrape", "info_hash": [HASH.decode()] * 3}), max_scrape_hashes=2
        )
    frame = _request(offers=[{"offer": {"sdp": "x" * 2000}, "offer_id": OFFER.decode()}])
    with pytest.raises(TrackerRequestError, match="message too large"):
        decode_request(frame, max_size=1024)
    with pytest.raises(TrackerMessageError, match="message too large"):
        decode_response(frame, max_size=1024)


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        ("nope", "not JSON"),
        ("[]", "not a JSON object"),
        ('{"action":"connect"}', "unknown action"),
        ('{"action":"announce","info_hash":"short"}', "another swarm"),
        (
            json.dumps({"action": "announce", "info_hash": HASH.decode(), "offer": {"sdp": "x"}}),
            "malformed offer",
        ),
        (
            json.dumps(
                {"action": "announce", "info_hash": HASH.decode(), "answer": {}, "peer_id": PEER.decode()}
            ),
            "malformed answer",
        ),
    ],
)
def test_frames_a_client_ignores_say_why(frame: str, why: str) -> None:
    with pytest.raises(TrackerMessageError) as caught:
        decode_response(frame)
    assert caught.value.reason == why


def test_a_client_reads_only_sensible_numbers() -> None:
    frame = {"action": "announce", "info_hash": HASH.decode(), "interval": -5, "min interval": True}
    response = decode_response(json.dumps({**frame, "complete": 3, "incomplete": "2"}))
    assert isinstance(response, AnnounceResponse)
    assert (response.interval, response.min_interval, response.complete, response.incomplete) == (None,) * 4
    failure = decode_response(json.dumps({"action": "announce", "failure reason": 42, "info_hash": "x"}))
    assert failure == Failure(reason="42", about_swarm=True, info_hash=None, names_other_value=True)
