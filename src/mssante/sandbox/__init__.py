"""The sandbox operator: a local MSSanté operator for developing and certifying an LPS.

It runs on loopback, with no account anywhere: test PKI modelled on IGC Santé TEST, a mock
Pro Santé Connect, an authoritative DNS for the sandbox domain, the API LPS IMAP and SMTP
fronts, a webmail and the XDM auto-responder. Needs the ``mssante[sandbox]`` extra.
"""
