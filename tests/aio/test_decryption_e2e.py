"""AES-128 decryption through the loader, against the real local origin and ffmpeg-made streams.

Decrypted bytes are compared with OpenSSL's decryption of the same file (``openssl enc -d
-aes-128-cbc``, an implementation that is not ours) and with the clear twin of the bundled sample;
key requests are counted by the origin.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from p2ploader import (
    DecryptionError,
    HttpStatusError,
    LoadedSegment,
    LoaderConfig,
    UnsupportedEncryptionError,
    open_loader,
)
from p2ploader.sample import sample_path, vod_segment_bytes
from p2ploader.testing.origin import OriginServer
from tests.ffmpeg_streams import ROTATING_AES_KEYS, rewrite_media, rotating_aes_stream  # noqa: F401

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

AES = sample_path("aes")
SAMPLE_IV = "0f0e0d0c0b0a09080706050403020100"
CLEAR_TWIN = vod_segment_bytes(sample_path("ts") / "240p" / "index.m3u8")  # same encode, unencrypted
FAST = LoaderConfig(use_p2p=False, http_retry_backoff=0.01)
DECRYPT = FAST.evolve(decrypt=True)
TS_SYNC = 0x47


def openssl_decrypt(path: Path, key: bytes, iv_hex: str) -> bytes:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    out = subprocess.run(
        [openssl, "enc", "-d", "-aes-128-cbc", "-K", key.hex(), "-iv", iv_hex, "-in", str(path)],
        capture_output=True,
        check=True,
        timeout=30,
    )
    return out.stdout


def copy_of(root: Path, tmp_path: Path) -> Path:
    target = tmp_path / root.name
    shutil.copytree(root, target)
    return target


async def test_the_bundled_sample_is_handed_over_as_plaintext() -> None:
    ciphertext = vod_segment_bytes(AES / "index.m3u8")
    key = (AES / "key.bin").read_bytes()
    with OriginServer(AES) as origin:
        async with open_loader(origin.url_for("master.m3u8"), config=DECRYPT) as loader:
            got = [s async for s in loader.segments()]
            # Asked again without decrypting, the loader hands over what its cache holds (what it
            # would offer to peers); nothing is fetched again (counted below).
            cached = {s.segment.id.sequence: await loader.get_segment(s.segment, decrypt=False) for s in got}
            assert loader.statistics().cached_segments == len(got)
        key_requests = origin.statistics().requests_for("/key.bin")
    assert len(got) == 10 and all(s.decrypted for s in got)
    for loaded in got:
        number = loaded.segment.id.sequence
        assert loaded.data == openssl_decrypt(AES / f"seg_{number:05d}.ts", key, SAMPLE_IV)
        assert loaded.data == CLEAR_TWIN[number]
    assert key_requests == 1  # one key URI, fetched once for ten segments
    # What the loader keeps (and would offer to peers) is the ciphertext as published.
    assert {n: c.data for n, c in cached.items()} == dict(enumerate(ciphertext))
    assert all(c.source == "cache" for c in cached.values())


async def test_by_default_the_bytes_are_handed_over_as_published() -> None:
    ciphertext = vod_segment_bytes(AES / "index.m3u8")
    with OriginServer(AES) as origin:
        async with open_loader(origin.url_for("master.m3u8"), config=FAST) as loader:
            assert loader.config.decrypt is False
            got = [s async for s in loader.segments()]
            # The per-call argument overrides the setting, both ways.
            first = await loader.get_segment(loader.playlist.segments[0], decrypt=True)
        async with open_loader(origin.url_for("master.m3u8"), config=DECRYPT) as loader:
            raw = [s async for s in loader.segments(decrypt=False)]
        key_requests = origin.statistics().requests_for("/key.bin")
    assert [s.data for s in got] == ciphertext and not any(s.decrypted for s in got)
    assert first.decrypted and first.data == CLEAR_TWIN[0]
    assert [s.data for s in raw] == ciphertext
    assert key_requests == 1  # only the call that decrypted fetched the key


async def test_rotating_keys_without_iv_decrypt_with_the_media_sequence_number(
    rotating_aes_stream: Path,  # noqa: F811 (the session fixture imported above)
) -> None:
    video = rotating_aes_stream / "video"
    assert "IV=" not in (video / "index.m3u8").read_text()
    with OriginServer(rotating_aes_stream) as origin:
        async with open_loader(origin.url_for("master.m3u8"), config=DECRYPT) as loader:
            got = [s async for s in loader.segments()]
        stats = origin.statistics()
    assert len(got) == 6 and all(s.decrypted for s in got)
    for loaded in got:
        number = loaded.segment.id.sequence
        assert loaded.segment.key is not None and loaded.segment.key.iv is None
        key = ROTATING_AES_KEYS[number // 3]
        assert loaded.data == openssl_decrypt(video / f"seg_{number:03d}.ts", key, f"{number:032x}")
        assert loaded.data[0] == TS_SYNC and len(loaded.data) % 188 == 0
    assert stats.requests_for("/video/key0.bin") == 1
    assert stats.requests_for("/video/key1.bin") == 1


async def test_concurrent_first_requests_for_a_key_share_one_fetch() -> None:
    with OriginServer(AES) as origin:
        async with open_loader(origin.url_for("master.m3u8"), config=FAST) as loader:
            segments = loader.playlist.segments
            keys = await asyncio.gather(*(loader.fetch_key(s) for s in segments))
            # Decrypting every segment at once asks for the key again: served from memory.
            plain = await asyncio.gather(*(loader.get_segment(s, decrypt=True) for s in segments))
        key_requests = origin.statistics().requests_for("/key.bin")
    assert keys == [(AES / "key.bin").read_bytes()] * 10
    assert [p.data for p in plain] == CLEAR_TWIN
    assert key_requests == 1


async def test_a_failed_key_fetch_fails_every_waiter_and_the_next_caller_tries_again(tmp_path: Path) -> None:
    root = copy_of(AES, tmp_path)
    key = (root / "key.bin").read_bytes()
    (root / "key.bin").unlink()
    with OriginServer(root) as origin:
        async with open_loader(origin.url_for("master.m3u8"), config=FAST) as loader:
            segments = loader.playlist.segments[:3]
            failures = await asyncio.gather(*(loader.fetch_key(s) for s in segments), return_exceptions=True)
            assert origin.statistics().requests_for("/key.bin") == 1
            (root / "key.bin").write_bytes(key)
            assert await loader.fetch_key(segments[0]) == key
        assert origin.statistics().requests_for("/key.bin") == 2
    assert all(isinstance(f, HttpStatusError) and f.status == 404 for f in failures), failures


async def test_a_waiter_that_gives_up_does_not_cancel_the_shared_fetch() -> None:
    with OriginServer(AES) as origin:
        origin.inject("key.bin", delay=0.5)
        async with open_loader(origin.url_for("master.m3u8"), config=FAST) as loader:
            segment = loader.playlist.segments[0]
            impatient = asyncio.create_task(loader.fetch_key(segment))
            patient = asyncio.create_task(loader.fetch_key(segment))
            await asyncio.sleep(0.1)
            impatient.cancel()
            assert await asyncio.wait_for(patient, 10) == (AES / "key.bin").read_bytes()
        assert origin.statistics().requests_for("/key.bin") == 1


@pytest.mark.parametrize(
    ("tag", "method"),
    [
        ('#EXT-X-KEY:METHOD=SAMPLE-AES,URI="key.bin"', "SAMPLE-AES"),
        ('#EXT-X-KEY:METHOD=SAMPLE-AES-CTR,URI="key.bin"', "SAMPLE-AES-CTR"),
        ('#EXT-X-KEY:METHOD=AES-128,URI="key.bin",KEYFORMAT="com.example.drm"', "AES-128"),
    ],
)
async def test_methods_we_do_not_decrypt_are_a_typed_error(tmp_path: Path, tag: str, method: str) -> None:
    root = copy_of(AES, tmp_path)
    rewrite_media(
        root / "index.m3u8", lambda lines: [tag if line.startswith("#EXT-X-KEY") else line for line in lines]
    )
    ciphertext = vod_segment_bytes(AES / "index.m3u8")
    with OriginServer(root) as origin:
        async with open_loader(origin.url_for("master.m3u8"), config=DECRYPT) as loader:
            with pytest.raises(UnsupportedEncryptionError) as info:
                await loader.get_segment(loader.playlist.segments[0])
            # Without decryption the segment passes as published.
            loaded = await loader.get_segment(loader.playlist.segments[0], decrypt=False)
        key_requests = origin.statistics().requests_for("/key.bin")
    assert info.value.method == method and info.value.segment == "v0#0"
    assert loaded.data == ciphertext[0] and not loaded.decrypted
    assert key_requests == 0  # nothing to decrypt with: the key is not even fetched


async def test_a_clear_stream_passes_through_with_decryption_on() -> None:
    root = sample_path("ts")
    with OriginServer(root) as origin:
        async with open_loader(origin.url_for("master.m3u8"), config=DECRYPT, rendition="v0") as loader:
            got = [s async for s in loader.segments()]
    assert [s.data for s in got] == CLEAR_TWIN and not any(s.decrypted for s in got)


async def test_a_wrong_key_raises_instead_of_handing_over_garbage(tmp_path: Path) -> None:
    root = copy_of(AES, tmp_path)
    (root / "key.bin").write_bytes(bytes(16))  # the origin serves a key that is not the one used
    with OriginServer(root) as origin:
        async with open_loader(origin.url_for("master.m3u8"), config=DECRYPT) as loader:
            got: list[LoadedSegment] = []

            async def play_all() -> None:
                async for loaded in loader.segments():
                    got.append(loaded)

            with pytest.raises(DecryptionError, match="padding") as info:
                await play_all()
    assert got == [] and info.value.segment == "v0#0"


async def test_a_key_of_the_wrong_length_is_a_typed_error(tmp_path: Path) -> None:
    root = copy_of(AES, tmp_path)
    (root / "key.bin").write_bytes(bytes(15))
    with OriginServer(root) as origin:
        async with open_loader(origin.url_for("master.m3u8"), config=DECRYPT) as loader:
            with pytest.raises(HttpStatusError, match="16 bytes"):
                await loader.get_segment(loader.playlist.segments[0])


async def test_a_large_segment_is_decrypted_in_steps_that_let_other_tasks_run(tmp_path: Path) -> None:
    # 2 MiB, a 10 s segment at 1.6 Mbit/s: 9 steps of 256 KiB, the event loop runs between them.
    plain = bytes(i % 253 for i in range(2 * 1024 * 1024))
    key = bytes(range(16))
    padder = padding.PKCS7(128).padder()
    encryptor = Cipher(algorithms.AES(key), modes.CBC((5).to_bytes(16, "big"))).encryptor()
    (tmp_path / "big.ts").write_bytes(
        encryptor.update(padder.update(plain) + padder.finalize()) + encryptor.finalize()
    )
    (tmp_path / "key.bin").write_bytes(key)
    (tmp_path / "index.m3u8").write_text(
        "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:5\n"
        '#EXT-X-KEY:METHOD=AES-128,URI="key.bin"\n#EXTINF:10,\nbig.ts\n#EXT-X-ENDLIST\n'
    )
    with OriginServer(tmp_path) as origin:
        async with open_loader(origin.url_for("index.m3u8"), config=FAST) as loader:
            segment = loader.playlist.segments[0]
            await loader.get_segment(segment)  # loaded and cached: what follows is decryption
            await loader.fetch_key(segment)
            ticks = 0
            running = True

            async def other_task() -> None:
                nonlocal ticks
                while running:
                    ticks += 1
                    await asyncio.sleep(0)

            other = asyncio.create_task(other_task())
            await asyncio.sleep(0)
            before = ticks
            loaded = await loader.get_segment(segment, decrypt=True)
            during = ticks - before
            running = False
            await other
    assert loaded.data == plain and loaded.decrypted
    assert during >= 8  # a turn of the other task between each two of the 9 steps
