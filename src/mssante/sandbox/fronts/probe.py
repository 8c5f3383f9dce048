"""The TLS probe: what an LPS offers in its ClientHello, and a weak front it must refuse.

Two tools for the conformance cases on TLS (Référentiel #2 ECO.1.1.1 "TLS 1.2 minimum" and
ECO.1.1.3 "suites cryptographiques"), which the fronts alone cannot judge: they refuse TLS < 1.2
and weak suites themselves, so a client that would accept them still negotiates TLS 1.3.

* :class:`HelloLog` records every ClientHello the fronts receive (``SSLContext._msg_callback``,
  CPython's message hook, installed by the runner): the versions and suites the client
  *offers*, and its SNI. :func:`parse_client_hello` is the pure parser (RFC 8446 §4.1.2,
  RFC 5246 §7.4.1.2, RFC 6066 §3; GREASE values, RFC 8701, are dropped).
* :func:`probe_context` builds the server context of the ``tls_probe`` fault, with the sandbox's
  real certificate but weak parameters only. ``old-tls``: TLS 1.0 and 1.1 only, every suite
  (ECO.1.1.1). ``weak-suites``: TLS 1.2 only, only suites *outside* the ECO.1.1.3 list. A
  correct LPS cannot complete either handshake (no shared version, or no shared suite) and so
  never sends a credential; an LPS that accepts TLS 1.0/1.1, or a weak suite, completes it.

OpenSSL 3 allows TLS 1.0/1.1 and SHA-1 signatures only at security level 0, so the probe's
cipher string ends with ``@SECLEVEL=0`` (checked on OpenSSL 3.0: without it the probe's TLS 1.1
handshake fails on the server side with ``unsupported protocol``). The same holds for a client:
an OpenSSL 3 client at its default level 1 refuses TLS 1.1 even with ``minimum_version`` lowered.
"""

from __future__ import annotations

import _ssl
import ssl
import struct
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final, Literal

from mssante.errors import ConfigError

__all__ = [
    "ALLOWED_SUITES",
    "ALLOWED_VERSIONS",
    "HELLOS_KEPT",
    "SIGNALING_SUITES",
    "TLS_PROBES",
    "ClientHello",
    "HelloLog",
    "HelloRecord",
    "TLSProbe",
    "needs_non_rsa_certificate",
    "parse_client_hello",
    "probe_context",
    "suite_name",
    "version_name",
]

TLSProbe = Literal["old-tls", "weak-suites"]
TLS_PROBES: Final[tuple[TLSProbe, ...]] = ("old-tls", "weak-suites")
#: ClientHellos remembered by :class:`HelloLog`.
HELLOS_KEPT: Final = 4000

#: ECO.1.1.3 (SC.MSS/CONF.03): the four TLS 1.2 suites of the vague 1 list [MSS3] (the v1.x
#: list is not public; research note ref2-requirements.md §1), and the TLS 1.3 suites, allowed
#: under "TLS 1.2 minimum" (ECO.1.1.1; an inference, the v1.x text on TLS 1.3 was not read).
ALLOWED_SUITES: Final = frozenset({
    0xC030,  # TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
    0xC02F,  # TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
    0xC028,  # TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384
    0xC027,  # TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256
    0x1301, 0x1302, 0x1303,  # TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256
})
#: Signalling values sent in the suite list, not suites (RFC 5746 §3.3, RFC 7507 §2).
SIGNALING_SUITES: Final = {0x00FF: "TLS_EMPTY_RENEGOTIATION_INFO_SCSV", 0x5600: "TLS_FALLBACK_SCSV"}
#: ECO.1.1.1: TLS 1.2 (0x0303) and TLS 1.3 (0x0304).
ALLOWED_VERSIONS: Final = frozenset({0x0303, 0x0304})
_VERSIONS: Final = {0x0300: "SSLv3", 0x0301: "TLSv1.0", 0x0302: "TLSv1.1", 0x0303: "TLSv1.2", 0x0304: "TLSv1.3"}
_ALLOWED_OPENSSL: Final = ("ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-SHA384",
                           "ECDHE-RSA-AES128-SHA256")
_CLIENT_HELLO: Final = 1
_HANDSHAKE: Final = 22


