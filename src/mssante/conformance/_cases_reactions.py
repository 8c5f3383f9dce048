"""Reaction cases: what the LPS does when the operator refuses, fails, ends a session, or PSC logs out.

Each case injects one fault through :class:`~mssante.conformance._control.SandboxControl`,
lets the LPS react on its own, then judges the attempts recorded in the journal. Expected
reactions (ref2-requirements.md §2.4, §4):

* ``[AUTHENTICATIONFAILED]`` / ``535 5.7.8``: drop the token, get a fresh one, retry **once**;
* ``[AUTHORIZATIONFAILED]``: never retry;
* ``[UNAVAILABLE]`` / ``454 4.7.0``: retry later, spaced out, never in a tight loop (ECO.1.2.3);
* ``BYE`` or a dropped connection: reopen on its own while PSC is valid (ECO.1.2.7);
* end of the PSC session: close every IMAP/SMTP session (ECO.1.2.6).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence

from mssante.conformance._causes import named
from mssante.conformance._context import CaseContext
from mssante.conformance._driver import SendRequest
from mssante.conformance._judge import Attempt, attempts_evidence, auth_attempts, session_evidence
from mssante.conformance._model import Check, Evidence, Status, Verdict
from mssante.sandbox.fronts.journal import SessionRecord
from mssante.wire import AuthOutcome

__all__ = [
    "DEFAULT_TOKEN_LIFETIME",
    "TOKEN_LIFETIMES",
    "check_authentication_failed",
    "check_authorization_failed",
    "check_psc_logout",
    "check_reopen",
    "check_token_lifetimes",
    "check_unavailable",
]

#: Code of the case that keeps a session across two access-token lifetimes.
TOKEN_LIFETIMES = "token-lifetimes"  # noqa: S105 - a case code, not a password
#: PSC access tokens live about two minutes (psc-igc.md §1.5); used when the sandbox does not say.
DEFAULT_TOKEN_LIFETIME = 120.0


def _attempts_in(records: Sequence[SessionRecord], since: float) -> list[Attempt]:
    return [a for a in auth_attempts(records) if a.at >= since]


async def _attempts(ctx: CaseContext, since: float) -> list[Attempt]:
    return _attempts_in(await ctx.sessions(since), since)


def _waits(attempts: Sequence[Attempt], records: Sequence[SessionRecord]) -> list[float]:
    """How long the LPS itself waited after each refusal before its next attempt (ECO.1.2.3).

    From the operator's refusal (the journal stamps an answer once it has been sent) to the start
    of the next attempt: the connection accepted when the LPS reconnects, the answer to the new
    command when it retries within the same session. The TLS handshake, the client certificate and
    the authentication of the next attempt do not count: on a loaded machine they alone take longer
    than a back-off, and must not make a tight loop look spaced out.
    """
    started = {r.id: r.started_at for r in records}
    return [(b.at if b.session == a.session else started.get(b.session, b.at)) - a.at
            for a, b in itertools.pairwise(attempts)]


async def _still_trying(ctx: CaseContext, since: float) -> bool:
    """True when the LPS opened a session or got an answer within the last case bound."""
    records = await ctx.sessions(since)
    latest = max([r.started_at for r in records] + [a.at for a in _attempts_in(records, since)], default=0.0)
    return time.time() - latest < ctx.bound()


def _with(notes: Sequence[Evidence | None], *more: Evidence) -> list[Evidence]:
    return [*(n for n in notes if n is not None), *more]


async def _after_first(ctx: CaseContext, since: float, outcome: AuthOutcome, until_ok: bool) -> list[Attempt]:
    """Wait for a first ``outcome`` (and, when ``until_ok``, a later success), then a quiet window."""

    async def probe() -> bool | None:
        found = await _attempts(ctx, since)
        first = next((i for i, a in enumerate(found) if a.outcome is outcome), None)
        if first is None:
            return None
        if until_ok and not any(a.outcome is AuthOutcome.OK for a in found[first + 1:]):
            return None
        return True

    await ctx.wait_for(probe, ctx.bound())
    await ctx.sleep(ctx.settings.quiet_window)
    return await _attempts(ctx, since)


def check_authentication_failed(*, psc: bool) -> Check:
    """``[AUTHENTICATIONFAILED]``: one re-authentication, with a fresh token for PSC; no loop.

    PER/ORG: the next token presented is made invalid for good (see
    :meth:`~mssante.conformance._control.SandboxControl.reject_next_token`), so that a retry
    with the same token fails again and is seen. APP: the next three attempts fail; the LPS
    may retry once, then must stop and report.
    """

    async def check(ctx: CaseContext) -> Verdict:
        await ctx.ensure_live_session()
        since = time.time()
        gated = await ctx.control.reject_next_token(ctx.bal) if psc else False
        if not gated:
            await ctx.control.fail_next_auth(1 if psc else 3, "AUTHENTICATIONFAILED", ctx.bal)
        try:
            note = await ctx.act(ctx.driver.open_session(fresh=True), "reconnexion")
            found = await _after_first(ctx, since, AuthOutcome.AUTHENTICATIONFAILED, until_ok=psc)
            gate = (await ctx.control.fault_state()).get("token_gate") if gated else None
            reuse = int(gate.get("reused", 0)) if isinstance(gate, dict) else 0
        finally:
            await ctx.control.clear_faults()
        evidence = _with([note], attempts_evidence(found))
        if not found:
            return Verdict.failed("Aucune tentative d'authentification après la demande de reconnexion.", evidence)
        if found[0].outcome is not AuthOutcome.AUTHENTICATIONFAILED:
            return Verdict.errored(f"Le refus injecté n'a pas été observé (première réponse : {found[0].answer}).",
                                   evidence)
        after = found[1:]
        failures = [a for a in after if a.outcome is not AuthOutcome.OK]
        if not psc:
            if len(failures) > 1:
                return Verdict.failed(
                    f"{len(failures) + 1} échecs d'authentification consécutifs : après AUTHENTICATIONFAILED, le LPS "
                    "peut réessayer une fois, puis doit s'arrêter et signaler l'erreur (pas de boucle ; RFC 5530, "
                    "RFC 4954 §6).", evidence)
            return Verdict.passed(f"{len(after)} nouvelle(s) tentative(s) après le refus, puis arrêt : pas de boucle.",
                                  evidence)
        if reuse:
            return Verdict(status=Status.FAIL, evidence=tuple(evidence), cause=named("token-reused"), explanation=(
                f"Le jeton refusé a été présenté de nouveau ({reuse} fois) : après AUTHENTICATIONFAILED, le LPS doit "
                "abandonner ce jeton et en obtenir un nouveau auprès de Pro Santé Connect (ECO.1.2.1 ; RFC 5530)."))
        if not after:
            return Verdict.failed(
                "Aucune nouvelle tentative : après AUTHENTICATIONFAILED, le LPS doit obtenir un nouveau jeton "
                "(jeton de rafraîchissement) et se réauthentifier une fois, sans intervention du professionnel "
                "(ECO.1.2.1).",
                evidence)
        if failures:
            return Verdict.failed(
                f"{len(failures)} échec(s) après la première nouvelle tentative : une seule réauthentification est "
                "attendue, pas une boucle (ECO.1.2.1 ; RFC 5530).", evidence)
        fresh = "avec un nouveau jeton" if gated else "(fraîcheur du jeton non vérifiable sur ce bac à sable)"
        return Verdict.passed(f"Une seule réauthentification, réussie, {fresh}.", evidence)

    return check


def check_authorization_failed() -> Check:
    """``[AUTHORIZATIONFAILED]``: the LPS does not try again."""

    async def check(ctx: CaseContext) -> Verdict:
        since = time.time()
        await ctx.control.fail_next_auth(1, "AUTHORIZATIONFAILED", ctx.bal)
        try:
            note = await ctx.act(ctx.driver.open_session(fresh=True), "reconnexion")
            found = await _after_first(ctx, since, AuthOutcome.AUTHORIZATIONFAILED, until_ok=False)
        finally:
            await ctx.control.clear_faults()
        evidence = _with([note], attempts_evidence(found))
        first = next((i for i, a in enumerate(found) if a.outcome is AuthOutcome.AUTHORIZATIONFAILED), None)
        if first is None:
            return Verdict.failed("Aucune tentative d'authentification observée après la demande de reconnexion.",
                                  evidence)
        retries = found[first + 1:]
        if retries:
            return Verdict.failed(
                f"{len(retries)} nouvelle(s) tentative(s) après AUTHORIZATIONFAILED : l'identité n'a pas de droit sur "
                "cette BAL, réessayer est inutile ; le LPS doit s'arrêter et l'indiquer (RFC 5530 §3).", evidence)
        return Verdict.passed(
            f"Aucune nouvelle tentative pendant {ctx.settings.quiet_window:g} s après AUTHORIZATIONFAILED.", evidence)

    return check


def check_unavailable(*, psc: bool) -> Check:
    """``[UNAVAILABLE]`` / ``454 4.7.0``: spaced retries, then a successful session (ECO.1.2.3).

    PER/ORG: the PSC token check is unavailable for ``unavailable_for`` seconds. APP: the next
    three attempts are answered ``UNAVAILABLE``.
    """

    async def check(ctx: CaseContext) -> Verdict:
        since = time.time()
        if psc:
            await ctx.control.set_psc_unavailable(True)
        else:
            await ctx.control.fail_next_auth(3, "UNAVAILABLE", ctx.bal)
        try:
            note = await ctx.act(ctx.driver.open_session(fresh=True), "reconnexion")
            if psc:
                await ctx.sleep(ctx.settings.unavailable_for)
                await ctx.control.set_psc_unavailable(False)

            async def probe() -> bool | None:
                return True if any(a.outcome is AuthOutcome.OK for a in await _attempts(ctx, since)) else None

            # APP: the failures are spread over the LPS's own back-off, hence the extra time.
            recovered = await ctx.wait_for(probe, ctx.bound() + (0.0 if psc else ctx.settings.unavailable_for))
            if not recovered and await _still_trying(ctx, since):
                # A loaded machine slows each handshake, not the LPS's back-off: one more bound, once.
                recovered = await ctx.wait_for(probe, ctx.bound())
        finally:
            await ctx.control.clear_faults()
        records = await ctx.sessions(since)
        found = _attempts_in(records, since)
        ok_at = next((i for i, a in enumerate(found) if a.outcome is AuthOutcome.OK), len(found))
        before = found[: ok_at + 1]
        evidence = _with([note], attempts_evidence(found))
        failures = [a for a in before if a.outcome is AuthOutcome.UNAVAILABLE]
        if not failures:
            return Verdict.errored("L'indisponibilité injectée n'a pas été observée.", evidence)
        waits = _waits(before, records)
        if waits and min(waits) < ctx.settings.min_retry_interval:
            return Verdict.failed(
                f"{len(before)} tentatives en {before[-1].at - before[0].at:.2f} s (attente minimale après un refus "
                f"{min(waits):.3f} s, attendu au moins {ctx.settings.min_retry_interval:g} s) : après UNAVAILABLE, le "
                "LPS doit espacer ses nouvelles tentatives, pas boucler ; les autres fonctions ne doivent pas en pâtir "
                "(ECO.1.2.3, SC.MSS/CONF.08).", evidence)
        if not recovered:
            return Verdict.failed(
                "Pas de reprise après le retour du service : le LPS doit réessayer plus tard sans déconnecter "
                "l'utilisateur (ECO.1.2.3, SC.MSS/CONF.08).", evidence)
        spacing = (f"attente minimale {min(waits):.2f} s entre un refus et la tentative suivante" if waits
                   else "aucune attente à mesurer")
        return Verdict.passed(f"{len(failures)} refus UNAVAILABLE, tentatives espacées ({spacing}), puis reprise.",
                              evidence)

    return check


def check_reopen(mode: str) -> Check:
    """After ``BYE`` (``mode="bye"``) or a TCP drop (``"drop"``), a new IMAP session opens alone (ECO.1.2.7).
    """
    how = "un BYE de l'opérateur" if mode == "bye" else "une coupure TCP brutale"

    async def check(ctx: CaseContext) -> Verdict:
        live = await ctx.ensure_live_session()
        if live is None:
            return Verdict.failed("Aucune session IMAP ouverte par le LPS : impossible de tester la réouverture.")
        since = time.time()
        ended = await ctx.control.end_sessions(ctx.bal, "bye" if mode == "bye" else "drop")

        async def probe() -> SessionRecord | None:
            return next((r for r in await ctx.sessions(since, "imap") if r.auth_result is AuthOutcome.OK), None)

        found = await ctx.wait_for(probe, ctx.bound())
        evidence = [session_evidence(live, note=f"fermée par l'opérateur ({ended} session(s))")]
        if found is None:
            return Verdict.failed(
                f"Pas de nouvelle session IMAP après {how} : tant que la session PSC est valide, le LPS doit rouvrir "
                "automatiquement la session, sans intervention du professionnel (ECO.1.2.7, SC.MSS/CONF.11).",
                evidence)
        evidence.append(session_evidence(found, note="réouverte par le LPS"))
        return Verdict.passed(f"Session IMAP rouverte {found.started_at - since:.2f} s après {how} (ECO.1.2.7).",
                              evidence)

    return check


def check_psc_logout() -> Check:
    """End of the PSC session: every IMAP/SMTP session of the BAL is closed within the bound (ECO.1.2.6)."""

    async def check(ctx: CaseContext) -> Verdict:
        live = await ctx.ensure_live_session()
        if live is None or not live.identity:
            return Verdict.failed("Aucune session IMAP authentifiée par PSC : impossible de tester la déconnexion.")
        opened = [r for r in await ctx.control.records(since=ctx.job_started - 3600)
                  if (r.bal or "").lower() == ctx.bal.lower() and r.ended_at is None
                  and r.auth_result is AuthOutcome.OK]
        since = time.time()
        ended = await ctx.control.end_psc_sessions(live.identity)
        ids = {r.id for r in opened}

        async def probe() -> bool | None:
            now = {r.id: r for r in await ctx.control.records(since=ctx.job_started - 3600) if r.id in ids}
            return True if all(r.ended_at is not None for r in now.values()) else None

        closed = await ctx.wait_for(probe, ctx.bound())
        records = {r.id: r for r in await ctx.control.records(since=ctx.job_started - 3600)}
        evidence = [Evidence(title="Déconnexion Pro Santé Connect",
                             lines=(f"{ended} session(s) PSC de {live.identity} terminée(s) par le bac à sable",))]
        evidence += [session_evidence(records[i]) for i in sorted(ids) if i in records]
        if not closed:
            still = [i for i in sorted(ids) if records.get(i) is not None and records[i].ended_at is None]
            return Verdict.failed(
                f"{len(still)} session(s) encore ouverte(s) {ctx.bound():.0f} s après la fin de la session PSC : "
                "le LPS doit détecter la déconnexion PSC (jeton de rafraîchissement invalide, déconnexion "
                "back-channel) et fermer toutes ses sessions IMAP/SMTP (ECO.1.2.6, SC.MSS/CONF.10).", evidence)
        last = max((records[i].ended_at or since for i in ids if i in records), default=since)
        return Verdict.passed(
            f"{len(ids)} session(s) fermée(s) {max(0.0, last - since):.2f} s après la fin de la session PSC "
            "(ECO.1.2.6).", evidence)

    return check


def check_token_lifetimes() -> Check:
    """The LPS keeps working across two PSC access-token lifetimes without a new PSC login.

    The LPS has its IMAP session open; the case lets two access-token lifetimes pass, then asks
    for a message: the SMTP authentication needs a token obtained by refreshing (the refresh
    token grant), not a new login of the professional (CPS or e-CPS), and the IMAP session is
    still (or again) open (ECO.1.2.7; ECO.1.2.1: a fresh token for each authentication).
    """

    async def check(ctx: CaseContext) -> Verdict:
        live = await ctx.ensure_live_session()
        if live is None or not live.identity:
            return Verdict.failed("Aucune session IMAP authentifiée par PSC : la durée de session ne peut pas être "
                                  "jugée.")
        lifetime = ctx.control.access_token_lifetime() or DEFAULT_TOKEN_LIFETIME
        since = time.time()
        await asyncio.sleep(2 * lifetime + 0.5)  # the clock under test: two token lifetimes must really pass
        sending = time.time()
        note = await ctx.act(ctx.driver.send_message(SendRequest(to=ctx.peer)), "envoi")
        sub = await ctx.wait_submission(sending, lambda s: ctx.peer.lower() in (r.lower() for r in s.recipients),
                                        ctx.bound())
        logins = await ctx.control.psc_logins(live.identity, since)
        still = await ctx.live_sessions()
        facts = Evidence(title="Durée de vie des jetons", lines=(
            f"Jeton d'accès PSC : {lifetime:g} s ; attente {2 * lifetime + 0.5:g} s avant l'envoi",
            "Nouvelles connexions PSC du professionnel pendant le cas : "
            + ("non observable sur ce bac à sable" if logins is None else str(logins)),
            f"Sessions IMAP ouvertes à la fin : {len(still)}"))
        evidence = _with([note], facts, *(session_evidence(r) for r in still[-1:]))
        if sub is None:
            return Verdict.failed(
                f"Aucun message envoyé après {2 * lifetime:g} s (deux durées de vie du jeton d'accès) : le LPS doit "
                "obtenir un nouveau jeton avec le jeton de rafraîchissement et continuer à fonctionner sans nouvelle "
                "connexion du professionnel (ECO.1.2.7, ECO.1.2.1).", evidence)
        if logins:
            return Verdict.failed(
                f"{logins} nouvelle(s) connexion(s) PSC du professionnel pendant la session : à l'expiration du jeton "
                "d'accès, le LPS doit le renouveler avec le jeton de rafraîchissement, sans redemander la carte CPS ou "
                "l'e-CPS (ECO.1.2.7, ECO.1.2.1).", evidence)
        if not still:
            return Verdict.failed(
                f"Plus aucune session IMAP ouverte après {2 * lifetime:g} s : la session doit survivre à l'expiration "
                "des jetons d'accès tant que la session PSC est valide (ECO.1.2.7).", evidence)
        return Verdict.passed(f"Session maintenue {sub.at - since:.1f} s (plus de deux durées de vie du jeton), envoi "
                              "réussi, sans nouvelle connexion PSC (ECO.1.2.7).", evidence)

    return check
