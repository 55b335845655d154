"""The P2P Media Loader 2.x wire codec (:mod:`p2ploader.core.wire`).

Vectors come from two places:

* the worked examples of ``/work/shared/reference/p2p-media-loader.md`` §3.4-3.7 (``REF``);
* the real ``p2p-media-loader-core@2.3.1`` package, produced by running its own serializer
  (``lib/p2p/commands/index.js``: ``serializePeerCommand``) and deserializer under Node 20
  (``UPSTREAM_2_3_1``). Those bytes are pasted here as data; no upstream code is copied.
"""

from __future__ import annotations

import contextlib
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from p2ploader.core.wire import (
    CEND,
    CSTR,
    DEND,
    DSTR,
    MAX_GROUP_SIZE,
    MAX_GROUPS,
    CancelSegmentRequest,
    Command,
    DataChunk,
    SegmentAbsent,
    SegmentData,
    SegmentDataSendingCompleted,
    SegmentRequest,
    SegmentsAnnouncement,
    WireDecoder,
    chunk_segment_data,
    decode_command_body,
    decode_int,
    decode_similar_int_array,
    encode_command,
    encode_command_body,
    encode_int,
    encode_similar_int_array,
    frame_command_body,
    is_command_chunk,
    trim_announced_ids,
)
from p2ploader.errors import PeerProtocolError, UsageError


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def decode_one(messages: list[bytes], decoder: WireDecoder | None = None) -> Command | DataChunk:
    decoder = decoder or WireDecoder()
    out: list[Command | DataChunk] = []
    for message in messages:
        out.extend(decoder.receive(message))
    assert len(out) == 1, out
    return out[0]


# --------------------------------------------------------------------------- §3.4 Int

REF_INTS = [
    (0, "01 00"),
    (1, "01 01"),
    (127, "01 7f"),
    (128, "02 00 80"),
    (255, "02 00 ff"),
    (256, "02 01 00"),
    (567, "02 02 37"),
    (999, "02 03 e7"),
    (1234, "02 04 d2"),
    (32767, "02 7f ff"),
    (32768, "03 00 80 00"),
    (65535, "03 00 ff ff"),
    (1500000, "03 16 e3 60"),
    (-5, "01 85"),
    (-128, "02 80 80"),
    # UPSTREAM_2_3_1: serializeInt(2**53) as sent in a SegmentRequest `i`.
    (2**53, "07 20 00 00 00 00 00 00"),
]


@pytest.mark.parametrize(("value", "wire"), REF_INTS)
def test_int_reference_table_both_ways(value: int, wire: str) -> None:
    assert encode_int(value) == h(wire)
    assert decode_int(b"\xaa" + h(wire) + b"\xbb", 1) == (value, 1 + len(h(wire)))


@given(st.integers(min_value=-(2**119) + 1, max_value=2**119 - 1))
def test_int_round_trip(value: int) -> None:
    wire = encode_int(value)
    assert wire[0] >> 4 == 0 and 1 <= wire[0] & 0x0F <= 15
    assert decode_int(wire) == (value, len(wire))


def test_int_out_of_range_or_malformed() -> None:
    with pytest.raises(UsageError):
        encode_int(2**119)
    with pytest.raises(PeerProtocolError, match="truncated"):
        decode_int(h("03 00 01"))
    with pytest.raises(PeerProtocolError, match="zero length"):
        decode_int(h("00"))
    with pytest.raises(PeerProtocolError, match="type nibble 1"):
        decode_int(h("10 00"))
    with pytest.raises(PeerProtocolError):
        decode_int(b"")
    with pytest.raises(UsageError):
        decode_int(h("01 00"), -1)


# --------------------------------------------------------------------------- §3.5 SimilarIntArray

REF_ARRAYS = [
    ([100, 101, 102, 300], "10 02 01 03 64 65 66 02 01 01 2c"),
    ([103], "10 01 01 01 67"),
    ([70000, 70001, 70002], "10 01 03 01 11 03 70 71 72"),
    ([], "10 00"),
]


@pytest.mark.parametrize(("ids", "wire"), REF_ARRAYS)
def test_similar_int_array_reference_examples_both_ways(ids: list[int], wire: str) -> None:
    assert encode_similar_int_array(ids) == h(wire)
    assert decode_similar_int_array(h(wire)) == (tuple(ids), len(h(wire)))


