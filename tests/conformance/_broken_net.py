"""Broken variants of the stdlib test LPS for the network cases of issue 16 (TLS, SRV, server certificate).

Each one passed the case it targets before that case could fail (the case judged only what the
fronts negotiated, the front reached, or the absence of an authentication), and fails it now.
"""

from __future__ import annotations

import imaplib
import smtplib
import ssl
import time
import warnings
from datetime import UTC, datetime
from typing import Any

from cryptography import x509

from mssante.errors import ConfigError
from tests.conformance._lps import StdlibLPS
from tests.conformance._lps_net import TLS12_CIPHERS, Endpoint


class AcceptsOldTLS(StdlibLPS):
    """Also offers TLS 1.0/1.1 (and a SHA-1 suite they can use); the fronts still get TLS 1.3 from it (ECO.1.1.1)."""

    def context(self) -> Any:
        ctx = super().context()
        with warnings.catch_warnings():  # the old versions are deprecated in ssl, rightly
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
        # OpenSSL 3 speaks TLS 1.0/1.1 only at security level 0.
        ctx.set_ciphers(TLS12_CIPHERS + ":ECDHE-RSA-AES256-SHA:@SECLEVEL=0")
        return ctx


class OffersAllSuites(StdlibLPS):
    """Offers every suite OpenSSL has (``ALL:@SECLEVEL=0``); the fronts still get a TLS 1.3 suite (ECO.1.1.3)."""

    def context(self) -> Any:
        ctx = super().context()
        ctx.set_ciphers("ALL:@SECLEVEL=0")
        return ctx


def _configured(info: Any, protocol: str, front: str) -> Endpoint:
    ep = info[protocol][front]
    return Endpoint(host=str(ep["host"]), address="127.0.0.1", port=int(ep["port"]))


class HardCodedHosts(StdlibLPS):
    """Connects to the right front by its name and port, written in its configuration: no DNS lookup (ECO.1.1.9)."""

    def endpoint_imap(self) -> Endpoint:
        return _configured(self.cfg.info, "imap", "psc" if self.psc else "authcli")

    def endpoint_smtp(self) -> Endpoint:
        return _configured(self.cfg.info, "smtp", "psc" if self.psc else "authcli")


class RetriesRefusedCert(StdlibLPS):
    """Refuses a bad server certificate, then tries again and again (ECO.1.1.x, ECO.1.2.3)."""

    def open_session(self, fresh: bool) -> None:
        for _ in range(8):
            try:
                super().open_session(fresh)
                return
            except ssl.SSLError:
                fresh = False
                time.sleep(0.02)
        raise ConfigError("server certificate refused 8 times")


def _bundle_names(path: str) -> set[x509.Name]:
    with open(path, "rb") as fh:
        return {c.subject for c in x509.load_pem_x509_certificates(fh.read())}


class TrustsIssuerNames(StdlibLPS):
    """Checks the server certificate by the *name* of its issuer (one of the IGC Santé CAs of its
    bundle), its dates and its host name, but not the chain's signatures (ECO.1.1.10)."""

    def context(self) -> Any:
        ctx = super().context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def _check(self, sock: Any, host: str) -> None:
        cert = x509.load_der_x509_certificate(sock.getpeercert(binary_form=True))
        now = datetime.now(UTC)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        if (cert.issuer not in _bundle_names(self.cfg.info["ca_bundle"])
                or not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc
                or host not in san.get_values_for_type(x509.DNSName)):
            raise ssl.SSLCertVerificationError(f"server certificate refused: issuer {cert.issuer.rfc4514_string()}")

    def imap_starttls(self, imap: imaplib.IMAP4) -> None:
        super().imap_starttls(imap)
        self._check(imap.sock, imap.host)

    def smtp_starttls(self, smtp: smtplib.SMTP) -> None:
        super().smtp_starttls(smtp)
        self._check(smtp.sock, smtp._host)  # type: ignore[attr-defined]  # smtplib: server_hostname = _host
