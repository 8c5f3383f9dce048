"""The catalogue: every case of both profiles, keyed by Référentiel #2 requirement, in run order.

MOTCO2's own list is not public (18 unit tests for BAL PER/ORG, 16 for BAL APP); these
cases cover the families it is known or inferred to test (ref2-requirements.md §6, ANS
webinar of 19/01/2024), and more. The order is the order of a référencement job: transport
first (one connection window serves those cases), then reactions to faults, then messages,
traces, and for PER/ORG the PSC logout (it ends the professional's PSC session); the server
certificate cases come last (added later, so the earlier ids did not move).

Timeouts are what a person driving an external LPS gets; automated runs scale them down
(:attr:`~mssante.conformance._context.RunSettings.time_scale`).
"""

from __future__ import annotations

from collections.abc import Sequence

from mssante.conformance._cases_messages import (
    check_document_rules,
    check_mdn_request,
    check_mdn_return,
    check_nil,
    check_receive_xdm,
    check_sent_copy,
)
from mssante.conformance._cases_pdf import check_pdf_companion, check_pdf_from_cda
from mssante.conformance._cases_reactions import (
    TOKEN_LIFETIMES,
    check_authentication_failed,
    check_authorization_failed,
    check_psc_logout,
    check_reopen,
    check_token_lifetimes,
    check_unavailable,
)
from mssante.conformance._cases_server_cert import check_bad_server_certificate, check_crl_outage
from mssante.conformance._cases_traces import check_traces
from mssante.conformance._cases_transport import (
    check_app_auth,
    check_app_structure,
    check_ciphers,
    check_no_clear_credentials,
    check_psc_mechanism,
    check_srv_front,
    check_starttls,
    check_tls_version,
)
from mssante.conformance._cases_writing import (
    check_annuaire_lookup,
    check_dsn_request,
    check_message_id,
    check_patient_address,
    check_reply_threading,
    check_sender_label,
    check_x_mss_mes,
)
from mssante.conformance._model import Case, Check, Profile
from mssante.errors import UsageError

__all__ = ["catalogue", "select_cases"]

_CONNECT = 300.0  # a person reconnects the LPS and sends a message
_REACT = 120.0  # the LPS reacts on its own
_LOGOUT = 180.0  # detection through the next token refresh: PSC access tokens live about 2 minutes
_MESSAGE = 300.0  # a person sends or reads a message

# (code, French title, requirements, needs_action, timeout, check)
_Row = tuple[str, str, tuple[str, ...], bool, float, Check]


def _transport(profile: Profile) -> list[_Row]:
    psc = profile is Profile.PER_ORG
    rows: list[_Row] = [
        ("imap-starttls", "Connexion IMAP : STARTTLS avant toute authentification",
         ("ECO.1.0.2", "SC.MSS/CONF.06", "ECO.1.2.1"), True, _CONNECT, check_starttls("imap", "ECO.1.0.2")),
        ("smtp-starttls", "Soumission SMTP : STARTTLS avant toute authentification",
         ("ECO.1.0.1", "SC.MSS/CONF.05", "ECO.1.2.1"), True, _CONNECT, check_starttls("smtp", "ECO.1.0.1")),
        ("tls-version", "TLS 1.2 minimum sur IMAP et SMTP", ("ECO.1.1.1", "SC.MSS/CONF.01"), True, _CONNECT,
         check_tls_version()),
        ("tls-ciphers", "Suites cryptographiques autorisées", ("ECO.1.1.3", "SC.MSS/CONF.03"), True, _CONNECT,
         check_ciphers()),
        ("srv-front",
         "Autoconfiguration DNS SRV : front PSC (priorité 10)" if psc
         else "Autoconfiguration DNS SRV : front AUTH_CLI (priorité 20)",
         ("ECO.1.1.9", "SC.MSS/CONF.04", "EX_LPS_0300", "RFC 7817 §3"), True, _CONNECT,
         check_srv_front("psc" if psc else "authcli")),
    ]
    if psc:
        rows += [
            ("imap-xoauth2", "Authentification IMAP en XOAUTH2 : jeton PSC, user = adresse de la BAL",
             ("ECO.1.2.1", "SC.MSS/CONF.07"), True, _CONNECT, check_psc_mechanism("imap")),
            ("smtp-xoauth2", "Authentification SMTP en XOAUTH2 : jeton PSC, user = adresse de la BAL",
             ("ECO.1.2.1", "SC.MSS/CONF.07"), True, _CONNECT, check_psc_mechanism("smtp")),
        ]
    else:
        rows += [
            ("imap-auth-cli", "Authentification IMAP : certificat ORG AUTH_CLI puis PLAIN avec l'adresse de la BAL",
             ("SC.MSS/CONF.12", "ECO.1.1.10"), True, _CONNECT, check_app_auth("imap")),
            ("smtp-auth-cli", "Authentification SMTP : certificat ORG AUTH_CLI puis PLAIN avec l'adresse de la BAL",
             ("SC.MSS/CONF.12", "ECO.1.1.10"), True, _CONNECT, check_app_auth("smtp")),
            ("cert-structure", "Certificat de la structure détentrice de la BAL (OU = IdNat_Struct)",
             ("SC.MSS/CONF.12", "ECO.1.1.10", "SC.MSS/CONF.27"), True, _CONNECT, check_app_structure()),
        ]
    rows.append(("no-clear-credentials", "Aucune donnée d'authentification transmise avant TLS",
                 ("ECO.1.2.1", "RFC 3207 §4", "RFC 4954 §4"), True, _CONNECT, check_no_clear_credentials()))
    return rows