def test_similar_int_array_decodes_in_group_order() -> None:
    # Reference §3.5; UPSTREAM_2_3_1 emits the same bytes: 10 02 02 01 02 2c 2d 01 01 64.
    wire = encode_similar_int_array([300, 100, 301])
    assert wire == h("10 02 02 01 02 2c 2d 01 01 64")
    assert decode_similar_int_array(wire)[0] == (300, 301, 100)


def test_repeated_high_groups_decode_to_their_union() -> None:
    # UPSTREAM_2_3_1's deserializer gives {l: [1, 2]} for these bytes as well.
    assert decode_command_body(h("00 6c 10 02 01 01 01 01 01 02")) == SegmentsAnnouncement(loaded=(1, 2))


# --------------------------------------------------------------------------- §3.7 complete messages

REF_MESSAGES: list[tuple[Command, str]] = [
    (
        SegmentRequest(segment_id=1234, request_id=567),
        "63 73 74 72 01 69 02 04 d2 72 02 02 37 63 65 6e 64",
    ),
    (
        SegmentRequest(segment_id=1234, request_id=567, byte_offset=65535),
        "63 73 74 72 01 69 02 04 d2 72 02 02 37 62 03 00 ff ff 63 65 6e 64",
    ),
    (
        SegmentData(segment_id=1234, size=1500000, request_id=567),
        "63 73 74 72 02 69 02 04 d2 73 03 16 e3 60 72 02 02 37 63 65 6e 64",
    ),
    (
        SegmentDataSendingCompleted(segment_id=1234, request_id=567),
        "63 73 74 72 03 69 02 04 d2 72 02 02 37 63 65 6e 64",
    ),
    (SegmentAbsent(segment_id=7, request_id=0), "63 73 74 72 04 69 01 07 72 01 00 63 65 6e 64"),
    (
        CancelSegmentRequest(segment_id=7, request_id=999),
        "63 73 74 72 05 69 01 07 72 02 03 e7 63 65 6e 64",
    ),
    (
        SegmentsAnnouncement(loaded=(100, 101, 102, 300), loading_by_http=(103,)),
        "63 73 74 72 00 6c 10 02 01 03 64 65 66 02 01 01 2c 70 10 01 01 01 67 63 65 6e 64",
    ),
    # UPSTREAM_2_3_1 extras.
    (SegmentRequest(segment_id=2**53, request_id=999), "6373747201690720000000000000720203e763656e64"),
    (SegmentsAnnouncement(loaded=(70000, 70001, 70002)), "63737472006c10010301110370717263656e64"),
]


@pytest.mark.parametrize(("command", "wire"), REF_MESSAGES)
def test_complete_messages_both_ways(command: Command, wire: str) -> None:
    assert encode_command(command) == [h(wire)]
    assert decode_one([h(wire)]) == command


def test_empty_announcement_upstream_omits_empty_lists() -> None:
    # Reference §3.7 lists {l: []} as `cstr 00 6c 10 00 cend`. The 2.3.1 serializer only writes
    # `l` / `p` when non-empty (`if (loaded?.length)`), so {l: [], p: []} goes out as
    # `cstr 00 cend` (UPSTREAM_2_3_1: 637374720063656e64). We send what upstream sends and accept both.
    assert encode_command(SegmentsAnnouncement()) == [h("63 73 74 72 00 63 65 6e 64")]
    assert decode_one([h("63 73 74 72 00 6c 10 00 63 65 6e 64")]) == SegmentsAnnouncement()
    assert decode_one([h("63 73 74 72 00 63 65 6e 64")]) == SegmentsAnnouncement()


def test_b_only_when_non_zero_and_field_order_is_free() -> None:
    assert encode_command_body(SegmentRequest(segment_id=1, request_id=2, byte_offset=0)) == h(
        "01 69 01 01 72 01 02"
    )
    assert decode_command_body(h("01 69 01 01 72 01 02 62 01 00")) == SegmentRequest(
        segment_id=1, request_id=2
    )
    assert decode_command_body(h("01 72 02 02 37 69 02 04 d2")) == SegmentRequest(
        segment_id=1234, request_id=567
    )
    assert decode_command_body(h("02 72 01 01 73 01 05 69 01 09")) == SegmentData(
        segment_id=9, request_id=1, size=5
    )


