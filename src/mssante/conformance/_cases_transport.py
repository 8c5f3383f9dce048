"""Transport and authentication cases: STARTTLS, TLS version and suites, SRV fronts, SASL.

All of them judge one *connection window*: the LPS is asked to reconnect its IMAP session and
to send a plain message; every session opened meanwhile is judged. The window is gathered once
per job and shared by these cases (one action from the person running an external LPS serves
them all). Besides the session journal, the window holds what the sandbox saw of the LPS
before any session: the ClientHellos the fronts received (the TLS versions and suites the LPS
*offers*) and the queries its DNS answered (the SRV and address lookups).

The fronts refuse TLS < 1.2 and weak suites themselves, so the sessions alone cannot show that
an LPS would refuse them. The TLS cases therefore also run a *probe window* each: the sandbox
serves the TLS probe at STARTTLS (:mod:`mssante.sandbox.fronts.probe`, the real certificate with
TLS 1.0/1.1 only for ``tls-version``, TLS 1.2 with suites outside the ECO.1.1.3 list only for
``tls-ciphers``), the LPS is asked to reconnect, and it must not complete that handshake, let
alone send a credential.
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
from mssante.sandbox.dns import TTL, DNSQuery
from mssante.sandbox.fronts.journal import SessionRecord
from mssante.sandbox.fronts.probe import (
    ALLOWED_SUITES,
    ALLOWED_VERSIONS,
    SIGNALING_SUITES,
    HelloRecord,
    TLSProbe,
    needs_non_rsa_certificate,
    suite_name,
    version_name,
)

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
    "probe_window",
]

_PROTOCOL_FR = {"imap": "IMAP", "smtp": "SMTP (soumission)"}


@dataclass(frozen=True, kw_only=True)
class Window:
    """The sessions opened while the LPS connected and sent (from ``since`` to ``until``), with
    notes on its actions, the ClientHellos the fronts received and the DNS queries answered
    (from one TTL before ``since``: a resolver may reuse an answer that long, RFC 2181 §8)."""

    sessions: tuple[SessionRecord, ...]
    notes: tuple[Evidence, ...]
    since: float = 0.0
    until: float = 0.0
    hellos: tuple[HelloRecord, ...] = ()
    queries: tuple[DNSQuery, ...] = ()

    def of(self, protocol: str) -> list[SessionRecord]:
        """Sessions of one protocol."""
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
    until = time.time()
    hellos = tuple(h for h in await ctx.control.client_hellos(t0) if not h.probe and h.at <= until)
    queries = tuple(q for q in await ctx.control.dns_queries(t0 - TTL) if q.at <= until)
    window = Window(sessions=sessions, notes=tuple(notes), since=t0, until=until, hellos=hellos, queries=queries)
    ctx.shared["window"] = window
    return window


@dataclass(frozen=True, kw_only=True)
class ProbeWindow:
    """What happened while the TLS probe ``mode`` was served: sessions, ClientHellos, notes."""

    mode: TLSProbe
    sessions: tuple[SessionRecord, ...]
    hellos: tuple[HelloRecord, ...]
    notes: tuple[Evidence, ...]

    @property
    def reached(self) -> bool:
        """The LPS began a handshake with the probe (a ClientHello, or STARTTLS in a session)."""
        return bool(self.hellos) or any(r.starttls_at is not None or any(
            "STARTTLS" in c.command.upper() or c.command.startswith("<tls-handshake>") for c in r.commands)
            for r in self.sessions)

    @property
    def completed(self) -> list[SessionRecord]:
        """Sessions whose handshake with the probe succeeded (the LPS accepted a weak version or suite)."""
        return [r for r in self.sessions if r.tls_version]


async def probe_window(ctx: CaseContext, mode: TLSProbe) -> ProbeWindow:
    """Serve the TLS probe ``mode``, ask for a reconnection, watch for the quiet window (cached per job).

    The probe is removed afterwards (other faults are left as they were).

    Raises:
        TransportError: the sandbox cannot be reached.
    """
    cached = ctx.shared.get(f"probe:{mode}")
    if isinstance(cached, ProbeWindow):
        return cached
    await connection_window(ctx)  # the LPS's normal connection is judged first, without the probe
    t0 = time.time()
    await ctx.control.set_tls_probe(mode)
    try:
        note = await ctx.act(ctx.driver.open_session(fresh=True), "reconnexion face à une sonde TLS faible")

        async def reached() -> bool | None:
            hellos = [h for h in await ctx.control.client_hellos(t0) if h.probe]
            return True if hellos or any(r.starttls_at is not None for r in await ctx.sessions(t0)) else None

        await ctx.wait_for(reached, ctx.bound())
        await asyncio.sleep(ctx.settings.quiet_window)  # room for a credential that must not come
        sessions = tuple(r for r in await ctx.sessions(t0) if r.started_at >= t0)
        hellos = tuple(h for h in await ctx.control.client_hellos(t0) if h.probe)
    finally:
        await ctx.control.set_tls_probe(None)
    window = ProbeWindow(mode=mode, sessions=sessions, hellos=hellos, notes=(note,) if note is not None else ())
    ctx.shared[f"probe:{mode}"] = window
    return window


def _hello_evidence(hellos: Sequence[HelloRecord], title: str) -> Evidence:
    if not hellos:
        return Evidence(title=title, lines=("aucune ClientHello reçue",))
    lines = []
    for h in hellos[:6]:
        hello = h.hello
        lines.append(f"{time.strftime('%H:%M:%S', time.localtime(h.at))}  SNI {hello.server_name or '(aucun)'}  "
                     f"versions {', '.join(version_name(v) for v in hello.versions)}")
        lines.append("    suites : " + ", ".join(suite_name(c) for c in hello.suites)[:900])
    if len(hellos) > 6:
        lines.append(f"… {len(hellos) - 6} autres ClientHello")
    return Evidence(title=title, lines=tuple(lines))


_PROBE_FR = {"old-tls": "seulement TLS 1.0 et TLS 1.1, toutes suites",
             "weak-suites": "seulement TLS 1.2 et des suites hors de la liste ECO.1.1.3"}


def _probe_evidence(probe: ProbeWindow) -> list[Evidence]:
    head = Evidence(title=f"Sonde TLS (défaut tls_probe = {probe.mode})", lines=(
        f"Le bac à sable présente à STARTTLS son vrai certificat, mais {_PROBE_FR[probe.mode]} : un LPS conforme "
        "ne peut pas conclure la négociation.",
        f"{len(probe.sessions)} session(s) ouverte(s) pendant la sonde, {len(probe.completed)} négociation(s) "
        "TLS conclue(s) avec la sonde.",
    ))
    return [*probe.notes, head, _hello_evidence(probe.hellos, "ClientHello reçues par la sonde"),
            *(session_evidence(r) for r in probe.sessions[:4])]


def _unreached(probe: ProbeWindow, rule: str) -> Verdict:
    return Verdict.failed(
        f"Aucune connexion observée face à la sonde TLS ({_PROBE_FR[probe.mode]}) après la demande de reconnexion : "
        f"son refus ne peut pas être constaté ({rule}).", _probe_evidence(probe))


def _credentials(records: Sequence[SessionRecord]) -> bool:
    return bool(auth_attempts(records)) or any(r.credentials_before_tls for r in records)


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
    """TLS 1.2 or later, offered and accepted (ECO.1.1.1 / SC.MSS/CONF.01).

    Fails when a session of the window is not in TLS ≥ 1.2, when a ClientHello offers TLS 1.0 or
    1.1 (``supported_versions``, or a legacy version below 1.2), or when the LPS completes the
    probe's handshake in TLS < 1.2 (it would talk to such an operator).
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
        probe = await probe_window(ctx, "old-tls")
        if not probe.reached:
            return _unreached(probe, "ECO.1.1.1")
        if probe.completed:
            versions = ", ".join(sorted({str(r.tls_version) for r in probe.completed}))
            sent = " et lui a transmis ses identifiants" if _credentials(probe.completed) else ""
            return Verdict.failed(
                f"Le LPS a conclu une négociation en {versions} avec la sonde{sent} : il doit refuser tout "
                "opérateur qui ne parle pas TLS 1.2 ou plus, et ne rien lui envoyer (ECO.1.1.1, SC.MSS/CONF.01 ; "
                "ECO.1.2.1).", _probe_evidence(probe))
        offered = [h for h in window.hellos if any(v not in ALLOWED_VERSIONS and v < 0x0303 for v in h.hello.versions)]
        if offered:
            old = sorted({version_name(v) for h in offered for v in h.hello.versions if v < 0x0303})
            return Verdict.failed(
                f"Le LPS propose {', '.join(old)} dans sa ClientHello : il accepterait un opérateur qui ne parle "
                "pas TLS 1.2. Seuls TLS 1.2 et TLS 1.3 doivent être proposés (ECO.1.1.1, SC.MSS/CONF.01 ; "
                "RFC 8996 retire TLS 1.0 et 1.1).",
                [*window.notes, _hello_evidence(offered, "ClientHello du LPS")])
        versions = ", ".join(sorted({str(r.tls_version) for r in started}))
        return Verdict.passed(
            f"{len(started)} session(s) en {versions} ; ClientHello sans TLS 1.0/1.1 ; la sonde TLS 1.0/1.1 a été "
            "refusée (aucune négociation conclue) (ECO.1.1.1).",
            [*_evidence(started), _hello_evidence(window.hellos, "ClientHello du LPS"), *_probe_evidence(probe)])

    return check


