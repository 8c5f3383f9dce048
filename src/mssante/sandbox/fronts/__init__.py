"""The API LPS fronts of the sandbox operator: IMAP and SMTP submission, PSC and AUTH_CLI.

Shared pieces live here: the access decision (:mod:`.authz`), the session journal
(:mod:`.journal`) and fault injection (:mod:`.faults`). The IMAP fronts (on our own engine,
:mod:`mssante.sandbox.imapd`) and the submission front (on aiosmtpd) are thin adapters around them.
"""