# --------------------------------------------------------------------------- §3.6 framing


@pytest.mark.parametrize(
    ("length", "count", "slice_size"),
    [(65527, 1, 65527), (65528, 2, 32764), (131055, 3, 43685), (200000, 4, 50000)],
)
def test_reference_split_table(length: int, count: int, slice_size: int) -> None:
    body = bytes(k % 251 for k in range(length))
    messages = frame_command_body(body)
    assert len(messages) == count
    assert all(len(m) <= 65535 for m in messages)
    assert len(messages[0]) - 8 == slice_size
    assert b"".join(m[4:-4] for m in messages) == body
    if count == 1:
        assert messages[0][:4] == CSTR and messages[0][-4:] == CEND
    else:
        assert messages[0][:4] == CSTR and messages[0][-4:] == DEND
        assert all(m[:4] == DSTR and m[-4:] == DEND for m in messages[1:-1])
        assert messages[-1][:4] == DSTR and messages[-1][-4:] == CEND


def test_long_announcement_split_like_upstream() -> None:
    # UPSTREAM_2_3_1: serializePeerCommand({c: 0, l: [0, 3, ..., 117]}, 20).
    command = SegmentsAnnouncement(loaded=tuple(range(0, 120, 3)))
    expected = [
        h("63737472006c10010128000306090c0f64656e64"),
        h("647374721215181b1e2124272a2d303364656e64"),
        h("6473747236393c3f4245484b4e51545764656e64"),
        h("647374725a5d606366696c6f727563656e64"),
    ]
    assert encode_command(command, max_message_size=20) == expected
    decoder = WireDecoder()
    assert [decoder.receive(m) for m in expected] == [[], [], [], [command]]


def test_small_max_message_size_is_respected_where_upstream_overshoots() -> None:
    # UPSTREAM_2_3_1 with M=11 adds only one slice and emits 15-byte messages
    # (63737472006c100101140164656e64 | ...). We keep adding slices until everything fits.
    command = SegmentsAnnouncement(loaded=tuple(range(1, 21)))
    messages = encode_command(command, max_message_size=11)
    assert all(len(m) <= 11 for m in messages)
    assert len(messages) == 9
    assert decode_one(messages) == command
    # With M=20 upstream's single extra slice is enough and both agree (UPSTREAM_2_3_1 bytes).
    assert encode_command(command, max_message_size=20) == [
        h("63737472006c1001011401020364656e64"),
        h("647374720405060708090a0b0c64656e64"),
        h("647374720d0e0f101112131463656e64"),
    ]


def test_data_chunks_between_command_slices_and_unequal_slices() -> None:
    decoder = WireDecoder()
    body = encode_command_body(SegmentData(segment_id=5, request_id=6, size=7))
    assert decoder.receive(CSTR + body[:1] + DEND) == []
    assert decoder.pending_command_bytes == 1
    assert decoder.receive(b"payload") == [DataChunk(data=b"payload")]
    assert decoder.receive(DSTR + DEND) == []  # an empty middle slice
    assert decoder.receive(DSTR + body[1:3] + DEND) == []
    assert decoder.receive(DSTR + body[3:] + CEND) == [SegmentData(segment_id=5, request_id=6, size=7)]
    assert decoder.pending_command_bytes is None


def test_framing_out_of_order() -> None:
    decoder = WireDecoder()
    with pytest.raises(PeerProtocolError, match="dstr"):
        decoder.receive(DSTR + b"\x00" + CEND)
    assert decoder.receive(CSTR + b"\x00l" + DEND) == []
    with pytest.raises(PeerProtocolError, match="cstr"):
        decoder.receive(CSTR + b"\x00" + CEND)
    assert decoder.pending_command_bytes is None
    # The decoder stays usable after an error.
    assert decoder.receive(CSTR + b"\x00" + CEND) == [SegmentsAnnouncement()]
    with pytest.raises(PeerProtocolError, match="empty command"):
        decoder.receive(CSTR + CEND)