def _reactions(profile: Profile) -> list[_Row]:
    psc = profile is Profile.PER_ORG
    failed_title = ("Réaction à AUTHENTICATIONFAILED : une seule réauthentification, avec un nouveau jeton" if psc
                    else "Réaction à AUTHENTICATIONFAILED : au plus une nouvelle tentative, pas de boucle")
    unavailable_title = ("Réaction à UNAVAILABLE (PSC indisponible) : nouvelles tentatives espacées, puis reprise"
                         if psc else "Réaction à UNAVAILABLE : nouvelles tentatives espacées, puis reprise")
    return [
        ("authenticationfailed", failed_title, ("ECO.1.2.1", "RFC 5530 §3", "RFC 4954 §6"), True, _REACT,
         check_authentication_failed(psc=psc)),
        ("authorizationfailed", "Réaction à AUTHORIZATIONFAILED : pas de nouvelle tentative",
         ("RFC 5530 §3", "ECO.1.2.3"), True, _REACT, check_authorization_failed()),
        ("unavailable", unavailable_title, ("ECO.1.2.3", "SC.MSS/CONF.08", "RFC 5530 §3"), True, _REACT,
         check_unavailable(psc=psc)),
        ("reopen-bye", "Réouverture automatique de la session après un BYE de l'opérateur",
         ("ECO.1.2.7", "SC.MSS/CONF.11"), False, _REACT, check_reopen("bye")),
        ("reopen-drop", "Réouverture automatique de la session après une coupure réseau",
         ("ECO.1.2.7", "SC.MSS/CONF.11"), False, _REACT, check_reopen("drop")),
    ]


