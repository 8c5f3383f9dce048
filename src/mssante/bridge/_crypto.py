"""Secrets at rest: AES-GCM for refresh tokens, scrypt for installation secrets, random ids.

Refresh and ID tokens are encrypted with AES-256-GCM (NIST SP 800-38D) before they reach the
store. The ciphertext names the key that made it (``v1.<key id>.<base64url(nonce||ct)>``) so
keys can be rotated: new writes use the current key, reads accept every configured key.
The associated data binds a ciphertext to its record and field, so a ciphertext copied into
another session does not decrypt.

Installation secrets are stored as scrypt hashes (RFC 7914). Session secrets are 256-bit
random values; a SHA-256 digest is enough for them (no dictionary to attack).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mssante.errors import ConfigError, ContentError
from mssante.secret import Secret

__all__ = [
    "TokenCipher",
    "hash_installation_secret",
    "new_id",
    "session_secret_digest",
    "verify_installation_secret",
]

KEY_ENV: Final = "MSSANTE_BRIDGE_KEY"
_PREFIX: Final = "v1"
_NONCE_BYTES: Final = 12  # 96-bit nonces, the GCM recommendation (SP 800-38D §8.2)
# scrypt cost: N=2^14, r=8, p=1 is the RFC 7914 §2 interactive setting (16 MiB, ~50 ms).
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


def new_id() -> str:
    """Return 256 random bits, base64url without padding (43 characters)."""
    return secrets.token_urlsafe(32)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def session_secret_digest(secret: str) -> str:
    """Return the SHA-256 hex digest under which a session secret is stored."""
    return hashlib.sha256(b"mssante-bridge-session:" + secret.encode("utf-8")).hexdigest()


def hash_installation_secret(secret: str) -> str:
    """Hash an installation secret with scrypt and a random salt; return ``scrypt$N$r$p$salt$hash``."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(secret.encode("utf-8"), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_installation_secret(secret: str, stored: str) -> bool:
    """Check ``secret`` against a :func:`hash_installation_secret` value, in constant time.

    Raises:
        Nothing: a malformed stored value verifies nothing.
    """
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(digest)
        got = hashlib.scrypt(secret.encode("utf-8"), salt=_unb64(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(expected), maxmem=64 * 1024 * 1024)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


class TokenCipher:
    """AES-256-GCM with named keys; encrypts with the current key, decrypts with any.

    Attributes:
        current: the key id used for new ciphertexts.
    """

    def __init__(self, keys: Mapping[str, bytes], current: str) -> None:
        """Use ``keys`` (key id → 32 bytes); ``current`` encrypts.

        Raises:
            ConfigError: no key, a key that is not 32 bytes, a key id with a dot, or an unknown current id.
        """
        if not keys or current not in keys:
            raise ConfigError("the bridge key set is empty or does not hold its current key id")
        for kid, key in keys.items():
            if len(key) != 32:
                raise ConfigError(f"bridge key {kid!r} must be 32 bytes (AES-256)")
            if not kid or "." in kid or not kid.isprintable():
                raise ConfigError("a bridge key id must be printable, non-empty and without dots")
        self._aead = {kid: AESGCM(key) for kid, key in keys.items()}
        self.current = current

    def __repr__(self) -> str:
        return f"TokenCipher(current={self.current!r}, keys={len(self._aead)})"

    @classmethod
    def generate(cls) -> TokenCipher:
        """Return a cipher with one fresh random key (tests, benchmarks)."""
        key = AESGCM.generate_key(bit_length=256)
        return cls({_fingerprint(key): key}, _fingerprint(key))

    @classmethod
    def from_text(cls, text: str) -> TokenCipher:
        """Read a key set: one base64 key, or JSON ``{"current": id, "keys": {id: base64}}``.

        A single key's id is the first 8 hex digits of its SHA-256.

        Raises:
            ConfigError: the text is not a valid key set.
        """
        text = text.strip()
        try:
            if text.startswith("{"):
                data = json.loads(text)
                keys = {str(k): _unb64(str(v).replace("+", "-").replace("/", "_")) for k, v in data["keys"].items()}
                return cls(keys, str(data["current"]))
            key = _unb64(text.replace("+", "-").replace("/", "_"))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError("the bridge key is neither base64 nor a JSON key set") from exc
        return cls({_fingerprint(key): key}, _fingerprint(key))

    @classmethod
    def load(cls, key_file: Path | None) -> TokenCipher:
        """Read the key set from ``key_file``, else from the ``MSSANTE_BRIDGE_KEY`` environment variable.

        Raises:
            ConfigError: neither is set, the file cannot be read, or the key set is invalid.
        """
        if key_file is not None:
            try:
                return cls.from_text(key_file.read_text(encoding="utf-8"))
            except OSError as exc:
                raise ConfigError(f"cannot read the bridge key file {key_file}: {exc.strerror}") from exc
        text = os.environ.get(KEY_ENV, "")
        if not text.strip():
            raise ConfigError(f"no bridge key: pass --key-file or set {KEY_ENV}")
        return cls.from_text(text)

    def encrypt(self, plaintext: Secret | str, *, context: str) -> str:
        """Encrypt ``plaintext`` bound to ``context`` (e.g. ``"<session id>/refresh"``).
        """
        value = plaintext.reveal() if isinstance(plaintext, Secret) else plaintext
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead[self.current].encrypt(nonce, value.encode("utf-8"), context.encode("utf-8"))
        return f"{_PREFIX}.{self.current}.{_b64(nonce + sealed)}"

    def decrypt(self, token: str, *, context: str) -> Secret:
        """Decrypt a value made by :meth:`encrypt` with the same ``context``.

        Raises:
            ContentError: unknown format or key id, or the ciphertext does not authenticate.
        """
        try:
            prefix, kid, body = token.split(".")
            aead = self._aead[kid]
            raw = _unb64(body)
            if prefix != _PREFIX or len(raw) <= _NONCE_BYTES:
                raise ValueError(prefix)
            plain = aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context.encode("utf-8"))
        except (ValueError, KeyError, InvalidTag) as exc:
            raise ContentError("a stored token does not decrypt with the bridge keys") from exc
        return Secret(plain.decode("utf-8"))


def _fingerprint(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]