def _grease(value: int) -> bool:
    # RFC 8701 §2: 0x0A0A, 0x1A1A, ... 0xFAFA.
    return (value & 0x0F0F) == 0x0A0A and (value >> 8) == (value & 0xFF)


@dataclass(frozen=True, kw_only=True)
class ClientHello:
    """What a ClientHello offers: ``legacy_version``, the versions (supported_versions, or the
    legacy version alone), the cipher suites in the client's order, the SNI host name."""

    legacy_version: int
    versions: tuple[int, ...]
    suites: tuple[int, ...]
    server_name: str | None = None


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.at + n > len(self.data):
            raise ValueError("truncated ClientHello")
        out = self.data[self.at:self.at + n]
        self.at += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int(struct.unpack("!H", self.take(2))[0])

    def vector(self, length_size: int) -> bytes:
        n = self.u8() if length_size == 1 else self.u16() if length_size == 2 else \
            int.from_bytes(self.take(3), "big")
        return self.take(n)


def _pairs(data: bytes) -> tuple[int, ...]:
    if len(data) % 2:
        raise ValueError("odd length in a list of 16-bit values")
    return tuple(v for (v,) in struct.iter_unpack("!H", data) if not _grease(v))


def _server_name(data: bytes) -> str | None:
    names = _Reader(_Reader(data).vector(2))
    while names.at < len(names.data):
        kind, name = names.u8(), names.vector(2)
        if kind == 0:  # host_name (RFC 6066 §3)
            return name.decode("ascii", "replace")
    return None


def parse_client_hello(message: bytes) -> ClientHello:
    """Parse a ClientHello handshake message (with its 4-octet handshake header).

    Raises:
        ValueError: not a ClientHello, or truncated/malformed.
    """
    head = _Reader(message)
    if head.u8() != _CLIENT_HELLO:
        raise ValueError("not a ClientHello")
    body = _Reader(head.vector(3))
    legacy = body.u16()
    body.take(32)  # random
    body.vector(1)  # legacy_session_id
    suites = _pairs(body.vector(2))
    body.vector(1)  # legacy_compression_methods
    versions: tuple[int, ...] = ()
    server_name = None
    if body.at < len(body.data):
        extensions = _Reader(body.vector(2))
        while extensions.at < len(extensions.data):
            kind, data = extensions.u16(), extensions.vector(2)
            if kind == 43:  # supported_versions (RFC 8446 §4.2.1)
                versions = _pairs(_Reader(data).vector(1))
            elif kind == 0:
                server_name = _server_name(data)
    return ClientHello(legacy_version=legacy, versions=versions or (legacy,), suites=suites, server_name=server_name)


@cache
def _openssl_suites() -> Mapping[int, tuple[str, str]]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.set_ciphers("ALL:COMPLEMENTOFALL:@SECLEVEL=0")
    return {int(c["id"]) & 0xFFFF: (str(c["name"]), str(c.get("auth", ""))) for c in ctx.get_ciphers()}


def _openssl_names() -> Mapping[int, str]:
    return {code: name for code, (name, _) in _openssl_suites().items()}


def needs_non_rsa_certificate(code: int) -> bool:
    """True for a suite that authenticates the server with an ECDSA or DSA certificate only.

    Such a suite is never negotiated with an operator whose certificate is RSA, as IGC Santé
    server certificates are (psc-igc.md §4.3). Unknown codes: False (they are judged).
    """
    found = _openssl_suites().get(code)
    return found is not None and found[1] in ("auth-ecdsa", "auth-dss")


def suite_name(code: int) -> str:
    """OpenSSL's name of a suite (``ECDHE-RSA-AES128-GCM-SHA256``), the signalling value's name,
    or ``0x....`` when this OpenSSL does not know it.
    """
    return SIGNALING_SUITES.get(code) or _openssl_names().get(code) or f"0x{code:04X}"


def version_name(code: int) -> str:
    """``TLSv1.2`` for 0x0303, ``0x....`` for an unknown value."""
    return _VERSIONS.get(code, f"0x{code:04X}")


