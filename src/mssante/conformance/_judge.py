"""Reading the session journal: authentication attempts, TLS facts, submissions, evidence blocks.

Pure functions over :class:`~mssante.sandbox.fronts.journal.SessionRecord`: no I/O, no clock.
A session record keeps only the *first* authentication time and the *last* result, so
attempts are counted from the recorded commands (each ``AUTHENTICATE``/``AUTH``/``LOGIN`` with
the server's answer and the :class:`~mssante.wire.AuthOutcome` the front recorded with it:
verdicts compare outcomes, never the answer's text).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from typing import Any, Final

from mssante.conformance._model import Evidence
from mssante.sandbox.fronts.journal import SessionRecord, is_auth_command
from mssante.wire import AuthOutcome

__all__ = [
    "TLS12_SUITES",
    "TLS13_SUITES",
    "Attempt",
    "Submission",
    "attempts_evidence",
    "auth_attempts",
    "body_fetches",
    "cert_ou",
    "cipher_allowed",
    "header",
    "mechanism_of",
    "session_evidence",
    "submissions",
]

#: ECO.1.1.3 / SC.MSS/CONF.03: the v1.x list is not public; these are the four suites of the
#: vague 1 [MSS3] list (ref2-requirements.md §1, tag [A]), in OpenSSL names.
TLS12_SUITES: Final = frozenset({
    "ECDHE-RSA-AES256-GCM-SHA384",  # 0xC030
    "ECDHE-RSA-AES128-GCM-SHA256",  # 0xC02F
    "ECDHE-RSA-AES256-SHA384",  # 0xC028
    "ECDHE-RSA-AES128-SHA256",  # 0xC027
})
#: TLS 1.3 suites: accepted under "TLS 1.2 minimum" (ECO.1.1.1); an inference ([I]), as the
#: v1.x text on TLS 1.3 was not read.
TLS13_SUITES: Final = frozenset({"TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256", "TLS_CHACHA20_POLY1305_SHA256"})
# RFC 3501 §6.4.5 fetch items that return the message text (not only headers or structure).
_BODY_ITEM: Final = re.compile(
    r"\b(RFC822(?!\.(HEADER|SIZE))|BODY(\.PEEK)?\[(TEXT|\d[\d.]*|)\]|BINARY(\.PEEK)?\[)", re.IGNORECASE)
_MAX_COMMANDS: Final = 14


def mechanism_of(command: str, protocol: str) -> str:
    """The SASL mechanism of an ``AUTHENTICATE``/``AUTH`` command (``LOGIN`` for IMAP LOGIN), upper case."""
    words = command.split(" ")
    at = 2 if protocol == "imap" else 1
    if len(words) > at - 1 and words[at - 1].upper() == "LOGIN":
        return "LOGIN"
    return words[at].upper() if len(words) > at else "?"


@dataclass(frozen=True, kw_only=True)
class Attempt:
    """One authentication attempt seen in the journal."""

    session: int
    front: str
    at: float
    command: str
    answer: str
    outcome: AuthOutcome | None


def auth_attempts(records: Iterable[SessionRecord]) -> list[Attempt]:
    """Every authentication attempt of ``records``, in time order."""
    out = []
    for r in records:
        for c in r.commands:
            if is_auth_command(c.command, r.protocol):
                out.append(Attempt(session=r.id, front=r.front, at=c.at, command=c.command, answer=c.result,
                                   outcome=c.outcome))
    return sorted(out, key=lambda a: a.at)


def body_fetches(record: SessionRecord, since: float) -> list[str]:
    """IMAP FETCH commands after ``since`` that download message text (RFC 3501 §6.4.5)."""
    return [c.command for c in record.commands
            if c.at >= since and "FETCH" in c.command.upper() and _BODY_ITEM.search(c.command)
            and c.result.upper().startswith("OK")]


def cipher_allowed(version: str | None, cipher: str | None) -> bool:
    """True when the negotiated suite is allowed (ECO.1.1.3): see :data:`TLS12_SUITES`."""
    if version == "TLSv1.3":
        return cipher in TLS13_SUITES
    return version == "TLSv1.2" and cipher in TLS12_SUITES


def cert_ou(subject: str | None) -> str | None:
    """The ``OU`` of an RFC 4514 subject (the structure's IdNat_Struct on an ORG AUTH_CLI certificate)."""
    if not subject:
        return None
    match = re.search(r"(?:^|,)OU=((?:\\.|[^,])*)", subject)
    return match.group(1).replace("\\", "") if match else None


def header(headers: Mapping[str, Any], name: str) -> str | None:
    """First value of a header in a journal header map (name → list of values), any case."""
    for key, values in headers.items():
        if key.lower() == name.lower():
            if isinstance(values, list | tuple):
                return str(values[0]) if values else None
            return str(values)
    return None


@dataclass(frozen=True, kw_only=True)
class Submission:
    """One message submitted by the LPS, as the submission front journaled it."""

    session: SessionRecord
    entry: Mapping[str, Any]

    @property
    def at(self) -> float:
        """When the message was accepted."""
        return float(self.entry.get("at", 0.0))

    @property
    def recipients(self) -> tuple[str, ...]:
        """The ``RCPT TO`` addresses."""
        return tuple(str(a) for a in self.entry.get("rcpt_to", ()))

    @property
    def message_id(self) -> str | None:
        """The Message-ID header."""
        return header(self.entry.get("headers", {}), "Message-ID")

    def evidence(self) -> Evidence:
        """Envelope and headers of the submission (no body)."""
        lines = [f"MAIL FROM:<{self.entry.get('mail_from', '')}> RCPT TO: {', '.join(self.recipients)}",
                 f"Session #{self.session.id} ({self.session.front}), taille {self.entry.get('size', '?')} octets"]
        for name, values in dict(self.entry.get("headers", {})).items():
            if name.lower() in ("received", "dkim-signature"):
                continue
            for value in values if isinstance(values, list) else [values]:
                lines.append(f"{name}: {_decoded(str(value))[:160]}")
        return Evidence(title=f"Message soumis {self.message_id or '(sans Message-ID)'}", lines=tuple(lines))


def _decoded(value: str) -> str:
    """RFC 2047 encoded words made readable for the report; the raw value if they do not decode."""
    try:
        return str(make_header(decode_header(value)))
    except (ValueError, LookupError, HeaderParseError):
        return value


def submissions(records: Iterable[SessionRecord], bal: str, since: float) -> list[Submission]:
    """Messages submitted from ``bal`` at or after ``since``, in time order."""
    out = [Submission(session=r, entry=m) for r in records if (r.bal or "").lower() == bal.lower()
           for m in r.messages if float(m.get("at", 0.0)) >= since]
    return sorted(out, key=lambda s: s.at)


def _clock(at: float | None) -> str:
    return "—" if at is None else datetime.fromtimestamp(at).strftime("%H:%M:%S.%f")[:-3]


def session_evidence(record: SessionRecord, *, note: str = "") -> Evidence:
    """An evidence block for one session: TLS facts, authentication, the first commands."""
    order = {None: "aucune authentification", True: "STARTTLS avant l'authentification",
             False: "authentification tentée AVANT STARTTLS"}[record.starttls_before_auth]
    lines = [
        f"Front {record.front}, pair {record.peer}, ouverte {_clock(record.started_at)}, "
        f"fermée {_clock(record.ended_at)}",
        f"TLS : {record.tls_version or 'non établi'} {record.tls_cipher or ''} — {order}".rstrip(),
        f"Mécanisme {record.mechanism or '—'}, BAL {record.bal or '—'}, identité {record.identity or '—'}, "
        f"résultat {record.auth_result or '—'}" + (f" ({record.auth_detail})" if record.auth_detail else ""),
    ]
    if record.client_cert_subject:
        lines.append(f"Certificat client : {record.client_cert_subject}")
    if record.credentials_before_tls:
        lines.append("Des données d'authentification ont été envoyées en clair, avant TLS.")
    shown: Sequence[Any] = record.commands[:_MAX_COMMANDS]
    lines += [f"{_clock(c.at)}  C: {c.command}  →  S: {c.result[:120]}" for c in shown]
    if len(record.commands) > _MAX_COMMANDS:
        lines.append(f"… {len(record.commands) - _MAX_COMMANDS} autres commandes")
    title = f"Session {record.protocol.upper()} #{record.id}" + (f" — {note}" if note else "")
    return Evidence(title=title, lines=tuple(lines))


def attempts_evidence(attempts: Sequence[Attempt], title: str = "Tentatives d'authentification") -> Evidence:
    """An evidence block listing attempts with their time, session and answer."""
    if not attempts:
        return Evidence(title=title, lines=("aucune tentative observée",))
    first = attempts[0].at
    lines = tuple(f"+{a.at - first:6.2f} s  session #{a.session} ({a.front})  {a.command}  →  {a.answer[:100]}"
                  for a in attempts)
    return Evidence(title=title, lines=lines)
