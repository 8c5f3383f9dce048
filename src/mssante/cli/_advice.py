"""Errors of the library told again in the CLI user's words (issue 13, item 7).

The library's messages speak of its API (``ca_bundle``, a token source); the CLI knows which
flag, file or variable the user gave, so it says that, the likely cause and what to do, in the
user's language (:mod:`mssante._i18n`). The library's texts stay as they are (other code and logs
rely on them); the typed error, its codes and its rule are kept, and the original is chained as
``__cause__``.
"""

from __future__ import annotations

from pathlib import Path

from mssante._i18n import N_, ngettext
from mssante._i18n import gettext as _
from mssante.credentials import CertificateFileError
from mssante.errors import CommandFailed, TokenRejected, UsageError

__all__ = ["certificate_problem", "missing_ca_bundle", "refused_recipients", "rejected_credentials"]

_EVERY_RECIPIENT_REFUSED = "every recipient was refused: "  # the SMTP client's text (mssante.client)

#: A PSC access token's lifetime (ref2 §2.4; Keycloak's default for Pro Santé Connect).
_PSC_ACCESS_LIFETIME_S = 120


def missing_ca_bundle() -> UsageError:
    """The error for a mailbox command run without ``--ca-bundle``."""
    return UsageError(
        _("--ca-bundle is missing: give the PEM file of the IGC Santé authorities (--ca-bundle PATH.pem; for "
          "the sandbox, the \"ca_bundle\" of sandbox.json). It is used to verify the server certificate and its "
          "revocation (CRL), always checked"),
        requirement="ECO.1.1.6",
    )


#: ``CertificateFileError.problem`` → what the user reads ({path}: the file; {date}: the date that matters).
_CERTIFICATE_PROBLEMS = {
    "missing": N_("{path} does not exist"),
    "unreadable": N_("cannot read {path}"),
    "not_pkcs12": N_("{path} is not a PKCS#12 file (.p12/.pfx): a PEM certificate goes with --cert, its key with "
                     "--key"),
    "password_needed": N_("{path} needs its password: give it with --cert-password-file FILE or "
                          "--cert-password-env VAR"),
    "wrong_password": N_("the password given (--cert-password-file or --cert-password-env) does not open {path}"),
    "unsupported": N_("{path} holds a key or content that is not supported (IGC Santé keys are RSA)"),
    "no_key": N_("{path} holds no private key: export the certificate with its private key"),
    "no_certificate": N_("{path} holds no certificate for its private key"),
    "key_mismatch": N_("the private key is not the one of the certificate {path}"),
    "expired": N_("the certificate {path} expired on {date}: ask IGC Santé for a new ORG AUTH_CLI certificate"),
    "not_yet_valid": N_("the certificate {path} is not valid before {date}"),
    "not_client_auth": N_("the certificate {path} is not for client authentication: a BAL APP needs an IGC Santé "
                          "ORG AUTH_CLI certificate"),
    "password_file_open": N_("{path} must not be readable by group or others (chmod 600)"),
    "refused": N_("OpenSSL refused the certificate {path}"),
}


def certificate_problem(exc: CertificateFileError) -> CertificateFileError:
    """``exc`` (a BAL APP's certificate file cannot be used) told in the user's language, with the options to use."""
    template = _CERTIFICATE_PROBLEMS.get(exc.problem)
    if template is None:
        return exc
    date = exc.date.strftime(_("%m/%d/%Y")) if exc.date is not None else ""
    return CertificateFileError(_(template).format(path=exc.path, date=date), problem=exc.problem, path=exc.path,
                                date=exc.date)


def rejected_credentials(exc: TokenRejected, *, kind: str, address: str, token_env: str | None,
                         token_command: str | None, cert: Path | None) -> TokenRejected:
    """``exc`` (the server refused the BAL's credentials) told with the flag or file at fault.

    ``kind`` is ``PER``, ``ORG`` or ``APP``; the flag the user gave decides the advice.
    """
    first = exc.__cause__ if isinstance(exc.__cause__, TokenRejected) else exc  # the retry chains the first refusal
    reply = first.message.removeprefix("credentials rejected: ")
    if kind == "APP":
        message = _(
            "the server refused the certificate --cert {cert} of the BAL APP {address}: it is probably revoked "
            "(published in the IGC Santé CRL), expired, or not this organisation's. Check its dates and serial "
            "number (openssl x509 -in FILE -noout -dates -serial) and the IGC Santé CRL; if needed, ask for a new "
            "ORG AUTH_CLI certificate. Server reply: {reply}"
        ).format(cert=cert, address=address, reply=reply)
        requirement = exc.requirement or "ref2 §2.3"
    elif token_env is not None:
        message = _(
            "the server refused the PSC token read from ${variable} (--token-env), twice: it has probably expired "
            "(a PSC access token lives {lifetime} s) or it is not a PSC token of the BAL {address}. Use "
            "--token-command CMD so that a fresh token is asked for at each connection. Server reply: {reply}"
        ).format(variable=token_env, lifetime=_PSC_ACCESS_LIFETIME_S, address=address, reply=reply)
        requirement = "ref2 §2.4"
    else:
        message = _(
            "the server refused the PSC token printed by --token-command ({command}), then a second token asked "
            "for at once: the Pro Santé Connect session has probably ended or gives no access to the BAL "
            "{address}. Sign in to Pro Santé Connect again. Server reply: {reply}"
        ).format(command=token_command, address=address, reply=reply)
        requirement = "ref2 §2.4"
    return TokenRejected(message, requirement=requirement, imap_code=exc.imap_code, smtp_code=exc.smtp_code,
                         enhanced_code=exc.enhanced_code)


def refused_recipients(exc: CommandFailed, recipients: tuple[str, ...]) -> CommandFailed:
    """``exc`` told with the addresses the server refused, when it refused every recipient of a send.

    Any other refusal is returned as it is.
    """
    if not exc.message.startswith(_EVERY_RECIPIENT_REFUSED):
        return exc
    detail = exc.message.removeprefix(_EVERY_RECIPIENT_REFUSED)
    replies = []
    for address in recipients:
        start = detail.find(f"{address}: ")
        if start < 0:
            continue
        reply = detail[start + len(address) + 2:].split("; ", 1)[0]
        replies.append(f"{address} ({reply})")
    n = len(replies) or len(recipients)
    message = ngettext(
        "the server refused the recipient: {replies}. Check the address (mssante annuaire search finds a "
        "professional's MSSanté addresses); nothing was sent",
        "the server refused all {n} recipients: {replies}. Check the addresses (mssante annuaire search finds a "
        "professional's MSSanté addresses); nothing was sent",
        n,
    ).format(n=n, replies=", ".join(replies) or detail)
    return CommandFailed(message, requirement=exc.requirement or "RFC 5321 §3.3", smtp_code=exc.smtp_code,
                         enhanced_code=exc.enhanced_code)
