"""The differential test's corpus: messages an API LPS meets, and the IMAP command sequences it sends.

Not a test module. :data:`MESSAGES` holds realistic MSSanté messages (an ``IHE_XDM.ZIP`` built by
:mod:`mssante.xdm`, a PDF with a non-ASCII RFC 2231 name, an MDN, a DSN) and deliberately odd ones
(no Date, group syntax, encoded words, raw 8-bit headers, an empty display name) and broken MIME
(a multipart never closed, one without boundary, undecodable transfer encodings). :data:`SEQUENCES`
holds the command sequences: per message, what a mail client fetches (ENVELOPE, BODYSTRUCTURE,
parts, header fields, sizes), then the LPS's and a stock client's session shapes and the
commands whose answers the issue found wrong.

Each sequence runs in a fresh session on a fresh folder ``%F`` holding its messages (APPENDed
with fixed flags and INTERNALDATE before the session starts), so both servers start from the
same state: UIDs 1..n, the same flags and dates.
"""

from __future__ import annotations

import base64
import email.policy
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage

from mssante.cda import generate_cr_bio
from mssante.xdm import build_archive

__all__ = ["MESSAGES", "SEQUENCES", "Sequence", "Step"]

_NOW = datetime(2025, 3, 14, 9, 15, tzinfo=UTC)
_PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


def _crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def _xdm_message() -> bytes:
    cda = generate_cr_bio(effective_time=_NOW)
    archive = build_archive([cda], now=_NOW)
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = "Dr Jean Dupont <jean.dupont@mss.sandbox.test>"
    msg["To"] = "marie.curie@mss.sandbox.test"
    msg["Subject"] = "[IHE-XDM] CR de biologie"
    msg["Date"] = "Fri, 14 Mar 2025 10:15:00 +0100"
    msg["Message-ID"] = "<xdm.1@mss.sandbox.test>"
    msg["Disposition-Notification-To"] = "jean.dupont@mss.sandbox.test"
    msg.set_content("Veuillez trouver ci-joint le compte rendu.\n")
    msg.add_attachment(archive, maintype="application", subtype="zip", filename="IHE_XDM.ZIP")
    msg.set_boundary("==xdm-boundary==")
    return bytes(msg)


def _pdf_message() -> bytes:
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = "=?utf-8?q?Fran=C3=A7oise_H=C3=A9bert?= <francoise.hebert@mss.sandbox.test>"
    msg["To"] = "marie.curie@mss.sandbox.test, \"Secrétariat\" <secretariat.cardio@mss.sandbox.test>"
    msg["Subject"] = "=?utf-8?q?Compte_rendu_d=27=C3=A9chographie?="
    msg["Date"] = "Thu, 13 Mar 2025 18:02:11 +0000"
    msg["Message-ID"] = "<pdf.1@mss.sandbox.test>"
    msg.set_content("Bonjour,\nle CR est joint.\nCordialement.\n")
    msg.add_alternative("<p>Bonjour,<br>le CR est joint.</p>\n", subtype="html")
    msg.add_attachment(_PDF, maintype="application", subtype="pdf", filename="Échographie cardiaque.pdf")
    msg.set_boundary("==pdf-outer==")
    return bytes(msg)


_MDN = _crlf("""\
From: marie.curie@mss.sandbox.test
To: jean.dupont@mss.sandbox.test
Subject: =?utf-8?q?Accus=C3=A9_de_lecture?=
Date: Fri, 14 Mar 2025 11:00:00 +0100
Message-ID: <mdn.1@mss.sandbox.test>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=disposition-notification;
 boundary="mdn-b"

--mdn-b
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Le message a été affiché.

--mdn-b
Content-Type: message/disposition-notification

Reporting-UA: mss.sandbox.test; mssante
Final-Recipient: rfc822;marie.curie@mss.sandbox.test
Original-Message-ID: <xdm.1@mss.sandbox.test>
Disposition: manual-action/MDN-sent-manually; displayed

--mdn-b--
""")