def test_classification_matches_upstream() -> None:
    # UPSTREAM_2_3_1 isCommandChunk: [cstr 00] -> false, [cstr 00 cend] -> true, [cstr cend] -> true,
    # [cstr aa dend] -> true.
    assert not is_command_chunk(CSTR + b"\x00")
    assert is_command_chunk(CSTR + b"\x00" + CEND)
    assert is_command_chunk(CSTR + CEND)
    assert is_command_chunk(CSTR + b"\xaa" + DEND)
    assert not is_command_chunk(b"cstrend")  # 7 bytes: markers would overlap
    assert WireDecoder().receive(b"") == [DataChunk(data=b"")]
    assert WireDecoder().receive(b"cst") == [DataChunk(data=b"cst")]
    # The hazard: a data chunk with both markers is taken for a command (upstream does the same).
    with pytest.raises(PeerProtocolError):
        WireDecoder().receive(CSTR + b"\xff\xfe media bytes" + CEND)


def test_non_binary_message() -> None:
    with pytest.raises(PeerProtocolError, match="non-binary"):
        WireDecoder().receive("cstr\x00cend")  # type: ignore[arg-type]
    assert WireDecoder().receive(bytearray(b"ab")) == [DataChunk(data=b"ab")]  # type: ignore[arg-type]


# --------------------------------------------------------------------------- decoding errors

BAD_BODIES = [
    (b"", "truncated"),
    (h("06 69 01 01 72 01 01"), "unknown command code 6"),
    (h("ff"), "unknown command code 255"),
    (h("01 69 31 01 72 01 01"), "unknown type nibble 3"),
    (h("01 69 f1 01 72 01 01"), "unknown type nibble 15"),
    (h("01 69 20 00 72 01 01"), "must be an Int"),  # a String where an Int belongs
    (h("01 69 10 00 72 01 01"), "must be an Int"),
    (h("00 6c 01 01"), "must be a SimilarIntArray"),
    (h("01 69 02 04"), "truncated"),
    (h("01 69"), "truncated"),  # upstream decodes this as {i: 0}
    (h("00 6c 10 02 01 03 64 65"), "truncated"),
    (h("00 6c 10 02 01 01 64"), "truncated"),
    (h("00 6c"), "truncated"),
    (h("00 6c 10"), "truncated"),
    (h("01 69 01 01"), "missing field"),
    (h("01 72 01 01"), "missing field"),
    (h("02 69 01 01 72 01 01"), "missing field"),
    (h("03 69 01 01"), "missing field"),
    (h("01 69 01 01 69 01 02 72 01 01"), "duplicate field 'i'"),
    (h("00 6c 10 00 6c 10 00"), "duplicate field 'l'"),
    (h("01 69 01 85 72 01 01"), "negative"),
    (h("01 69 01 01 72 01 81"), "negative"),
    (h("01 69 01 01 72 01 01 62 01 81"), "negative"),
    (h("02 69 01 01 73 01 81 72 01 01"), "negative"),
    (h("00 6c 10 01 01 81 05"), "negative header"),
    (h("01 69 00 72 01 01"), "zero length"),
    (h("01 78 01 01 69 01 01 72 01 01"), "unknown field 'x'"),
    (h("01 6c 10 00 69 01 01 72 01 01"), "unknown field 'l'"),
    (h("02 69 01 01 62 01 01 72 01 01 73 01 01"), "unknown field 'b'"),
    (h("04 69 01 01 72 01 01 73 01 01"), "unknown field 's'"),
    (h("00 00 10 00"), "unknown field 0x00"),
    (h("00 6c 10 01 01 00"), "empty group"),
]


@pytest.mark.parametrize(("body", "message"), BAD_BODIES)
def test_malformed_commands(body: bytes, message: str) -> None:
    with pytest.raises(PeerProtocolError, match=message):
        decode_command_body(body)
    if body:
        with pytest.raises(PeerProtocolError, match=message):
            WireDecoder().receive(CSTR + body + CEND)


# --------------------------------------------------------------------------- §3.12 the 255 limits


def upstream_like_array(ids: list[int]) -> bytes:
    """What the 2.2.2 / 2.3.1 serializer writes: no split, counts and G truncated to one byte."""
    blocks: dict[int, list[int]] = {}
    for value in ids:
        blocks.setdefault(value & ~0xFF, []).append(value & 0xFF)
    out = bytearray((0x10, len(blocks) & 0xFF))
    for high, lows in blocks.items():
        out += encode_int(high | (len(lows) & 0xFF)) + bytes(lows)
    return bytes(out)


