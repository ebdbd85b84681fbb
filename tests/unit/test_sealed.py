"""Sealed files: round trips with and without a passphrase, and every way a file can be wrong
(passphrase, truncation, a flipped byte, frames swapped, data appended) refused with SealError."""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from kuberds.agent.sealed import END, FRAME, HEADER, SealError, is_encrypted, seal, unseal

PASSPHRASE = "correct horse battery staple"
SMALL_CHUNK = 256
# Compressible but not trivially: several frames at SMALL_CHUNK.
TEXT = b"".join(f"key:{i} value {i * i} {i % 7}\n".encode() for i in range(2000))


def sealed(data: bytes, passphrase: str | None = PASSPHRASE, chunk: int = SMALL_CHUNK) -> bytes:
    out = io.BytesIO()
    seal(io.BytesIO(data), out, passphrase, chunk=chunk)
    return out.getvalue()


def opened(blob: bytes, passphrase: str | None = PASSPHRASE) -> bytes:
    out = io.BytesIO()
    unseal(io.BytesIO(blob), out, passphrase)
    return out.getvalue()


def frames(blob: bytes) -> list[tuple[int, int, int]]:
    """(offset, kind, whole frame length) of every frame, read by the documented layout."""
    found, at = [], HEADER.size
    while at < len(blob):
        kind, length = FRAME.unpack_from(blob, at)
        found.append((at, kind, FRAME.size + length))
        at += FRAME.size + length
    return found


@pytest.mark.parametrize("passphrase", [None, PASSPHRASE], ids=["plain", "encrypted"])
@pytest.mark.parametrize(
    ("data", "chunk"),
    [(b"", SMALL_CHUNK), (b"hello", SMALL_CHUNK), (TEXT, SMALL_CHUNK), (os.urandom(200_000), 4096),
     (TEXT * 20, 1 << 20)],
    ids=["empty", "small", "several-chunks", "incompressible", "one-big-chunk"],
)  # fmt: skip
def test_round_trip(data: bytes, chunk: int, passphrase: str | None) -> None:
    out = io.BytesIO()
    result = seal(io.BytesIO(data), out, passphrase, chunk=chunk)
    blob = out.getvalue()
    assert result.plain_bytes == len(data) and result.sealed_bytes == len(blob)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    back = io.BytesIO()
    assert unseal(io.BytesIO(blob), back, passphrase) == result
    assert back.getvalue() == data
    if data:
        assert data not in blob, "compressed (and encrypted): the plain data is not in the file"
    assert [kind for _, kind, _ in frames(blob)][-1] == END


def test_several_frames_and_bounded_frames() -> None:
    blob = sealed(TEXT, chunk=SMALL_CHUNK)
    found = frames(blob)
    assert len(found) > 5
    assert all(length <= FRAME.size + SMALL_CHUNK + 16 for _, _, length in found)


def test_the_header_says_whether_the_file_is_encrypted() -> None:
    assert is_encrypted(io.BytesIO(sealed(b"x", PASSPHRASE)))
    assert not is_encrypted(io.BytesIO(sealed(b"x", None)))
    with pytest.raises(SealError, match="not a sealed file"):
        is_encrypted(io.BytesIO(b"REDIS0011" + bytes(100)))
    with pytest.raises(SealError, match="truncated"):
        is_encrypted(io.BytesIO(b"KRDSEAL"))


def test_encrypted_files_differ_each_time() -> None:
    """A fresh salt and nonce prefix per file."""
    assert sealed(TEXT) != sealed(TEXT)
    assert opened(sealed(TEXT)) == TEXT


def test_a_wrong_or_missing_passphrase_is_refused_clearly() -> None:
    blob = sealed(TEXT)
    with pytest.raises(SealError, match="wrong passphrase"):
        opened(blob, "not it")
    with pytest.raises(SealError, match="encrypted and no passphrase"):
        opened(blob, None)
    with pytest.raises(SealError, match="encrypted and no passphrase"):
        opened(blob, "")


