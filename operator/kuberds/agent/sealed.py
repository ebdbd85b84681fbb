"""Sealed files: how the Redis agent keeps a snapshot in the object store. Compressed, encrypted
when there is a passphrase, written and read as a stream (memory stays bounded by the chunk size
whatever the size of the snapshot), and checked end to end: a file cut short, reordered, grown,
damaged or read with the wrong passphrase is refused with SealError, never restored.

Layout (integers big-endian):

    header, 56 bytes:
        magic    7   b"KRDSEAL"
        version  1   1
        flags    1   bit 0: encrypted
        log2 N   1   scrypt's cost         (the three are 0 when not encrypted)
        r        1   scrypt's block size
        p        1   scrypt's parallelism
        chunk    4   the largest data payload; the reader refuses longer frames
        salt     16  random (zero when not encrypted)
        nonce    8   random prefix of every frame's nonce (zero when not encrypted)
        check    16  bytes 32..47 of the 64-byte scrypt output: tells a wrong passphrase from
                     damage before any frame is read (zero when not encrypted)
    frames, each: kind (1: 0 data, 1 end) | length (4) | body
        data:  the next piece of one zlib stream of the plain data (at most `chunk` bytes)
        end:   exactly one, the last: plain length (8) | sha256 of the plain data (32)
    nothing after the end frame.

Encrypted, the key is bytes 0..31 of scrypt(passphrase, salt, N, r, p, 64) and each frame's body
is AES-256-GCM(key, nonce = nonce prefix | frame index (4), payload, associated data = header |
frame index (8) | kind (1)): a frame moved, dropped, duplicated, relabelled as the end, or a header
altered fails its tag, and a file without its end frame is truncated. Not encrypted, the framing
is the same with the bodies in the clear: truncation is still seen, and zlib's own check and the
sha256 in the end frame catch damage (by accident, not by an adversary: that needs the key)."""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC, VERSION = b"KRDSEAL", 1
HEADER = struct.Struct(">7sBBBBBI16s8s16s")
FRAME = struct.Struct(">BI")
TRAILER = struct.Struct(">Q32s")
DATA, END = 0, 1
ENCRYPTED = 0x01
TAG = 16  # AES-GCM's tag, appended to every encrypted body
# scrypt: about 32 MiB and 0.1 s per derivation, once per file; the reader accepts up to 256 MiB.
LOG2_N, R, P = 15, 8, 1
KDF_MEMORY_LIMIT = 256 << 20
MIN_CHUNK, MAX_CHUNK = 64, 64 << 20
LEVEL = 6


@dataclass(frozen=True)
class Sealed:
    plain_bytes: int
    sealed_bytes: int
    sha256: str  # hex, of the plain data


class SealError(Exception):
    """Not a sealed file, or not one that can be trusted: wrong or missing passphrase,
    truncated, tampered with, reordered, or with data after its end."""


def _kdf_memory(log2_n: int, r: int, p: int) -> int:
    return 128 * r * ((1 << log2_n) + 2 + p)


def _derive(passphrase: str, salt: bytes, log2_n: int, r: int, p: int) -> tuple[bytes, bytes]:
    """(AES key, key check)."""
    out = hashlib.scrypt(passphrase.encode(), salt=salt, n=1 << log2_n, r=r, p=p, dklen=64,
                         maxmem=_kdf_memory(log2_n, r, p) + (1 << 20))  # fmt: skip
    return out[:32], out[32:48]


class _Frames:
    """Seals and opens frame bodies in order; keeps the index both sides bind."""

    def __init__(self, header: bytes, key: bytes | None, nonce_prefix: bytes):
        self.header, self.nonce_prefix = header, nonce_prefix
        self.aead = AESGCM(key) if key is not None else None
        self.index = 0

    def _bound(self, kind: int) -> tuple[bytes, bytes]:
        if self.index >= 1 << 32:
            raise SealError("too many frames for one file (the nonce counter would wrap)")
        return self.nonce_prefix + self.index.to_bytes(4, "big"), self.header + struct.pack(">QB", self.index, kind)

    def seal(self, kind: int, payload: bytes) -> bytes:
        body = payload
        if self.aead is not None:
            nonce, associated = self._bound(kind)
            body = self.aead.encrypt(nonce, payload, associated)
        self.index += 1
        return FRAME.pack(kind, len(body)) + body

    def open(self, kind: int, body: bytes) -> bytes:
        payload = body
        if self.aead is not None:
            nonce, associated = self._bound(kind)
            try:
                payload = self.aead.decrypt(nonce, body, associated)
            except InvalidTag:
                raise SealError(f"frame {self.index} does not authenticate: the file was tampered with, "
                                "reordered or damaged") from None  # fmt: skip
        self.index += 1
        return payload