_DSN = _crlf("""\
From: Mail Delivery System <MAILER-DAEMON@mss.sandbox.test>
To: jean.dupont@mss.sandbox.test
Subject: Undelivered Mail Returned to Sender
Date: Fri, 14 Mar 2025 10:16:02 +0100
Message-ID: <dsn.1@mss.sandbox.test>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
 boundary="dsn-b"

--dsn-b
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

Your message could not be delivered.

--dsn-b
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mss.sandbox.test
Arrival-Date: Fri, 14 Mar 2025 10:16:00 +0100

Final-Recipient: rfc822; inconnu@mss.sandbox.test
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 User unknown

--dsn-b
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

From: jean.dupont@mss.sandbox.test
To: inconnu@mss.sandbox.test
Subject: test

--dsn-b--
""")

_NO_DATE = _crlf("""\
From: robot@mss.sandbox.test
To: marie.curie@mss.sandbox.test
Subject: sans date
Message-ID: <nodate.1@mss.sandbox.test>

Ce message n'a pas d'en-tete Date.
""")

_GROUPS = _crlf("""\
From: "" <vide@mss.sandbox.test>
To: undisclosed-recipients:;
Cc: Equipe cardio: a@mss.sandbox.test, "B B" <b@mss.sandbox.test>;, c@mss.sandbox.test
Subject: groupes
Date: 14 Mar 2025 10:15 +0100
Message-ID: <groups.1@mss.sandbox.test>
In-Reply-To: <xdm.1@mss.sandbox.test>

Corps.
""")

_ENCODED = _crlf("""\
From: =?ISO-8859-1?Q?Andr=E9?= Pirard <pirard@mss.sandbox.test>
To: =?UTF-8?B?w4lsb2RpZQ==?= <elodie@mss.sandbox.test>
Reply-To: "Dr. =?utf-8?q?L=C3=A9a?=" <lea@mss.sandbox.test>
Subject: =?UTF-8?B?UsOpc3VsdGF0cyBkJ2FuYWx5c2Vz?= =?UTF-8?Q?_urgents?=
Date: Fri, 14 Mar 2025 10:15:00 +0100 (CET)
Message-ID: <encoded.1@mss.sandbox.test>
Content-Type: text/plain; charset="iso-8859-1"
Content-Transfer-Encoding: quoted-printable

R=E9sultats joints.
""")

_EIGHT_BIT = _crlf("""\
From: Jérôme Müller <jerome.muller@mss.sandbox.test>
To: Zoé <zoe@mss.sandbox.test>
Subject: Résultat à revoir
Date: Fri, 14 Mar 2025 10:15:00 +0100
Message-ID: <8bit.1@mss.sandbox.test>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Données brutes en UTF-8.
""")

_PLAIN = _crlf("""\
From: Jean Dupont <jean.dupont@mss.sandbox.test>
To: marie.curie@mss.sandbox.test
Subject: Rendez-vous
Date: Tue, 11 Mar 2025 08:30:00 +0100
Message-ID: <plain.1@mss.sandbox.test>
X-Priority: 3

Bonjour, rendez-vous mardi.
""")

_FORWARD = _crlf("""\
From: Jean Dupont <jean.dupont@mss.sandbox.test>
To: marie.curie@mss.sandbox.test
Subject: Fwd: Rendez-vous
Date: Wed, 12 Mar 2025 09:00:00 +0100
Message-ID: <fwd.1@mss.sandbox.test>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="fwd-b"

--fwd-b
Content-Type: text/plain; charset=us-ascii

Voir ci-dessous.
--fwd-b
Content-Type: message/rfc822
Content-Disposition: inline

From: Jean Dupont <jean.dupont@mss.sandbox.test>
To: marie.curie@mss.sandbox.test
Subject: Rendez-vous
Date: Tue, 11 Mar 2025 08:30:00 +0100
Message-ID: <plain.1@mss.sandbox.test>

Bonjour, rendez-vous mardi.

--fwd-b--
""")