def group_sizes(wire: bytes) -> list[int]:
    """Walk a SimilarIntArray and return its groups' member counts."""
    assert wire[0] == 0x10
    pos, sizes = 2, []
    for _ in range(wire[1]):
        header, pos = decode_int(wire, pos)
        sizes.append(header & 0xFF)
        pos += header & 0xFF
    assert pos == len(wire)
    return sizes


def test_upstream_overflowed_full_block_is_rejected() -> None:
    body = b"\x00l" + upstream_like_array(list(range(256)))
    # UPSTREAM_2_3_1 serializes l=[0..255] as 63737472 006c 1001 0100 00 0102 0304 05 ...
    assert (CSTR + body)[:16] == h("63737472006c10010100000102030405")
    with pytest.raises(PeerProtocolError):
        WireDecoder().receive(CSTR + body + CEND)


def test_upstream_overflowed_group_count_is_rejected() -> None:
    # UPSTREAM_2_3_1 writes G = 300 mod 256 = 44 (0x2c) here and its own decoder *silently* returns
    # the first 44 ids plus a junk field "\x02" (the next group header read as a String), dropping
    # any `p`. We refuse the announcement instead.
    ids = [k * 256 for k in range(300)]
    body = b"\x00l" + upstream_like_array(ids) + b"p" + encode_similar_int_array([5])
    assert body[2:4] == h("10 2c")
    with pytest.raises(PeerProtocolError, match="unknown field 0x02"):
        decode_command_body(body)


def test_full_block_is_split_into_two_groups() -> None:
    wire = encode_similar_int_array(list(range(256)))
    # UPSTREAM_2_3_1's deserializer decodes these bytes to all 256 ids.
    assert wire == h("10 02 02 00 ff") + bytes(range(255)) + h("01 01 ff")
    assert decode_similar_int_array(wire)[0] == tuple(range(256))
    assert group_sizes(encode_similar_int_array([7] * 600)) == [255, 255, 90]


def test_more_than_255_blocks_drops_the_oldest() -> None:
    ids = [k * 256 + 1 for k in range(300)]
    wire = encode_similar_int_array(ids)
    assert wire[1] == MAX_GROUPS
    assert trim_announced_ids(ids) == tuple(ids[45:])
    assert decode_similar_int_array(wire)[0] == tuple(ids[45:])
    # Input order is kept for the surviving groups.
    shuffled = ids[::-1]
    assert decode_similar_int_array(encode_similar_int_array(shuffled))[0] == tuple(shuffled[:255])
    command = SegmentsAnnouncement(loaded=ids, loading_by_http=[1])
    decoded = decode_one(encode_command(command))
    assert decoded == SegmentsAnnouncement(loaded=ids[45:], loading_by_http=(1,))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(st.integers(0, 2**17), st.integers(0, 600), st.integers(0, 2**53)),
        max_size=2000,
    )
)
def test_groups_never_exceed_255(ids: list[int]) -> None:
    wire = encode_similar_int_array(ids)
    sizes = group_sizes(wire)
    assert len(sizes) <= MAX_GROUPS
    assert all(1 <= size <= MAX_GROUP_SIZE for size in sizes)
    kept = trim_announced_ids(ids)
    decoded, end = decode_similar_int_array(wire, max_ids=10**6)
    assert end == len(wire)
    assert Counter(decoded) == Counter(kept)
    if len({v >> 8 for v in ids}) <= 100:
        assert kept == tuple(ids)


# --------------------------------------------------------------------------- bounds


def test_command_size_bound() -> None:
    decoder = WireDecoder(max_command_size=64)
    with pytest.raises(PeerProtocolError, match="longer than 64"):
        decoder.receive(CSTR + bytes(65) + CEND)
    assert decoder.receive(CSTR + bytes(40) + DEND) == []
    assert decoder.receive(DSTR + bytes(24) + DEND) == []
    assert decoder.pending_command_bytes == 64
    with pytest.raises(PeerProtocolError, match="longer than 64"):
        decoder.receive(DSTR + b"\x00" + DEND)
    assert decoder.pending_command_bytes is None
    big = SegmentsAnnouncement(loaded=range(0, 40_000, 2))
    messages = encode_command(big, max_message_size=1000)
    assert sum(len(m) - 8 for m in messages) > 20_000
    small = WireDecoder(max_command_size=20_000, max_announced_ids=10**6)
    errors: list[str] = []
    for message in messages:
        try:
            small.receive(message)
        except PeerProtocolError as exc:
            errors.append(str(exc))
            break
    assert errors and "longer than" in errors[0]
    assert decode_one(messages, WireDecoder(max_announced_ids=10**6)) == big


