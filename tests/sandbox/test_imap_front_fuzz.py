"""A small, seeded fuzz of the PSC front: odd and corrupted commands never crash or freeze it."""

from __future__ import annotations

import logging
import random

import pytest

from tests.sandbox._imap_support import PER, IMAPEnv, RawIMAP, b64, imap_env, message, pki_world, xoauth2

__all__ = ["imap_env", "pki_world"]

COMMANDS = [
    'LIST "" "&Jjo"', 'SELECT "&AAA"', "SELECT INBOX", "FETCH 1:* (BODY[1.2.3.4.5.6.7.8.9.10])", "SEARCH CHARSET FOO x",
    "STATUS INBOX (FOO)", "UID SEARCH 1:99999999999999999999",
    'APPEND INBOX (\\Seen) "99-Jan-9999 99:99:99 +9999" {3+}\r\nabc',
    "FETCH 0 (FLAGS)", "FETCH 1 (BODY[]<5.0>)", "STORE 1 +FLAGS (\\Foo)", "COPY 1 Nowhere", "MOVE 1:* Trash", "EXPUNGE",
    'CREATE "a/b/c"', "RENAME INBOX Old", "DELETE Sent", "SEARCH HEADER", "SEARCH OR", "SEARCH NOT NOT NOT",
    "UID FETCH * BODYSTRUCTURE", "FETCH 1 BINARY[1]", 'ID ("name" "x")', "ID NIL", "ENABLE QRESYNC", "NAMESPACE",
    'LIST (SPECIAL-USE) "" ""', 'LSUB "" "*"', "SEARCH SINCE 99-Foo-2020", "STARTTLS", "LOGIN a b", "CHECK",
    "CLOSE", "EXAMINE INBOX", "SEARCH LARGER 99999999999999999999999", "FETCH 1:* (BODY.PEEK[HEADER.FIELDS ()])",
    'LIST "" {5+}\r\n%%%%%', "NOOP",
]


async def _login(env: IMAPEnv) -> RawIMAP:
    raw = await RawIMAP.connect(env.psc_port)
    await raw.starttls(env.client_context())
    assert (await raw.command("a0", "AUTHENTICATE XOAUTH2 " + b64(xoauth2(PER, env.token()))))[-1].startswith("a0 OK")
    return raw


async def test_seeded_fuzz_never_crashes_the_front(imap_env: IMAPEnv, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="mssante")
    await imap_env.store.deliver(PER, message("fuzz"))
    rnd = random.Random(20261128)
    raw = await _login(imap_env)
    try:
        for i in range(250):
            text = rnd.choice(COMMANDS)
            if rnd.random() < 0.3:
                data = bytearray(text.encode())
                for _ in range(3):
                    data[rnd.randrange(len(data))] = rnd.randrange(1, 256)
                text = data.decode("latin-1").replace("\n", " ").replace("\r", " ")
            tag = f"f{i}"
            await raw.send(f"{tag} {text}\r\n".encode("latin-1"))
            lines = await raw.until(tag)
            assert lines[-1].split(" ")[0] in (tag, ""), lines
            if lines[-1] == "" or any(line.startswith("* BYE") for line in lines):
                await raw.close()  # too many errors in a row: the front said BYE; start again
                raw = await _login(imap_env)
    finally:
        await raw.close()
    assert [r.getMessage() for r in caplog.records] == []
