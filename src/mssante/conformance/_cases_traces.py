"""Functional traces of the LPS (ECO.4.1.1 / ECO.4.1.2, SC.MSS/CONF.17 / .18), from a trace file.

The file is given by the person running the suite (``--trace-file``) in the JSON Lines format
published as ``docs/schemas/trace.schema.json`` (what :mod:`mssante.trace` writes): one object
per line with ``at`` (local time of the workstation, ISO 8601 with its offset), ``author``,
``bal``, ``action``, ``request``, ``response`` and ``ok``. No trace file, a missing file or an
empty one is *non conforme*, with the reason: traces are a requirement, not an option. The
check covers the records written since the job started:

* every field is present and filled (author, local time, action, request, server answer);
* sending, reading and deleting are traced (the ANS FAQ names sending and deleting as the
  minimum): the case itself delivers a message and asks the LPS to read, then delete it;
* every session the operator saw (authenticated IMAP/SMTP sessions of the BAL in the journal)
  has a trace record of the BAL written while it was open (± :data:`CLOCK_TOLERANCE`), with a
  result: traces are compared with what the operator saw, not only read;
* no secret: no JWT, no bearer token, no SASL response, no password (ECO.1.2.5).

Nothing here is ever skipped: a missing input is *non conforme*.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from mssante.conformance._cases_messages import sandbox_message
from mssante.conformance._context import CaseContext
from mssante.conformance._judge import session_evidence
from mssante.conformance._model import Check, Evidence, Verdict
from mssante.sandbox.fronts.journal import SessionRecord

__all__ = ["CLOCK_TOLERANCE", "check_traces", "trace_problems", "untraced_sessions"]

#: Seconds of difference allowed between the workstation's clock and the operator's journal.
CLOCK_TOLERANCE: Final = 5.0
_ACTIONS: Final = {
    "send": ("send", "envoi", "submit"),
    "read": ("fetch", "read", "lecture"),
    "delete": ("delete", "expunge", "suppression", "trash"),
}
_ACTIONS_FR: Final = {"send": "d'envoi", "read": "de lecture", "delete": "de suppression"}

_FIELDS: Final = ("at", "author", "bal", "action", "request", "response", "ok")
_SECRETS: Final = (
    (re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), "un jeton JWT"),
    (re.compile(r"(?i)bearer\s+(?!<)[A-Za-z0-9._~+/=-]{8,}"), "un jeton « Bearer »"),
    (re.compile(r"(?i)auth=bearer"), "une réponse SASL XOAUTH2"),
    (re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{60,}={0,2}"), "une longue chaîne base64 (réponse SASL ?)"),
)
_MAX_LINES: Final = 100_000


def _when(value: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def trace_problems(lines: list[str], since: float) -> tuple[list[dict[str, Any]], list[str]]:
    """Parse trace lines; return the records at or after ``since`` and the problems found (French)."""
    records: list[dict[str, Any]] = []
    problems: list[str] = []
    for number, line in enumerate(lines[:_MAX_LINES], start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            problems.append(f"ligne {number} : pas un objet JSON")
            continue
        if not isinstance(item, dict):
            problems.append(f"ligne {number} : pas un objet JSON")
            continue
        moment = _when(item.get("at"))
        if moment is None:
            problems.append(f"ligne {number} : « at » n'est pas une heure locale ISO 8601 avec décalage")
            continue
        if moment.timestamp() < since - 1:
            continue
        records.append(item)
        missing = [f for f in _FIELDS if item.get(f) in (None, "")]
        if missing:
            problems.append(f"ligne {number} : champ(s) absent(s) ou vide(s) : {', '.join(missing)} (ECO.4.1.2)")
        text = " ".join(str(item.get(f, "")) for f in ("request", "response", "author", "bal"))
        for pattern, what in _SECRETS:
            if pattern.search(text):
                problems.append(f"ligne {number} : contient {what} (ECO.1.2.5 : aucun secret dans les traces)")
                break
    return records, problems


def untraced_sessions(sessions: Sequence[SessionRecord], records: Sequence[dict[str, Any]], bal: str,
                      now: float) -> list[SessionRecord]:
    """The authenticated sessions of ``bal`` with no trace record of that BAL written while they were open."""
    moments = []
    for r in records:
        moment = _when(r.get("at"))
        if moment is not None and str(r.get("bal", "")).lower() == bal.lower() and r.get("ok") is not None:
            moments.append(moment.timestamp())
    return [s for s in sessions
            if not any(s.started_at - CLOCK_TOLERANCE <= m <= (s.ended_at or now) + CLOCK_TOLERANCE for m in moments)]


def _kind(action: Any) -> str | None:
    text = str(action).lower()
    return next((k for k, words in _ACTIONS.items() if any(w in text for w in words)), None)


async def _read_and_delete(ctx: CaseContext) -> tuple[str, list[Evidence]]:
    """Deliver a message, ask the LPS to read it, then to delete it; the Message-ID and the notes."""
    composed = sandbox_message(ctx, "Test de conformité : message à lire puis supprimer",
                               "Bonjour,\n\nMerci de lire ce message puis de le supprimer depuis votre LPS.\n")
    await ctx.control.deliver(ctx.bal, composed.to_bytes())
    _, read_note = await ctx.read()
    delete_note = await ctx.act(ctx.driver.delete_message(composed.message_id), "suppression")

    async def gone() -> bool | None:
        listed = await ctx.control.list_messages(ctx.bal)
        still = [m for m in listed if m.message_id == composed.message_id and "\\Deleted" not in m.flags]
        return None if still else True

    await ctx.wait_for(gone, ctx.bound(), asked=True)
    return composed.message_id, [n for n in (read_note, delete_note) if n is not None]


def check_traces() -> Check:
    """Traces of the run's actions, complete and without secret."""

    async def check(ctx: CaseContext) -> Verdict:
        if ctx.trace_file is None:
            return Verdict.failed(
                "Aucun fichier de traces fourni (option --trace-file FICHIER) : toute action sur la BAL doit être "
                "tracée (auteur, heure locale, action, requête, réponse du serveur) et les traces ne peuvent pas "
                "être examinées. Format attendu : docs/schemas/trace.schema.json (ECO.4.1.1, SC.MSS/CONF.17).")
        sent = await ctx.document_message()
        if sent is None:
            return Verdict.failed(f"Aucun message envoyé à {ctx.peer} : l'envoi n'a pas pu être tracé.")
        deleted, notes = await _read_and_delete(ctx)

        def about(state: str) -> list[Evidence]:
            return [Evidence(title="Fichier de traces", lines=(str(ctx.trace_file), state)), sent[0].evidence(),
                    *notes]

        try:
            lines = ctx.trace_file.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return Verdict.failed(
                f"Fichier de traces absent : {ctx.trace_file} n'existe pas après les envois de la campagne ; le LPS "
                "doit y écrire une ligne JSON par action (docs/schemas/trace.schema.json ; ECO.4.1.1).",
                about("absent"))
        except (OSError, UnicodeDecodeError) as exc:
            return Verdict.failed(f"Fichier de traces illisible : {ctx.trace_file} ({exc}) ; attendu : JSON Lines "
                                  "en UTF-8 (docs/schemas/trace.schema.json ; ECO.4.1.1).", about("illisible"))
        if not any(line.strip() for line in lines):
            return Verdict.failed(
                f"Fichier de traces vide : {ctx.trace_file} ne contient aucune trace alors que le LPS a agi sur la "
                "BAL (connexion, envoi) ; chaque action doit être tracée (ECO.4.1.1, SC.MSS/CONF.17).",
                about("vide (aucune ligne)"))
        records, problems = trace_problems(lines, ctx.job_started)
        sample = Evidence(title=f"Traces depuis le début de la campagne ({len(records)})",
                          lines=tuple(json.dumps(r, ensure_ascii=False)[:220] for r in records[-8:]))
        if not records:
            return Verdict.failed("Aucune trace écrite pendant la campagne : toute action sur la BAL doit être tracée "
                                  "(ECO.4.1.1, SC.MSS/CONF.17).", [sample])
        kinds = {k: [r for r in records if _kind(r.get("action")) == k] for k in _ACTIONS}
        for kind, found in kinds.items():
            if not found:
                problems.append(f"aucune trace {_ACTIONS_FR[kind]} (action « {_ACTIONS[kind][0]} ») alors que le LPS "
                                f"a dû le faire pendant la campagne (message {deleted} lu puis supprimé ; ECO.4.1.1)")
        seen = [r for r in await ctx.control.records(since=ctx.job_started)
                if (r.bal or "").lower() == ctx.bal.lower() and r.auth_result == "OK"]
        missing = untraced_sessions(seen, records, ctx.bal, time.time())
        if missing:
            problems.append(f"{len(missing)} session(s) sur {len(seen)} vue(s) par l'opérateur sans aucune trace de la "
                            f"BAL {ctx.bal} pendant leur durée (heure, BAL, action, résultat ; ECO.4.1.1, ECO.4.1.2)")
        journal = [session_evidence(r, note="sans trace") for r in missing[:3]]
        if problems:
            return Verdict.failed("Traces non conformes : " + " ; ".join(problems[:6]),
                                  [Evidence(title="Problèmes", lines=tuple(problems[:30])), sample, *journal, *notes])
        return Verdict.passed(
            f"{len(records)} trace(s) complètes, sans secret : {len(kinds['send'])} envoi(s), {len(kinds['read'])} "
            f"lecture(s), {len(kinds['delete'])} suppression(s) ; chacune des {len(seen)} sessions vues par "
            "l'opérateur est tracée (ECO.4.1.1, ECO.4.1.2).", [sample, *notes])

    return check
