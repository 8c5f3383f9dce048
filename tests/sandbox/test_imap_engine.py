"""The sandbox's IMAP engine (mssante.sandbox.imapd): properties, concurrent sessions, persistence.

* Hypothesis: any octets parse as a message whose ENVELOPE and BODYSTRUCTURE are well-formed
  IMAP; any command line gets an answer (never an exception); part bodies are the parts' octets.
* RFC 3501 §7: a session in IDLE sees another session's STORE and EXPUNGE at once.
* A restart of the sandbox keeps messages, flags, folders, UIDs and UIDVALIDITY; ``--reset``
  (``remove_mail_state``) empties the mailboxes.
"""

from __future__ import annotations

import asyncio
import email.policy
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mssante.sandbox.config import default_config
from mssante.sandbox.fronts.store import MAIL_DB, MailStore, remove_mail_state
from mssante.sandbox.imapd import BadCommand, Reader, Session, Store
from mssante.sandbox.imapd._mime import fetch_section, parse_message, render_body, render_envelope
from mssante.sandbox.runner import Sandbox
from tests._hypothesis import examples
from tests.interop.imap_diff import tokenize
from tests.sandbox._imap_support import PER, IMAPEnv, RawIMAP, b64, imap_env, message, pki_world, xoauth2

__all__ = ["imap_env", "pki_world"]

CFG = default_config()
_HEADERS = st.sampled_from([b"From", b"To", b"Cc", b"Subject", b"Date", b"Content-Type", b"Content-Disposition",
                            b"Content-Transfer-Encoding", b"Message-ID", b"Sender", b"Reply-To"])
_VALUES = st.binary(max_size=60).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))


@st.composite
def _messages(draw: st.DrawFn) -> bytes:
    """Header-shaped octets with odd values, a body, sometimes multipart boundaries."""
    headers = draw(st.lists(st.tuples(_HEADERS, _VALUES), max_size=8))
    boundary = draw(st.sampled_from([b"b", b"==x==", b""]))
    out = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    if boundary:
        out += b'Content-Type: multipart/mixed; boundary="' + boundary + b'"\r\n'
    out += b"\r\n"
    for _ in range(draw(st.integers(0, 3))):
        out += b"--" + boundary + b"\r\n" + draw(st.binary(max_size=80)) + b"\r\n"
    if draw(st.booleans()):
        out += b"--" + boundary + b"--\r\n"
    return out + draw(st.binary(max_size=40))


@settings(max_examples=examples(300), deadline=None)
@given(_messages())
def test_any_message_gives_well_formed_envelope_and_bodystructure(raw: bytes) -> None:
    part = parse_message(raw)
    for rendered in (render_envelope(part), render_body(part, extensible=True), render_body(part, extensible=False)):
        [tree] = tokenize(rendered)  # one balanced parenthesised value, literals well-sized
        assert isinstance(tree, list)
    assert isinstance(fetch_section(part, [1, 2, 3], b"MIME", []), bytes | None)


@settings(max_examples=examples(100), deadline=None)
@given(st.lists(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=40), min_size=1,
                max_size=4))
def test_part_bodies_are_the_parts_octets(texts: list[str]) -> None:
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["Subject"] = "parts"
    msg.set_content("first\n")
    for text in texts:
        msg.add_attachment(text.encode("utf-8"), maintype="application", subtype="octet-stream")
    raw = bytes(msg)
    part = parse_message(raw)
    for number, child in enumerate(msg.iter_parts(), 1):
        expected = child.as_bytes(policy=email.policy.SMTP).split(b"\r\n\r\n", 1)[1]
        got = fetch_section(part, [number], b"", [])
        assert got is not None and expected.startswith(got) and expected[len(got):] in (b"", b"\r\n")


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=120))
def test_any_command_gets_an_answer(line: bytes) -> None:
    store = Store()
    account = store.account(PER)
    store.append(store.create(account, "INBOX"), message("x"))
    session = Session(store, account, special_use={}, capability=lambda: b"IMAP4rev1", max_append=1000)
    for text in (b"a1 SELECT INBOX", b"a2 " + line):
        reader = Reader(text)
        try:
            tag = reader.tag()
            reader.sp()
            command = reader.atom()
        except BadCommand:  # the connection answers these BAD before the session
            continue
        answer = session.run(tag, command, reader)
        assert answer.status in ("OK", "NO", "BAD", "BYE")
        assert answer.idle or answer.data.endswith(b"\r\n")  # IDLE: the connection sends "+" and waits


