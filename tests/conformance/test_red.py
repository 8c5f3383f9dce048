"""Every case turns red for a broken LPS: no case of the catalogue is vacuous.

Each row runs the cases a variant targets, against a fresh sandbox, and checks that they
*fail* (not error) with an explanation naming the broken rule. A last test checks that the
rows cover every case of both profiles.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mssante.conformance import Profile, Status, catalogue
from tests.conformance import _broken as b
from tests.conformance._harness import RED, run_suite
from tests.conformance._lps import StdlibLPS

pytestmark = pytest.mark.slow

PER, APP = Profile.PER_ORG, Profile.APP

#: (variant, profile, case codes it must turn red, a word the explanation must contain)
ROWS: list[tuple[type[StdlibLPS], Profile, tuple[str, ...], str]] = [
    (b.NoImapStartTLS, PER, ("imap-starttls",), "sans STARTTLS"),
    (b.NoImapStartTLS, APP, ("imap-starttls",), "sans STARTTLS"),
    (b.NoSmtpStartTLS, PER, ("smtp-starttls",), "sans STARTTLS"),
    (b.NoSmtpStartTLS, APP, ("smtp-starttls",), "sans STARTTLS"),
    (b.OldTLS, PER, ("tls-version",), "TLS 1.2"),
    (b.OldTLS, APP, ("tls-version",), "TLS 1.2"),
    (b.WeakCipher, PER, ("tls-ciphers",), "CHACHA20"),
    (b.WeakCipher, APP, ("tls-ciphers",), "CHACHA20"),
    (b.WrongPriority, PER, ("srv-front",), "mauvais front"),
    (b.WrongPriority, APP, ("srv-front",), "mauvais front"),
    (b.ImapPlainOnPsc, PER, ("imap-xoauth2",), "PLAIN"),
    (b.SmtpUserIsNationalId, PER, ("smtp-xoauth2",), "user="),
    (b.ImapLogin, APP, ("imap-auth-cli",), "LOGIN"),
    (b.SmtpNoClientCert, APP, ("smtp-auth-cli",), "sans certificat client"),
    (b.OtherStructureCert, APP, ("cert-structure",), "autre structure"),
    (b.SmtpAuthInClear, PER, ("no-clear-credentials",), "en clair"),
    (b.SmtpAuthInClear, APP, ("no-clear-credentials",), "en clair"),
    (b.RetryLoop, PER, ("authenticationfailed",), "présenté de nouveau"),
    (b.RetryLoop, APP, ("authenticationfailed",), "pas de boucle"),
    (b.RetryAfterAuthz, PER, ("authorizationfailed",), "AUTHORIZATIONFAILED"),
    (b.RetryAfterAuthz, APP, ("authorizationfailed",), "AUTHORIZATIONFAILED"),
    (b.TightLoop, PER, ("unavailable",), "espacer"),
    (b.TightLoop, APP, ("unavailable",), "espacer"),
    (b.NoReconnect, PER, ("reopen-bye", "reopen-drop"), "rouvrir automatiquement"),
    (b.NoReconnect, APP, ("reopen-bye", "reopen-drop"), "rouvrir automatiquement"),
    (b.NoNil, PER, ("x-mss-nil",), "X-MSS-NIL"),
    (b.NoNil, APP, ("x-mss-nil",), "X-MSS-NIL"),
    (b.WrongCodeCDA, PER, ("x-mss-codecda",), "X-MSS-CODECDA"),
    (b.WrongCodeCDA, APP, ("x-mss-codecda",), "X-MSS-CODECDA"),
    (b.WrongINS, PER, ("x-mss-ins",), "X-MSS-INS"),
    (b.WrongINS, APP, ("x-mss-ins",), "X-MSS-INS"),
    (b.PlainSubject, PER, ("xdm-subject",), "XDM/1.0/DDM+"),
    (b.PlainSubject, APP, ("xdm-subject",), "XDM/1.0/DDM+"),
    (b.NoPdf, PER, ("pdf-companion",), "PDF"),
    (b.NoPdf, APP, ("pdf-companion",), "PDF"),
    (b.Latin1Body, PER, ("utf8-body",), "UTF-8"),
    (b.Latin1Body, APP, ("utf8-body",), "UTF-8"),
    (b.NoMdnRequest, PER, ("mdn-request",), "Disposition-Notification-To"),
    (b.NoMdnRequest, APP, ("mdn-request",), "Disposition-Notification-To"),
    (b.NoMdn, PER, ("mdn-return",), "accusé de lecture"),
    (b.HeadersOnlyReader, PER, ("receive-xdm",), "FETCH"),
    (b.HeadersOnlyReader, APP, ("receive-xdm",), "FETCH"),
    (b.NoSentCopy, PER, ("sent-copy",), "Sent"),
    (b.NoSentCopy, APP, ("sent-copy",), "Sent"),
    (b.BadTraces, PER, ("traces",), "JWT"),
    (b.BadTraces, APP, ("traces",), "absent"),
    (b.NoTraceFile, PER, ("traces",), "Fichier de traces absent"),
    (b.EmptyTraceFile, APP, ("traces",), "Fichier de traces vide"),
    (b.IgnoresPscLogout, PER, ("psc-logout",), "encore ouverte"),
    (b.NoCertCheck, PER, ("server-cert-expired", "server-cert-foreign", "server-cert-wrong-host",
                          "server-cert-revoked"), "malgré un certificat serveur"),
    (b.NoCertCheck, APP, ("server-cert-expired", "server-cert-foreign", "server-cert-wrong-host",
                          "server-cert-revoked"), "malgré un certificat serveur"),
    (b.FailOpenWithoutCRL, PER, ("crl-outage",), "révoqué accepté pendant la panne"),
    (b.FailOpenWithoutCRL, APP, ("crl-outage",), "révoqué accepté pendant la panne"),
    (b.KeepsNoCRL, PER, ("crl-outage",), "conserver la dernière LCR"),
    (b.KeepsNoCRL, APP, ("crl-outage",), "conserver la dernière LCR"),
    (b.WrongNil, PER, ("x-mss-nil",), "référence produit déclarée"),
    (b.WrongNil, APP, ("x-mss-nil",), "référence produit déclarée"),
    (b.BadMessageId, PER, ("message-id",), "Message-ID"),
    (b.BadMessageId, APP, ("message-id",), "Message-ID"),
    (b.NoThreading, PER, ("reply-threading",), "In-Reply-To"),
    (b.NoThreading, APP, ("reply-threading",), "In-Reply-To"),
    (b.MdnWithoutThreading, PER, ("mdn-return",), "In-Reply-To"),
    (b.MdnWithoutThreading, APP, ("mdn-return",), "In-Reply-To"),
    (b.NoMdn, APP, ("mdn-return",), "accusé de lecture"),
    (b.NoSenderLabel, PER, ("sender-label",), "libellé"),
    (b.NoSenderLabel, APP, ("sender-label",), "libellé"),
    (b.NoDsn, PER, ("dsn-request",), "NOTIFY"),
    (b.NoDsn, APP, ("dsn-request",), "NOTIFY"),
    (b.PatientAddressFromName, PER, ("patient-address",), "INS"),
    (b.PatientAddressFromName, APP, ("patient-address",), "INS"),
    (b.NoEndOfExchange, PER, ("x-mss-mes",), "FIN"),
    (b.NoEndOfExchange, APP, ("x-mss-mes",), "FIN"),
    (b.NoAnnuaireLookup, PER, ("annuaire-lookup",), "Aucune recherche"),
    (b.NoAnnuaireLookup, APP, ("annuaire-lookup",), "Aucune recherche"),
    (b.LoginAgain, PER, ("token-lifetimes",), "connexion(s) PSC"),
    (b.NotPdfA, PER, ("pdf-companion",), "PDF/A-1"),
    (b.NotPdfA, APP, ("pdf-companion",), "PDF/A-1"),
    (b.PdfOfAnotherPatient, PER, ("pdf-from-cda",), "patient"),
    (b.PdfOfAnotherPatient, APP, ("pdf-from-cda",), "patient"),
    (b.MisreadPatient, PER, ("receive-xdm",), "METADATA.XML"),
    (b.MisreadPatient, APP, ("receive-xdm",), "METADATA.XML"),
    (b.ShowsXdmPrefix, PER, ("receive-xdm",), "préfixe"),
    (b.NoPatientKind, PER, ("receive-xdm",), "patient n'est pas distingué"),
    (b.SilentReader, PER, ("receive-xdm",), "rend compte"),
    (b.SilentReader, APP, ("receive-xdm",), "rend compte"),
    (b.TracesNoDelete, PER, ("traces",), "suppression"),
    (b.TracesNoDelete, APP, ("traces",), "suppression"),
    (b.TracesOtherBal, PER, ("traces",), "sans aucune trace"),
    (b.TracesOtherBal, APP, ("traces",), "sans aucune trace"),
]


def rows_of(profile: Profile) -> pytest.MarkDecorator:
    """The rows of ``profile`` as the parameters of a test (variant, profile, codes, marker)."""
    mine = [row for row in ROWS if row[1] is profile]
    return pytest.mark.parametrize(("variant", "profile", "codes", "marker"), mine,
                                   ids=[f"{r[0].__name__}-{r[1].value}" for r in mine])


async def check_red(variant: type[StdlibLPS], profile: Profile, codes: tuple[str, ...], marker: str, state_dir: Path,
                    tmp_path: Path) -> None:
    """The cases ``codes`` run against ``variant`` fail (not error), each explanation naming the broken rule."""
    report, _ = await run_suite(state_dir, tmp_path, profile, variant, cases=codes, settings=RED)
    assert [r.code for r in report.results] == list(codes)
    for r in report.results:
        assert r.status is Status.FAIL, (r.case_id, r.status, r.explanation)
        assert marker in r.explanation, (r.case_id, r.explanation)
        assert r.evidence, r.case_id


# The PER/ORG rows here, the APP rows in test_red_app.py: two modules that xdist deals to two workers.
@rows_of(PER)
async def test_broken_lps_turns_the_case_red(
    variant: type[StdlibLPS], profile: Profile, codes: tuple[str, ...], marker: str, state_dir: Path, tmp_path: Path
) -> None:
    await check_red(variant, profile, codes, marker, state_dir, tmp_path)


@pytest.mark.parametrize("profile", [PER, APP], ids=lambda p: p.value)
def test_every_case_has_a_red_variant(profile: Profile) -> None:
    from tests.conformance.test_red_net import ROWS as NET_ROWS  # the network cases of issue 16

    covered = {code for _, p, codes, _ in [*ROWS, *NET_ROWS] if p is profile for code in codes}
    assert {c.code for c in catalogue(profile)} == covered