@dataclass(frozen=True, kw_only=True)
class HelloRecord:
    """One ClientHello received by a front (``probe``: by the ``tls_probe`` front)."""

    at: float
    probe: bool
    hello: ClientHello

    def to_json(self) -> dict[str, Any]:
        """``{"at", "probe", "legacy_version", "versions", "suites", "server_name"}`` (numbers as integers).
        """
        h = self.hello
        return {"at": self.at, "probe": self.probe, "legacy_version": h.legacy_version, "versions": list(h.versions),
                "suites": list(h.suites), "server_name": h.server_name}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HelloRecord:
        """Read :meth:`to_json`'s form.

        Raises:
            KeyError, TypeError, ValueError: not such a record.
        """
        hello = ClientHello(legacy_version=int(data["legacy_version"]),
                            versions=tuple(int(v) for v in data["versions"]),
                            suites=tuple(int(s) for s in data["suites"]),
                            server_name=None if data.get("server_name") is None else str(data["server_name"]))
        return cls(at=float(data["at"]), probe=bool(data["probe"]), hello=hello)


class HelloLog:
    """The ClientHellos received by the fronts (bounded), fed by :meth:`callback`."""

    def __init__(self, kept: int = HELLOS_KEPT) -> None:
        """Keep the last ``kept`` ClientHellos."""
        self._records: deque[HelloRecord] = deque(maxlen=kept)
        self._lock = threading.Lock()  # bad-certificate and probe contexts are built in threads

    def callback(self, *, probe: bool) -> Callable[..., None]:
        """The ``SSLContext._msg_callback`` that records ClientHellos (``probe``: of the probe front).

        Raises:
            Nothing (the callback never raises: it must not break a handshake).
        """

        def on_message(_conn: Any, direction: str, _version: Any, content_type: Any, msg_type: Any,
                       data: bytes) -> None:
            if direction != "read" or content_type != _HANDSHAKE or msg_type != _CLIENT_HELLO:
                return
            try:
                hello = parse_client_hello(bytes(data))
            except ValueError:
                return
            with self._lock:
                self._records.append(HelloRecord(at=time.time(), probe=probe, hello=hello))

        return on_message

    def install(self, ctx: ssl.SSLContext, *, probe: bool) -> bool:
        """Record the ClientHellos ``ctx`` receives; False when this Python has no message hook.

        The hook runs for every TLS record of every connection: it is set on the C-level
        descriptor, below ``ssl.SSLContext._msg_callback``'s wrapper, whose three enum
        conversions per call tripled its cost (measured: about 5 µs per record, out of process).
        """
        hook = getattr(_ssl._SSLContext, "_msg_callback", None)  # CPython's private hook, without the wrapper
        if hook is None or not hasattr(hook, "__set__"):
            return False
        hook.__set__(ctx, self.callback(probe=probe))
        return True

    def since(self, at: float) -> list[HelloRecord]:
        """The ClientHellos received at or after ``at``, oldest first."""
        with self._lock:
            return [r for r in self._records if r.at >= at]


def probe_context(mode: TLSProbe, cert_chain: Path, key: Path, *, client_ca: Path | None = None) -> ssl.SSLContext:
    """The ``tls_probe`` server context of ``mode``: the real certificate, weak versions or suites only.

    With ``client_ca`` it asks for a client certificate (the AUTH_CLI front), without requiring
    one, so that the handshake itself is what the LPS must refuse.

    Raises:
        ConfigError: unknown mode, the certificate, key or CA cannot be loaded, or this OpenSSL
            cannot offer what the probe needs.
    """
    if mode not in TLS_PROBES:
        raise ConfigError(f"unknown TLS probe {mode!r}")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        if mode == "old-tls":
            with warnings.catch_warnings():  # TLS 1.0/1.1 are deprecated in ssl, rightly: the probe needs them
                warnings.simplefilter("ignore", DeprecationWarning)
                ctx.minimum_version = ssl.TLSVersion.TLSv1
                ctx.maximum_version = ssl.TLSVersion.TLSv1_1
            ctx.set_ciphers("ALL:@SECLEVEL=0")
        else:
            ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
            ctx.set_ciphers("ALL:" + ":".join("!" + name for name in _ALLOWED_OPENSSL) + ":@SECLEVEL=0")
        ctx.load_cert_chain(certfile=cert_chain, keyfile=key)
        if client_ca is not None:
            ctx.load_verify_locations(cafile=client_ca)
            ctx.verify_mode = ssl.CERT_OPTIONAL
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise ConfigError(f"cannot build the TLS probe context {mode}: {exc}") from exc
    return ctx
