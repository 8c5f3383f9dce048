"""Functional traces of the LPS (ECO.4.1.1 / ECO.4.1.2, SC.MSS/CONF.17 / .18), from a trace file.

The file is given by the person running the suite (``--trace-file``) in the JSON Lines format
published as ``docs/schemas/trace.schema.json`` (what :mod:`mssante.trace` writes): one object
per line with ``at`` (local time of the workstation, ISO 8601 with its offset), ``author``,
``bal``, ``action``, ``request``, ``response`` and ``ok``. No trace file, a missing file or an
empty one is *non conforme*, with the reason: traces are a requirement, not an option. The
check covers the records written since the job started:

* every field is present and filled (author, local time, action, request, server answer);
* sending is traced (the ANS FAQ names sending and deleting as the minimum);
* no secret: no JWT, no bearer token, no SASL response, no password (ECO.1.2.5).
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any, Final

from mssante.conformance._context import CaseContext
from mssante.conformance._model import Check, Evidence, Verdict

__all__ = ["check_traces", "trace_problems"]

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
    """Parse trace lines; return the records at or after ``since`` and the problems found (French).

    Raises:
        Nothing.
    """
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


def check_traces() -> Check:
    """Traces of the run's actions, complete and without secret.

    Raises:
        Nothing.
    """

    async def check(ctx: CaseContext) -> Verdict:
        if ctx.trace_file is None:
            return Verdict.failed(
                "Aucun fichier de traces fourni (option --trace-file FICHIER) : toute action sur la BAL doit être "
                "tracée (auteur, heure locale, action, requête, réponse du serveur) et les traces ne peuvent pas "
                "être examinées. Format attendu : docs/schemas/trace.schema.json (ECO.4.1.1, SC.MSS/CONF.17).")
        sent = await ctx.document_message()
        if sent is None:
            return Verdict.failed(f"Aucun message envoyé à {ctx.peer} : l'envoi n'a pas pu être tracé.")

        def about(state: str) -> list[Evidence]:
            return [Evidence(title="Fichier de traces", lines=(str(ctx.trace_file), state)), sent[0].evidence()]

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
        sends = [r for r in records if str(r.get("action", "")).lower() in ("send", "envoi")]
        if not sends:
            problems.append("aucune trace d'envoi (action « send ») alors que des messages ont été envoyés (ECO.4.1.1)")
        if problems:
            return Verdict.failed("Traces non conformes : " + " ; ".join(problems[:6]),
                                  [Evidence(title="Problèmes", lines=tuple(problems[:30])), sample])
        return Verdict.passed(f"{len(records)} trace(s) complètes, dont {len(sends)} envoi(s), sans secret "
                              "(ECO.4.1.1, ECO.4.1.2).", [sample])

    return check