_BASE64_PART = _crlf(f"""\
From: lab@mss.sandbox.test
To: marie.curie@mss.sandbox.test
Subject: resultats base64
Date: Mon, 10 Mar 2025 07:00:00 +0100
Message-ID: <b64.1@mss.sandbox.test>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=b64b

--b64b
Content-Type: text/plain; charset=utf-8; format=flowed
Content-Language: fr

Texte.
--b64b
Content-Type: application/pdf; name="=?utf-8?q?r=C3=A9sultat.pdf?="
Content-Disposition: attachment; filename*=utf-8''r%C3%A9sultat.pdf; size=71
Content-Transfer-Encoding: base64
Content-ID: <part2@mss.sandbox.test>
Content-Description: Compte rendu

{base64.encodebytes(_PDF).decode()}
--b64b--
""")

_UNCLOSED = _crlf("""\
From: robot@mss.sandbox.test
To: marie.curie@mss.sandbox.test
Subject: multipart jamais fermé
Date: Fri, 14 Mar 2025 10:15:00 +0100
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="open"

preamble
--open
Content-Type: text/plain

premier
--open
Content-Type: application/pdf
Content-Transfer-Encoding: base64

JVBERi0xLjQK
""")

_NO_BOUNDARY = _crlf("""\
From: robot@mss.sandbox.test
To: marie.curie@mss.sandbox.test
Subject: multipart sans boundary
Date: Fri, 14 Mar 2025 10:15:00 +0100
MIME-Version: 1.0
Content-Type: multipart/mixed

--x
Content-Type: text/plain

texte
--x--
""")

_BAD_ENCODING = _crlf("""\
From: robot@mss.sandbox.test
To: marie.curie@mss.sandbox.test
Subject: encodages cassés
Date: Fri, 14 Mar 2025 10:15:00 +0100
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=b
Content-Disposition: inline; filename

--b
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64

pas du base64 !!!
--b
Content-Type: text; charset
Content-Transfer-Encoding: x-uuencode

begin 644 x
--b--
""")

#: name -> raw message (CRLF line ends).
MESSAGES: dict[str, bytes] = {
    "xdm": _xdm_message(),
    "pdf": _pdf_message(),
    "mdn": _MDN,
    "dsn": _DSN,
    "nodate": _NO_DATE,
    "groups": _GROUPS,
    "encoded": _ENCODED,
    "8bit": _EIGHT_BIT,
    "plain": _PLAIN,
    "forward": _FORWARD,
    "base64": _BASE64_PART,
    "unclosed": _UNCLOSED,
    "no-boundary": _NO_BOUNDARY,
    "bad-encoding": _BAD_ENCODING,
}

#: INTERNALDATE given to every APPEND of the setup.
INTERNALDATE = b'"14-Mar-2025 10:15:00 +0100"'


@dataclass(frozen=True)
class Step:
    """One command of a sequence.

    ``text`` is the command without tag; ``%F`` is the sequence's folder; ``%1``..``%9`` are UIDs
    (the n-th UID the server gives in a fresh folder, see ``uid-base`` in
    :data:`tests.interop.imap_diff.ALLOWED`); ``%L`` marks a LITERAL+
    whose data is the next entry of ``literals`` (message names of :data:`MESSAGES` or raw bytes).
    ``idle`` makes the step an IDLE that runs ``other`` (commands of a second session) and waits
    for a line containing ``until``.
    """

    text: str
    literals: tuple[str | bytes, ...] = ()
    idle_other: tuple[str, ...] = ()
    idle_until: bytes = b""


@dataclass(frozen=True)
class Sequence:
    """A named command sequence over a folder that holds ``messages`` (with ``flags`` each)."""

    name: str
    steps: tuple[Step, ...]
    messages: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    notes: dict[str, str] = field(default_factory=dict)
    #: step text -> key of :data:`tests.interop.imap_diff.ALLOWED` naming the difference tolerated there.
    allowed: dict[str, str] = field(default_factory=dict)


