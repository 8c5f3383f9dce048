"""Errors of the library told again in the CLI user's words (issue 13, item 7).

The library's messages speak of its API (``ca_bundle``, a token source); the CLI knows which
flag, file or variable the user gave, so it says that, the likely cause and what to do, in
French. The library's texts stay as they are (other code and logs rely on them); the typed
error, its codes and its rule are kept, and the original is chained as ``__cause__``.
"""

from __future__ import annotations

from pathlib import Path

from mssante.errors import TokenRejected, UsageError

__all__ = ["missing_ca_bundle", "rejected_credentials"]

#: A PSC access token's lifetime (ref2 §2.4; Keycloak's default for Pro Santé Connect).
_PSC_ACCESS_LIFETIME_S = 120


def missing_ca_bundle() -> UsageError:
    """The error for a mailbox command run without ``--ca-bundle``."""
    return UsageError(
        "--ca-bundle manquant : donnez le fichier PEM des autorités de l'IGC Santé "
        "(--ca-bundle CHEMIN.pem ; pour le bac à sable, le « ca_bundle » de sandbox.json). "
        "Il sert à vérifier le certificat du serveur et sa révocation (CRL), toujours contrôlés",
        requirement="ECO.1.1.6",
    )


def rejected_credentials(exc: TokenRejected, *, kind: str, address: str, token_env: str | None,
                         token_command: str | None, cert: Path | None) -> TokenRejected:
    """``exc`` (the server refused the BAL's credentials) told with the flag or file at fault.

    ``kind`` is ``PER``, ``ORG`` or ``APP``; the flag the user gave decides the advice.
    """
    first = exc.__cause__ if isinstance(exc.__cause__, TokenRejected) else exc  # the retry chains the first refusal
    reply = first.message.removeprefix("credentials rejected: ")
    if kind == "APP":
        message = (
            f"le serveur a refusé le certificat --cert {cert} de la BAL APP {address} : il est "
            "sans doute révoqué (publié dans la CRL de l'IGC Santé), expiré, ou pas celui de cette "
            "structure. Vérifiez ses dates et son numéro de série (openssl x509 -in FICHIER -noout "
            "-dates -serial) et la CRL de l'IGC Santé ; si besoin, demandez un nouveau certificat "
            f"ORG AUTH_CLI. Réponse du serveur : {reply}"
        )
        requirement = exc.requirement or "ref2 §2.3"
    elif token_env is not None:
        message = (
            f"le serveur a refusé le jeton PSC lu dans ${token_env} (--token-env), deux fois : il a "
            f"sans doute expiré (un jeton d'accès PSC vit {_PSC_ACCESS_LIFETIME_S} s) ou ce n'est pas un "
            f"jeton PSC de la BAL {address}. Utilisez --token-command CMD pour qu'un jeton neuf soit "
            f"demandé à chaque connexion. Réponse du serveur : {reply}"
        )
        requirement = "ref2 §2.4"
    else:
        message = (
            f"le serveur a refusé le jeton PSC imprimé par --token-command ({token_command}), puis un "
            f"second jeton demandé aussitôt : la session Pro Santé Connect est sans doute terminée ou "
            f"ne donne pas accès à la BAL {address}. Reconnectez-vous à Pro Santé Connect. "
            f"Réponse du serveur : {reply}"
        )
        requirement = "ref2 §2.4"
    return TokenRejected(message, requirement=requirement, imap_code=exc.imap_code, smtp_code=exc.smtp_code,
                         enhanced_code=exc.enhanced_code)
