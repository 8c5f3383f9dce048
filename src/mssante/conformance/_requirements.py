"""The 40 client-side requirements of Référentiel socle MSSanté #2, and which cases judge them.

:data:`REQUIREMENTS` lists every ECO id of the research note's tables and Appendix A
(ref2-requirements.md: ECO.1.x to ECO.4.1.x) plus SC.MSS/CONF.12 (BAL APP authentication),
with where the library implements the rule and, when an operator cannot judge it from what it
sees on the wire, why. :func:`requirement_table` joins it with the catalogue of both profiles:
``docs/gen_requirements.py`` writes the table into the docs (French and English), and a test
fails when an id is neither judged by a case nor explained.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from mssante.conformance._catalogue import catalogue
from mssante.conformance._model import Profile

__all__ = ["REQUIREMENTS", "Requirement", "RequirementRow", "requirement_table"]


@dataclass(frozen=True, kw_only=True)
class Requirement:
    """One requirement of Référentiel #2 (client side).

    Attributes:
        id: ``ECO.x.y.z`` or ``SC.MSS/CONF.nn``.
        title_fr, title_en: what it asks, in a few words.
        library: where :mod:`mssante` implements it (module or callable), or ``""``.
        unjudged_fr, unjudged_en: why an operator cannot judge it from the wire (``""`` when a
            case judges it).
    """

    id: str
    title_fr: str
    title_en: str
    library: str
    unjudged_fr: str = ""
    unjudged_en: str = ""


#: The 40 ids, in the order of Référentiel #2.
REQUIREMENTS: Final[tuple[Requirement, ...]] = (
    Requirement(id="ECO.1.0.1", title_fr="SMTP avec STARTTLS", title_en="SMTP with STARTTLS",
                library="mssante.client (Mailbox.send)"),
    Requirement(id="ECO.1.0.2", title_fr="IMAP4 avec STARTTLS", title_en="IMAP4 with STARTTLS",
                library="mssante.client (Mailbox)"),
    Requirement(id="ECO.1.1.1", title_fr="TLS 1.2 minimum", title_en="TLS 1.2 minimum",
                library="mssante.client (TrustSettings)"),
    Requirement(id="ECO.1.1.3", title_fr="Suites cryptographiques autorisées", title_en="Allowed cipher suites",
                library="mssante.client (TrustSettings)"),
    Requirement(id="ECO.1.1.5", title_fr="Certificat serveur non expiré", title_en="Server certificate not expired",
                library="mssante.trust"),
    Requirement(id="ECO.1.1.6", title_fr="Certificat serveur non révoqué (LCR/OCSP)",
                title_en="Server certificate not revoked (CRL/OCSP)", library="mssante.trust (CRLCache)"),
    Requirement(id="ECO.1.1.7", title_fr="Conserver la dernière LCR valide", title_en="Keep the last valid CRL",
                library="mssante.trust (CRLCache)"),
    Requirement(id="ECO.1.1.9", title_fr="Autoconfiguration par DNS SRV", title_en="DNS SRV autoconfiguration",
                library="mssante.discovery"),
    Requirement(id="ECO.1.1.10", title_fr="IGC Santé seule AC autorisée (gamme Organisation)",
                title_en="IGC Santé the only CA (Organisation range)", library="mssante.trust, mssante.credentials"),
    Requirement(id="ECO.1.2.1", title_fr="TLS puis XOAUTH2 avec le jeton PSC", title_en="TLS then XOAUTH2 with the PSC "
                "token", library="mssante.client, mssante.psc"),
    Requirement(id="ECO.1.2.3", title_fr="Erreurs de connexion sans effet sur le reste du LPS",
                title_en="Connection errors isolated from the rest of the LPS",
                library="mssante.client (SessionSupervisor, Backoff)"),
    Requirement(id="ECO.1.2.5", title_fr="Jeton d'accès PSC jamais stocké durablement",
                title_en="PSC access token never stored permanently",
                library="mssante.psc (tokens in memory), mssante.secret",
                unjudged_fr="ce que le LPS écrit sur son propre disque n'est pas visible de l'opérateur ; la suite "
                            "vérifie seulement qu'aucun jeton n'apparaît dans le fichier de traces (cas traces)",
                unjudged_en="what the LPS writes to its own disk is not visible to the operator; the suite only "
                            "checks that no token appears in the trace file (traces case)"),
    Requirement(id="ECO.1.2.6", title_fr="Fin des sessions quand le jeton de rafraîchissement est invalide",
                title_en="Sessions end when the refresh token is invalid",
                library="mssante.client (SessionSupervisor), mssante.psc"),
    Requirement(id="ECO.1.2.7", title_fr="Réouverture automatique tant que la session PSC est valide",
                title_en="Automatic reopening while the PSC session is valid",
                library="mssante.client (SessionSupervisor)"),
    Requirement(id="ECO.2.1.1", title_fr="Archive IHE_XDM et PDF/A-1 des mêmes documents",
                title_en="IHE_XDM archive and PDF/A-1 of the same documents",
                library="mssante.xdm (build_archive), mssante.pdf, mssante.message"),
    Requirement(id="ECO.2.1.2", title_fr="Patient identifié par le patientId de METADATA.XML",
                title_en="Patient identified by METADATA.XML patientId",
                library="mssante.message (parse_message: archive.patient), mssante.xdm"),
    Requirement(id="ECO.2.1.3", title_fr="Objet XDM/1.0/DDM+", title_en="XDM/1.0/DDM+ subject",
                library="mssante.message (xdm_subject)"),
    Requirement(id="ECO.2.1.5", title_fr="PDF/A-1 généré depuis le CDA", title_en="PDF/A-1 generated from the CDA",
                library="mssante.pdf (render_cda_pdf, check_pdfa1)"),
    Requirement(id="ECO.2.1.6", title_fr="Nommage du PDF", title_en="PDF file naming",
                library="mssante.message (pdf_filename)"),
    Requirement(id="ECO.2.2.1", title_fr="Message-ID (RFC 5322)", title_en="Message-ID (RFC 5322)",
                library="mssante.message (compose_message, new_message_id)"),
    Requirement(id="ECO.2.2.2", title_fr="In-Reply-To et References sur les réponses",
                title_en="In-Reply-To and References on replies",
                library="mssante.message (Draft.in_reply_to, generate_mdn)"),
    Requirement(id="ECO.2.2.3", title_fr="Parties texte en UTF-8", title_en="UTF-8 text parts",
                library="mssante.message"),
    Requirement(id="ECO.2.2.4", title_fr="Corps text/plain ou multipart/alternative",
                title_en="text/plain or multipart/alternative body", library="mssante.message"),
    Requirement(id="ECO.2.2.6", title_fr="Adresse patient construite depuis l'INS qualifié",
                title_en="Patient address built from the qualified INS",
                library="mssante.message.patient_address (NIR key checked), ReadSettings.patient_domain"),
    Requirement(id="ECO.2.2.7", title_fr="Libellé de l'expéditeur", title_en="Sender label",
                library="mssante.message (professional_label, organisation_label)"),
    Requirement(id="ECO.2.2.8", title_fr="X-MSS-MES: FIN", title_en="X-MSS-MES: FIN",
                library="mssante.message (Draft.end_of_exchange)"),
    Requirement(id="ECO.2.3.1", title_fr="Demande d'avis de remise (DSN)", title_en="Delivery notification (DSN) "
                "request", library="mssante.message (DSNRequest), mssante.client (Mailbox.send)"),
    Requirement(id="ECO.2.3.2", title_fr="Demande d'accusé de lecture (MDN)", title_en="Read receipt (MDN) request",
                library="mssante.message (Draft.request_mdn)"),
    Requirement(id="ECO.2.4.1", title_fr="X-MSS-CODECDA", title_en="X-MSS-CODECDA", library="mssante.message"),
    Requirement(id="ECO.2.4.2", title_fr="X-MSS-INS", title_en="X-MSS-INS", library="mssante.message"),
    Requirement(id="ECO.2.4.3", title_fr="X-MSS-NIL (référence produit)", title_en="X-MSS-NIL (product reference)",
                library="mssante.message (ComposeSettings.product_reference)"),
    Requirement(id="ECO.3.1.1", title_fr="Messages de professionnels et de patients distingués",
                title_en="Messages from professionals and from patients told apart",
                library="mssante.message (ParsedMessage.sender_kind)"),
    Requirement(id="ECO.3.1.2", title_fr="Nom, prénom et INS du patient affichés",
                title_en="Patient's name, first name and INS shown",
                library="mssante.message (ParsedMessage.archive.patient)"),
    Requirement(id="ECO.3.1.3", title_fr="Préfixe XDM/1.0/DDM+ masqué à l'affichage",
                title_en="XDM/1.0/DDM+ prefix hidden when shown", library="mssante.message (parse_xdm_subject)"),
    Requirement(id="ECO.3.1.4", title_fr="Recherche dans l'Annuaire Santé", title_en="Annuaire Santé search",
                library="mssante.annuaire (AnnuaireClient)"),
    Requirement(id="ECO.3.1.5", title_fr="Écrire au patient depuis son dossier",
                title_en="Write to the patient from the patient record",
                library="mssante.message (Draft); built by mssante.conformance.builtin"),
    Requirement(id="ECO.3.1.6", title_fr="Renvoi de l'accusé de lecture (MDN)", title_en="Read receipt (MDN) return",
                library="mssante.message (generate_mdn)"),
    Requirement(id="ECO.4.1.1", title_fr="Traces fonctionnelles", title_en="Functional traces",
                library="mssante.trace"),
    Requirement(id="ECO.4.1.2", title_fr="Contenu des traces", title_en="Trace content", library="mssante.trace"),
    Requirement(id="SC.MSS/CONF.12", title_fr="BAL APP : certificat ORG AUTH_CLI puis PLAIN",
                title_en="BAL APP: ORG AUTH_CLI certificate then PLAIN",
                library="mssante.credentials (ClientCertificate), mssante.client"),
)


@dataclass(frozen=True, kw_only=True)
class RequirementRow:
    """One line of the requirement table.

    Attributes:
        requirement: the requirement.
        cases: ``(profile, case id, code)`` of every case that lists it, catalogue order.
    """

    requirement: Requirement
    cases: tuple[tuple[Profile, str, str], ...]

    @property
    def judged(self) -> bool:
        """True when at least one case judges it."""
        return bool(self.cases)


def requirement_table() -> tuple[RequirementRow, ...]:
    """The 40 requirements with the cases of both profiles that judge each."""
    cases = [c for profile in Profile for c in catalogue(profile)]
    return tuple(
        RequirementRow(requirement=r, cases=tuple((c.profile, c.id, c.code) for c in cases if r.id in c.requirements))
        for r in REQUIREMENTS
    )