def _messages(profile: Profile) -> list[_Row]:
    rows: list[_Row] = [
        ("x-mss-nil", "En-tête X-MSS-NIL (référence produit) sur chaque message émis",
         ("ECO.2.4.3", "SC.MSS/CONF.16"), True, _MESSAGE, check_nil()),
        ("x-mss-codecda", "En-tête X-MSS-CODECDA cohérent avec les documents CDA de l'archive XDM",
         ("ECO.2.4.1", "SC.MSS/CONF.15"), True, _MESSAGE,
         check_document_rules(("ECO.2.4.1",), "X-MSS-CODECDA")),
        ("x-mss-ins", "En-tête X-MSS-INS cohérent avec l'INS qualifié de l'archive XDM",
         ("ECO.2.4.2", "SC.MSS/CONF.14"), True, _MESSAGE, check_document_rules(("ECO.2.4.2",), "X-MSS-INS")),
        ("xdm-subject", "Objet « XDM/1.0/DDM+<libellé> <NOM> <prénom> <date> » d'un message avec document",
         ("ECO.2.1.3",), True, _MESSAGE, check_document_rules(("ECO.2.1.3",), "Objet du message")),
        ("pdf-companion", "Document PDF/A-1 joint à l'archive XDM et nommé selon la convention",
         ("ECO.2.1.1", "ECO.2.1.6", "MSS/va1.01"), True, _MESSAGE, check_pdf_companion()),
        ("utf8-body", "Corps du message en UTF-8, text/plain ou multipart/alternative",
         ("ECO.2.2.3", "ECO.2.2.4", "MSS/va1.11"), True, _MESSAGE,
         check_document_rules(("ECO.2.2.3", "ECO.2.2.4"), "Encodage du corps")),
        ("mdn-request", "Demande d'accusé de lecture (MDN) à l'émission", ("ECO.2.3.2",), True, _MESSAGE,
         check_mdn_request()),
    ]
    if profile is Profile.PER_ORG:
        rows.append(("mdn-return", "Renvoi de l'accusé de lecture (MDN) demandé par un message reçu",
                     ("ECO.3.1.6", "MSS/va1.14"), True, _MESSAGE, check_mdn_return()))
    rows += [
        ("receive-xdm", "Réception, lecture et compréhension d'un document XDM envoyé par le répondeur automatique",
         ("ECO.2.1.2", "ECO.3.1.1", "ECO.3.1.2", "ECO.3.1.3") if profile is Profile.PER_ORG else ("ECO.2.1.2",),
         True, _MESSAGE,
         check_receive_xdm(display=profile is Profile.PER_ORG)),
        ("sent-copy", "Copie du message envoyé dans le dossier « Envoyés » (Sent)", ("RFC 3501 §6.3.11",), True,
         _MESSAGE, check_sent_copy()),
        ("traces", "Traces fonctionnelles complètes et sans secret",
         ("ECO.4.1.1", "ECO.4.1.2", "SC.MSS/CONF.17", "SC.MSS/CONF.18"), False, 60.0, check_traces()),
    ]
    return rows


def _server_certificates() -> list[_Row]:
    # Appended after every other case (ids stay stable); each one reconnects with a bad certificate.
    return [
        ("server-cert-expired", "Certificat serveur expiré : connexion abandonnée avant toute authentification",
         ("ECO.1.1.5",), True, _CONNECT, check_bad_server_certificate("expired")),
        ("server-cert-foreign",
         "Certificat serveur émis hors IGC Santé : connexion abandonnée avant toute authentification",
         ("ECO.1.1.10",), True, _CONNECT, check_bad_server_certificate("foreign")),
        ("server-cert-wrong-host",
         "Certificat serveur d'un autre nom d'hôte : connexion abandonnée avant toute authentification",
         ("RFC 6125 §6", "RFC 7817 §3", "ECO.1.1.10"), True, _CONNECT, check_bad_server_certificate("wrong-host")),
        ("server-cert-revoked", "Certificat serveur révoqué : connexion abandonnée avant toute authentification",
         ("ECO.1.1.6", "ECO.1.1.7", "SC.MSS/CONF.22"), True, _CONNECT, check_bad_server_certificate("revoked")),
        ("crl-outage",
         "Panne de LCR : la dernière LCR valide reste utilisée (révoqué refusé, certificat valide accepté)",
         ("ECO.1.1.7", "SC.MSS/CONF.22", "ECO.1.1.6"), True, _CONNECT, check_crl_outage()),
        # conf-probe: a chain from another root that reuses IGC Santé's names (issue 16).
        ("server-cert-impostor",
         "Certificat serveur d'une autre racine reprenant les noms d'IGC Santé : connexion abandonnée",
         ("ECO.1.1.10", "SC.MSS/CONF.27"), True, _CONNECT, check_bad_server_certificate("impostor")),
    ]