def _s(*texts: str) -> tuple[Step, ...]:
    return tuple(Step(t) for t in texts)


_FETCHES: dict[str, tuple[str, ...]] = {
    "envelope": ("FETCH 1 (ENVELOPE)", "UID FETCH %1 (UID ENVELOPE)"),
    "bodystructure": ("FETCH 1 (BODYSTRUCTURE)", "FETCH 1 (BODY)"),
    "parts": ("FETCH 1 (BODY.PEEK[1])", "FETCH 1 (BODY.PEEK[1.MIME])", "FETCH 1 (BODY.PEEK[2])",
              "FETCH 1 (BODY.PEEK[TEXT])", "FETCH 1 (BODY.PEEK[HEADER])", "FETCH 1 (BODY.PEEK[1.1])"),
    "header-fields": ("FETCH 1 (BODY.PEEK[HEADER.FIELDS (From Subject Date)])",
                      "FETCH 1 (BODY.PEEK[HEADER.FIELDS.NOT (Message-ID Received)])",
                      "FETCH 1 (BODY.PEEK[HEADER.FIELDS (DISPOSITION-NOTIFICATION-TO)])"),
    "sizes": ("FETCH 1 (RFC822.SIZE INTERNALDATE FLAGS UID)", "FETCH 1 (BODY.PEEK[]<0.64>)",
              "FETCH 1 (BODY.PEEK[]<64.10000000>)", "FETCH 1 (RFC822.HEADER)"),
}


_MESSAGE_ALLOWED: dict[str, dict[str, str]] = {
    "bad-encoding-bodystructure": {"FETCH 1 (BODYSTRUCTURE)": "invalid-content-type",
                                   "FETCH 1 (BODY)": "invalid-content-type"},
}


def _message_sequences() -> list[Sequence]:
    out = []
    for name in MESSAGES:
        for kind, commands in _FETCHES.items():
            out.append(Sequence(f"{name}-{kind}", _s("SELECT %F", *commands, "LOGOUT"), messages=(name,),
                                allowed=_MESSAGE_ALLOWED.get(f"{name}-{kind}", {})))
    return out


_ALL = tuple(MESSAGES)

