"""Issuing leaves from the ORG CA into the state directory, and the index entries that track them.

Index entry (``index["certs"][<decimal serial>]``): ``kind``, ``issuer`` (``root``, ``org``,
or the kind of a foreign negative CA), ``subject`` (RFC 4514), ``cert``/``key`` (paths relative
to the state directory), ``not_after`` (ISO 8601), ``revoked`` (None or ``{"at", "reason"}``),
and ``issuer_cert`` for foreign ones. Callers hold the state lock and save the index.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from mssante.errors import ConfigError, UsageError
from mssante.sandbox.config import Structure
from mssante.sandbox.pki import _build, _crl, _store, names
from mssante.sandbox.pki.records import IssuedCert

#: The structure used by :meth:`TestPKI.issue_negative_certs` when none is given.
NEGATIVE_STRUCTURE = Structure(national_id="1999999999", name="STRUCTURE NEGATIVE SANDBOX", departement="Paris (75)")

_SERVER_VALIDITY = timedelta(days=397)
_SERVER_RENEW_BEFORE = timedelta(days=30)
_SERVER_IPS = ("127.0.0.1",)
_SKEW = timedelta(minutes=5)


def check_base_url(url: str) -> str:
    """Validate and normalise (no trailing slash) the CRL/AIA base URL.

    Raises:
        ConfigError: not an http(s) URL with a host, or it has a query or fragment.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(f"crl_base_url must be an http(s) URL without query, got {url!r}")
    return url.rstrip("/")


def add(index: dict[str, Any], cert: x509.Certificate, *, kind: str, issuer: str, cert_path: Path,
        key_path: Path) -> str:
    """Record ``cert`` in the index and return its serial as the index key."""
    serial = str(cert.serial_number)
    index["certs"][serial] = {
        "kind": kind, "issuer": issuer, "subject": cert.subject.rfc4514_string(), "cert": str(cert_path),
        "key": str(key_path), "not_after": cert.not_valid_after_utc.isoformat(), "revoked": None,
    }
    return serial


def find(index: dict[str, Any], kind: str, subject: x509.Name | None = None,
         valid_at: datetime | None = None) -> tuple[str, dict[str, Any]] | None:
    """Return the newest entry of ``kind`` (and ``subject``), unrevoked and valid at ``valid_at``.

    Entries of kind ``revoked`` are found although revoked.
    """
    wanted = subject.rfc4514_string() if subject is not None else None
    for serial, entry in reversed(list(index["certs"].items())):
        if entry["kind"] != kind or (entry["revoked"] is not None and kind != "revoked"):
            continue
        if wanted is not None and entry["subject"] != wanted:
            continue
        if valid_at is not None and datetime.fromisoformat(entry["not_after"]) <= valid_at:
            continue
        return serial, entry
    return None