def test_announced_ids_bound() -> None:
    twenty = SegmentsAnnouncement(loaded=range(15), loading_by_http=range(100, 105))
    assert decode_one(encode_command(twenty), WireDecoder(max_announced_ids=20)) == twenty
    more = SegmentsAnnouncement(loaded=range(15), loading_by_http=range(100, 106))
    with pytest.raises(PeerProtocolError, match="limit"):
        WireDecoder(max_announced_ids=20).receive(encode_command(more)[0])
    with pytest.raises(PeerProtocolError, match="limit"):
        WireDecoder().receive(encode_command(SegmentsAnnouncement(loaded=range(20_001)))[0])


@pytest.mark.parametrize(
    "ids",
    [(1, True), (1, -2), (0, 2**119), (1, 2.0), (3, "4"), (False,)],
    ids=["bool", "negative", "too big", "float", "str", "only a bool"],
)
def test_every_announced_id_is_checked(ids: tuple[object, ...]) -> None:
    # Lists of ids are checked all at once (a fast path for plain ints); the one at fault is named.
    with pytest.raises(UsageError, match="item"):
        SegmentsAnnouncement(loaded=ids)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="SimilarIntArray member"):
        encode_similar_int_array(ids)  # type: ignore[arg-type]
    assert SegmentsAnnouncement(loaded=(0, 2**119 - 1)).loaded == (0, 2**119 - 1)
    assert SegmentsAnnouncement(loaded=()).loaded == ()


def test_argument_validation() -> None:
    with pytest.raises(UsageError):
        SegmentRequest(segment_id=-1, request_id=0)
    with pytest.raises(UsageError):
        SegmentData(segment_id=1, request_id=True, size=0)
    with pytest.raises(UsageError):
        SegmentAbsent(segment_id=2**119, request_id=0)
    with pytest.raises(UsageError):
        SegmentsAnnouncement(loaded=(1, -2))
    with pytest.raises(UsageError):
        encode_command(SegmentAbsent(segment_id=1, request_id=1), max_message_size=8)
    with pytest.raises(UsageError):
        chunk_segment_data(b"x", max_message_size=0)
    with pytest.raises(UsageError):
        WireDecoder(max_command_size=0)
    with pytest.raises(UsageError):
        encode_command_body("not a command")  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        SegmentsAnnouncement(loaded=5)  # type: ignore[arg-type]
    assert SegmentsAnnouncement(loaded=[3, 1]).loaded == (3, 1)
    assert "<70000 bytes>" in repr(DataChunk(data=bytes(70000)))


# --------------------------------------------------------------------------- data chunks


def test_chunk_segment_data_sizes() -> None:
    data = bytes(k % 256 for k in range(150_000))
    chunks = chunk_segment_data(data)
    assert [len(c) for c in chunks] == [65535, 65535, 18930]
    assert b"".join(chunks) == data
    assert chunk_segment_data(b"") == []


def test_chunk_segment_data_avoids_lookalike_commands() -> None:
    m = 64
    data = CSTR + bytes(m - 8) + CEND + b"dstr" + bytes(m - 9) + DEND + b"tail"
    chunks = chunk_segment_data(data, max_message_size=m)
    assert not any(is_command_chunk(c) for c in chunks)
    assert b"".join(chunks) == data
    assert len(chunks[0]) == m - 1


marker_soup = st.lists(st.sampled_from([CSTR, CEND, DSTR, DEND, b"d", b"n", b"x", b"\x00"]), max_size=60).map(
    b"".join
)


