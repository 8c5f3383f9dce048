"""The realm signing key of the mock PSC: RSA 2048, RS256, kept in the state directory.

Real PSC signs access tokens with a 2048-bit RSA key announced at ``certs`` with a ``kid``
(psc-igc.md §1.5). The mock generates one key at first start and reuses it afterwards, so
that tokens and cached JWKS survive a restart of the sandbox.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey

from mssante.errors import ConfigError

__all__ = ["KEY_FILE_NAME", "SIGNING_ALG", "load_or_create_signing_key", "public_jwks"]

#: The only signature algorithm the mock issues and accepts (alg allow-list).
SIGNING_ALG = "RS256"
KEY_FILE_NAME = "psc-signing-key.jwk.json"


def load_or_create_signing_key(state_dir: Path) -> RSAKey:
    """Return the realm RSA key stored in ``state_dir``, generating it on first use.

    The private JWK is written with mode 0600 (created with ``O_EXCL``, never widened).
    An existing file readable by group or others is refused rather than silently used.

    Raises:
        ConfigError: ``state_dir`` cannot be created or written, the key file is unreadable,
            not a private RSA JWK, or has permissions wider than 0600.
    """
    path = state_dir / KEY_FILE_NAME
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        if path.exists():
            return _load(path)
        key = RSAKey.generate_key(2048, parameters={"use": "sig", "alg": SIGNING_ALG}, private=True)
        key.ensure_kid()  # RFC 7638 thumbprint
        data = json.dumps(key.as_dict(private=True)).encode()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return key
    except OSError as exc:
        raise ConfigError(f"cannot store the PSC signing key in {state_dir}: {exc.strerror}") from exc


# Importing a private RSA key validates it (about 0.1 s); a file already read is not read again.
_loaded: dict[tuple[str, int, int, int], RSAKey] = {}


def _load(path: Path) -> RSAKey:
    info = path.stat()
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path} must not be readable by group or others (chmod 600)")
    memo = (str(path.resolve()), info.st_ino, info.st_size, info.st_mtime_ns)
    if memo in _loaded:
        return _loaded[memo]
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
        key = RSAKey.import_key(data)
    except (ValueError, JoseError) as exc:
        raise ConfigError(f"{path} is not an RSA JWK") from exc
    if not key.is_private:
        raise ConfigError(f"{path} holds no private key")
    key.ensure_kid()
    _loaded[memo] = key
    return key


def public_jwks(key: RSAKey) -> dict[str, Any]:
    """Return the public JWK Set served at ``certs`` (RFC 7517 §5)."""
    return dict(KeySet([key]).as_dict(private=False))
