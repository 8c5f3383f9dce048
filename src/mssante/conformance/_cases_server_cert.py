"""Server certificate cases: the LPS refuses an operator certificate it must not trust.

Ref #2 asks the LPS to check the operator's certificate before anything else (ref2-requirements.md
§1): issued by IGC Santé only (ECO.1.1.10), not expired (ECO.1.1.5), not revoked, by CRL or
OCSP (ECO.1.1.6), failing closed when no revocation status is available (ECO.1.1.7); and, as
any TLS client, the host name must match (RFC 6125 §6, RFC 7817 for IMAP/SMTP).

Each case makes the sandbox fronts present one bad certificate at STARTTLS (the
``bad_server_certificate`` fault), asks the LPS to reconnect, and judges from the journal that
the LPS reached the handshake and then **never authenticated**: the handshake fails, or the
client closes right after it (a revocation check made after the handshake), with no
``AUTHENTICATE``/``AUTH``/``LOGIN`` and no credential. The fault is cleared after the case.

A refused certificate is final until a person looks at it: an LPS that **retries in a loop**
hammers the operator and hides the problem (ECO.1.2.3: a connection error must not disturb the
rest of the software, so it is reported, not retried blindly). The case counts the sessions
that reach STARTTLS after the first refused one, during the quiet window (10 s for a person):
more than :data:`MAX_RETRIES_AFTER_REFUSAL` is a failure. Two are allowed: one action of the
person may open IMAP and SMTP, and the person may try once more.

The ``impostor`` certificate comes from a chain that reuses IGC Santé's names with other keys:
only a client whose trust anchors are the IGC Santé roots themselves (ECO.1.1.10: "IGC santé doit
être la seule AC autorisée") refuses it; a client that checks the issuer's name accepts it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from mssante.conformance._context import CaseContext
from mssante.conformance._judge import auth_attempts, session_evidence
from mssante.conformance._model import Check, Evidence, Verdict
from mssante.sandbox.fronts.faults import BadServerCertificate
from mssante.sandbox.fronts.journal import SessionRecord

__all__ = ["BAD_CERT_DEFECTS", "MAX_RETRIES_AFTER_REFUSAL", "check_bad_server_certificate", "check_crl_outage"]

#: What is wrong with each certificate, and the rule it breaks (French, for the CR).
BAD_CERT_DEFECTS: dict[BadServerCertificate, tuple[str, str]] = {
    "expired": ("expiré (date de fin de validité dépassée)", "ECO.1.1.5"),
    "foreign": ("émis par une AC hors IGC Santé", "ECO.1.1.10"),
    "wrong-host": ("émis pour un autre nom d'hôte", "RFC 6125 §6"),
    "revoked": ("révoqué (présent dans la LCR de l'AC)", "ECO.1.1.6, ECO.1.1.7"),
    "impostor": ("émis par une autre racine qui reprend les noms d'IGC Santé (mêmes DN, autres clés)",
                 "ECO.1.1.10"),
}
#: Sessions reaching STARTTLS after the first refused one that are still tolerated (see the module docstring).
MAX_RETRIES_AFTER_REFUSAL = 2
_MAX_SHOWN = 6


def _reached_tls(record: SessionRecord) -> bool:
    """The client asked for STARTTLS on this session (whatever became of the handshake)."""
    return record.starttls_at is not None or any(
        "STARTTLS" in c.command.upper() or c.command.startswith("<tls-handshake>") for c in record.commands)


def _evidence(records: Sequence[SessionRecord], note: Evidence | None, kind: BadServerCertificate) -> list[Evidence]:
    defect, _ = BAD_CERT_DEFECTS[kind]
    head = Evidence(title="Certificat présenté par le bac à sable", lines=(
        f"Défaut injecté : bad_server_certificate = {kind} — certificat {defect}.",
        f"{len(records)} session(s) ouverte(s) par le LPS pendant le cas.",
    ))
    out = [head, *(session_evidence(r) for r in records[:_MAX_SHOWN])]
    if len(records) > _MAX_SHOWN:
        out.append(Evidence(title="Autres sessions", lines=(f"… {len(records) - _MAX_SHOWN} autres sessions",)))
    return [*([note] if note is not None else []), *out]


def check_bad_server_certificate(kind: BadServerCertificate) -> Check:
    """The LPS reaches STARTTLS against a ``kind`` bad server certificate, then never authenticates."""
    defect, rule = BAD_CERT_DEFECTS[kind]

    async def check(ctx: CaseContext) -> Verdict:
        since = time.time()
        await ctx.control.set_bad_server_certificate(kind)
        try:
            note = await ctx.act(ctx.driver.open_session(fresh=True), "connexion avec un certificat serveur invalide")

            async def probe() -> bool | None:
                return True if any(_reached_tls(r) for r in await ctx.sessions(since)) else None

            await ctx.wait_for(probe, ctx.bound())
            await asyncio.sleep(ctx.settings.quiet_window)  # room for an authentication that should not come
            records = [r for r in await ctx.sessions(since) if r.started_at >= since]
        finally:
            await ctx.control.clear_faults()
        evidence = _evidence(records, note, kind)
        tried = sorted((r for r in records if _reached_tls(r)), key=lambda r: r.started_at)
        attempts = [a for a in auth_attempts(records) if a.at >= since]
        if attempts or any(r.credentials_before_tls for r in records):
            return Verdict.failed(
                f"Authentification tentée malgré un certificat serveur {defect} ({len(attempts)} tentative(s)) : "
                f"le LPS doit vérifier le certificat de l'opérateur (chaîne IGC Santé seule, validité, révocation, "
                f"nom d'hôte) et abandonner la connexion avant tout envoi d'identifiant ({rule}).", evidence)
        if not tried:
            return Verdict.failed(
                "Aucune connexion avec STARTTLS observée après la demande de reconnexion : le refus du certificat "
                f"ne peut pas être constaté ({rule}).", evidence)
        retries = len(tried) - 1
        if retries > MAX_RETRIES_AFTER_REFUSAL:
            first = tried[0].started_at
            span = max(0.0, tried[-1].started_at - first)
            return Verdict.failed(
                f"Certificat serveur {defect} refusé, mais le LPS a réessayé en boucle : {retries} nouvelle(s) "
                f"connexion(s) jusqu'à STARTTLS en {span:.1f} s après le premier refus (au plus "
                f"{MAX_RETRIES_AFTER_REFUSAL} tolérées). Un certificat refusé ne se corrige pas en réessayant : le "
                "LPS doit signaler l'erreur et attendre une action de l'utilisateur, sans harceler l'opérateur "
                f"({rule} ; ECO.1.2.3).", evidence)
        completed = sum(1 for r in tried if r.tls_version)
        how = (f"poignée de main TLS refusée par le LPS sur {len(tried) - completed} session(s)"
               if completed < len(tried) else "")
        if completed:
            how += ("; " if how else "") + f"{completed} session(s) fermée(s) juste après la poignée de main"
        return Verdict.passed(
            f"Certificat serveur {defect} refusé : {how}, aucune authentification, {retries} nouvelle(s) "
            f"tentative(s) (au plus {MAX_RETRIES_AFTER_REFUSAL} tolérées) ({rule}).", evidence)

    return check


def check_crl_outage() -> Check:
    """CRL outage: the LPS keeps the last valid CRL (ECO.1.1.7, SC.MSS/CONF.22).

    Three phases, judged from the journal: (1) a normal reconnection, so the LPS holds a current
    CRL; (2) the CRL distribution points answer 503 and the fronts present the *revoked*
    certificate: the LPS must still refuse it (a client that fails open when the CRL cannot be
    downloaded authenticates); (3) still no CRL, the real certificate again: the LPS must
    connect, its last CRL being still valid (a client that keeps no CRL cannot check and stays
    disconnected).
    """

    async def authenticated(ctx: CaseContext, since: float) -> bool:
        async def probe() -> bool | None:
            return True if any(a.outcome == "OK" for a in auth_attempts(await ctx.sessions(since))
                               if a.at >= since) else None

        return bool(await ctx.wait_for(probe, ctx.bound()))

    async def check(ctx: CaseContext) -> Verdict:
        notes: list[Evidence] = []

        async def reconnect(what: str) -> None:
            note = await ctx.act(ctx.driver.open_session(fresh=True), what)
            if note is not None:
                notes.append(note)

        t0 = time.time()
        await reconnect("reconnexion avant la panne")
        if not await authenticated(ctx, t0):
            return Verdict.failed("Aucune session authentifiée avant la panne de LCR : le cas ne peut pas être "
                                  "conduit (ECO.1.1.7).", [*notes, *(session_evidence(r) for r in
                                                                    (await ctx.sessions(t0))[:_MAX_SHOWN])])
        try:
            await ctx.control.set_crl_outage("503")
            await ctx.control.set_bad_server_certificate("revoked")
            t1 = time.time()
            await reconnect("reconnexion pendant la panne, certificat révoqué")

            async def probe() -> bool | None:
                return True if any(_reached_tls(r) for r in await ctx.sessions(t1)) else None

            await ctx.wait_for(probe, ctx.bound())
            await asyncio.sleep(ctx.settings.quiet_window)
            revoked_phase = [r for r in await ctx.sessions(t1) if r.started_at >= t1]
            await ctx.control.set_bad_server_certificate(None)
            t2 = time.time()
            await reconnect("reconnexion pendant la panne, certificat valide")
            reconnected = await authenticated(ctx, t2)
            state = await ctx.control.fault_state()
        finally:
            await ctx.control.clear_faults()
        outage = state.get("crl_outage") if isinstance(state.get("crl_outage"), dict) else {}
        requests = int(outage.get("requests", 0)) if isinstance(outage, dict) else 0
        head = Evidence(title="Panne de LCR simulée", lines=(
            "Les points de distribution des LCR répondent 503 pendant les phases 2 et 3.",
            f"{requests} téléchargement(s) de LCR refusé(s) pendant la panne.",
        ))
        shown = [session_evidence(r) for r in revoked_phase[:_MAX_SHOWN]]
        attempts = [a for a in auth_attempts(revoked_phase) if a.at >= t1]
        if attempts or any(r.credentials_before_tls for r in revoked_phase):
            return Verdict.failed(
                "Certificat serveur révoqué accepté pendant la panne de LCR : faute de pouvoir télécharger la LCR, "
                "le LPS doit continuer à vérifier la révocation avec la dernière LCR valide qu'il a conservée, et "
                "refuser la connexion si aucune n'est disponible (ECO.1.1.7, SC.MSS/CONF.22 ; ECO.1.1.6).",
                [*notes, head, *shown])
        if not any(_reached_tls(r) for r in revoked_phase):
            return Verdict.failed("Aucune connexion avec STARTTLS observée pendant la panne de LCR : le refus du "
                                  "certificat révoqué ne peut pas être constaté (ECO.1.1.7).", [*notes, head])
        if not reconnected:
            return Verdict.failed(
                "Pas de session authentifiée pendant la panne de LCR avec le certificat valide de l'opérateur : le "
                "LPS doit conserver la dernière LCR non expirée et s'en servir quand la LCR ne peut pas être "
                "téléchargée (ECO.1.1.7, SC.MSS/CONF.22).",
                [*notes, head, *(session_evidence(r) for r in (await ctx.sessions(t2))[:_MAX_SHOWN])])
        return Verdict.passed(
            "Pendant la panne de LCR, le certificat révoqué a été refusé et le certificat valide accepté : la "
            "dernière LCR valide est conservée et utilisée (ECO.1.1.7).", [head, *shown])

    return check