@settings(max_examples=300, deadline=None)
@given(marker_soup, st.integers(1, 40))
def test_chunked_data_is_never_taken_for_a_command(data: bytes, max_message_size: int) -> None:
    chunks = chunk_segment_data(data, max_message_size=max_message_size)
    assert all(1 <= len(c) <= max_message_size for c in chunks)
    assert b"".join(chunks) == data
    decoder = WireDecoder()
    received = [item for c in chunks for item in decoder.receive(c)]
    assert all(isinstance(item, DataChunk) for item in received)
    assert b"".join(item.data for item in received if isinstance(item, DataChunk)) == data


# --------------------------------------------------------------------------- round trips

ids = st.integers(min_value=0, max_value=2**53)
small_ids = st.integers(min_value=0, max_value=5000)
id_lists = st.lists(st.one_of(ids, small_ids), max_size=300)

commands: st.SearchStrategy[Command] = st.one_of(
    st.builds(SegmentsAnnouncement, loaded=id_lists, loading_by_http=id_lists),
    st.builds(SegmentRequest, segment_id=ids, request_id=ids, byte_offset=st.one_of(st.just(0), ids)),
    st.builds(SegmentData, segment_id=ids, request_id=st.integers(0, 999), size=ids),
    st.builds(SegmentDataSendingCompleted, segment_id=ids, request_id=ids),
    st.builds(SegmentAbsent, segment_id=ids, request_id=ids),
    st.builds(CancelSegmentRequest, segment_id=ids, request_id=ids),
)


def normalised(command: Command) -> Command:
    """What decoding gives back: announcement ids in group order (and trimmed)."""
    if not isinstance(command, SegmentsAnnouncement):
        return command

    def group_order(values: tuple[int, ...]) -> tuple[int, ...]:
        wire = encode_similar_int_array(values)
        return decode_similar_int_array(wire, max_ids=10**6)[0]

    return SegmentsAnnouncement(
        loaded=group_order(command.loaded), loading_by_http=group_order(command.loading_by_http)
    )


@settings(max_examples=500, deadline=None)
@given(commands, st.one_of(st.just(65535), st.integers(9, 300)))
def test_every_command_round_trips(command: Command, max_message_size: int) -> None:
    messages = encode_command(command, max_message_size=max_message_size)
    assert all(len(m) <= max_message_size and is_command_chunk(m) for m in messages)
    assert decode_one(messages) == normalised(command)
    assert decode_command_body(encode_command_body(command)) == normalised(command)


@given(st.lists(small_ids, unique=True, max_size=500).map(sorted))
def test_sorted_unique_announcements_round_trip_exactly(values: list[int]) -> None:
    command = SegmentsAnnouncement(loaded=values, loading_by_http=values[:3])
    assert decode_one(encode_command(command)) == command


# --------------------------------------------------------------------------- fuzzing

FUZZ = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def feed(decoder: WireDecoder, messages: list[bytes], *, bound: int = 4096) -> None:
    for message in messages:
        try:
            out = decoder.receive(message)
        except PeerProtocolError:
            continue
        assert len(out) <= 1
        for item in out:
            assert isinstance(
                item,
                DataChunk
                | SegmentsAnnouncement
                | SegmentRequest
                | SegmentData
                | SegmentDataSendingCompleted
                | SegmentAbsent
                | CancelSegmentRequest,
            )
        pending = decoder.pending_command_bytes
        assert pending is None or pending <= bound


def fuzz_decoder() -> WireDecoder:
    return WireDecoder(max_command_size=4096, max_announced_ids=500)


@FUZZ
@given(st.lists(st.binary(max_size=200), max_size=10))
def test_fuzz_arbitrary_messages(messages: list[bytes]) -> None:
    feed(fuzz_decoder(), messages)


frames = st.tuples(st.sampled_from([CSTR, DSTR]), st.binary(max_size=120), st.sampled_from([CEND, DEND]))


@FUZZ
@given(st.lists(frames.map(b"".join), max_size=8))
def test_fuzz_framed_garbage(messages: list[bytes]) -> None:
    feed(fuzz_decoder(), messages)


field_values = st.one_of(
    st.binary(max_size=12),
    ids.map(encode_int),
    st.lists(small_ids, max_size=20).map(encode_similar_int_array),
)
structured_bodies = st.tuples(
    st.integers(0, 7),
    st.lists(st.tuples(st.sampled_from(b"irbslpx\x00"), field_values), max_size=5),
).map(lambda t: bytes((t[0],)) + b"".join(bytes((name,)) + value for name, value in t[1]))


