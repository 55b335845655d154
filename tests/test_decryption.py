"""AES-128 segment decryption (p2ploader.decryption): IVs, padding, and the typed errors."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from p2ploader import DecryptionError, P2PLoaderError, RemoteError, UnsupportedEncryptionError
from p2ploader.core.segments import KeyInfo, Segment, SegmentId
from p2ploader.decryption import decrypt_in_steps, decrypt_segment, decryptable_key, segment_iv

KEY = bytes(range(16))
IV = bytes(range(15, -1, -1))


def segment(sequence: int = 7, *, key: KeyInfo | None = None) -> Segment:
    return Segment(id=SegmentId("v0", sequence), url="http://o/s.ts", duration=2.0, key=key)


def aes(iv: bytes | None = None, method: str = "AES-128", key_format: str | None = None) -> KeyInfo:
    return KeyInfo(method=method, url="http://o/key.bin", iv=iv, key_format=key_format)


def encrypt(plain: bytes, key: bytes, iv: bytes, *, pad: bool = True) -> bytes:
    if pad:
        padder = padding.PKCS7(128).padder()
        plain = padder.update(plain) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return encryptor.update(plain) + encryptor.finalize()


def test_the_iv_is_the_tags_when_it_has_one() -> None:
    assert segment_iv(segment(7, key=aes(IV))) == IV


@pytest.mark.parametrize(
    ("sequence", "iv"),
    [
        (0, bytes(16)),
        (7, bytes(15) + b"\x07"),
        (258, bytes(14) + b"\x01\x02"),
        (2**64 - 1, bytes(8) + b"\xff" * 8),  # the largest media sequence number (RFC 8216 §4.2)
    ],
)
def test_without_an_iv_the_media_sequence_number_is_the_iv(sequence: int, iv: bytes) -> None:
    assert segment_iv(segment(sequence, key=aes())) == iv


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 31, 32, 1000])
def test_decrypt_removes_the_padding(size: int) -> None:
    plain = bytes(i % 251 for i in range(size))
    seg = segment(5, key=aes())
    data = encrypt(plain, KEY, segment_iv(seg))
    assert len(data) == (size // 16 + 1) * 16  # a full padding block when the size is a multiple
    assert decrypt_segment(seg, data, KEY) == plain


def test_decrypt_uses_the_tags_iv_over_the_sequence_number() -> None:
    plain = b"G" + bytes(187)
    seg = segment(5, key=aes(IV))
    assert decrypt_segment(seg, encrypt(plain, KEY, IV), KEY) == plain


def test_a_wrong_key_is_a_decryption_error_not_garbage() -> None:
    seg = segment(5, key=aes(IV))
    data = encrypt(b"G" + bytes(187), KEY, IV)
    with pytest.raises(DecryptionError, match="bad PKCS#7 padding") as info:
        decrypt_segment(seg, data, bytes(16))
    assert info.value.segment == "v0#5"
    assert isinstance(info.value, RemoteError)


@pytest.mark.parametrize("last", [0, 17, 255])
def test_a_pad_length_out_of_range_is_refused(last: int) -> None:
    seg = segment(1, key=aes(IV))
    data = encrypt(bytes(31) + bytes((last,)), KEY, IV, pad=False)
    with pytest.raises(DecryptionError, match="padding"):
        decrypt_segment(seg, data, KEY)


def test_pad_bytes_that_disagree_are_refused() -> None:
    seg = segment(1, key=aes(IV))
    data = encrypt(bytes(28) + b"\x04\x04\x03\x04", KEY, IV, pad=False)
    with pytest.raises(DecryptionError, match="padding"):
        decrypt_segment(seg, data, KEY)


@pytest.mark.parametrize("size", [0, 15, 33])
def test_a_ciphertext_that_is_not_whole_blocks_is_refused(size: int) -> None:
    with pytest.raises(DecryptionError, match="whole number of 16-byte AES blocks"):
        decrypt_segment(segment(key=aes(IV)), bytes(size), KEY)


@pytest.mark.parametrize("length", [0, 15, 17, 32])
def test_a_key_that_is_not_16_bytes_is_refused(length: int) -> None:
    with pytest.raises(DecryptionError, match="16 bytes"):
        decrypt_segment(segment(key=aes(IV)), bytes(32), bytes(length))


def test_a_clear_segment_has_no_key_to_decrypt_with() -> None:
    assert decryptable_key(segment()) is None
    assert decryptable_key(segment(key=aes(IV, key_format="identity"))) == aes(IV, key_format="identity")


@pytest.mark.parametrize(
    ("key", "shown"),
    [
        (aes(method="SAMPLE-AES"), "SAMPLE-AES is not supported"),
        (aes(method="SAMPLE-AES-CTR"), "SAMPLE-AES-CTR is not supported"),
        (
            aes(key_format="com.apple.streamingkeydelivery"),
            "AES-128 with KEYFORMAT 'com.apple.streamingkeydelivery' is not supported",
        ),
    ],
)
def test_other_methods_and_key_formats_are_a_typed_error(key: KeyInfo, shown: str) -> None:
    with pytest.raises(UnsupportedEncryptionError, match=shown) as info:
        decryptable_key(segment(3, key=key))
    assert info.value.method == key.method and info.value.key_format == key.key_format
    assert info.value.segment == "v0#3"
    assert isinstance(info.value, DecryptionError) and isinstance(info.value, P2PLoaderError)


@pytest.mark.parametrize(
    ("size", "step", "pauses"),
    # 2 MiB of plaintext is 2 MiB + 16 bytes of ciphertext (a whole padding block): 9 steps, a
    # pause between each two and one before the pieces are joined.
    [(100, 64, 2), (2 * 1024 * 1024, 256 * 1024, 9), (32, 1000, 0)],
)
def test_decrypting_in_steps_pauses_between_steps_and_gives_the_same_bytes(
    size: int, step: int, pauses: int
) -> None:
    plain = bytes(i % 249 for i in range(size))
    seg = segment(9, key=aes())
    data = encrypt(plain, KEY, segment_iv(seg))
    steps = decrypt_in_steps(seg, data, KEY, step_bytes=step)
    stops = 0
    while True:
        try:
            next(steps)
        except StopIteration as done:
            result = done.value
            break
        stops += 1
    assert result == plain and stops == pauses  # steps of whole blocks: 64 -> 64, 100 -> 112 bytes


def test_decrypting_in_steps_checks_before_the_first_step() -> None:
    with pytest.raises(DecryptionError, match="16 bytes"):
        next(decrypt_in_steps(segment(key=aes()), bytes(64), bytes(8)))