@dataclass(frozen=True)
class Issuer:
    """The ORG CA as seen from a state directory."""

    state_dir: Path
    org_cert: x509.Certificate
    org_key: rsa.RSAPrivateKey
    base_url: str

    def _path(self, file: str) -> Path:
        return self.state_dir / "ca" / f"{file}.pem"

    def sign(self, spec: _build.LeafSpec, key: rsa.RSAPrivateKey) -> x509.Certificate:
        """Sign a leaf with the ORG CA, with its CRL DP and AIA."""
        return _build.build_leaf(
            spec, key.public_key(), issuer_cert=self.org_cert, issuer_key=self.org_key,
            issuer_file=names.ORG_CA_FILE, base_url=self.base_url,
        )

    def issued(self, index: dict[str, Any], serial: str) -> IssuedCert:
        """Build the :class:`IssuedCert` of an index entry."""
        entry = index["certs"][serial]
        issuer = {"org": self._path(names.ORG_CA_FILE), "root": self._path(names.ROOT_FILE)}.get(entry["issuer"])
        return IssuedCert(
            cert_path=self.state_dir / entry["cert"], key_path=self.state_dir / entry["key"], serial=int(serial),
            kind=entry["kind"], issuer_path=issuer or self.state_dir / entry["issuer_cert"],
        )

    def org_leaf(
        self, index: dict[str, Any], *, kind: str, profile: _build.Profile, subject: x509.Name,
        not_before: datetime, not_after: datetime, folder: str,
    ) -> IssuedCert:
        """Issue a leaf from the ORG CA into ``folder`` (files named by hex serial).

        Raises:
            ConfigError: a file cannot be written.
        """
        key = _build.new_key()
        cert = self.sign(_build.LeafSpec(profile=profile, subject=subject, not_before=not_before,
                                         not_after=not_after), key)
        rel = Path(folder) / f"{cert.serial_number:x}"
        _store.write_private(self.state_dir / rel.with_suffix(".key"), _store.key_pem(key))
        _store.write_private(self.state_dir / rel.with_suffix(".pem"), _crl.pem(cert))
        serial = add(index, cert, kind=kind, issuer="org", cert_path=rel.with_suffix(".pem"),
                     key_path=rel.with_suffix(".key"))
        return self.issued(index, serial)

    def ensure_server_cert(self, index: dict[str, Any], server_names: list[str], now: datetime) -> None:
        """(Re-)issue the server certificate when names changed, it is missing or near expiry.

        Writes ``server/server.pem`` (leaf + ORG CA) and ``server/server.key``.

        Raises:
            ConfigError: an invalid server name, or a file cannot be written.
        """
        for name in server_names:
            if not name or any(ch.isspace() or ch in "/@:" for ch in name):
                raise ConfigError(f"invalid server name {name!r}")
        cert_path, key_path = Path("server/server.pem"), Path("server/server.key")
        current = find(index, "server")
        if (
            current is not None and index["server_names"] == server_names and (self.state_dir / cert_path).exists()
            and datetime.fromisoformat(current[1]["not_after"]) - now > _SERVER_RENEW_BEFORE
        ):
            return
        key = _build.new_key()
        spec = _build.LeafSpec(
            profile="server", subject=_build.server_subject(server_names[0]), not_before=now - _SKEW,
            not_after=now + _SERVER_VALIDITY, dns_names=server_names, ip_addresses=_SERVER_IPS,
        )
        cert = self.sign(spec, key)
        _store.write_private(self.state_dir / key_path, _store.key_pem(key))
        _store.write_private(self.state_dir / cert_path, _crl.pem(cert) + _crl.pem(self.org_cert))
        if current is not None:
            index["certs"][current[0]]["kind"] = "server_old"  # files replaced; kept for revocation
        add(index, cert, kind="server", issuer="org", cert_path=cert_path, key_path=key_path)
        index["server_names"] = server_names

    def negatives(self, index: dict[str, Any], subject: x509.Name, folder: str, now: datetime) -> dict[str, IssuedCert]:
        """Issue the negative-test certificates that do not exist yet for ``subject``.

        Raises:
            ConfigError: a file cannot be written.
        """
        out: dict[str, IssuedCert] = {}
        plan: tuple[tuple[str, _build.Profile, datetime, datetime], ...] = (
            ("expired", "auth_cli", _build.add_years(now, -3) - timedelta(days=30), now - timedelta(days=1)),
            ("no_clientauth", "sign", now - _SKEW, _build.add_years(now, 3)),
            ("revoked", "auth_cli", now - _SKEW, _build.add_years(now, 3)),
        )
        for kind, profile, start, end in plan:
            found = find(index, kind, subject)
            out[kind] = self.issued(index, found[0]) if found else self.org_leaf(
                index, kind=kind, profile=profile, subject=subject, not_before=start, not_after=end, folder=folder,
            )
        for kind, ca_name in (("foreign", names.FOREIGN_CA_NAME), ("impostor", names.ORG_CA_NAME)):
            found = find(index, kind, subject)
            out[kind] = self.issued(index, found[0]) if found else self._foreign(
                index, kind, ca_name, subject, now, folder
            )
        return out

    def _foreign(
        self, index: dict[str, Any], kind: str, ca_name: x509.Name, subject: x509.Name, now: datetime, folder: str
    ) -> IssuedCert:
        ca_key = _build.new_key()  # 2048 is plenty for a negative-test CA
        ca = _build.build_ca(subject=ca_name, key=ca_key, issuer=None, now=now, base_url=None)
        key = _build.new_key()
        spec = _build.LeafSpec(profile="auth_cli", subject=subject, not_before=now - _SKEW,
                               not_after=_build.add_years(now, 3))
        # The impostor also claims the real ORG CA's key identifier, so that verifiers (openssl
        # included) pick the real CA and must reject the signature itself.
        claimed = self.org_key.public_key() if kind == "impostor" else None
        cert = _build.build_leaf(spec, key.public_key(), issuer_cert=ca, issuer_key=ca_key, issuer_file=None,
                                 base_url=None, claimed_issuer_key=claimed)
        rel = Path(folder) / kind
        _store.write_private(self.state_dir / f"{rel}-ca.pem", _crl.pem(ca))
        _store.write_private(self.state_dir / f"{rel}.key", _store.key_pem(key))
        _store.write_private(self.state_dir / f"{rel}.pem", _crl.pem(cert))
        serial = add(index, cert, kind=kind, issuer=kind, cert_path=Path(f"{rel}.pem"), key_path=Path(f"{rel}.key"))
        index["certs"][serial]["issuer_cert"] = f"{rel}-ca.pem"
        return self.issued(index, serial)


def create_state(state_dir: Path, base_url: str, now: datetime) -> dict[str, Any]:
    """Create the root and ORG CAs, their files, first CRLs and bundle; return the new index.

    The index is returned unsaved: the caller writes it last, so a crash mid-way leaves a
    directory without ``index.json`` that the next start simply recreates.

    Raises:
        ConfigError: a file cannot be written.
    """
    root_key = _build.new_key(_build.CA_KEY_BITS)
    root = _build.build_ca(subject=names.ROOT_NAME, key=root_key, issuer=None, now=now, base_url=base_url)
    org_key = _build.new_key(_build.CA_KEY_BITS)
    org = _build.build_ca(subject=names.ORG_CA_NAME, key=org_key, issuer=(root, root_key), now=now, base_url=base_url)
    index: dict[str, Any] = {
        "format": _store.INDEX_FORMAT, "crl_base_url": base_url, "server_names": [],
        "crl_numbers": {names.ROOT_FILE: 0, names.ORG_CA_FILE: 0}, "certs": {},
    }
    cas = ((names.ROOT_FILE, root, root_key, "root"), (names.ORG_CA_FILE, org, org_key, "org_ca"))
    for file, cert, key, kind in cas:
        _store.write_private(state_dir / "ca" / f"{file}.key", _store.key_pem(key))
        _store.write_private(state_dir / "ca" / f"{file}.pem", _crl.pem(cert))
        _store.write_private(state_dir / "ca" / f"{file}.cer", _crl.der(cert))
        add(index, cert, kind=kind, issuer="root", cert_path=Path("ca") / f"{file}.pem",
            key_path=Path("ca") / f"{file}.key")
    _store.write_private(state_dir / "ca" / "ca-bundle.pem", _crl.pem(root) + _crl.pem(org))
    _crl.write_stale(_crl.CrlContext(state_dir, root, root_key, org, org_key, now), index, force=True)
    return index


def revocable_serial(
    index: dict[str, Any], target: int | Path, root: x509.Certificate, org: x509.Certificate
) -> int:
    """Resolve a serial or a PEM path to a serial the sandbox CAs may revoke.

    A PEM signed by a sandbox CA but missing from the index (e.g. copied from an older
    state) is added to it, so that it can still be revoked.

    Raises:
        UsageError: not issued by the sandbox CAs, unknown serial, the root, or a foreign negative cert.
        ConfigError: the PEM file cannot be read.
    """
    if isinstance(target, Path):
        cert = _store.load_cert(target)
        issuer = _crl.issuer_key_of(cert, root, org)
        if issuer is None:
            raise UsageError(f"{target} was not issued by the sandbox CAs: it cannot be revoked here")
        if str(cert.serial_number) not in index["certs"]:
            add(index, cert, kind="unknown", issuer=issuer, cert_path=target, key_path=target)
        serial = cert.serial_number
    else:
        serial = target
    entry = index["certs"].get(str(serial))
    if entry is None:
        raise UsageError(f"serial {serial:X} was not issued by this sandbox PKI")
    if entry["kind"] == "root":
        raise UsageError("the root CA cannot be revoked (remove it from trust stores instead)")
    if entry["issuer"] not in ("root", "org"):
        raise UsageError(f"serial {serial:X} is a negative-test certificate of a foreign CA, not ours to revoke")
    return serial
