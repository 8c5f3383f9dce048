"""The :class:`TestPKI`: an IGC Santé TEST-shaped PKI living in a sandbox state directory."""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from mssante.errors import ConfigError, UsageError
from mssante.sandbox.config import Structure
from mssante.sandbox.pki import _badserver, _build, _crl, _issue, _store, _tls, names
from mssante.sandbox.pki._issue import NEGATIVE_STRUCTURE
from mssante.sandbox.pki.check import ClientIdentity, verify_client_certificate
from mssante.sandbox.pki.records import CertRecord, Clock, IssuedCert, Revocation, parse_reason, system_clock

__all__ = ["NEGATIVE_STRUCTURE", "TestPKI"]


class TestPKI:
    """Root CA, ORG CA, server and client certificates, CRLs, all in one state directory.

    Create or reopen it with :meth:`load_or_create` (the sandbox) or :meth:`load` (the CLI).
    Every method that changes the state takes an inter-process lock and re-reads the index,
    so the sandbox and ``mssante sandbox pki`` can work on the same directory at once.
    """

    __test__ = False  # not a pytest test class despite its name

    def __init__(self, state_dir: Path, *, clock: Clock, index: dict[str, Any]) -> None:
        """Open an existing state; use :meth:`load_or_create` or :meth:`load` instead.

        Raises:
            ConfigError: a CA file is missing, damaged, or the ORG CA does not chain to the root.
        """
        self._dir = state_dir
        self._clock = clock
        self._base_url: str = index["crl_base_url"]
        self.root_cert = _store.load_cert(self._ca_path(names.ROOT_FILE, "pem"))
        self._root_key = _store.load_key(self._ca_path(names.ROOT_FILE, "key"))
        self.org_ca_cert = _store.load_cert(self._ca_path(names.ORG_CA_FILE, "pem"))
        self._org_key = _store.load_key(self._ca_path(names.ORG_CA_FILE, "key"))
        for cert, key in ((self.root_cert, self._root_key), (self.org_ca_cert, self._org_key)):
            if cert.public_key() != key.public_key():
                raise ConfigError(f"{state_dir}: CA key does not match {cert.subject.rfc4514_string()}")
        try:
            self.org_ca_cert.verify_directly_issued_by(self.root_cert)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise ConfigError(f"{state_dir}: the ORG CA is not signed by the root CA") from exc

    # ----------------------------------------------------------------- opening

    @classmethod
    def load_or_create(
        cls,
        state_dir: Path,
        *,
        server_names: Sequence[str],
        crl_base_url: str | None = None,
        clock: Clock | None = None,
    ) -> TestPKI:
        """Open the PKI of ``state_dir``, creating it (keys, CAs, CRLs) on first use.

        Idempotent: existing CAs and certificates are reused, so trust survives restarts. The
        server certificate is re-issued (by the same ORG CA) when ``server_names`` changed or it
        expires within 30 days; stale CRLs are re-issued.

        Args:
            server_names: DNS names of every sandbox host (SAN; 127.0.0.1 is always added).
            crl_base_url: base URL serving ``/crl/<name>`` and ``/ac/<name>``, written into the
                certificates; required on creation, must match afterwards (None = keep). Use a
                URL that does not change between runs (not an ephemeral port).
            clock: returns the current aware UTC time; defaults to the system clock.

        Raises:
            ConfigError: no ``crl_base_url`` on creation or a different one than stored, an
                invalid URL or server name, or an unreadable/damaged state directory.
        """
        if not server_names:
            raise ConfigError("the sandbox PKI needs at least one server name")
        clock = clock or system_clock
        _store.ensure_dir(state_dir)
        with _store.locked(state_dir):
            index = _store.load_index(state_dir)
            if index is None:
                if crl_base_url is None:
                    raise ConfigError(f"{state_dir} holds no PKI yet: a crl_base_url is needed to create one")
                index = _issue.create_state(state_dir, _issue.check_base_url(crl_base_url), clock())
            elif crl_base_url is not None and _issue.check_base_url(crl_base_url) != index["crl_base_url"]:
                raise ConfigError(
                    f"the PKI in {state_dir} publishes its CRLs at {index['crl_base_url']}, not {crl_base_url}; "
                    "certificates already carry that URL: pass the same one, or use a new state directory"
                )
            pki = cls(state_dir, clock=clock, index=index)
            pki._issuer().ensure_server_cert(index, [n.lower().rstrip(".") for n in server_names], clock())
            _crl.write_stale(pki._crl_ctx(), index, force=False)
            _store.save_index(state_dir, index)
        return pki

    @classmethod
    def load(cls, state_dir: Path, *, clock: Clock | None = None) -> TestPKI:
        """Open an existing PKI (the CLI's way: it never creates one).

        Raises:
            ConfigError: ``state_dir`` holds no PKI, or it is damaged.
        """
        index = _store.load_index(state_dir)
        if index is None:
            raise ConfigError(f"{state_dir} holds no sandbox PKI (start the sandbox once to create it)")
        return cls(state_dir, clock=clock or system_clock, index=index)

    # ----------------------------------------------------------------- paths and properties

    def _ca_path(self, file: str, ext: str) -> Path:
        return self._dir / "ca" / f"{file}.{ext}"

    def _crl_ctx(self) -> _crl.CrlContext:
        return _crl.CrlContext(
            self._dir, self.root_cert, self._root_key, self.org_ca_cert, self._org_key, self._clock()
        )

    @property
    def state_dir(self) -> Path:
        """The state directory."""
        return self._dir

    @property
    def crl_base_url(self) -> str:
        """Base URL written in CRL DP and AIA extensions (``<base>/crl/<name>``)."""
        return self._base_url

    @property
    def ca_bundle_path(self) -> Path:
        """PEM with the root then the ORG CA: the trust store for sandbox clients."""
        return self._dir / "ca" / "ca-bundle.pem"

    @property
    def ca_bundle_with_crls_path(self) -> Path:
        """PEM with both CAs and both current CRLs, for Dovecot's ``ssl_ca`` (it wants CRLs)."""
        return self._dir / "ca" / "ca-bundle-crl.pem"

    @property
    def root_cert_path(self) -> Path:
        """PEM of the root CA certificate."""
        return self._ca_path(names.ROOT_FILE, "pem")

    @property
    def org_ca_cert_path(self) -> Path:
        """PEM of the ORG CA certificate."""
        return self._ca_path(names.ORG_CA_FILE, "pem")

    @property
    def server_cert_path(self) -> Path:
        """PEM of the server certificate followed by the ORG CA (a full chain for TLS servers)."""
        return self._dir / "server" / "server.pem"

    @property
    def server_key_path(self) -> Path:
        """PEM of the server key (0600)."""
        return self._dir / "server" / "server.key"

    # ----------------------------------------------------------------- issuing

    def _issuer(self) -> _issue.Issuer:
        return _issue.Issuer(self._dir, self.org_ca_cert, self._org_key, self._base_url)

    def issue_client_cert(self, structure: Structure, cn: str) -> IssuedCert:
        """Issue (or reuse) an ORG AUTH_CLI certificate for ``structure``.

        Profile (psc-igc.md §4.3): subject ``C=FR, ST=<département>, O=<name[:64]>,
        OU=<IdNat_Struct>, CN=<cn>`` in encoding order, RSA 2048, SHA-256, 3 years, keyUsage
        digitalSignature (critical), EKU clientAuth only, CRL DP and AIA caIssuers, issued by
        the ORG CA. A certificate with the same subject that is neither revoked nor expiring
        within a day is returned instead of a new one.

        Raises:
            ConfigError: ``cn`` is empty or longer than 64 characters, or the state cannot be written.
        """
        subject = names.org_subject(
            departement=structure.departement, name=structure.name, structure_id=structure.national_id, cn=cn
        )
        with _store.locked(self._dir):
            index = self._reload()
            now = self._clock()
            found = _issue.find(index, "auth_cli", subject, now + timedelta(days=1))
            if found is not None:
                return self._issuer().issued(index, found[0])
            issued = self._issuer().org_leaf(
                index, kind="auth_cli", profile="auth_cli", subject=subject, not_before=now - timedelta(minutes=5),
                not_after=_build.add_years(now, 3), folder=f"clients/{structure.national_id}",
            )
            _store.save_index(self._dir, index)
            return issued

    def issue_negative_certs(
        self, structure: Structure | None = None, cn: str = "LPS SANDBOX"
    ) -> dict[str, IssuedCert]:
        """Issue (once) the certificates an AUTH_CLI front must refuse, all for ``structure``.

        Keys: ``expired`` (AUTH_CLI, ORG CA, validity ended yesterday); ``foreign`` (AUTH_CLI
        profile from a self-signed CA that is in no bundle); ``impostor`` (a self-signed CA
        with the ORG CA's exact name but another key: only the signature check catches it);
        ``no_clientauth`` (ORG SIGN profile: EKU emailProtection, KU
        digitalSignature+nonRepudiation); ``revoked`` (AUTH_CLI, revoked for keyCompromise and
        listed in the ORG CRL). Pass a configured structure so that the certificate defect is
        the only reason for refusal. Later calls return the same certificates.

        Raises:
            ConfigError: ``cn`` is invalid, or the state cannot be written.
        """
        st = structure or NEGATIVE_STRUCTURE
        subject = names.org_subject(departement=st.departement, name=st.name, structure_id=st.national_id, cn=cn)
        with _store.locked(self._dir):
            index = self._reload()
            now = self._clock()
            out = self._issuer().negatives(index, subject, f"negative/{st.national_id}", now)
            entry = index["certs"][str(out["revoked"].serial)]
            if entry["revoked"] is None:
                entry["revoked"] = {"at": now.isoformat(), "reason": x509.ReasonFlags.key_compromise.value}
                _store.save_index(self._dir, index)
                _crl.write_stale(self._crl_ctx(), index, force=True, only=names.ORG_CA_FILE)
            _store.save_index(self._dir, index)
        return out

    # ----------------------------------------------------------------- revocation and CRLs

    def _reload(self) -> dict[str, Any]:
        index = _store.load_index(self._dir)
        if index is None:
            raise ConfigError(f"{self._dir}/index.json disappeared; the PKI state is damaged")
        return index

    def revoke(self, target: int | Path, *, reason: str | x509.ReasonFlags | None = None) -> Revocation:
        """Revoke a certificate by serial number or by the path of its PEM, and re-issue the CRL.

        Safe while the sandbox runs: the change is made under the state lock and the CRL file
        is replaced atomically; :meth:`check_client_certificate` and :meth:`crl_bytes` read the
        new CRL on their next call. Revoking twice changes nothing.

        Raises:
            UsageError: unknown reason; a serial this PKI never issued; the root or a
                certificate not issued by the sandbox CAs.
            ConfigError: the PEM file cannot be read, or the state cannot be written.
        """
        flag = parse_reason(reason)
        with _store.locked(self._dir):
            index = self._reload()
            serial = _issue.revocable_serial(index, target, self.root_cert, self.org_ca_cert)
            entry = index["certs"][str(serial)]
            if entry["revoked"] is not None:
                rev = entry["revoked"]
                return Revocation(serial=serial, revoked_at=datetime.fromisoformat(rev["at"]), reason=rev["reason"],
                                  newly_revoked=False)
            now = self._clock()
            entry["revoked"] = {"at": now.isoformat(), "reason": flag.value if flag else None}
            _store.save_index(self._dir, index)  # index first: a crash before the CRL is caught by write_stale
            which = names.ROOT_FILE if entry["issuer"] == "root" else names.ORG_CA_FILE
            _crl.write_stale(self._crl_ctx(), index, force=True, only=which)
            _store.save_index(self._dir, index)
        return Revocation(serial=serial, revoked_at=now.replace(microsecond=0), reason=flag.value if flag else None,
                          newly_revoked=True)

    @property
    def crl_names(self) -> tuple[str, ...]:
        """File names served under ``/crl/``: DER ``.crl`` and PEM ``.pem`` of both CAs."""
        return _crl.CRL_NAMES

    def crl_url(self, name: str) -> str:
        """Full URL of a CRL file, e.g. ``<crl_base_url>/crl/ACI-EL-ORG-SIM.crl``.

        Raises:
            UsageError: ``name`` is not one of :attr:`crl_names`.
        """
        if name not in _crl.CRL_NAMES:
            raise UsageError(f"unknown CRL {name!r}; one of {', '.join(_crl.CRL_NAMES)}")
        return self._base_url.rstrip("/") + names.CRL_URL_PREFIX + name

    def crl_bytes(self, name: str) -> bytes:
        """Return the current CRL file ``name`` (re-issuing CRLs first if past half their life).

        Raises:
            UsageError: ``name`` is not one of :attr:`crl_names`.
            ConfigError: the state cannot be read or written.
        """
        if name not in _crl.CRL_NAMES:
            raise UsageError(f"unknown CRL {name!r}; one of {', '.join(_crl.CRL_NAMES)}")
        self.refresh_crls()
        return _store.read_bytes(self._dir / "crl" / name)

    def published(self, url_path: str) -> tuple[bytes, str] | None:
        """Return ``(body, media type)`` for a URL path below :attr:`crl_base_url`, or None (404).

        Serves ``/crl/<name>`` (:attr:`crl_names`) and ``/ac/ACR-EL-SIM.cer``,
        ``/ac/ACI-EL-ORG-SIM.cer`` (DER, the AIA caIssuers targets). Mount it on the sandbox's
        HTTP server at ``crl_base_url``.

        Raises:
            ConfigError: the state cannot be read or written.
        """
        return _crl.published(self._dir, url_path, self.crl_bytes)

    def refresh_crls(self) -> None:
        """Re-issue any CRL past half its validity, or out of step with the index.

        Raises:
            ConfigError: the state cannot be read or written.
        """
        if not _crl.any_stale(self._crl_ctx(), self._reload()):
            return  # the common case: no lock needed, files are replaced atomically
        with _store.locked(self._dir):
            index = self._reload()
            if _crl.write_stale(self._crl_ctx(), index, force=False):
                _store.save_index(self._dir, index)

    def check_client_certificate(self, der: bytes) -> ClientIdentity:
        """Verify a client certificate (DER, as seen in the TLS handshake) against the current state.

        See :func:`~mssante.sandbox.pki.check.verify_client_certificate`; the CRL is re-read from
        disk on each call, so revocations made by another process apply at once.

        Raises:
            CertificateError: wrong issuer or signature, outside validity, no clientAuth, bad subject.
            RevocationError: revoked, or the CRL is unusable.
            ConfigError: the state cannot be read.
        """
        self.refresh_crls()
        crl = _crl.load_crl(self._dir, names.ORG_CA_FILE)
        return verify_client_certificate(der, org_ca=self.org_ca_cert, crl=crl, now=self._clock())

    def records(self) -> list[CertRecord]:
        """List every certificate in the index, oldest first.

        Raises:
            ConfigError: the state cannot be read.
        """
        return _crl.records(self._dir, self._reload())

    # ----------------------------------------------------------------- TLS

    def server_ssl_context(
        self, require_client_cert: bool = False, *, verify_mode: ssl.VerifyMode = ssl.CERT_OPTIONAL,
        check_crl: bool = False,
    ) -> ssl.SSLContext:
        """Build a TLS ≥ 1.2 server context with the sandbox server certificate (all host names).

        With ``require_client_cert`` the server asks for a client certificate and verifies a
        presented one against the CA bundle; ``verify_mode`` defaults to ``CERT_OPTIONAL`` so a
        client without a certificate still connects and is refused at the SASL step with a clear
        error (use ``CERT_REQUIRED`` to refuse in the handshake). Revocation is left to
        :meth:`check_client_certificate` unless ``check_crl`` (see :mod:`._tls` for why).

        Raises:
            ConfigError: a certificate, key or CRL file cannot be loaded.
            UsageError: ``verify_mode`` is ``CERT_NONE`` with ``require_client_cert``.
        """
        return _tls.server_context(
            cert_chain=self.server_cert_path, key=self.server_key_path,
            client_ca=self.ca_bundle_path if require_client_cert else None, verify_mode=verify_mode,
            crl_pem=self._dir / "crl" / f"{names.ORG_CA_FILE}.pem" if check_crl else None,
        )

    def ensure_bad_server_certs(self) -> dict[str, tuple[Path, Path]]:
        """Issue (once per state directory and server names) the server certificates an LPS must refuse.

        Kinds (see :mod:`._badserver`): ``expired``, ``foreign`` (CA in no bundle),
        ``wrong-host`` (other host names only), ``revoked`` (listed in the ORG CRL), ``impostor``
        (a chain from another root with the IGC Santé names). The
        sandbox calls this at start, so that the revoked one is in the CRL before any LPS
        downloads (and caches) it. Returns kind → (chain PEM, key PEM).

        Raises:
            ConfigError: the state cannot be read or written.
        """
        with _store.locked(self._dir):
            index = self._reload()
            before = len(index["certs"])
            out: dict[str, tuple[Path, Path]] = {}
            revoked = False
            for kind in _badserver.BAD_SERVER_KINDS:
                chain, key, _, new = _badserver.ensure_bad_server(
                    self._issuer(), index, kind, list(index["server_names"]), self._clock()
                )
                out[kind] = (chain, key)
                revoked = revoked or new
            if len(index["certs"]) != before:
                _store.save_index(self._dir, index)
            if revoked:
                _crl.write_stale(self._crl_ctx(), index, force=True, only=names.ORG_CA_FILE)
                _store.save_index(self._dir, index)
        return out

    def bad_server_ssl_context(
        self, kind: _badserver.BadServerKind, require_client_cert: bool = False
    ) -> ssl.SSLContext:
        """A server context presenting a certificate an LPS must refuse (see :meth:`ensure_bad_server_certs`).

        Client certificates are asked for and verified as by :meth:`server_ssl_context`.

        Raises:
            UsageError: unknown ``kind``.
            ConfigError: the state cannot be read or written, or a file cannot be loaded.
        """
        if kind not in _badserver.BAD_SERVER_KINDS:
            raise UsageError(f"bad server certificate must be one of {', '.join(_badserver.BAD_SERVER_KINDS)}")
        chain, key = self.ensure_bad_server_certs()[kind]
        return _tls.server_context(
            cert_chain=chain, key=key, client_ca=self.ca_bundle_path if require_client_cert else None,
        )

    def client_ssl_context(self, client: IssuedCert | None = None) -> ssl.SSLContext:
        """Build a TLS ≥ 1.2 client context trusting the bundle, presenting ``client`` if given.

        Raises:
            ConfigError: a file cannot be loaded.
        """
        return _tls.client_context(
            ca_bundle=self.ca_bundle_path, cert=client.cert_path if client else None,
            key=client.key_path if client else None,
        )