_TRANSCRIPT_MESSAGE = (b"From: =?utf-8?q?Fran=C3=A7oise?= <f@mss.sandbox.test>\r\nTo: undisclosed-recipients:;\r\n"
                       b"Subject: CR\r\nDate: Fri, 14 Mar 2025 10:15:00 +0100\r\n"
                       b"Content-Type: text/plain; charset=utf-8\r\n\r\nBonjour.\r\n")


_FROM = b'(("=?utf-8?q?Fran=C3=A7oise?=" NIL "f" "mss.sandbox.test")) '


def test_wire_transcript_of_select_fetch_store_and_close() -> None:
    # Exact octets for a short LPS session (RFC 3501 §6.3.1, §6.4.5, §6.4.6, §6.4.2; RFC 3503 §2).
    store = Store()
    account = store.account(PER)
    inbox = store.create(account, "INBOX")
    store.append(inbox, _TRANSCRIPT_MESSAGE, (), datetime(2025, 3, 14, 10, 15, tzinfo=timezone(timedelta(hours=1))))
    session = Session(store, account, special_use={}, capability=lambda: b"IMAP4rev1", max_append=1000)
    flags = b"(\\Answered \\Flagged \\Deleted \\Seen \\Draft"
    select = (b"* FLAGS " + flags + b")\r\n* OK [PERMANENTFLAGS " + flags + b" \\*)] Flags permitted.\r\n"
              b"* 1 EXISTS\r\n* 1 RECENT\r\n* OK [UNSEEN 1] First unseen.\r\n"
              + b"* OK [UIDVALIDITY %d] UIDs valid\r\n" % inbox.uidvalidity
              + b"* OK [UIDNEXT 2] Predicted next UID\r\na1 OK [READ-WRITE] Select completed.\r\n")
    envelope = (b'("Fri, 14 Mar 2025 10:15:00 +0100" "CR" ' + _FROM * 3
                + b'((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL)) NIL NIL NIL NIL)')
    expected = [
        (b"a1 SELECT inbox", select),
        (b"a2 UID FETCH 1 (ENVELOPE BODYSTRUCTURE INTERNALDATE)",
         b"* 1 FETCH (UID 1 ENVELOPE " + envelope + b' BODYSTRUCTURE ("text" "plain" ("charset" "utf-8") NIL NIL '
         b'"7bit" 10 1 NIL NIL NIL NIL) INTERNALDATE "14-Mar-2025 10:15:00 +0100")\r\na2 OK Fetch completed.\r\n'),
        (b"a3 STORE 1 +FLAGS ($MDNSent)",
         b"* FLAGS " + flags + b" $MDNSent)\r\n* OK [PERMANENTFLAGS " + flags + b" $MDNSent \\*)] Flags permitted.\r\n"
         b"* 1 FETCH (FLAGS ($MDNSent))\r\na3 OK Store completed.\r\n"),
        (b"a4 FETCH 2 (FLAGS)", b"a4 BAD Error in IMAP command: Invalid messageset\r\n"),
        (b"a5 CLOSE", b"a5 OK Close completed.\r\n"),
    ]
    for command, answer in expected:
        reader = Reader(command)
        tag = reader.tag()
        reader.sp()
        assert session.run(tag, reader.atom(), reader).data == answer, command


def test_enable_enables_nothing_and_answers_enabled() -> None:
    # RFC 5161 §3.2: ENABLED lists what was enabled; no capability of the sandbox needs enabling.
    store = Store()
    account = store.account(PER)
    session = Session(store, account, special_use={}, capability=lambda: b"IMAP4rev1", max_append=1000)
    for text, expected in ((b"e1 ENABLE CONDSTORE UTF8=ACCEPT", b"* ENABLED\r\ne1 OK Enabled.\r\n"),
                           (b"e2 ENABLE", b"e2 BAD")):
        reader = Reader(text)
        tag = reader.tag()
        reader.sp()
        assert session.run(tag, reader.atom(), reader).data.startswith(expected)


def test_hostile_search_and_list_patterns_get_bad_quickly() -> None:
    # Deep NOT nesting would exhaust Python's recursion; many wildcards would make the pattern's
    # regex backtrack for ages. Both are refused (BAD) instead of stalling the front's event loop.
    store = Store()
    account = store.account(PER)
    store.append(store.create(account, "INBOX"), message("x"))
    store.create(account, "a" * 200)
    session = Session(store, account, special_use={}, capability=lambda: b"IMAP4rev1", max_append=1000)
    for text, status in ((b"s SELECT INBOX", "OK"), (b"n SEARCH " + b"NOT " * 5000 + b"ALL", "BAD"),
                         (b'l LIST "" "' + b"*a" * 40 + b'b"', "BAD"), (b'm LIST "" "*%*%*b"', "OK")):
        reader = Reader(text)
        tag = reader.tag()
        reader.sp()
        assert session.run(tag, reader.atom(), reader).status == status, text[:30]


