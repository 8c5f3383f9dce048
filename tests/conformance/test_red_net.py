"""The network cases of issue 16 that used to be vacuous now fail a broken LPS.

Each variant passed its case before (the case judged only what the fronts negotiated, which
front was reached, or that no authentication followed a refused certificate). Every marker
below is a phrase of a check that runs only *after* the old checks passed, so each row also
shows that the variant still satisfies what the case used to judge, and fails what it now
judges: the suites and versions the LPS offers (ClientHello) and whether it talks to the TLS
probe; the DNS queries of the SRV lookup; retries after a refused certificate; a chain that
reuses IGC Santé's names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mssante.conformance import Profile, Status
from tests.conformance import _broken_net as n
from tests.conformance import test_red
from tests.conformance._harness import GREEN, RED, run_suite
from tests.conformance._lps import StdlibLPS
from tests.conformance._lps_net import TLS12_CIPHERS

pytestmark = pytest.mark.slow

PER, APP = Profile.PER_ORG, Profile.APP
_BAD_CERTS = ("server-cert-expired", "server-cert-foreign", "server-cert-wrong-host", "server-cert-revoked",
              "server-cert-impostor")

#: (variant, profile, case codes it must turn red, a phrase of the new check in the explanation)
ROWS: list[tuple[type[StdlibLPS], Profile, tuple[str, ...], str]] = [
    (n.AcceptsOldTLS, PER, ("tls-version",), "avec la sonde et lui a transmis ses identifiants"),
    (n.AcceptsOldTLS, APP, ("tls-version",), "avec la sonde et lui a transmis ses identifiants"),
    (n.OffersAllSuites, PER, ("tls-ciphers",), "suite(s) hors liste dans sa ClientHello"),
    (n.OffersAllSuites, APP, ("tls-ciphers",), "suite(s) hors liste dans sa ClientHello"),
    (n.HardCodedHosts, PER, ("srv-front",), "Aucune requête DNS SRV"),
    (n.HardCodedHosts, APP, ("srv-front",), "Aucune requête DNS SRV"),
    (n.RetriesRefusedCert, PER, _BAD_CERTS, "réessayé en boucle"),
    (n.RetriesRefusedCert, APP, _BAD_CERTS, "réessayé en boucle"),
    (n.TrustsIssuerNames, PER, ("server-cert-impostor",), "malgré un certificat serveur émis par une autre racine"),
    (n.TrustsIssuerNames, APP, ("server-cert-impostor",), "malgré un certificat serveur émis par une autre racine"),
]


@pytest.mark.parametrize(("variant", "profile", "codes", "marker"), ROWS,
                         ids=[f"{r[0].__name__}-{r[1].value}" for r in ROWS])
async def test_broken_lps_turns_the_network_case_red(
    variant: type[StdlibLPS], profile: Profile, codes: tuple[str, ...], marker: str, state_dir: Path, tmp_path: Path
) -> None:
    await test_red.test_broken_lps_turns_the_case_red(variant, profile, codes, marker, state_dir, tmp_path)


async def test_a_client_that_trusts_issuer_names_passed_the_old_foreign_ca_case(state_dir: Path,
                                                                               tmp_path: Path) -> None:
    """The self-signed unknown CA of ``server-cert-foreign`` never showed that only IGC Santé's keys are trusted."""
    report, _ = await run_suite(state_dir, tmp_path, PER, n.TrustsIssuerNames,
                                cases=("server-cert-foreign", "server-cert-impostor"), settings=RED)
    status = {r.code: r.status for r in report.results}
    assert status == {"server-cert-foreign": Status.PASS, "server-cert-impostor": Status.FAIL}


class _OffersEcdsaToo(StdlibLPS):
    """The allowed suites plus ECDSA ones, as Windows SChannel offers by default: never negotiable with
    an IGC Santé (RSA) server certificate, so not held against the LPS."""

    def context(self) -> Any:
        ctx = super().context()
        ctx.set_ciphers(TLS12_CIPHERS + ":ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-SHA256")
        return ctx


async def test_ecdsa_suites_offered_beside_the_allowed_ones_pass(state_dir: Path, tmp_path: Path) -> None:
    report, _ = await run_suite(state_dir, tmp_path, PER, _OffersEcdsaToo, cases=("tls-ciphers",), settings=GREEN)
    [result] = report.results
    assert result.status is Status.PASS, result.explanation
