"""On-disk state of the sandbox PKI: private files, atomic writes, an inter-process lock, the index.

Layout of a state directory (every directory 0700, every file 0600)::

    index.json              issued serials, revocations, CRL numbers, settings (format 1)
    .lock                   flock(2) target serialising writers across processes
    ca/   ACR-EL-SIM.{pem,key,cer}  ACI-EL-ORG-SIM.{pem,key,cer}  ca-bundle.pem  ca-bundle-crl.pem
    crl/  ACR-EL-SIM.{crl,pem}      ACI-EL-ORG-SIM.{crl,pem}
    server/  server.pem (leaf + ORG CA)  server.key
    clients/<structure id>/<serial hex>.{pem,key}
    negative/...

A writer (the sandbox, or ``mssante sandbox pki revoke`` in another process) takes the lock,
re-reads the index, changes files with write-to-temp + ``os.replace`` (atomic on POSIX), and
writes the index last. Readers never need the lock: they always see a whole old or new file.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mssante.errors import ConfigError

if sys.platform != "win32":
    import fcntl

INDEX_FORMAT = 1
_DIR_MODE = 0o700
_FILE_MODE = 0o600


def ensure_dir(path: Path) -> Path:
    """Create ``path`` (and parents) with mode 0700 and return it.

    Raises:
        ConfigError: the directory cannot be created.
    """
    try:
        # Create missing ancestors one by one: mkdir(parents=True) would give them umask modes.
        for directory in [*reversed(path.parents), path]:
            if not directory.exists():
                directory.mkdir(mode=_DIR_MODE)
                os.chmod(directory, _DIR_MODE)  # mkdir's mode is filtered by the umask
        os.chmod(path, _DIR_MODE)  # an existing state dir may be wider
    except FileExistsError:
        return ensure_dir(path)  # lost a creation race with another process: fine, retry
    except OSError as exc:
        raise ConfigError(f"cannot create PKI state directory {path}: {exc.strerror}") from exc
    return path


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, mode 0600 from the first byte (never world-readable).

    Raises:
        ConfigError: the file cannot be written.
    """
    ensure_dir(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # mkstemp: 0600
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from exc


def read_bytes(path: Path) -> bytes:
    """Read a state file.

    Raises:
        ConfigError: the file is missing or unreadable (the state directory is damaged).
    """
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read {path}: {exc.strerror}; the PKI state is damaged, delete its directory to start over"
        ) from exc


@contextlib.contextmanager
def locked(state_dir: Path) -> Iterator[None]:
    """Hold the state directory's exclusive lock (blocking) for the ``with`` body.

    Raises:
        ConfigError: the lock file cannot be opened.
    """
    ensure_dir(state_dir)
    try:
        fd = os.open(state_dir / ".lock", os.O_RDWR | os.O_CREAT, _FILE_MODE)
    except OSError as exc:
        raise ConfigError(f"cannot open lock file in {state_dir}: {exc.strerror}") from exc
    try:
        if sys.platform != "win32":
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def load_index(state_dir: Path) -> dict[str, Any] | None:
    """Return the parsed ``index.json``, or None when the directory holds no PKI yet.

    Raises:
        ConfigError: the index exists but is unreadable, not JSON, or of an unknown format.
    """
    path = state_dir / "index.json"
    if not path.exists():
        return None
    try:
        data = json.loads(read_bytes(path))
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON; delete {state_dir} to start over") from exc
    if not isinstance(data, dict) or data.get("format") != INDEX_FORMAT:
        raise ConfigError(f"{path} has an unknown format; delete {state_dir} to start over")
    return data


def save_index(state_dir: Path, index: dict[str, Any]) -> None:
    """Write ``index.json`` atomically.

    Raises:
        ConfigError: the file cannot be written.
    """
    # No sort_keys: "certs" keeps insertion order (newest last), which lookups rely on.
    write_private(state_dir / "index.json", json.dumps(index, indent=1).encode() + b"\n")


def key_pem(key: rsa.RSAPrivateKey) -> bytes:
    """Serialise a private key as unencrypted PKCS#8 PEM.

    Unencrypted on purpose: throw-away sandbox keys, protected by 0600/0700 modes, which
    ``ssl.SSLContext.load_cert_chain``, Dovecot and curl read without a passphrase.

    Raises:
        Nothing of ours (cryptography errors would be bugs).
    """
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_key(path: Path) -> rsa.RSAPrivateKey:
    """Load an RSA private key written by :func:`key_pem`.

    Raises:
        ConfigError: the file is missing, unreadable or not an RSA key.
    """
    try:
        # Skipping OpenSSL's RSA key check (primality tests: ~0.2 s per 3072-bit key, on every
        # start and every CLI call) is safe here: we generated these keys and wrote them 0600;
        # TestPKI still checks that each CA key matches its certificate.
        key = serialization.load_pem_private_key(read_bytes(path), password=None, unsafe_skip_rsa_key_validation=True)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is not a readable private key") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(f"{path} is not an RSA private key")
    return key


def load_cert(path: Path) -> x509.Certificate:
    """Load the first PEM certificate of ``path``.

    Raises:
        ConfigError: the file is missing, unreadable or holds no PEM certificate.
    """
    try:
        return x509.load_pem_x509_certificate(read_bytes(path))
    except ValueError as exc:
        raise ConfigError(f"{path} is not a PEM certificate") from exc
