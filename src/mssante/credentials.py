"""Credentials for opening a BAL: PSC access tokens (PER/ORG) and ORG AUTH_CLI certificates (APP).

A **token source** gives a fresh PSC access token on demand. Tokens live about two minutes, so
sources cache them in memory only, until shortly before they expire (ECO.1.2.5: an access token
is never written to disk; it is wrapped in :class:`~mssante.secret.Secret` so that it never
shows in a repr or a log). ``token(fresh=True)`` evicts the cached token first: the client
calls it after ``[AUTHENTICATIONFAILED]`` to retry exactly once.

When the PSC session itself is over (refresh refused with ``invalid_grant``, logout), a source
raises :class:`~mssante.errors.PSCError` with ``oauth_error="invalid_grant"``; the session
supervisor then closes every IMAP/SMTP session of that BAL (ECO.1.2.6).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shlex
import ssl
import stat
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID

from mssante.errors import ConfigError, PSCError
from mssante.secret import Secret

__all__ = [
    "CallbackTokenSource",
    "CertificateFileError",
    "ClientCertificate",
    "CommandTokenSource",
    "EnvTokenSource",
    "StaticTokenSource",
    "TokenSource",
    "password_file",
]


class TokenSource(Protocol):
    """Gives PSC access tokens for one professional's session."""

    async def token(self, *, fresh: bool = False) -> Secret:
        """Return a valid access token; with ``fresh=True``, never the cached one.

        Raises:
            PSCError: no token can be had; ``oauth_error == "invalid_grant"`` means the PSC
                session is over.
            AuthUnavailable: PSC (or the bridge) is temporarily unreachable.
        """
        ...


class StaticTokenSource:
    """A token given once (tests, scripts). It cannot be refreshed."""

    def __init__(self, token: str | Secret) -> None:
        """Wrap ``token``."""
        self._token = token if isinstance(token, Secret) else Secret(token)

    def __repr__(self) -> str:
        return "StaticTokenSource(<token>)"

    async def token(self, *, fresh: bool = False) -> Secret:
        """Return the token (the same one, even when ``fresh``)."""
        return self._token


class EnvTokenSource:
    """Reads the token from an environment variable at each call (``--token-env``)."""

    def __init__(self, variable: str) -> None:
        """Read ``variable``."""
        self.variable = variable

    async def token(self, *, fresh: bool = False) -> Secret:
        """Return the variable's current value.

        Raises:
            ConfigError: the variable is unset or empty.
        """
        value = os.environ.get(self.variable, "").strip()
        if not value:
            raise ConfigError(f"environment variable {self.variable} holds no token")
        return Secret(value)