def _writing(profile: Profile) -> list[_Row]:
    # Appended after the server certificate cases (earlier ids stay); issue 16 item 2.
    rows: list[_Row] = [
        ("pdf-from-cda", "PDF généré depuis le CDA de l'archive : patient et titre du document",
         ("ECO.2.1.5",), True, _MESSAGE, check_pdf_from_cda()),
        ("message-id", "Message-ID conforme (RFC 5322) et unique sur chaque message émis",
         ("ECO.2.2.1", "MSS/va1.12"), True, _MESSAGE, check_message_id()),
        ("reply-threading", "Réponse rattachée au message d'origine (In-Reply-To, References)",
         ("ECO.2.2.2", "MSS/va1.08"), True, _MESSAGE, check_reply_threading()),
        ("sender-label", "Libellé de l'expéditeur à côté de l'adresse de la BAL",
         ("ECO.2.2.7", "MSS/va1.16"), True, _MESSAGE, check_sender_label()),
        ("dsn-request", "Demande d'avis de remise (DSN) à l'émission", ("ECO.2.3.1", "MSS/va1.15"), True, _MESSAGE,
         check_dsn_request()),
        ("patient-address", "Message au patient depuis son dossier, à l'adresse construite depuis l'INS",
         ("ECO.2.2.6", "ECO.3.1.5"), True, _MESSAGE, check_patient_address()),
        ("x-mss-mes", "En-tête X-MSS-MES: FIN sur un message au patient sans réponse possible",
         ("ECO.2.2.8", "SC.MSS/CONF.21"), True, _MESSAGE, check_x_mss_mes()),
        ("annuaire-lookup", "Recherche du destinataire dans l'Annuaire Santé avant l'écriture",
         ("ECO.3.1.4", "SC.MSS/CONF.20"), True, _MESSAGE, check_annuaire_lookup()),
    ]
    if profile is Profile.APP:
        rows.append(("mdn-return", "Renvoi de l'accusé de lecture (MDN) demandé par un message reçu",
                     ("ECO.3.1.6", "MSS/va1.14"), True, _MESSAGE, check_mdn_return()))
    else:
        rows.append((TOKEN_LIFETIMES, "Session maintenue au-delà de deux durées de vie du jeton, sans nouvelle "
                     "connexion PSC", ("ECO.1.2.7", "SC.MSS/CONF.11", "ECO.1.2.1"), True, _REACT,
                     check_token_lifetimes()))
    return rows


def catalogue(profile: Profile) -> tuple[Case, ...]:
    """Every case of ``profile``, in run order, with ids ``PERORG-nn`` / ``APP-nn``.

    Raises:
        UsageError: unknown profile.
    """
    if not isinstance(profile, Profile):
        raise UsageError(f"unknown profile {profile!r}")
    rows = [*_transport(profile), *_reactions(profile), *_messages(profile)]
    if profile is Profile.PER_ORG:
        rows.append(("psc-logout", "Fermeture de toutes les sessions IMAP/SMTP à la fin de la session PSC",
                     ("ECO.1.2.6", "SC.MSS/CONF.10"), False, _LOGOUT, check_psc_logout()))
    rows += _server_certificates()
    rows += _writing(profile)
    prefix = "PERORG" if profile is Profile.PER_ORG else "APP"
    return tuple(
        Case(id=f"{prefix}-{i:02d}", code=code, title_fr=title, requirements=reqs, profile=profile,
             needs_action=action, timeout=timeout, check=check)
        for i, (code, title, reqs, action, timeout, check) in enumerate(rows, start=1)
    )


def select_cases(profile: Profile, ids: Sequence[str] = ()) -> tuple[Case, ...]:
    """The cases of ``profile`` whose id or code is in ``ids`` (all when empty), in run order.

    Raises:
        UsageError: an id or code is not in the profile's catalogue.
    """
    cases = catalogue(profile)
    if not ids:
        return cases
    wanted = {i.upper() for i in ids}
    known = {c.id for c in cases} | {c.code.upper() for c in cases}
    unknown = sorted(wanted - known)
    if unknown:
        raise UsageError(f"unknown case(s) for profile {profile.value}: {', '.join(unknown)}")
    return tuple(c for c in cases if c.id in wanted or c.code.upper() in wanted)