def test_a_passphrase_for_an_unencrypted_file_is_fine() -> None:
    assert opened(sealed(TEXT, None), PASSPHRASE) == TEXT


def test_an_empty_passphrase_is_refused_when_sealing() -> None:
    with pytest.raises(ValueError, match="empty passphrase"):
        sealed(b"x", "")


@pytest.mark.parametrize("passphrase", [None, PASSPHRASE], ids=["plain", "encrypted"])
def test_truncation_is_detected(passphrase: str | None) -> None:
    blob = sealed(TEXT, passphrase, chunk=2048)
    found = frames(blob)
    # In the header, at and inside frame boundaries (the first, a middle one, the end frame), the last byte.
    cuts = {0, 3, HEADER.size - 1, HEADER.size, len(blob) - 1}
    cuts |= {offset + delta for offset, _, _ in (found[0], found[len(found) // 2], found[-1]) for delta in (0, 2, 9)}
    if passphrase is None:  # cheap without the key derivation: many more
        cuts |= set(range(0, len(blob), 7)) | {offset for offset, _, _ in found}
    for cut in sorted(cuts):
        with pytest.raises(SealError):
            opened(blob[:cut], passphrase)


@pytest.mark.parametrize("passphrase", [None, PASSPHRASE], ids=["plain", "encrypted"])
def test_a_flipped_byte_is_detected(passphrase: str | None) -> None:
    blob = sealed(TEXT, passphrase)
    found = frames(blob)
    # In a data body, in the end frame's body, and a frame's kind.
    positions = [found[1][0] + FRAME.size + 10, found[-1][0] + FRAME.size + 3, found[0][0], len(blob) - 1]
    for position in positions:
        damaged = bytearray(blob)
        damaged[position] ^= 0x01
        with pytest.raises(SealError):
            opened(bytes(damaged), passphrase)


def test_a_damaged_header_of_an_encrypted_file_is_detected() -> None:
    blob = sealed(TEXT)
    for position in (7, 8, 9, 13, 20, 40, HEADER.size - 1):  # version, flags, kdf, chunk, salt, nonce, check
        damaged = bytearray(blob)
        damaged[position] ^= 0x04
        with pytest.raises(SealError):
            opened(bytes(damaged))


@pytest.mark.parametrize("passphrase", [None, PASSPHRASE], ids=["plain", "encrypted"])
def test_swapped_frames_are_detected(passphrase: str | None) -> None:
    blob = sealed(TEXT, passphrase)
    (a, _, a_len), (b, _, b_len) = frames(blob)[1:3]
    assert a_len == b_len, "two full frames"
    swapped = blob[:a] + blob[b : b + b_len] + blob[a : a + a_len] + blob[b + b_len :]
    assert len(swapped) == len(blob) and swapped != blob
    with pytest.raises(SealError):
        opened(swapped, passphrase)


@pytest.mark.parametrize("passphrase", [None, PASSPHRASE], ids=["plain", "encrypted"])
def test_appended_data_is_detected(passphrase: str | None) -> None:
    blob = sealed(TEXT, passphrase)
    with pytest.raises(SealError, match="appended"):
        opened(blob + b"garbage", passphrase)
    end_at, _, end_len = frames(blob)[-1]
    with pytest.raises(SealError, match="appended"):
        opened(blob + blob[end_at : end_at + end_len], passphrase)


def test_dropped_or_relabelled_frames_are_detected() -> None:
    blob = sealed(TEXT)
    found = frames(blob)
    # The last data frame removed, the end frame kept.
    at, _, length = found[-2]
    with pytest.raises(SealError, match="does not authenticate"):
        opened(blob[:at] + blob[at + length :])
    # A data frame relabelled as the end (with the rest cut off).
    at, _, length = found[2]
    relabelled = blob[:at] + bytes([END]) + blob[at + 1 : at + length]
    with pytest.raises(SealError):
        opened(relabelled)