# ---------------------------------------------------------------------------- RFC 3501 §7


async def _login(env: IMAPEnv) -> RawIMAP:
    raw = await RawIMAP.connect(env.psc_port)
    await raw.starttls(env.client_context())
    assert (await raw.command("a0", "AUTHENTICATE XOAUTH2 " + b64(xoauth2(PER, env.token()))))[-1].startswith("a0 OK")
    return raw


async def test_idle_session_sees_another_sessions_store_and_expunge_within_a_second(imap_env: IMAPEnv) -> None:
    for subject in ("un", "deux"):
        await imap_env.store.deliver(PER, message(subject))
    idle, other = await _login(imap_env), await _login(imap_env)
    try:
        assert (await idle.command("s1", "SELECT INBOX"))[-1].startswith("s1 OK")
        await idle.send("i1 IDLE\r\n")
        assert (await idle.line()).startswith("+ ")
        assert (await other.command("s2", "SELECT INBOX"))[-1].startswith("s2 OK")
        assert (await other.command("t1", "STORE 1 +FLAGS.SILENT (\\Flagged)"))[-1].startswith("t1 OK")
        seen = await asyncio.wait_for(idle.line(), 1.0)  # waits on the event itself, at most 1 s
        assert seen == "* 1 FETCH (FLAGS (\\Flagged))", seen
        assert (await other.command("t2", "STORE 2 +FLAGS.SILENT (\\Deleted)"))[-1].startswith("t2 OK")
        assert (await other.command("t3", "EXPUNGE"))[-1].startswith("t3 OK")
        lines = [await asyncio.wait_for(idle.line(), 1.0)]
        while not lines[-1].endswith("EXPUNGE"):
            lines.append(await asyncio.wait_for(idle.line(), 1.0))
        assert lines[-1] == "* 2 EXPUNGE", lines
        await idle.send("DONE\r\n")
        assert (await idle.until("i1"))[-1] == "i1 OK IDLE completed."
        fetched = await idle.command("f1", "FETCH 1:* (FLAGS)")
        assert fetched == ["* 1 FETCH (FLAGS (\\Flagged))", "f1 OK Fetch completed."]
    finally:
        await idle.close()
        await other.close()


# ---------------------------------------------------------------------------- persistence


async def test_store_keeps_messages_flags_folders_and_uids_across_instances(tmp_path: Path) -> None:
    path = tmp_path / MAIL_DB
    first = MailStore(CFG, path=path)
    await first.start()
    await first.deliver(PER, message("garde-moi"))
    session = await first.open_session(PER)
    for text in (b"a SELECT INBOX", b"b STORE 1 +FLAGS ($MDNSent \\Seen)", b"c CREATE Archives/2025"):
        reader = Reader(text)
        tag = reader.tag()
        reader.sp()
        assert session.run(tag, reader.atom(), reader).status == "OK"
    validity = first.engine.account(PER).mailboxes["INBOX"].uidvalidity
    session.close()
    first.close()

    second = MailStore(CFG, path=path)
    await second.start()
    [stored] = await second.list_messages(PER)
    assert stored.uid == 1 and stored.flags == ("$MDNSent", "\\Seen") and stored.headers["Subject"] == "garde-moi"
    inbox = second.engine.account(PER).mailboxes["INBOX"]
    assert inbox.uidvalidity == validity and inbox.uidnext == 2
    assert "Archives/2025" in second.engine.account(PER).mailboxes
    await second.deliver(PER, message("suivant"))
    assert [m.uid for m in await second.list_messages(PER)] == [1, 2]
    second.close()
    assert remove_mail_state(tmp_path) and not path.exists()
    third = MailStore(CFG, path=path)
    await third.start()
    assert await third.list_messages(PER) == []
    third.close()


async def test_sandbox_restart_keeps_the_mailboxes_and_reset_clears_them(tmp_path: Path) -> None:
    state = tmp_path / "state"
    async with Sandbox(CFG, state, persist_mail=True) as sb:
        await sb.store.deliver(PER, message("avant redemarrage"))
    async with Sandbox(CFG, state, persist_mail=True) as sb:
        assert [m.headers["Subject"] for m in await sb.store.list_messages(PER)] == ["avant redemarrage"]
    assert remove_mail_state(state)  # what `mssante sandbox up --reset` does before starting
    async with Sandbox(CFG, state, persist_mail=True) as sb:
        assert await sb.store.list_messages(PER) == []
