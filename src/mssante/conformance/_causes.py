"""Known client-side protocol mistakes, recognised in the journal, named with their fix (French).

When a case fails, the verdict says *what* rule broke; an LPS developer also needs *why* his
client did it. Each mistake below leaves a recognisable trace in the session journal; the
first one found whose effect lasted (no successful authentication of the same protocol came
after it) is named in the verdict, with the fix:

* ``auth-line-too-long``: ``AUTH XOAUTH2 <initial response>`` on one SMTP line, over the
  512-octet command line kept by RFC 4954 §4 (the sandbox's ``smtp_auth_line_limit``, as
  Dovecot): ``500 5.5.2``, outcome ``TOOBIG``. Fix: ``AUTH XOAUTH2`` alone, the response after ``334``.
* ``oauthbearer``: OAUTHBEARER (RFC 7628) where the API LPS expects XOAUTH2;
* ``plain-on-psc``: PLAIN or LOGIN on the PSC front (a BAL PER/ORG has no password; PLAIN is
  for the AUTH_CLI front, after the client certificate);
* ``no-client-certificate``: PLAIN on the AUTH_CLI front without a certificate in the handshake;
* ``no-sni``: the LPS's TLS handshakes carried no server name (RFC 6066 §3): it connects by IP
  address and checks the certificate against the address, which only the sandbox's certificate
  (with its IP SAN) accepts; judged by the ``srv-front`` case, which names it itself;
* ``token-reused``: a PSC token refused with ``AUTHENTICATIONFAILED`` was presented again
  instead of a fresh one (RFC 5530 §3, ECO.1.2.1); only the sandbox's token gate sees it, so
  the ``authenticationfailed`` case names it itself (:func:`named`).
"""

from __future__ import annotations

from collections.abc import Sequence

from mssante.conformance._judge import auth_attempts, mechanism_of
from mssante.conformance._model import Cause
from mssante.sandbox.fronts.journal import SessionRecord
from mssante.wire import AuthOutcome

__all__ = ["CAUSES", "MECHANISM_CASES", "diagnose", "named"]

#: Every cause this module can name: code -> French cause and fix.
CAUSES: dict[str, str] = {
    "auth-line-too-long": (
        "la commande SMTP « AUTH » dépasse la limite de 512 octets d'une ligne de commande (RFC 4954 §4 ; "
        "réponse « 500 5.5.2 Line too long ») : le LPS envoie le jeton PSC en réponse initiale sur la même ligne "
        "(« AUTH XOAUTH2 <jeton> »). Correction : envoyer « AUTH XOAUTH2 » seul, attendre la réponse « 334 » du "
        "serveur, puis envoyer la réponse initiale en base64 sur sa propre ligne."),
    "oauthbearer": (
        "le LPS s'authentifie en SASL OAUTHBEARER (RFC 7628) alors que l'API LPS MSSanté attend XOAUTH2. "
        "Correction : mécanisme XOAUTH2, réponse « user=<adresse de la BAL>^Aauth=Bearer <jeton PSC>^A^A » "
        "encodée en base64."),
    "plain-on-psc": (
        "le LPS envoie PLAIN ou LOGIN sur le front PSC : une BAL PER/ORG n'a pas de mot de passe. Correction : "
        "sur ce front, SASL XOAUTH2 avec le jeton d'accès Pro Santé Connect ; PLAIN est réservé au front AUTH_CLI "
        "(BAL applicative, après présentation du certificat ORG AUTH_CLI)."),
    "no-client-certificate": (
        "le LPS s'authentifie sur le front AUTH_CLI sans présenter de certificat client lors de la négociation "
        "TLS. Correction : charger le certificat IGC Santé ORG AUTH_CLI de la structure (et sa clé) dans le "
        "contexte TLS avant STARTTLS, puis SASL PLAIN avec l'adresse de la BAL."),
    "no-sni": (
        "le LPS n'envoie pas d'indication de nom de serveur (SNI, RFC 6066 §3) : il se connecte à l'adresse IP "
        "et vérifie le certificat pour cette adresse, ce que seul le certificat du bac à sable accepte ; chez "
        "l'opérateur, le certificat ne porte que le nom d'hôte et la connexion échouera. Correction : ouvrir la "
        "session TLS avec le nom cible de l'enregistrement SRV (server_hostname, donc SNI) et vérifier le "
        "certificat pour ce nom (RFC 6125, RFC 7817)."),
    "token-reused": (
        "après le refus AUTHENTICATIONFAILED, le LPS a présenté de nouveau le même jeton d'accès. Correction : "
        "abandonner ce jeton, en obtenir un nouveau (jeton de rafraîchissement auprès de Pro Santé Connect), puis "
        "se réauthentifier une seule fois."),
}


def named(code: str) -> Cause:
    """The :class:`Cause` of ``code`` (a key of :data:`CAUSES`).

    Raises:
        KeyError: unknown code.
    """
    return Cause(code=code, fr=CAUSES[code])


#: The cases that judge the SASL mechanism itself: a wrong mechanism is their cause even when the
#: sandbox accepted it (it offers OAUTHBEARER, as Dovecot does).
MECHANISM_CASES = frozenset({"imap-xoauth2", "smtp-xoauth2", "imap-auth-cli", "smtp-auth-cli"})


def diagnose(records: Sequence[SessionRecord], case_code: str = "") -> Cause | None:
    """The first known mistake in ``records`` whose effect lasted, or None.

    A mistake of one protocol (IMAP or SMTP) is ignored when it or a later authentication of
    that protocol succeeded: the LPS recovered, the failure has another cause. In the cases
    that judge the mechanism (:data:`MECHANISM_CASES`, ``case_code``), a wrong mechanism is
    named even when it succeeded.
    """
    attempts = auth_attempts(records)
    by_id = {r.id: r for r in records}
    for index, attempt in enumerate(attempts):
        record = by_id.get(attempt.session)
        if record is None:
            continue
        protocol = record.protocol
        mechanism = mechanism_of(attempt.command, protocol)
        if case_code in MECHANISM_CASES and mechanism == "OAUTHBEARER":
            return named("oauthbearer")
        later_ok = any(a.outcome is AuthOutcome.OK and by_id.get(a.session) is not None
                       and by_id[a.session].protocol == protocol for a in attempts[index + 1:])
        if later_ok or attempt.outcome is AuthOutcome.OK:
            continue
        if protocol == "smtp" and attempt.outcome is AuthOutcome.TOOBIG and len(attempt.command.split(" ")) > 2:
            return named("auth-line-too-long")
        if mechanism == "OAUTHBEARER":
            return named("oauthbearer")
        if record.front.endswith("-psc") and mechanism in ("PLAIN", "LOGIN"):
            return named("plain-on-psc")
        if record.front.endswith("-authcli") and mechanism == "PLAIN" and not record.client_cert_subject:
            return named("no-client-certificate")
    return None
