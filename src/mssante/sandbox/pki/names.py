"""Names, file names, URL conventions and OIDs of the sandbox test PKI.

The hierarchy copies the shape of IGC Santé TEST (psc-igc.md §4.2): a root ("ACR-EL") and an
ORGANISATIONS intermediate ("ACI-EL-ORG") with the same distinguished-name attribute order
(``C, O, OU=<ICD+SIREN>, OU=<range>, CN``, in encoding order). Every name carries
``SIMULATION`` and ``O=MSSANTE SANDBOX``, and the SIREN is a fake one, so that a trust store can
never confuse these CAs with the real ``IGC-SANTE TEST`` ones.
"""

from __future__ import annotations

from typing import Final

from cryptography import x509
from cryptography.x509.oid import NameOID, ObjectIdentifier

from mssante.errors import ConfigError

__all__ = [
    "AIA_URL_PREFIX",
    "CRL_URL_PREFIX",
    "FOREIGN_CA_NAME",
    "LEAF_POLICY_OID",
    "ORG_CA_FILE",
    "ORG_CA_NAME",
    "ROOT_FILE",
    "ROOT_NAME",
    "SANDBOX_OPERATOR_ID",
    "ca_issuers_url",
    "cps_url",
    "crl_url",
    "org_subject",
]

#: Base file names, like IGC Santé's ``ACR-EL`` / ``ACI-EL-ORG`` (TEST ones end in ``-TEST``;
#: ours end in ``-SIM``). ``.crl``/``.cer`` are DER, ``.pem`` the PEM copy.
ROOT_FILE: Final = "ACR-EL-SIM"
ORG_CA_FILE: Final = "ACI-EL-ORG-SIM"

#: URL path conventions, relative to the sandbox's ``crl_base_url``. IGC Santé publishes
#: ``/CRL/<name>.crl`` and ``/AC/<name>.cer`` (psc-igc.md §4.2, §4.3); we use lower case.
CRL_URL_PREFIX: Final = "/crl/"
AIA_URL_PREFIX: Final = "/ac/"

# Fake ICD 0002 (SIRENE) + SIREN: the real CAs carry "0002 187512751" (ANS), ours must not.
_ICD_SIREN: Final = "0002 000000000"
_RANGE_OU: Final = "IGC-SANTE TEST SIMULATION"
_ORG: Final = "MSSANTE SANDBOX"


def _ca_name(cn: str) -> x509.Name:
    # Encoding order C, O, OU, OU, CN: the RFC 4514 string prints it reversed, as in
    # psc-igc.md §4.2 ("CN=...,OU=IGC-SANTE TEST,OU=0002 187512751,O=ASIP-SANTE,C=FR").
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORG),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, _ICD_SIREN),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, _RANGE_OU),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


#: ``CN=TEST AC RACINE IGC-SANTE ELEMENTAIRE SIMULATION,OU=IGC-SANTE TEST SIMULATION,...``
ROOT_NAME: Final = _ca_name("TEST AC RACINE IGC-SANTE ELEMENTAIRE SIMULATION")
#: ``CN=TEST AC IGC-SANTE ELEMENTAIRE ORGANISATIONS SIMULATION,OU=IGC-SANTE TEST SIMULATION,...``
ORG_CA_NAME: Final = _ca_name("TEST AC IGC-SANTE ELEMENTAIRE ORGANISATIONS SIMULATION")
#: The self-signed CA of the "foreign" negative certificate; it is never in the bundle.
FOREIGN_CA_NAME: Final = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "MSSANTE SANDBOX NEGATIVE TESTS"),
        x509.NameAttribute(NameOID.COMMON_NAME, "FOREIGN TEST CA NOT IGC-SANTE"),
    ]
)

#: IdNat_Struct-shaped OU of the sandbox operator's server certificate (type 3 = SIRET, fake).
SANDBOX_OPERATOR_ID: Final = "399990000000001"

#: Certificate policy of sandbox leaves. IGC Santé TEST leaves carry 1.2.250.1.213.1.7.2.1.1.1.1
#: (psc-igc.md §4.3), an ANS arc we must not claim; this is a UUID-derived OID (ITU-T X.667,
#: arc 2.25) owned by nobody else.
LEAF_POLICY_OID: Final = ObjectIdentifier("2.25.130182005968800499458506385129705556968")

# X.520 upper bounds (RFC 5280 Appendix A.1): ub-organization-name and ub-common-name are 64.
UB_ORGANIZATION: Final = 64
UB_COMMON_NAME: Final = 64
UB_STATE: Final = 128


def _join(base_url: str, path: str) -> str:
    return base_url.rstrip("/") + path


def crl_url(base_url: str, name: str) -> str:
    """Return the URL a CRL is published at: ``<base_url>/crl/<name>.crl``."""
    return _join(base_url, f"{CRL_URL_PREFIX}{name}.crl")


def ca_issuers_url(base_url: str, name: str) -> str:
    """Return the AIA caIssuers URL of a CA certificate: ``<base_url>/ac/<name>.cer`` (DER)."""
    return _join(base_url, f"{AIA_URL_PREFIX}{name}.cer")


def cps_url(base_url: str) -> str:
    """Return the CPS qualifier URL of the sandbox CAs (IGC Santé TEST: ``.../PC%20TEST``)."""
    return _join(base_url, "/pc/simulation")


def org_subject(*, departement: str, name: str, structure_id: str, cn: str) -> x509.Name:
    """Build an ORG leaf subject in IGC Santé encoding order ``C, ST, O, OU, CN`` (psc-igc.md §4.3).

    ``O`` is truncated to 64 characters (X.520 ub-organization-name; IGC Santé truncates too).

    Raises:
        ConfigError: ``cn``, ``departement`` or ``name`` is empty, or ``cn``/``departement`` is too long.
    """
    if not cn or len(cn) > UB_COMMON_NAME:
        raise ConfigError(f"CN must be 1 to {UB_COMMON_NAME} characters, got {len(cn)}", requirement="RFC 5280 A.1")
    if not departement or len(departement) > UB_STATE:
        raise ConfigError(f"ST (département) must be 1 to {UB_STATE} characters", requirement="RFC 5280 A.1")
    if not name:
        raise ConfigError("O (raison sociale) must not be empty")
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, departement),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, name[:UB_ORGANIZATION]),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, structure_id),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )
