"""The pipelined submission path (RFC 2920 + RFC 3030 CHUNKING) against Dovecot 2.3's submission service.

Dovecot offers PIPELINING and CHUNKING: ``Mailbox.send`` writes ``MAIL``, ``RCPT`` and ``BDAT
<size> LAST`` with the message in one write (one round trip) and reads the replies in order.
What Dovecot relays (to the aiosmtpd sink of ``tests/interop/dovecot.py``) must be the
message exactly, lines starting with a dot included (BDAT carries no dot-stuffing).

Also here, why the client never puts two transactions in one group although RFC 2920 §3.1
allows the end of one message and the next ``MAIL``/``RCPT``/``DATA`` together: Dovecot
2.3.19's submission process panics on it (``smtp_server_transaction_finished``: assertion
``pending_rcpt_cmds == 0``), losing the session and leaving the first message's fate unknown.
"""

from __future__ import annotations

import asyncio

import pytest

from mssante.message import Draft, Sender
from tests.client.test_smtp_pipelining import record_writes

from .test_client_dovecot import APP, LAB_APP, Env, env

__all__ = ["env"]  # the module's Dovecot + sandbox, imported for pytest

pytestmark = [
    pytest.mark.dovecot,
    pytest.mark.slow,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(60),
]

DOTTED = "Bonjour,\n.ligne qui commence par un point\n..deux points\n.\nfin.\n"


async def test_each_message_is_one_write_and_arrives_intact(env: Env) -> None:
    box = env.app(operator_saves_sent=True)
    async with box, asyncio.timeout(30):
        first = await box.send(Draft(sender=Sender(address=APP), to=(LAB_APP,), subject="premier", text="Bonjour."))
        session = box._sessions._smtp  # the reused submission session
        assert session is not None
        smtp = session._smtp
        assert smtp.supports_extension("pipelining") and smtp.supports_extension("chunking")
        writes = record_writes(smtp.protocol)
        relayed_before = len(env.dovecot.sink.messages)
        sent = []
        for subject in ("deuxième", "troisième"):
            sent.append(await box.send(Draft(sender=Sender(address=APP), to=(LAB_APP,), subject=subject,
                                             text=DOTTED)))
        assert all(s.accepted == (LAB_APP,) and s.reply.startswith("250") for s in [first, *sent])
        # One write per message: MAIL, RCPT, BDAT <size> LAST and the message.
        assert len(writes) == 2
        for write in writes:
            assert write.startswith(b"MAIL FROM:<" + APP.encode() + b">")
            assert write.count(b"\r\nRCPT TO:") == 1 and b"\r\nBDAT " in write and b" LAST\r\n" in write
            assert b"\r\nDATA\r\n" not in write
        relayed = env.dovecot.sink.wait_for(relayed_before + 2)[relayed_before:]
        for message, result in zip(relayed, sent, strict=True):
            assert message.mail_from == APP and message.rcpt_tos == [LAB_APP]
            assert result.message_id.encode() in message.content
            body = message.content.split(b"\r\n\r\n", 1)[1]
            assert b"\r\n.ligne qui commence par un point\r\n..deux points\r\n.\r\nfin.\r\n" in b"\r\n" + body