def seal(source: BinaryIO, target: BinaryIO, passphrase: str | None, chunk: int = 1 << 20) -> Sealed:
    """Writes `source` sealed to `target`; encrypted when a passphrase is given (an empty one is
    refused: None says "no encryption" explicitly)."""
    if not MIN_CHUNK <= chunk <= MAX_CHUNK:
        raise ValueError(f"chunk must be between {MIN_CHUNK} and {MAX_CHUNK} bytes")
    if passphrase == "":
        raise ValueError("an empty passphrase: pass None to seal without encryption")
    encrypted = passphrase is not None
    if encrypted:
        salt, nonce_prefix = os.urandom(16), os.urandom(8)
        key, check = _derive(passphrase, salt, LOG2_N, R, P)
        header = HEADER.pack(MAGIC, VERSION, ENCRYPTED, LOG2_N, R, P, chunk, salt, nonce_prefix, check)
    else:
        key, nonce_prefix = None, bytes(8)
        header = HEADER.pack(MAGIC, VERSION, 0, 0, 0, 0, chunk, bytes(16), nonce_prefix, bytes(16))
    frames = _Frames(header, key, nonce_prefix)
    target.write(header)
    written, plain, digest = len(header), 0, hashlib.sha256()
    compressor = zlib.compressobj(LEVEL)
    pending = bytearray()

    def emit(kind: int, payload: bytes) -> None:
        nonlocal written
        frame = frames.seal(kind, payload)
        target.write(frame)
        written += len(frame)

    while block := source.read(chunk):
        digest.update(block)
        plain += len(block)
        pending += compressor.compress(block)
        while len(pending) >= chunk:
            emit(DATA, bytes(pending[:chunk]))
            del pending[:chunk]
    pending += compressor.flush()
    while pending:
        emit(DATA, bytes(pending[:chunk]))
        del pending[:chunk]
    emit(END, TRAILER.pack(plain, digest.digest()))
    return Sealed(plain, written, digest.hexdigest())


@dataclass(frozen=True)
class Header:
    encrypted: bool
    log2_n: int
    r: int
    p: int
    chunk: int
    salt: bytes
    nonce_prefix: bytes
    check: bytes
    raw: bytes


def read_header(source: BinaryIO) -> Header:
    """The header of a sealed file (the stream is left just after it); SealError if the
    stream does not start with one."""
    raw = _read_exact(source, HEADER.size, "the header")
    magic, version, flags, log2_n, r, p, chunk, salt, nonce_prefix, check = HEADER.unpack(raw)
    if magic != MAGIC:
        raise SealError("not a sealed file (no KRDSEAL header)")
    if version != VERSION:
        raise SealError(f"sealed file version {version}: this agent reads version {VERSION}")
    if flags & ~ENCRYPTED:
        raise SealError(f"unknown flags {flags:#x} in the header")
    if not MIN_CHUNK <= chunk <= MAX_CHUNK:
        raise SealError(f"chunk size {chunk} out of range: a damaged header")
    return Header(bool(flags & ENCRYPTED), log2_n, r, p, chunk, salt, nonce_prefix, check, raw)


def is_encrypted(source: BinaryIO) -> bool:
    """Whether a sealed file needs a passphrase (reads the header only)."""
    return read_header(source).encrypted


def unseal(source: BinaryIO, target: BinaryIO, passphrase: str | None) -> Sealed:
    """Writes the plain data of a sealed `source` to `target`. The data is streamed out before the
    last checks pass: on SealError, whatever `target` received must be thrown away."""
    header = read_header(source)
    key = None
    if header.encrypted:
        if not passphrase:
            raise SealError("the file is encrypted and no passphrase was given")
        if not (10 <= header.log2_n <= 24 and 1 <= header.r <= 32 and 1 <= header.p <= 16) or (
            _kdf_memory(header.log2_n, header.r, header.p) > KDF_MEMORY_LIMIT
        ):
            raise SealError(f"scrypt parameters N=2^{header.log2_n} r={header.r} p={header.p} refused: "
                            "a damaged header")  # fmt: skip
        key, check = _derive(passphrase, header.salt, header.log2_n, header.r, header.p)
        if not hmac.compare_digest(check, header.check):
            raise SealError("wrong passphrase (or a damaged header)")
    frames = _Frames(header.raw, key, header.nonce_prefix)
    tag = TAG if header.encrypted else 0
    read, plain, digest = len(header.raw), 0, hashlib.sha256()
    decompressor = zlib.decompressobj()

    def write(data: bytes) -> None:
        nonlocal plain
        digest.update(data)
        target.write(data)
        plain += len(data)

    while True:
        head = source.read(FRAME.size)
        if not head:
            raise SealError("truncated: the file ends before its end frame")
        head += _read_exact(source, FRAME.size - len(head), "a frame header")
        kind, length = FRAME.unpack(head)
        if kind not in (DATA, END):
            raise SealError(f"frame {frames.index}: unknown kind {kind}: a damaged file")
        limit = header.chunk + tag if kind == DATA else TRAILER.size + tag
        if length > limit or (kind == END and length != limit):
            raise SealError(f"frame {frames.index}: length {length} out of range: a damaged file")
        payload = frames.open(kind, _read_exact(source, length, f"frame {frames.index}"))
        read += FRAME.size + length
        if kind == END:
            break
        try:
            # Bounded output per call: a small frame may inflate to a lot.
            out = decompressor.decompress(payload, header.chunk)
            write(out)
            while decompressor.unconsumed_tail or len(out) == header.chunk:
                out = decompressor.decompress(decompressor.unconsumed_tail, header.chunk)
                if not out and not decompressor.unconsumed_tail:
                    break
                write(out)
        except zlib.error as e:
            raise SealError(f"frame {frames.index - 1}: the compressed data is damaged ({e})") from None
    expected_bytes, expected_digest = TRAILER.unpack(payload)
    if not decompressor.eof or decompressor.unused_data:
        raise SealError("the compressed stream does not end with the end frame: a damaged or spliced file")
    if plain != expected_bytes or not hmac.compare_digest(digest.digest(), expected_digest):
        raise SealError("the plain data does not match the end frame's length and sha256: a damaged file")
    if source.read(1):
        raise SealError("data after the end frame: the file was appended to")
    return Sealed(plain, read, digest.hexdigest())


def _read_exact(source: BinaryIO, size: int, what: str) -> bytes:
    data = bytearray()
    while len(data) < size:
        block = source.read(size - len(data))
        if not block:
            raise SealError(f"truncated: the file ends inside {what}")
        data += block
    return bytes(data)