@FUZZ
@given(structured_bodies)
def test_fuzz_structured_bodies(body: bytes) -> None:
    feed(fuzz_decoder(), [CSTR + body + CEND])
    with contextlib.suppress(PeerProtocolError):
        decode_command_body(body, max_announced_ids=500)


@st.composite
def mutated_streams(draw: st.DrawFn) -> list[bytes]:
    cmds = draw(st.lists(commands, min_size=1, max_size=3))
    size = draw(st.integers(9, 80))
    messages = [m for c in cmds for m in encode_command(c, max_message_size=size)]
    messages.insert(draw(st.integers(0, len(messages))), draw(st.binary(max_size=30)))
    for _ in range(draw(st.integers(1, 4))):
        k = draw(st.integers(0, len(messages) - 1))
        message = bytearray(messages[k])
        op = draw(st.sampled_from(["flip", "truncate", "delete", "insert", "drop", "duplicate"]))
        pos = draw(st.integers(0, max(len(message) - 1, 0)))
        if op == "flip" and message:
            message[pos] ^= draw(st.integers(1, 255))
        elif op == "truncate":
            del message[pos:]
        elif op == "delete" and message:
            del message[pos]
        elif op == "insert":
            message[pos:pos] = draw(st.binary(min_size=1, max_size=4))
        if op == "drop":
            del messages[k]
            if not messages:
                messages.append(b"")
        elif op == "duplicate":
            messages.insert(k, bytes(message))
        else:
            messages[k] = bytes(message)
    return messages


@FUZZ
@given(mutated_streams())
def test_fuzz_mutated_valid_messages(messages: list[bytes]) -> None:
    feed(WireDecoder(max_command_size=1 << 20, max_announced_ids=2000), messages, bound=1 << 20)


def test_an_announcement_encoded_again_gives_fresh_equal_messages() -> None:
    # Announcements are encoded once for every neighbour (a memo): the caller's list is its own.
    announcement = SegmentsAnnouncement(loaded=range(100, 140), loading_by_http=(141,))
    first = encode_command(announcement)
    first.append(b"junk")
    second = encode_command(announcement)
    assert second == encode_command(SegmentsAnnouncement(loaded=range(100, 140), loading_by_http=(141,)))
    assert b"junk" not in second
    assert decode_one(second) == announcement
    assert encode_command(announcement, max_message_size=20) != second  # the size is part of the key


def test_a_decoded_announcement_respects_each_decoders_limit() -> None:
    # Equal bodies are decoded once (a memo), but never past a stricter decoder's id limit.
    message = encode_command(SegmentsAnnouncement(loaded=range(30)))[0]
    assert WireDecoder(max_announced_ids=30).receive(message) == [SegmentsAnnouncement(loaded=range(30))]
    with pytest.raises(PeerProtocolError, match="limit"):
        WireDecoder(max_announced_ids=29).receive(message)
    assert WireDecoder().receive(message) == [SegmentsAnnouncement(loaded=range(30))]


def test_a_large_announcement_is_decoded_without_the_memo() -> None:
    # Bodies above the memo's size bound (a hostile peer's, or a VOD's whole map) are decoded every
    # time, so the memo cannot pin much memory.
    big = SegmentsAnnouncement(loaded=range(0, 6000, 3))
    messages = encode_command(big)
    assert decode_one(messages) == big
    assert decode_one(encode_command(big)) is not decode_one(encode_command(big))
    small = encode_command(SegmentsAnnouncement(loaded=range(10)))
    assert decode_one(small) is decode_one(small)


def test_one_announcement_message_is_decoded_under_each_decoders_own_bound() -> None:
    # Whole small commands are decoded through a memo keyed by the message: the bound on ids is
    # part of the key, so a decoder with a smaller bound still refuses what another accepted.
    (message,) = encode_command(SegmentsAnnouncement(loaded=range(30)))
    assert WireDecoder(max_announced_ids=30).receive(message) == [SegmentsAnnouncement(loaded=range(30))]
    with pytest.raises(PeerProtocolError, match="announcement limit"):
        WireDecoder(max_announced_ids=29).receive(message)
    assert WireDecoder().receive(bytearray(message)) == WireDecoder().receive(memoryview(message))