_BEHAVIOUR: list[Sequence] = [
    # An LPS (mssante.client shape): poll the INBOX, fetch new mail, mark it read, send the MDN flag.
    Sequence("lps-poll", _s(
        "SELECT %F", "UID SEARCH UNSEEN", "UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE)",
        "UID FETCH %1 (BODY.PEEK[])", "UID STORE %1 +FLAGS.SILENT (\\Seen $MDNSent)",
        "UID FETCH %1 (FLAGS)", "LOGOUT"), messages=("xdm", "pdf", "mdn")),
    # A stock client (Thunderbird-like): list, select, header sync, flags sync.
    Sequence("stock-client-sync", _s(
        'LIST "" "%F"', "SELECT %F",
        "UID FETCH 1:* (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (From To Cc Bcc Subject Date "
        "Message-ID Priority X-Priority References Newsgroups In-Reply-To Content-Type Reply-To)])",
        "UID FETCH 1:* (FLAGS)", "UID FETCH %2 (UID RFC822.SIZE BODY.PEEK[])", "NOOP", "CLOSE", "LOGOUT"),
        messages=("plain", "forward", "8bit")),
    Sequence("imapclient-style", _s(
        "SELECT %F", "FETCH 1:* (FLAGS ENVELOPE BODYSTRUCTURE RFC822.SIZE UID)", "LOGOUT"),
        messages=_ALL, allowed={"FETCH 1:* (FLAGS ENVELOPE BODYSTRUCTURE RFC822.SIZE UID)": "invalid-content-type"}),
    Sequence("select-counts", _s("SELECT %F", "LOGOUT"), messages=("plain", "pdf"), flags=("\\Seen", "")),
    Sequence("examine-then-close", _s("EXAMINE %F", "CLOSE", "NOOP", "SELECT %F", "LOGOUT"),
             messages=("plain",)),
    Sequence("examine-store-refused", _s("EXAMINE %F", "STORE 1 +FLAGS (\\Seen)", "FETCH 1 (FLAGS)", "LOGOUT"),
             messages=("plain",), allowed={"STORE 1 +FLAGS (\\Seen)": "read-only-store"}),
    Sequence("unselect", _s("SELECT %F", "STORE 1 +FLAGS.SILENT (\\Deleted)", "UNSELECT",
                            "SELECT %F", "LOGOUT"), messages=("plain",)),
    Sequence("close-expunges", _s("SELECT %F", "STORE 1 +FLAGS.SILENT (\\Deleted)", "CLOSE", "SELECT %F",
                                  "LOGOUT"), messages=("plain", "8bit")),
    Sequence("namespace", _s("NAMESPACE", "LOGOUT")),
    Sequence("keywords-kept", _s("SELECT %F", "STORE 1 +FLAGS ($MDNSent)", "FETCH 1 (FLAGS)",
                                 "STORE 1 +FLAGS (Junk $Forwarded)", "STORE 1 -FLAGS ($Forwarded)",
                                 "SEARCH KEYWORD $MDNSent", "SEARCH UNKEYWORD $MDNSent", "LOGOUT"),
             messages=("xdm", "plain")),
    Sequence("keywords-reselect", _s("SELECT %F", "STORE 1 +FLAGS.SILENT ($MDNSent)", "SELECT %F",
                                     "FETCH 1 (FLAGS)", "LOGOUT"), messages=("xdm",)),
    Sequence("store-variants", _s("SELECT %F", "STORE 1:2 FLAGS (\\Flagged)", "STORE 1 -FLAGS.SILENT (\\Flagged)",
                                  "UID STORE %2 +FLAGS (\\Answered \\Draft)", "FETCH 1:2 (FLAGS)", "LOGOUT"),
             messages=("plain", "pdf")),
    Sequence("search-charset-unknown", _s("SELECT %F", "SEARCH CHARSET X-UNKNOWN SUBJECT x", "LOGOUT"),
             messages=("plain",)),
    Sequence("search-charset-utf8", _s("SELECT %F", "SEARCH CHARSET UTF-8 SUBJECT %L", "LOGOUT"),
             messages=("8bit", "plain")),
    Sequence("search-header", _s("SELECT %F", 'SEARCH HEADER Message-ID "<pdf.1@mss.sandbox.test>"',
                                 "SEARCH HEADER X-Priority 3", 'SEARCH HEADER Disposition-Notification-To ""',
                                 "LOGOUT"), messages=_ALL),
    Sequence("search-dates", _s("SELECT %F", "SEARCH SENTSINCE 13-Mar-2025", "SEARCH SENTBEFORE 12-Mar-2025",
                                "SEARCH SENTON 14-Mar-2025", "SEARCH SINCE 14-Mar-2025", "SEARCH BEFORE 14-Mar-2025",
                                "SEARCH ON 14-Mar-2025", "LOGOUT"), messages=_ALL,
             allowed={"SEARCH SENTBEFORE 12-Mar-2025": "no-date-search"}),
    Sequence("search-text", _s("SELECT %F", 'SEARCH FROM "jean.dupont"', "SEARCH SUBJECT rendez-vous",
                               'SEARCH TO "marie.curie"', "SEARCH BODY rendez-vous", "SEARCH TEXT Cordialement",
                               "SEARCH LARGER 1000", "SEARCH SMALLER 600", "LOGOUT"), messages=_ALL),
    Sequence("search-flags", _s("SELECT %F", "SEARCH SEEN", "SEARCH UNSEEN", "SEARCH ANSWERED", "SEARCH FLAGGED",
                                "SEARCH NOT SEEN FLAGGED", "SEARCH OR SEEN FLAGGED", "SEARCH ALL",
                                "UID SEARCH 2:3", "SEARCH UID %2:*", "LOGOUT"),
             messages=("plain", "pdf", "xdm"), flags=("\\Seen", "\\Flagged", "\\Seen \\Answered")),
    Sequence("fetch-past-end", _s("SELECT %F", "FETCH 5 (FLAGS)", "FETCH 1:5 (UID)", "UID FETCH %5 (FLAGS)",
                                  "UID FETCH %1:%5 (UID)", "LOGOUT"), messages=("plain", "pdf")),
    Sequence("fetch-empty-mailbox", _s("SELECT %F", "FETCH 1:* (FLAGS)", "UID FETCH 1:* (FLAGS)",
                                       "SEARCH ALL", "LOGOUT")),
    Sequence("store-past-end", _s("SELECT %F", "STORE 3 +FLAGS (\\Seen)", "LOGOUT"), messages=("plain",)),
    Sequence("body-sets-seen", _s("SELECT %F", "FETCH 1 (BODY[TEXT])", "FETCH 1 (FLAGS)", "LOGOUT"),
             messages=("plain",)),
    Sequence("copy-uidplus", _s("CREATE %F/sub", "SELECT %F", "COPY 1:2 %F/sub", "UID COPY %1 %F/sub",
                                "STATUS %F/sub (MESSAGES UIDNEXT UNSEEN)", "LOGOUT"), messages=("plain", "pdf")),
    Sequence("move", _s("CREATE %F/sub", "SELECT %F", "MOVE 1 %F/sub", "UID MOVE %3 %F/sub", "FETCH 1:* (UID)",
                        "STATUS %F/sub (MESSAGES UIDNEXT)", "LOGOUT"), messages=("plain", "pdf", "xdm")),
    Sequence("expunge-uidplus", _s("SELECT %F", "STORE 1:2 +FLAGS.SILENT (\\Deleted)", "UID EXPUNGE %2",
                                   "FETCH 1:* (UID FLAGS)", "EXPUNGE", "FETCH 1:* (UID)", "LOGOUT"),
             messages=("plain", "pdf", "xdm")),
    Sequence("append-uidplus", _s("SELECT %F", "APPEND %F (\\Seen $MDNSent) %L", "NOOP", "FETCH 2 (FLAGS)",
                                  "LOGOUT"), messages=("plain",), notes={"literal": "plain"},
             allowed={"APPEND %F (\\Seen $MDNSent) %L": "unsolicited-flags"}),
    Sequence("append-to-missing", _s("APPEND %F/missing %L", "LOGOUT")),
    Sequence("status", _s("STATUS %F (MESSAGES UIDNEXT UNSEEN UIDVALIDITY)", "STATUS %F/missing (MESSAGES)",
                          "LOGOUT"), messages=("plain", "pdf"), flags=("\\Seen", ""),
             allowed={"STATUS %F/missing (MESSAGES)": "optional-code"}),
    Sequence("list-lsub", _s("CREATE %F/a", "CREATE %F/b/c", 'LIST "" "%F/*"', 'LIST "" "%F/%"',
                             "SUBSCRIBE %F/a", 'LSUB "" "%F/*"', "UNSUBSCRIBE %F/a", 'LSUB "" "%F/*"',
                             'LIST "" ""', "LOGOUT")),
    Sequence("list-inbox", _s('LIST "" INBOX', 'LIST "" "inbox"', "SELECT inbox", "LOGOUT")),
    Sequence("create-delete-rename", _s("CREATE %F/x", "CREATE %F/x", "RENAME %F/x %F/y", 'LIST "" "%F/*"',
                                        "DELETE %F/y", "DELETE %F/y", "LOGOUT")),
    Sequence("utf7-names", _s('CREATE "%F/R&AOk-sultats"', 'CREATE "%F/Compte rendu"', 'LIST "" "%F/*"',
                              'SELECT "%F/R&AOk-sultats"', 'STATUS "%F/Compte rendu" (MESSAGES)',
                              'RENAME "%F/R&AOk-sultats" "%F/&AMk-t&AOk-"', 'LIST "" "%F/%"', 'CREATE "%F/&Jjo"',
                              "LOGOUT"), allowed={'CREATE "%F/&Jjo"': "invalid-mutf7"}),
    Sequence("delete-selected", _s("CREATE %F/s", "SELECT %F/s", "DELETE %F/s", "NOOP", "LOGOUT")),
    Sequence("select-missing", _s("SELECT %F/missing", "FETCH 1 (FLAGS)", "LOGOUT"),
             allowed={"SELECT %F/missing": "optional-code"}),
    Sequence("idle-sees-store-expunge", (
        Step("SELECT %F"),
        Step("IDLE", idle_other=("SELECT %F", "STORE 1 +FLAGS (\\Flagged)", "STORE 2 +FLAGS.SILENT (\\Deleted)",
                                 "EXPUNGE"), idle_until=b"EXPUNGE"),
        Step("FETCH 1:* (UID FLAGS)"), Step("LOGOUT")), messages=("plain", "pdf")),
    Sequence("noop-sees-append", (
        Step("SELECT %F"), Step("NOOP"), Step("APPEND %F %L", literals=("plain",)), Step("NOOP"),
        Step("FETCH 2 (UID)"), Step("LOGOUT")), messages=("pdf",), allowed={"APPEND %F %L": "unsolicited-flags"}),
    Sequence("bad-commands", _s("SELECT %F", "FETCH", "FETCH 1 (NOTANITEM)", "STORE 1 +FLAGS", "FROB",
                                'SEARCH FROB', "FETCH 0 (FLAGS)", "FETCH 1 (FLAGS)", "LOGOUT"),
             messages=("plain",), allowed={"STORE 1 +FLAGS": "lenient-syntax"}),
    Sequence("uid-fetch-star", _s("SELECT %F", "UID FETCH %3:* (UID)", "UID FETCH * (UID)", "FETCH * (UID)",
                                  "LOGOUT"), messages=("plain", "pdf")),
    Sequence("partial-fetch", _s("SELECT %F", "FETCH 1 (BODY.PEEK[TEXT]<0.5>)", "FETCH 1 (BODY.PEEK[1]<2.8>)",
                                 "FETCH 1 (BINARY.PEEK[1])", "FETCH 1 (BINARY.SIZE[1])", "LOGOUT"),
             messages=("base64",)),
    Sequence("binary-broken", _s("SELECT %F", "FETCH 1 (BINARY.PEEK[1])", "FETCH 1 (BINARY.PEEK[2])",
                                 "FETCH 1 (BINARY.SIZE[2])", "FETCH 1 (BODY.PEEK[2])", "NOOP", "LOGOUT"),
             messages=("bad-encoding",)),
    Sequence("rfc822-items", _s("SELECT %F", "FETCH 1 (RFC822.TEXT)", "FETCH 1 (FLAGS)", "FETCH 1 (RFC822)",
                                "LOGOUT"), messages=("plain",)),
    Sequence("authenticated-state-fetch", _s("FETCH 1 (FLAGS)", "CLOSE", "UNSELECT", "EXPUNGE", "LOGOUT")),
]

for _seq in _BEHAVIOUR:  # literals: a message name or raw bytes
    if "%L" in " ".join(s.text for s in _seq.steps) and not any(s.literals for s in _seq.steps):
        _lit = "Résultat".encode() if _seq.name == "search-charset-utf8" else _seq.notes.get("literal", "plain")
        object.__setattr__(_seq, "steps", tuple(
            Step(s.text, literals=(_lit,)) if "%L" in s.text else s for s in _seq.steps))

#: Every sequence of the corpus, in a stable order.
SEQUENCES: tuple[Sequence, ...] = (*_message_sequences(), *_BEHAVIOUR)
