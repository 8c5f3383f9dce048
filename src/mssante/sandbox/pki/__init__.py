"""The sandbox's test PKI, modelled on IGC Santé TEST (psc-igc.md §4).

A root CA (``ACR-EL-SIM``) and an ORGANISATIONS intermediate (``ACI-EL-ORG-SIM``) with the
IGC Santé DN layout and extensions but clearly distinct ``SIMULATION`` names; a server
certificate for every sandbox host; ORG AUTH_CLI client certificates; CRLs served over HTTP;
revocation from another process; negative-test certificates; TLS contexts. All keys are made
at run time in the state directory (dirs 0700, files 0600); nothing secret is ever committed.

Typical use::

    pki = TestPKI.load_or_create(state_dir, server_names=config.server_names,
                                 crl_base_url="http://127.0.0.1:8080")
    cert = pki.issue_client_cert(structure, cn="DPI HOPITAL")
    ctx = pki.server_ssl_context(require_client_cert=True)
    identity = pki.check_client_certificate(ssl_object.getpeercert(binary_form=True))
"""

from __future__ import annotations

from mssante.sandbox.pki._pki import NEGATIVE_STRUCTURE, TestPKI
from mssante.sandbox.pki.check import ClientIdentity, verify_client_certificate
from mssante.sandbox.pki.names import (
    AIA_URL_PREFIX,
    CRL_URL_PREFIX,
    ORG_CA_FILE,
    ORG_CA_NAME,
    ROOT_FILE,
    ROOT_NAME,
    crl_url,
)
from mssante.sandbox.pki.records import CertRecord, Clock, IssuedCert, Revocation

__all__ = [
    "AIA_URL_PREFIX",
    "CRL_URL_PREFIX",
    "NEGATIVE_STRUCTURE",
    "ORG_CA_FILE",
    "ORG_CA_NAME",
    "ROOT_FILE",
    "ROOT_NAME",
    "CertRecord",
    "ClientIdentity",
    "Clock",
    "IssuedCert",
    "Revocation",
    "TestPKI",
    "crl_url",
    "verify_client_certificate",
]