class CallbackTokenSource:
    """Caches tokens from an async ``fetch()`` returning ``(token, expires_in_seconds)``.

    The cached token is reused until ``margin`` seconds before it expires; concurrent callers
    share one fetch.
    """

    def __init__(
        self,
        fetch: Callable[[], Awaitable[tuple[str | Secret, float]]],
        *,
        margin: float = 20.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Fetch with ``fetch``; refresh ``margin`` seconds ahead of expiry."""
        self._fetch = fetch
        self._margin = margin
        self._clock = clock
        self._cached: tuple[Secret, float] | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"CallbackTokenSource(cached={self._cached is not None})"

    def evict(self) -> None:
        """Forget the cached token."""
        self._cached = None

    async def token(self, *, fresh: bool = False) -> Secret:
        """Return a cached or newly fetched token.

        Raises:
            PSCError: ``fetch`` failed or returned nothing usable.
        """
        async with self._lock:
            if fresh:
                self._cached = None
            now = self._clock()
            if self._cached is not None and self._cached[1] - self._margin > now:
                return self._cached[0]
            raw, expires_in = await self._fetch()
            secret = raw if isinstance(raw, Secret) else Secret(raw)
            if not secret:
                raise PSCError("the token source returned an empty token")
            self._cached = (secret, now + max(0.0, float(expires_in)))
            return secret


class CommandTokenSource:
    """Runs a command that prints a token on stdout (``--token-command``), like mutt's refresh command.

    The token is cached in memory for ``ttl`` seconds (default 60, PSC tokens live ~120 s).
    """

    def __init__(self, command: str, *, ttl: float = 60.0, timeout: float = 30.0) -> None:
        """Run ``command`` (split like a shell would, not run through a shell)."""
        self._argv = shlex.split(command)
        if not self._argv:
            raise ConfigError("the token command is empty")
        self._timeout = timeout
        self._cache = CallbackTokenSource(self._run, margin=0.0)
        self._ttl = ttl

    def __repr__(self) -> str:
        return f"CommandTokenSource({self._argv[0]!r})"

    async def _run(self) -> tuple[str | Secret, float]:
        try:
            proc = await asyncio.create_subprocess_exec(
                *self._argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
        except OSError as exc:
            raise ConfigError(f"cannot run the token command {self._argv[0]!r}: {exc.strerror}") from exc
        try:
            out, err = await asyncio.wait_for(proc.communicate(), self._timeout)
        except TimeoutError:
            proc.kill()
            raise PSCError(f"the token command did not answer within {self._timeout:g} s") from None
        if proc.returncode != 0:
            detail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
            raise PSCError(f"the token command failed (exit {proc.returncode}): {detail[0][:200]}")
        token = out.decode("utf-8", "replace").strip()
        return Secret(token), self._ttl

    async def token(self, *, fresh: bool = False) -> Secret:
        """Return the command's token (cached for ``ttl`` seconds unless ``fresh``).

        Raises:
            ConfigError: the command cannot be run.
            PSCError: the command failed, timed out or printed nothing.
        """
        return await self._cache.token(fresh=fresh)


class CertificateFileError(ConfigError):
    """A BAL APP's certificate, key, PKCS#12 or password file cannot be used (the user's file: ``config``).

    Attributes:
        problem: a stable code saying what is wrong: ``missing``, ``unreadable``, ``not_pkcs12``,
            ``password_needed``, ``wrong_password``, ``unsupported``, ``no_key``, ``no_certificate``,
            ``key_mismatch``, ``expired``, ``not_yet_valid``, ``not_client_auth``, ``password_file_open``
            (group or others may read the password file), ``refused`` (OpenSSL refused the material).
        path: the file at fault.
        date: the date that matters (``expired``: the end of validity; ``not_yet_valid``: its start), else None.
    """

    def __init__(self, message: str, *, problem: str, path: Path, date: datetime | None = None) -> None:
        super().__init__(message)
        self.problem = problem
        self.path = path
        self.date = date


def password_file(path: Path) -> Secret:
    """The password held in file ``path`` (a key's or a PKCS#12 file's); one trailing line end is dropped.

    The file must be readable by its owner only, like every secret file of mssante.

    Raises:
        CertificateFileError: the file cannot be read, is not UTF-8 text, or group or others may read it.
    """
    try:
        info = path.stat()
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise CertificateFileError(f"{path} must not be readable by group or others (chmod 600)",
                                       problem="password_file_open", path=path)
        with open(path, "rb") as file:
            data = file.read(_MAX_FILE + 1)
        text = data[:_MAX_FILE].decode("utf-8")
    except OSError as exc:
        raise CertificateFileError(f"cannot read the password file {path}: {exc.strerror}", problem="unreadable",
                                   path=path) from exc
    except UnicodeDecodeError:
        raise CertificateFileError(f"the password file {path} is not UTF-8 text", problem="unreadable",
                                   path=path) from None
    return Secret(text.removesuffix("\n").removesuffix("\r"))


#: Largest certificate, key or PKCS#12 file read (a real one is a few KiB).
_MAX_FILE = 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class ClientCertificate:
    """An IGC Santé ORG AUTH_CLI certificate and its key, for a BAL APP (mutual TLS).

    Two forms, both checked when loaded (:meth:`load_into`): the key opens with the password, it
    belongs to the certificate, the certificate is within its validity dates and, when it names
    its uses, allows client authentication (AUTH_CLI):

    * PEM files: ``ClientCertificate(cert=..., key=..., password=...)``; ``password`` for an
      encrypted key (a key that needs one and has none is refused, never asked on a terminal);
    * a PKCS#12 file (``.p12`` / ``.pfx``, the form Windows certificate stores export):
      :meth:`from_pkcs12`. The key is given to ``ssl`` without ever being written in clear: it is
      re-encrypted with a random one-time passphrase and handed over through an anonymous
      in-memory file (``memfd_create``, Linux), or, where there is none, a 0600 temporary file
      holding the *encrypted* key only, deleted as soon as OpenSSL has read it.

    Attributes:
        cert: PEM file with the certificate (and, optionally, its chain), or the PKCS#12 file.
        key: PEM file with the private key (the PKCS#12 file again for that form).
        password: the key's password (PEM), the PKCS#12 file's password; never shown in a repr.
        pkcs12: True when :attr:`cert` is a PKCS#12 file.

    Raises:
        CertificateFileError: a file does not exist.
    """

    cert: Path
    key: Path
    password: Secret | None = None
    pkcs12: bool = False

    def __post_init__(self) -> None:
        for label, path in (("certificate", self.cert), ("key", self.key)):
            if not Path(path).is_file():
                raise CertificateFileError(f"client {label} file {path} does not exist", problem="missing",
                                           path=Path(path))

    @classmethod
    def from_pkcs12(cls, path: Path | str, password: str | Secret | None = None) -> ClientCertificate:
        """The certificate, key and chain of a PKCS#12 file (``.p12``/``.pfx``), opened with ``password``.

        The file is read again (and checked) each time a TLS context is built from it.

        Raises:
            CertificateFileError: the file does not exist.
        """
        secret = password if isinstance(password, Secret) or password is None else Secret(password)
        return cls(cert=Path(path), key=Path(path), password=secret, pkcs12=True)

    def check(self) -> x509.Certificate:
        """Read and check the files as :meth:`load_into` does; return the certificate.

        Raises:
            CertificateFileError: a file cannot be read or holds the wrong thing, the password is missing
                or wrong, the key is not the certificate's, the certificate is expired, not yet
                valid or not for client authentication.
        """
        return self._material()[1]

    def load_into(self, context: ssl.SSLContext) -> None:
        """Load the certificate, its chain and its key into ``context`` (after :meth:`check`'s checks).

        Raises:
            CertificateFileError: as :meth:`check`, or OpenSSL refuses the material.
        """
        key, cert, chain = self._material()
        try:
            if not self.pkcs12:
                context.load_cert_chain(str(self.cert), str(self.key), password=self._password_bytes)
                return
            one_time = secrets.token_urlsafe(32).encode()  # 256 bits, ASCII: no NUL for C string APIs
            pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (cert, *chain))
            pem += key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.BestAvailableEncryption(one_time))
            with _key_file(pem) as path:
                context.load_cert_chain(path, password=one_time)
        except (OSError, ssl.SSLError) as exc:
            raise CertificateFileError(f"cannot load the client certificate {self.cert}: {exc}", problem="refused",
                                       path=self.cert) from exc

    def _password_bytes(self) -> bytes:
        return b"" if self.password is None else self.password.reveal().encode("utf-8")

    def _material(self) -> tuple[_PrivateKey, x509.Certificate, list[x509.Certificate]]:
        if self.pkcs12:
            key, cert, chain = _open_pkcs12(self.cert, _read(self.cert, "PKCS#12"), self.password)
        else:
            certs = _pem_certificates(self.cert, _read(self.cert, "certificate"))
            key, cert, chain = _pem_key(self.key, _read(self.key, "key"), self.password), certs[0], certs[1:]
        _check_leaf(self.cert, key, cert)
        return key, cert, chain


_PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def _read(path: Path, label: str) -> bytes:
    try:
        with open(path, "rb") as file:
            data = file.read(_MAX_FILE + 1)
    except OSError as exc:
        raise CertificateFileError(f"cannot read the client {label} file {path}: {exc.strerror}",
                                   problem="unreadable", path=path) from exc
    if len(data) > _MAX_FILE:
        raise CertificateFileError(f"the client {label} file {path} is larger than {_MAX_FILE} octets: "
                                   "not a certificate", problem="unsupported", path=path)
    return data


def _usable_key(path: Path, key: object) -> _PrivateKey:
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise CertificateFileError(f"{path}: the private key is of type {type(key).__name__}; IGC Santé keys are RSA",
                                   problem="unsupported", path=path)
    return key


def _looks_like_pfx(data: bytes) -> bool:
    """A DER SEQUENCE whose first element is INTEGER 3 (PFX version v3, RFC 7292 §4)."""
    if len(data) < 5 or data[0] != 0x30:
        return False
    skip = 2 + (data[1] & 0x7F if data[1] & 0x80 else 0)
    return data[skip:skip + 3] == b"\x02\x01\x03"


def _open_pkcs12(path: Path, data: bytes, password: Secret | None
                 ) -> tuple[_PrivateKey, x509.Certificate, list[x509.Certificate]]:
    if not _looks_like_pfx(data):
        hint = " (it is a PEM file: give it as cert/key)" if b"-----BEGIN" in data[:4096] else ""
        raise CertificateFileError(f"{path} is not a PKCS#12 (.p12/.pfx) file{hint}", problem="not_pkcs12", path=path)
    secret = None if password is None else password.reveal().encode("utf-8")
    try:
        key, cert, chain = pkcs12.load_key_and_certificates(data, secret)
    except ValueError:
        if secret:
            raise CertificateFileError(f"{path}: the password does not open this PKCS#12 file (or the file is "
                                       "damaged)", problem="wrong_password", path=path) from None
        raise CertificateFileError(f"{path}: this PKCS#12 file needs a password (or is damaged)",
                                   problem="password_needed", path=path) from None
    except (TypeError, UnsupportedAlgorithm) as exc:
        raise CertificateFileError(f"{path}: unsupported PKCS#12 content ({type(exc).__name__})",
                                   problem="unsupported", path=path) from None
    if key is None:
        raise CertificateFileError(f"{path}: the PKCS#12 file holds no private key (export it with its key)",
                                   problem="no_key", path=path)
    if cert is None:
        raise CertificateFileError(f"{path}: the PKCS#12 file holds no certificate for its key",
                                   problem="no_certificate", path=path)
    return _usable_key(path, key), cert, list(chain)


def _pem_certificates(path: Path, data: bytes) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        certs = []
    if not certs:
        raise CertificateFileError(f"{path} holds no PEM certificate", problem="no_certificate", path=path)
    return certs


def _pem_key(path: Path, data: bytes, password: Secret | None) -> _PrivateKey:
    # The key is read here to check it and compare it with the certificate; OpenSSL loads the file itself and
    # checks the pair again. Validating an RSA key costs ~50 ms (x the structures of a fleet): not done twice.
    secret = None if password is None else password.reveal().encode("utf-8")
    try:
        try:
            key = serialization.load_pem_private_key(data, secret, unsafe_skip_rsa_key_validation=True)
        except TypeError:
            if secret is None:
                raise CertificateFileError(f"{path}: the private key is encrypted and no password was given",
                                           problem="password_needed", path=path) from None
            # a password for a clear key: not needed
            key = serialization.load_pem_private_key(data, None, unsafe_skip_rsa_key_validation=True)
    except ValueError:
        if secret is not None and b"ENCRYPTED" in data:
            raise CertificateFileError(f"{path}: the password does not open this private key",
                                       problem="wrong_password", path=path) from None
        raise CertificateFileError(f"{path} holds no usable PEM private key", problem="no_key", path=path) from None
    except UnsupportedAlgorithm as exc:
        raise CertificateFileError(f"{path}: unsupported private key ({type(exc).__name__})", problem="unsupported",
                                   path=path) from None
    return _usable_key(path, key)


def _check_leaf(path: Path, key: _PrivateKey, cert: x509.Certificate) -> None:
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if (key.public_key().public_bytes(serialization.Encoding.DER, spki)
            != cert.public_key().public_bytes(serialization.Encoding.DER, spki)):
        raise CertificateFileError(f"{path}: the private key does not belong to the certificate",
                                   problem="key_mismatch", path=path)
    now = datetime.now(UTC)
    subject = cert.subject.rfc4514_string()
    if now > cert.not_valid_after_utc:
        raise CertificateFileError(f"{path}: the certificate {subject} expired on "
                                   f"{cert.not_valid_after_utc:%Y-%m-%d}: renew it (IGC Santé)",
                                   problem="expired", path=path, date=cert.not_valid_after_utc)
    if now < cert.not_valid_before_utc:
        raise CertificateFileError(f"{path}: the certificate {subject} is not valid before "
                                   f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC",
                                   problem="not_yet_valid", path=path, date=cert.not_valid_before_utc)
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return
    if ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
        raise CertificateFileError(f"{path}: the certificate {subject} is not for client authentication "
                                   "(an ORG AUTH_CLI certificate is needed for a BAL APP)",
                                   problem="not_client_auth", path=path)


@contextlib.contextmanager
def _key_file(pem: bytes) -> Iterator[str]:
    """A path OpenSSL can read ``pem`` from: an anonymous memory file, else a 0600 temporary file."""
    memfd = getattr(os, "memfd_create", None)
    if memfd is not None and os.path.isdir("/proc/self/fd"):
        fd = memfd("mssante-client-cert", os.MFD_CLOEXEC)
        try:
            os.write(fd, pem)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    fd, name = tempfile.mkstemp(prefix="mssante-", suffix=".pem")  # 0600; the key inside is encrypted
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(pem)
        yield name
    finally:
        os.unlink(name)
