"""Encryption at rest for any destination (``encrypt = true``): a layer around the backend.

Everything reaches an encrypted destination through the Destination interface with plaintext keys and
plaintext bytes; the backend only ever sees ciphertext (and, with ``encrypt_names``, encrypted names).

Object format (version 1), an authenticated stream in the manner of age/STREAM (Hoang, Reyhanitabar,
Rogaway, Vizár: "Online authenticated-encryption and its nonce-reuse misuse-resistance"):

    header  = b"BLKAENC" | version (1 byte) | key id (8 bytes) | salt (32 random bytes)      48 bytes
    chunk i = ChaCha20-Poly1305(file key, nonce = i as 11 bytes big-endian | last-chunk flag,
                                plaintext[i*64 KiB : (i+1)*64 KiB], associated data = header)

The file key is HKDF-SHA256(master key, salt, "blink-archiver v1 content"): a fresh key per object, so
the counter nonces never repeat under one key. The last chunk (possibly empty, never missing) carries
the flag, so truncation at a chunk boundary, dropped, reordered or altered chunks and an altered
header all fail authentication. A range ``[start, end)`` decrypts only the chunks that cover it.
The plaintext size follows from the ciphertext size (``plain_size``), so ``stat`` stays one request.

Names (``encrypt_names``): each path segment is AES-SIV encrypted (deterministic, so the same clip gets
the same name and ``stat`` works) with its plaintext parent path as associated data, and written in
lowercase base32 (safe on case-insensitive SMB shares). The cryptography package does all the
cryptography; nothing here is a cipher of its own.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import ClassVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from archiver.destinations.base import (
    Capability,
    Destination,
    DestinationBase,
    DestinationError,
    ObjectCorrupt,
    ObjectInfo,
    check_key,
)

log = logging.getLogger(__name__)

MAGIC = b"BLKAENC"
VERSION = 1
KEY_ID_LEN = 8
SALT_LEN = 32
HEADER_LEN = len(MAGIC) + 1 + KEY_ID_LEN + SALT_LEN  # 48
CHUNK = 64 * 1024  # plaintext bytes per chunk
TAG = 16
CCHUNK = CHUNK + TAG  # ciphertext bytes per full chunk
KEY_LEN = 32
KEY_PREFIX = "blink-archiver-key-v1:"


# -- the key ------------------------------------------------------------------------------------------
def keygen(path: Path) -> None:
    """Write a new random key to ``path`` (mode 0600); never overwrites an existing file."""
    text = (
        "# blink-archiver encryption key. Keep a copy apart from the archive (a password manager, paper):\n"
        "# without it no encrypted object can ever be read again.\n"
        f"{KEY_PREFIX}{base64.urlsafe_b64encode(os.urandom(KEY_LEN)).decode()}\n"
    )
    path = path.expanduser()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def parse_key(text: str) -> bytes:
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not line.startswith(KEY_PREFIX):
            raise ValueError("is not a blink-archiver key (make one with `archiver keygen FILE`)")
        try:
            key = base64.urlsafe_b64decode(line[len(KEY_PREFIX) :].encode())
        except ValueError:
            raise ValueError("holds a damaged key (not base64)") from None
        if len(key) != KEY_LEN:
            raise ValueError(f"holds a damaged key ({len(key)} bytes, not {KEY_LEN})")
        return key
    raise ValueError("holds no key")


def load_key(path: Path | None, name: str) -> bytes:
    """The key of ``[encryption] key_file``; a missing or damaged file is a ConfigError (exit 2)."""
    from archiver.errors import ConfigError

    if path is None:
        raise ConfigError(f"destination {name!r}: encrypt = true needs [encryption] key_file")
    path = Path(path).expanduser()
    try:
        return parse_key(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"encryption.key_file: {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"encryption.key_file: {path}: {exc}") from None
    except ValueError as exc:
        raise ConfigError(f"encryption.key_file: {path} {exc}") from None


def _derive(master: bytes, info: bytes, length: int, salt: bytes | None = None) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(master)


# -- sizes ----------------------------------------------------------------------------------------------
def chunks_of(plain: int) -> int:
    return max(1, -(-plain // CHUNK))


def cipher_size(plain: int) -> int:
    return HEADER_LEN + plain + TAG * chunks_of(plain)


def plain_size(cipher: int) -> int | None:
    """The plaintext size of an object of ``cipher`` bytes, or None when no plaintext has that size."""
    body = cipher - HEADER_LEN
    if body < TAG:
        return None
    n = -(-body // CCHUNK)
    plain = body - TAG * n
    return plain if plain >= 0 and cipher_size(plain) == cipher else None


def _nonce(index: int, last: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


class Keys:
    """The keys derived from the master key: an id (to tell "another key" from "damaged"), the name key."""

    def __init__(self, master: bytes) -> None:
        self.master = master
        self.key_id = _derive(master, b"blink-archiver v1 key id", KEY_ID_LEN)
        self.names = AESSIV(_derive(master, b"blink-archiver v1 names", 64))

    def header(self) -> bytes:
        return MAGIC + bytes([VERSION]) + self.key_id + os.urandom(SALT_LEN)

    def content(self, header: bytes) -> ChaCha20Poly1305:
        salt = header[-SALT_LEN:]
        return ChaCha20Poly1305(_derive(self.master, b"blink-archiver v1 content", KEY_LEN, salt))

    # names
    def seal_name(self, key: str) -> str:
        out: list[str] = []
        parent = ""
        for segment in key.split("/"):
            sealed = self.names.encrypt(segment.encode(), [b"blink-archiver v1 name", parent.encode()])
            out.append(base64.b32encode(sealed).decode().rstrip("=").lower())
            parent = f"{parent}/{segment}" if parent else segment
        return "/".join(out)

    def open_name(self, sealed: str) -> str | None:
        out: list[str] = []
        parent = ""
        for segment in sealed.split("/"):
            try:
                raw = base64.b32decode(segment.upper() + "=" * (-len(segment) % 8))
                plain = self.names.decrypt(raw, [b"blink-archiver v1 name", parent.encode()]).decode()
            except (ValueError, InvalidTag, UnicodeDecodeError):
                return None
            out.append(plain)
            parent = f"{parent}/{plain}" if parent else plain
        return "/".join(out)


def encrypt_file(keys: Keys, src: Path, dst: Path) -> tuple[str, str, int]:
    """Encrypt ``src`` into ``dst``; returns (plaintext sha256, ciphertext sha256, plaintext size)."""
    header = keys.header()
    aead = keys.content(header)
    plain_digest, cipher_digest = hashlib.sha256(), hashlib.sha256()
    size = 0
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        fout.write(header)
        cipher_digest.update(header)
        index = 0
        chunk = fin.read(CHUNK)
        while True:
            following = fin.read(CHUNK) if len(chunk) == CHUNK else b""
            last = not following
            plain_digest.update(chunk)
            size += len(chunk)
            sealed = aead.encrypt(_nonce(index, last), chunk, header)
            fout.write(sealed)
            cipher_digest.update(sealed)
            if last:
                break
            chunk, index = following, index + 1
        fout.flush()
        os.fsync(fout.fileno())
    return plain_digest.hexdigest(), cipher_digest.hexdigest(), size


class EncryptedDestination(DestinationBase):
    """``inner`` with every object encrypted (and, with ``encrypt_names``, every name)."""

    capabilities: ClassVar[frozenset[Capability]] = frozenset()  # set per instance: the backend's

    def __init__(self, inner: Destination, master: bytes, *, encrypt_names: bool = False) -> None:
        self.inner = inner
        self.name = inner.name
        self.keys = Keys(master)
        self.encrypt_names = encrypt_names
        # the backend's stored sha256 is the ciphertext's: never the plaintext's the callers compare
        # (and its put_many would store plaintext: this layer puts one object at a time)
        self.capabilities = inner.capabilities - {  # type: ignore[misc]
            Capability.stored_sha256,
            Capability.batch_put,
        }

    def __repr__(self) -> str:
        return f"EncryptedDestination({self.inner!r}, encrypt_names={self.encrypt_names})"

    # -- names ------------------------------------------------------------------------------------------
    def _ikey(self, key: str) -> str:
        check_key(key, self.name)  # before sealing: a sealed name is always "safe"
        return self.keys.seal_name(key) if self.encrypt_names else key

    def _plain_error(self, exc: DestinationError, ikey: str, key: str) -> DestinationError:
        if ikey == key:
            return exc
        return DestinationError(str(exc).replace(ikey, key), config=exc.config)

    # -- reading ---------------------------------------------------------------------------------------
    def _header(self, header: bytes, key: str) -> ChaCha20Poly1305:
        if len(header) < HEADER_LEN or header[: len(MAGIC)] != MAGIC:
            raise ObjectCorrupt(f"destination {self.name!r}: {key} is not an encrypted object (damaged?)")
        if header[len(MAGIC)] != VERSION:
            raise DestinationError(
                f"destination {self.name!r}: {key} uses encryption format {header[len(MAGIC)]} "
                "(a newer blink-archiver wrote it)",
                config=True,
            )
        if header[len(MAGIC) + 1 : len(MAGIC) + 1 + KEY_ID_LEN] != self.keys.key_id:
            raise DestinationError(
                f"destination {self.name!r}: {key} was encrypted with another key "
                "(check [encryption] key_file)",
                config=True,
            )
        return self.keys.content(header)

    def _corrupt(self, key: str, index: int) -> ObjectCorrupt:
        return ObjectCorrupt(
            f"destination {self.name!r}: {key}: chunk {index} fails authentication (damaged or truncated)"
        )

    def _raw(self, ikey: str, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        try:
            chunks = self.inner.open(ikey, start, end)
            yield from chunks
        except DestinationError as exc:
            raise self._plain_error(exc, ikey, key) from None

    def open(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        ikey = self._ikey(key)
        if end is not None and end <= start:
            return iter(())
        if start == 0 and end is None:
            return self._decrypt_all(ikey, key)
        info = self.inner.stat(ikey)
        if info is None:
            raise DestinationError(f"destination {self.name!r}: {key} does not exist")
        total = plain_size(info.size)
        if total is None:
            raise ObjectCorrupt(
                f"destination {self.name!r}: {key} has a size no encrypted object has (truncated?)"
            )
        end = total if end is None else min(end, total)
        if start >= end:
            return iter(())
        return self._decrypt_range(ikey, key, total, start, end)

    def _decrypt_all(self, ikey: str, key: str) -> Iterator[bytes]:
        buf = bytearray()
        aead: ChaCha20Poly1305 | None = None
        header = b""
        index = 0
        for piece in self._raw(ikey, key):
            buf += piece
            if aead is None:
                if len(buf) < HEADER_LEN:
                    continue
                header = bytes(buf[:HEADER_LEN])
                aead = self._header(header, key)
                del buf[:HEADER_LEN]
            while len(buf) > CCHUNK:  # more follows: not the last chunk
                yield self._open_chunk(aead, index, False, bytes(buf[:CCHUNK]), header, key)
                del buf[:CCHUNK]
                index += 1
        if aead is None:
            if not buf:
                raise ObjectCorrupt(f"destination {self.name!r}: {key} is empty (truncated)")
            self._header(bytes(buf), key)
            raise ObjectCorrupt(f"destination {self.name!r}: {key} is truncated")
        yield self._open_chunk(aead, index, True, bytes(buf), header, key)

    def _open_chunk(
        self, aead: ChaCha20Poly1305, index: int, last: bool, sealed: bytes, header: bytes, key: str
    ) -> bytes:
        try:
            return aead.decrypt(_nonce(index, last), sealed, header)
        except InvalidTag:
            raise self._corrupt(key, index) from None

    def _decrypt_range(self, ikey: str, key: str, total: int, start: int, end: int) -> Iterator[bytes]:
        first, last_needed = start // CHUNK, (end - 1) // CHUNK
        final = chunks_of(total) - 1
        header = b"".join(self._raw(ikey, key, 0, HEADER_LEN))
        aead = self._header(header, key)
        cstart = HEADER_LEN + first * CCHUNK
        cend = HEADER_LEN + min((last_needed + 1) * CCHUNK, total + TAG * (final + 1))
        buf = bytearray()
        index = first
        pos = first * CHUNK  # plaintext offset of the chunk at the front of buf

        def emit(plain: bytes) -> bytes:
            lo = max(start - pos, 0)
            hi = min(end - pos, len(plain))
            return plain[lo:hi]

        for piece in self._raw(ikey, key, cstart, cend):
            buf += piece
            while len(buf) >= CCHUNK and index <= last_needed:
                plain = self._open_chunk(aead, index, index == final, bytes(buf[:CCHUNK]), header, key)
                del buf[:CCHUNK]
                out = emit(plain)
                pos += CHUNK
                index += 1
                if out:
                    yield out
        if index <= last_needed:
            if index != final or not buf:
                raise self._corrupt(key, index)
            out = emit(self._open_chunk(aead, index, True, bytes(buf), header, key))
            if out:
                yield out

    def stat(self, key: str) -> ObjectInfo | None:
        ikey = self._ikey(key)
        try:
            info = self.inner.stat(ikey)
        except DestinationError as exc:
            raise self._plain_error(exc, ikey, key) from None
        if info is None:
            return None
        size = plain_size(info.size)
        return ObjectInfo(key=key, size=-1 if size is None else size)

    def location(self, key: str) -> str | None:
        return None  # the backend's copy is ciphertext: read it through open()

    # -- writing ---------------------------------------------------------------------------------------
    def put(self, src: Path, key: str, *, sha256: str, metadata: Mapping[str, str]) -> ObjectInfo:
        ikey = self._ikey(key)
        try:
            size = os.stat(src).st_size
        except OSError as exc:
            raise DestinationError(
                f"destination {self.name!r}: cannot read source {src}: {exc.strerror}"
            ) from None
        current = self.stat(key)
        if current is not None and current.size == size:
            with contextlib.suppress(DestinationError):
                if self.hash(key) == sha256:
                    return ObjectInfo(key=key, size=size, sha256=sha256)
        tmp = _temp_beside(Path(src))
        try:
            plain_sha, cipher_sha, _ = encrypt_file(self.keys, Path(src), tmp)
            if plain_sha != sha256:
                raise DestinationError(
                    f"destination {self.name!r}: source for {key} does not match its sha256 (changed?)"
                )
            try:
                # no metadata reaches the backend: camera names and times would be readable there
                self.inner.put(tmp, ikey, sha256=cipher_sha, metadata={})
            except DestinationError as exc:
                raise self._plain_error(exc, ikey, key) from None
        except OSError as exc:
            raise DestinationError(
                f"destination {self.name!r}: encrypting {key} failed: {exc.strerror}"
            ) from None
        finally:
            tmp.unlink(missing_ok=True)
        return ObjectInfo(key=key, size=size, sha256=sha256)

    def delete(self, key: str) -> None:
        ikey = self._ikey(key)
        try:
            self.inner.delete(ikey)
        except DestinationError as exc:
            raise self._plain_error(exc, ikey, key) from None

    def delete_many(self, keys: Sequence[str]) -> dict[str, Exception]:
        failures: dict[str, Exception] = {}
        by_inner: dict[str, str] = {}
        for key in keys:
            try:
                by_inner[self._ikey(key)] = key
            except DestinationError as exc:
                failures[key] = exc
        for ikey, exc in self.inner.delete_many(list(by_inner)).items():
            failures[by_inner.get(ikey, ikey)] = exc
        return failures

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        if not self.encrypt_names:
            for info in self.inner.list(prefix):
                size = plain_size(info.size)
                yield ObjectInfo(key=info.key, size=-1 if size is None else size)
            return
        folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        inner_prefix = self.keys.seal_name(folder) + "/" if folder else ""
        for info in self.inner.list(inner_prefix):
            key = self.keys.open_name(info.key)
            size = plain_size(info.size)
            if key is None:  # not ours (another key, or a file put there by hand): shown as it is
                log.debug("%s: %s is not an encrypted name of this key", self.name, info.key)
                key = info.key
            if key.startswith(prefix):
                yield ObjectInfo(key=key, size=-1 if size is None else size)

    # -- the rest is the backend's ---------------------------------------------------------------------
    def check(self) -> None:
        self.inner.check()

    def preflight(self) -> list[str]:
        return self.inner.preflight()

    def abort_incomplete_uploads(self, older_than: timedelta) -> tuple[int, int]:
        return self.inner.abort_incomplete_uploads(older_than)


def _temp_beside(src: Path) -> Path:
    """A temporary file next to ``src`` (the same filesystem as the staging folder: a disk destination
    hard-links it), else in the system's temporary folder."""
    for folder in (src.parent, None):
        try:
            fd, name = tempfile.mkstemp(prefix=".enc-", suffix=".part", dir=folder)
        except OSError:
            continue
        os.close(fd)
        return Path(name)
    raise DestinationError(f"no folder to encrypt {src.name} in")