def _outside_list(hello: HelloRecord) -> list[int]:
    # ECDSA/DSA-only suites are left aside: an IGC Santé (RSA) server certificate never negotiates them.
    return [c for c in hello.hello.suites
            if c not in ALLOWED_SUITES and c not in SIGNALING_SUITES and not needs_non_rsa_certificate(c)]


def check_ciphers() -> Check:
    """Only the allowed suites offered and negotiated (ECO.1.1.3 / SC.MSS/CONF.03).

    Fails when a ClientHello offers a suite outside the list (TLS 1.2: 0xC030, 0xC02F, 0xC028,
    0xC027; TLS 1.3 suites; signalling values aside), when a session negotiated another one, or
    when the LPS completes the probe's handshake (only suites outside the list are on offer).
    Suites that need an ECDSA or DSA server certificate are not held against the LPS: an
    operator's IGC Santé certificate is RSA, so they are never negotiated (and TLS stacks such
    as Windows SChannel offer them by default without a per-application setting).
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
        if not window.hellos:
            return Verdict.errored(
                "Aucune ClientHello enregistrée par le bac à sable pour ces sessions : les suites proposées par le LPS "
                "ne peuvent pas être lues (ECO.1.1.3).", _evidence(secured, window.notes))
        extra = sorted({c for h in window.hellos for c in _outside_list(h)})
        if extra:
            shown = ", ".join(suite_name(c) for c in extra[:40]) + (" …" if len(extra) > 40 else "")
            return Verdict.failed(
                f"Le LPS propose {len(extra)} suite(s) hors liste dans sa ClientHello : {shown}. Il accepterait un "
                "opérateur qui les choisit. En TLS 1.2, seules ECDHE-RSA AES-GCM et AES-CBC-SHA2 (0xC030, 0xC02F, "
                "0xC028, 0xC027) doivent être proposées, « sinon pas de connexion » (ECO.1.1.3, SC.MSS/CONF.03).",
                [*window.notes, _hello_evidence([h for h in window.hellos if _outside_list(h)], "ClientHello du LPS")])
        probe = await probe_window(ctx, "weak-suites")
        if not probe.reached:
            return _unreached(probe, "ECO.1.1.3")
        if probe.completed:
            used = ", ".join(sorted({f"{r.tls_version} {r.tls_cipher}" for r in probe.completed}))
            return Verdict.failed(
                f"Le LPS a accepté une suite hors liste proposée par la sonde ({used}) : il doit refuser la connexion "
                "quand l'opérateur n'offre aucune suite autorisée (ECO.1.1.3, SC.MSS/CONF.03).",
                _probe_evidence(probe))
        used = ", ".join(sorted({f"{r.tls_version} {r.tls_cipher}" for r in secured}))
        return Verdict.passed(
            f"Suites négociées autorisées : {used} ; la ClientHello ne propose que des suites autorisées ; la sonde "
            "aux suites faibles a été refusée (ECO.1.1.3).",
            [*_evidence(secured), _hello_evidence(window.hellos, "ClientHello du LPS"), *_probe_evidence(probe)])

    return check


def _dns_evidence(queries: Sequence[DNSQuery], domain: str, targets: Sequence[str]) -> Evidence:
    wanted = {f"_imap._tcp.{domain}", f"_submission._tcp.{domain}", *targets}
    relevant = [q for q in queries if q.name in wanted] or list(queries)
    lines = [f"{time.strftime('%H:%M:%S', time.localtime(q.at))}  {q.type:<5} {q.name}  → {q.rcode}  "
             f"({q.transport} depuis {q.source})" for q in relevant[:12]]
    if len(relevant) > 12:
        lines.append(f"… {len(relevant) - 12} autres requêtes")
    return Evidence(title="Requêtes reçues par le DNS du bac à sable",
                    lines=tuple(lines) or ("aucune requête DNS pendant la fenêtre de connexion",))


def check_srv_front(front: str) -> Check:
    """Connected to the front the SRV records give for the BAL type, found by SRV lookups
    (ECO.1.1.9 / SC.MSS/CONF.04, EX_LPS_0300, RFC 6186).

    ``front`` is ``psc`` (priority 10, BAL PER/ORG) or ``authcli`` (priority 20, BAL APP).

    The sandbox DNS journals its queries: the SRV records ``_imap._tcp.<domain>`` and
    ``_submission._tcp.<domain>`` must have been asked during the connection window (or within
    the records' TTL before it: a resolver may reuse an answer that long), so an LPS with host
    names written in its configuration fails. The target's address may come from an A/AAAA
    query, the SRV answer's additional section (RFC 2782) or the system resolver (``mssante
    sandbox hosts``): the A/AAAA queries are shown, not required; the target name is checked
    in the TLS server name (SNI) instead. Queries are attributed by time, as every client of
    the sandbox asks from loopback.
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
        domain = str(ctx.control.info["domain"]).lower().rstrip(".")
        targets = [str(ctx.control.info[p][front]["host"]).lower() for p in ("imap", "smtp")]
        dns_evidence = _dns_evidence(window.queries, domain, targets)
        asked = {q.name for q in window.queries if q.type in ("SRV", "ANY")}
        missing_srv = [n for n in (f"_imap._tcp.{domain}", f"_submission._tcp.{domain}") if n not in asked]
        if missing_srv:
            return Verdict.failed(
                f"Aucune requête DNS SRV {' ni '.join(missing_srv)} pendant la connexion : le LPS a joint les fronts "
                "sans consulter les enregistrements SRV (noms d'hôte ou adresses écrits dans sa configuration). Il "
                "doit trouver les serveurs IMAP et SMTP de la BAL par les enregistrements SRV du domaine de "
                "l'adresse (ECO.1.1.9, SC.MSS/CONF.04, EX_LPS_0300, RFC 6186).",
                [*window.notes, dns_evidence, *(session_evidence(r) for r in window.sessions[:4])])
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
        resolved = sorted({q.name for q in window.queries if q.type in ("A", "AAAA") and q.name in targets})
        how = (f"adresse(s) demandée(s) pour {', '.join(resolved)}" if resolved
               else "adresses prises sans requête A/AAAA au DNS du bac à sable (section additionnelle ou résolveur "
                    "du système)")
        return Verdict.passed(
            f"Requêtes SRV _imap._tcp et _submission._tcp reçues ; {how} ; IMAP et SMTP joints sur le front "
            f"« {front} », celui des enregistrements SRV de priorité {priority} (ECO.1.1.9).",
            [dns_evidence, *_evidence(window.sessions)])

    return check


def check_psc_mechanism(protocol: str) -> Check:
    """SASL XOAUTH2 with ``user=`` the BAL address (ECO.1.2.1 / SC.MSS/CONF.07)."""

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
    """ORG AUTH_CLI certificate in the handshake, then SASL PLAIN with the BAL address (SC.MSS/CONF.12)."""

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
    """The certificate's OU is the IdNat_Struct of the structure that holds the BAL APP."""

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
    """No credential ever sent before TLS (ECO.1.2.1; RFC 3501 §6.2.2, RFC 3207 §4, RFC 4954 §4)."""

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
