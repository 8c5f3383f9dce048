"""CRL issuing and publication for the sandbox PKI (RFC 5280 §5)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding

from mssante.errors import ConfigError, RevocationError
from mssante.sandbox.pki import _build, _store, names
from mssante.sandbox.pki.records import CertRecord

#: CRL lifetime (thisUpdate -> nextUpdate); re-issued once past half of it. IGC Santé's own
#: period is not documented in our notes; a week keeps a long-running sandbox fresh.
CRL_LIFETIME = timedelta(days=7)

CRL_NAMES: tuple[str, ...] = tuple(f"{f}.{ext}" for f in (names.ROOT_FILE, names.ORG_CA_FILE) for ext in ("crl", "pem"))
_CA_FILES = (f"{names.ROOT_FILE}.cer", f"{names.ORG_CA_FILE}.cer")
# RFC 2585 §4.1-4.2 media types for DER certificates and CRLs.
_MEDIA = {".crl": "application/pkix-crl", ".cer": "application/pkix-cert", ".pem": "application/x-pem-file"}


def pem(obj: x509.Certificate | x509.CertificateRevocationList) -> bytes:
    """PEM encoding of a certificate or CRL."""
    return obj.public_bytes(Encoding.PEM)


def der(obj: x509.Certificate | x509.CertificateRevocationList) -> bytes:
    """DER encoding of a certificate or CRL."""
    return obj.public_bytes(Encoding.DER)


@dataclass(frozen=True)
class CrlContext:
    """The two issuing CAs and the time at which CRLs are (re-)issued."""

    state_dir: Path
    root: x509.Certificate
    root_key: rsa.RSAPrivateKey
    org: x509.Certificate
    org_key: rsa.RSAPrivateKey
    now: datetime

    def cas(self) -> tuple[tuple[str, str, x509.Certificate, rsa.RSAPrivateKey], ...]:
        """Return (file name, index issuer tag, certificate, key) of each CA."""
        return ((names.ROOT_FILE, "root", self.root, self.root_key), (names.ORG_CA_FILE, "org", self.org, self.org_key))


def load_crl(state_dir: Path, file: str) -> x509.CertificateRevocationList:
    """Load the current DER CRL of CA ``file`` (``ACI-EL-ORG-SIM``...).

    Raises:
        RevocationError: the CRL is missing or unparsable (revocation status unknown: fail closed).
    """
    path = state_dir / "crl" / f"{file}.crl"
    try:
        return x509.load_der_x509_crl(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise RevocationError(f"cannot load the CRL {path}; revocation status unknown") from exc


def _revoked(index: dict[str, Any], issuer: str) -> list[_build.RevokedEntry]:
    out = []
    for serial, entry in index["certs"].items():
        if entry["issuer"] == issuer and entry["revoked"] is not None:
            reason = entry["revoked"]["reason"]
            out.append(_build.RevokedEntry(
                serial=int(serial), revoked_at=datetime.fromisoformat(entry["revoked"]["at"]),
                reason=x509.ReasonFlags(reason) if reason else None,
            ))
    return out


def _is_stale(ctx: CrlContext, index: dict[str, Any], file: str, issuer: str) -> bool:
    try:
        crl = load_crl(ctx.state_dir, file)
    except RevocationError:
        return True
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    next_update = crl.next_update_utc
    if number != index["crl_numbers"][file] or next_update is None:
        return True
    if next_update - ctx.now < CRL_LIFETIME / 2:
        return True
    return {r.serial_number for r in crl} != {e.serial for e in _revoked(index, issuer)}


def any_stale(ctx: CrlContext, index: dict[str, Any]) -> bool:
    """Tell whether a CRL needs re-issuing (half-life passed, or out of step with the index)."""
    return any(_is_stale(ctx, index, file, issuer) for file, issuer, _c, _k in ctx.cas())


def write_stale(ctx: CrlContext, index: dict[str, Any], *, force: bool, only: str | None = None) -> bool:
    """Re-issue stale CRLs (all of them, or ``only`` one, when ``force``); return True if any was.

    Each re-issue increments the CA's cRLNumber in ``index`` (RFC 5280 §5.2.3: monotonically
    increasing); the caller saves the index. Writes ``<name>.crl`` (DER), ``<name>.pem`` and
    refreshes ``ca/ca-bundle-crl.pem`` (both CAs + both CRLs, for Dovecot's ``ssl_ca``).
    Must be called with the state lock held.

    Raises:
        ConfigError: a file cannot be written.
    """
    changed = False
    for file, issuer, cert, key in ctx.cas():
        if only is not None and file != only:
            continue
        if not (force or _is_stale(ctx, index, file, issuer)):
            continue
        number = int(index["crl_numbers"][file]) + 1
        crl = _build.build_crl(
            issuer_cert=cert, issuer_key=key, revoked=_revoked(index, issuer), number=number,
            this_update=ctx.now, next_update=ctx.now + CRL_LIFETIME,
        )
        _store.write_private(ctx.state_dir / "crl" / f"{file}.crl", der(crl))
        _store.write_private(ctx.state_dir / "crl" / f"{file}.pem", pem(crl))
        index["crl_numbers"][file] = number
        changed = True
    if changed:
        parts = [pem(ctx.root), pem(ctx.org)]
        parts += [_store.read_bytes(ctx.state_dir / "crl" / f"{f}.pem") for f, _i, _c, _k in ctx.cas()]
        _store.write_private(ctx.state_dir / "ca" / "ca-bundle-crl.pem", b"".join(parts))
    return changed


def issuer_key_of(cert: x509.Certificate, root: x509.Certificate, org: x509.Certificate) -> str | None:
    """Return ``"org"`` or ``"root"`` when that sandbox CA signed ``cert``, else None.
    """
    for tag, ca in (("org", org), ("root", root)):
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return tag
    return None


def published(state_dir: Path, url_path: str, crl_bytes: Callable[[str], bytes]) -> tuple[bytes, str] | None:
    """Resolve a URL path under the CRL base URL to ``(body, media type)``, or None.

    Raises:
        ConfigError: the state cannot be read.
    """
    for prefix, allowed in ((names.CRL_URL_PREFIX, CRL_NAMES), (names.AIA_URL_PREFIX, _CA_FILES)):
        if url_path.startswith(prefix):
            name = url_path[len(prefix):]
            if name not in allowed:  # a fixed allow-list: no path traversal possible
                return None
            media = _MEDIA[name[name.rfind("."):]]
            if prefix == names.CRL_URL_PREFIX:
                return crl_bytes(name), media
            return _store.read_bytes(state_dir / "ca" / name), media
    return None


def records(state_dir: Path, index: dict[str, Any]) -> list[CertRecord]:
    """Turn the index into :class:`CertRecord` values, oldest first.

    Raises:
        ConfigError: the index is malformed.
    """
    out = []
    try:
        for serial, e in index["certs"].items():
            rev = e["revoked"]
            out.append(CertRecord(
                serial=int(serial), kind=e["kind"], subject=e["subject"], issuer=e["issuer"],
                not_after=datetime.fromisoformat(e["not_after"]), cert_path=state_dir / e["cert"],
                revoked_at=datetime.fromisoformat(rev["at"]) if rev else None, reason=rev["reason"] if rev else None,
            ))
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{state_dir}/index.json is malformed: {exc}") from exc
    return out
