"""Transport and authentication cases: STARTTLS, TLS version and suites, SRV fronts, SASL.

All of them judge one *connection window*: the LPS is asked to reconnect its IMAP session and
to send a plain message; every session opened meanwhile is judged. The window is gathered once
per job and shared by these cases (one action from the person running an external LPS serves
them all).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from mssante.conformance._causes import named
from mssante.conformance._context import CaseContext
from mssante.conformance._driver import SendRequest
from mssante.conformance._judge import auth_attempts, cert_ou, cipher_allowed, mechanism_of, session_evidence
from mssante.conformance._model import Check, Evidence, Verdict
from mssante.sandbox.fronts.journal import SessionRecord

__all__ = [
    "check_app_auth",
    "check_app_structure",
    "check_ciphers",
    "check_no_clear_credentials",
    "check_psc_mechanism",
    "check_srv_front",
    "check_starttls",
    "check_tls_version",
    "connection_window",
]

_PROTOCOL_FR = {"imap": "IMAP", "smtp": "SMTP (soumission)"}


@dataclass(frozen=True, kw_only=True)
class Window:
    """The sessions opened while the LPS connected and sent, with notes on its actions."""

    sessions: tuple[SessionRecord, ...]
    notes: tuple[Evidence, ...]

    def of(self, protocol: str) -> list[SessionRecord]:
        """Sessions of one protocol.

        Raises:
            Nothing.
        """
        return [r for r in self.sessions if r.protocol == protocol]


def _known_other_bal(ctx: CaseContext, record: SessionRecord) -> bool:
    bal = (record.bal or "").lower()
    return bool(bal) and bal != ctx.bal.lower() and any(
        str(b.get("address", "")).lower() == bal for b in ctx.control.info.get("bals", ()))


async def connection_window(ctx: CaseContext) -> Window:
    """Ask for a reconnection and a plain message, then collect the sessions (cached per job).

    Sessions bound to *another* configured BAL (e.g. a webmail user) are left out; sessions
    with no BAL yet, or with a wrong identity, are kept: they are the LPS's.

    Raises:
        TransportError: the sandbox cannot be reached.
    """
    cached = ctx.shared.get("window")
    if isinstance(cached, Window):
        return cached
    t0 = time.time()
    ctx.shared["window_since"] = t0
    notes = [n for n in (
        await ctx.act(ctx.driver.open_session(fresh=True), "reconnexion IMAP"),
        await ctx.act(ctx.driver.send_message(SendRequest(to=ctx.peer)), "envoi d'un message simple"),
    ) if n is not None]

    async def probe() -> bool | None:
        found = await ctx.control.records(since=t0)
        imap_ok = any(r.protocol == "imap" and r.auth_result == "OK" for r in found)
        return True if imap_ok and await ctx.submissions(t0) else None

    await ctx.wait_for(probe, ctx.bound(), asked=True)
    await asyncio.sleep(ctx.settings.poll_interval)
    sessions = tuple(r for r in await ctx.control.records(since=t0) if not _known_other_bal(ctx, r))
    window = Window(sessions=sessions, notes=tuple(notes))
    ctx.shared["window"] = window
    return window


def _evidence(records: Sequence[SessionRecord], notes: Sequence[Evidence] = ()) -> list[Evidence]:
    return [*notes, *(session_evidence(r) for r in records[:6])]


def _none(protocol: str, window: Window) -> Verdict:
    return Verdict.failed(
        f"Aucune session {_PROTOCOL_FR[protocol]} du LPS n'a été observée dans le délai imparti.",
        list(window.notes))


def check_starttls(protocol: str, requirement: str) -> Check:
    """STARTTLS before any authentication on ``protocol`` (ECO.1.0.1 SMTP, ECO.1.0.2 IMAP, ECO.1.2.1).

    Raises:
        Nothing (the returned check raises TransportError when the sandbox is unreachable).
    """

    async def check(ctx: CaseContext) -> Verdict:
        window = await connection_window(ctx)
        records = window.of(protocol)
        if not records:
            return _none(protocol, window)
        bad = [r for r in records if r.starttls_before_auth is False]
        if bad:
            return Verdict.failed(
                f"{len(bad)} session(s) {_PROTOCOL_FR[protocol]} ont tenté de s'authentifier sans STARTTLS "
                f"préalable ({requirement}, ECO.1.2.1 : TLS d'abord, authentification ensuite).",
                _evidence(bad, window.notes))
        done = [r for r in records if r.auth_result == "OK"]
        if not done:
            return Verdict.failed(
                f"Aucune session {_PROTOCOL_FR[protocol]} authentifiée : STARTTLS puis authentification n'ont "
                f"pas abouti ({requirement}).", _evidence(records, window.notes))
        return Verdict.passed(
            f"{len(done)} session(s) {_PROTOCOL_FR[protocol]} : STARTTLS, puis authentification réussie "
            f"({requirement}).", _evidence(done))

    return check


def check_tls_version() -> Check:
    """TLS 1.2 or later on every session (ECO.1.1.1 / SC.MSS/CONF.01).

    Raises:
        Nothing.
    """

    async def check(ctx: CaseContext) -> Verdict:
        window = await connection_window(ctx)
        started = [r for r in window.sessions if any(c.command.upper().endswith("STARTTLS") for c in r.commands)]
        if not started:
            return Verdict.failed("Aucune session n'a demandé STARTTLS : TLS n'a jamais été négocié (ECO.1.1.1).",
                                  _evidence(window.sessions, window.notes))
        bad = [r for r in started if r.tls_version not in ("TLSv1.2", "TLSv1.3")]
        if bad:
            return Verdict.failed(
                f"{len(bad)} session(s) sans TLS 1.2 ou plus (négociation échouée ou version trop ancienne) : "
                "le LPS doit proposer TLS 1.2 minimum (ECO.1.1.1, SC.MSS/CONF.01).", _evidence(bad, window.notes))
        versions = sorted({str(r.tls_version) for r in started})
        return Verdict.passed(f"{len(started)} session(s) en {', '.join(versions)} (ECO.1.1.1).", _evidence(started))

    return check


def check_ciphers() -> Check:
    """Negotiated suite among the allowed ones (ECO.1.1.3 / SC.MSS/CONF.03).

    Raises:
        Nothing.
    """

    async def check(ctx: CaseContext) -> Verdict:
        window = await connection_window(ctx)
        secured = [r for r in window.sessions if r.tls_version]
        if not secured:
            return Verdict.failed("Aucune session TLS établie : suite cryptographique non vérifiable (ECO.1.1.3).",
                                  _evidence(window.sessions, window.notes))
        bad = [r for r in secured if not cipher_allowed(r.tls_version, r.tls_cipher)]
        if bad:
            used = ", ".join(sorted({f"{r.tls_version} {r.tls_cipher}" for r in bad}))
            return Verdict.failed(
                f"Suite(s) hors liste autorisée : {used}. En TLS 1.2, seules ECDHE-RSA AES-GCM et AES-CBC-SHA2 "
                "(0xC030, 0xC02F, 0xC028, 0xC027) sont admises (ECO.1.1.3, SC.MSS/CONF.03).",
                _evidence(bad, window.notes))
        used = ", ".join(sorted({f"{r.tls_version} {r.tls_cipher}" for r in secured}))
        return Verdict.passed(f"Suites négociées autorisées : {used} (ECO.1.1.3).", _evidence(secured))

    return check


def check_srv_front(front: str) -> Check:
    """Connected to the front the SRV records give for the BAL type (ECO.1.1.9 / SC.MSS/CONF.04).

    ``front`` is ``psc`` (priority 10, BAL PER/ORG) or ``authcli`` (priority 20, BAL APP).

    Raises:
        Nothing.
    """
    priority = 10 if front == "psc" else 20

    async def check(ctx: CaseContext) -> Verdict:
        window = await connection_window(ctx)
        wrong = [r for r in window.sessions if not r.front.endswith("-" + front)]
        if wrong:
            fronts = ", ".join(sorted({r.front for r in wrong}))
            return Verdict.failed(
                f"Connexion(s) au mauvais front ({fronts}) : pour ce type de BAL, les enregistrements SRV "
                f"_imap._tcp et _submission._tcp de priorité {priority} désignent le front « {front} » "
                "(ECO.1.1.9, SC.MSS/CONF.04, EX_LPS_0300).", _evidence(wrong, window.notes))
        secured = [r for r in window.sessions if r.tls_version]
        names = await ctx.control.server_names(float(ctx.shared.get("window_since", ctx.job_started)))
        hosts = {str(ctx.control.info[p][f]["host"]).lower() for p in ("imap", "smtp") for f in ("psc", "authcli")}
        if secured and names and not any(n is not None and n.lower() in hosts for n in names):
            shown = sorted({n or "(aucun)" for n in names})
            return Verdict.failed(
                f"Aucune négociation TLS n'a indiqué le nom d'hôte cible du SRV (SNI reçus : {', '.join(shown)}) : le "
                "LPS doit joindre le front par le nom que donne l'enregistrement SRV et vérifier le certificat pour "
                "ce nom (ECO.1.1.9, RFC 6125 §6, RFC 7817 §3).",
                _evidence(secured, window.notes)).because(named("no-sni"))
        missing = [p for p in ("imap", "smtp") if not any(r.protocol == p and r.auth_result == "OK"
                                                          for r in window.sessions)]
        if missing:
            return Verdict.failed(
                f"Pas de session authentifiée {' ni '.join(m.upper() for m in missing)} sur le front « {front} » "
                f"(priorité SRV {priority}, ECO.1.1.9).", _evidence(window.sessions, window.notes))
        return Verdict.passed(
            f"IMAP et SMTP joints sur le front « {front} », celui des enregistrements SRV de priorité {priority} "
            "(ECO.1.1.9).", _evidence(window.sessions))

    return check


def check_psc_mechanism(protocol: str) -> Check:
    """SASL XOAUTH2 with ``user=`` the BAL address (ECO.1.2.1 / SC.MSS/CONF.07).

    Raises:
        Nothing.
    """

    async def check(ctx: CaseContext) -> Verdict:
        window = await connection_window(ctx)
        records = window.of(protocol)
        if not records:
            return _none(protocol, window)
        attempts = auth_attempts(records)
        other = sorted({mechanism_of(a.command, protocol) for a in attempts} - {"XOAUTH2"})
        if other:
            return Verdict.failed(
                f"Mécanisme(s) {', '.join(other)} utilisé(s) : une BAL PER/ORG s'authentifie en SASL XOAUTH2 avec le "
                "jeton Pro Santé Connect (ECO.1.2.1, SC.MSS/CONF.07).", _evidence(records, window.notes))
        wrong_user = [r for r in records if r.bal and r.bal.lower() != ctx.bal.lower()]
        if wrong_user:
            return Verdict.failed(
                f"Le champ user= de XOAUTH2 vaut « {wrong_user[0].bal} » au lieu de l'adresse de la BAL {ctx.bal} "
                "(ECO.1.2.1 ; webinaire ANS : « User : adresse email de la BAL »).",
                _evidence(wrong_user, window.notes))
        ok = [r for r in records if r.auth_result == "OK" and r.mechanism == "XOAUTH2"]
        if not ok:
            return Verdict.failed(f"Aucune authentification XOAUTH2 {_PROTOCOL_FR[protocol]} réussie (ECO.1.2.1).",
                                  _evidence(records, window.notes))
        return Verdict.passed(
            f"{_PROTOCOL_FR[protocol]} : XOAUTH2 avec user={ctx.bal} et un jeton PSC accepté (ECO.1.2.1).",
            _evidence(ok))

    return check


def check_app_auth(protocol: str) -> Check:
    """ORG AUTH_CLI certificate in the handshake, then SASL PLAIN with the BAL address (SC.MSS/CONF.12).

    Raises:
        Nothing.
    """

    async def check(ctx: CaseContext) -> Verdict:
        window = await connection_window(ctx)
        records = window.of(protocol)
        if not records:
            return _none(protocol, window)
        no_cert = [r for r in records if r.auth_at is not None and not r.client_cert_subject]
        if no_cert:
            return Verdict.failed(
                "Session(s) sans certificat client : une BAL APP présente son certificat IGC Santé ORG AUTH_CLI "
                "lors de la négociation STARTTLS (SC.MSS/CONF.12, ECO.1.1.10).", _evidence(no_cert, window.notes))
        attempts = auth_attempts(records)
        other = sorted({mechanism_of(a.command, protocol) for a in attempts} - {"PLAIN"})
        if other:
            return Verdict.failed(
                f"Mécanisme(s) {', '.join(other)} : une BAL APP s'authentifie en SASL PLAIN, l'identifiant étant "
                "l'adresse de la BAL (webinaire ANS, SC.MSS/CONF.12).", _evidence(records, window.notes))
        wrong = [r for r in records if r.bal and r.bal.lower() != ctx.bal.lower()]
        if wrong:
            return Verdict.failed(
                f"Identifiant PLAIN « {wrong[0].bal} » au lieu de l'adresse de la BAL {ctx.bal} (SC.MSS/CONF.12).",
                _evidence(wrong, window.notes))
        ok = [r for r in records if r.auth_result == "OK"]
        if not ok:
            return Verdict.failed(f"Aucune authentification {_PROTOCOL_FR[protocol]} par certificat réussie "
                                  "(SC.MSS/CONF.12).", _evidence(records, window.notes))
        return Verdict.passed(
            f"{_PROTOCOL_FR[protocol]} : certificat ORG AUTH_CLI accepté par l'opérateur, puis PLAIN avec "
            f"{ctx.bal} (SC.MSS/CONF.12).", _evidence(ok))

    return check


def check_app_structure() -> Check:
    """The certificate's OU is the IdNat_Struct of the structure that holds the BAL APP.

    Raises:
        Nothing.
    """

    async def check(ctx: CaseContext) -> Verdict:
        window = await connection_window(ctx)
        expected = next((b.get("structure_id") for b in ctx.control.info.get("bals", ())
                         if str(b.get("address", "")).lower() == ctx.bal.lower()), None)
        certs = [r for r in window.sessions if r.client_cert_subject]
        if not certs:
            return Verdict.failed("Aucun certificat client présenté (SC.MSS/CONF.12).",
                                  _evidence(window.sessions, window.notes))
        bad = [r for r in certs if cert_ou(r.client_cert_subject) != expected]
        if bad:
            return Verdict.failed(
                f"Certificat d'une autre structure (OU={cert_ou(bad[0].client_cert_subject)}) : la BAL {ctx.bal} "
                f"appartient à la structure {expected} ; le certificat ORG AUTH_CLI doit être celui de la structure "
                "détentrice (OU = IdNat_Struct ; SC.MSS/CONF.12, ECO.1.1.10).", _evidence(bad, window.notes))
        return Verdict.passed(f"Certificat de la structure {expected} (OU) pour la BAL {ctx.bal}.", _evidence(certs))

    return check


def check_no_clear_credentials() -> Check:
    """No credential ever sent before TLS (ECO.1.2.1; RFC 3501 §6.2.2, RFC 3207 §4, RFC 4954 §4).

    Raises:
        Nothing.
    """

    async def check(ctx: CaseContext) -> Verdict:
        window = await connection_window(ctx)
        if not window.sessions:
            return Verdict.failed("Aucune session du LPS observée.", list(window.notes))
        leaked = [r for r in window.sessions if r.credentials_before_tls]
        if leaked:
            return Verdict.failed(
                f"{len(leaked)} session(s) ont transmis des données d'authentification en clair, avant STARTTLS : "
                "le jeton ou le mot de passe a circulé sans chiffrement (ECO.1.2.1 ; RFC 3207 §4, RFC 4954 §4).",
                _evidence(leaked, window.notes))
        return Verdict.passed(f"{len(window.sessions)} session(s) : aucune donnée d'authentification avant TLS.",
                              _evidence(window.sessions))

    return check
