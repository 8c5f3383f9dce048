"""Search the ANS Annuaire Santé (FHIR R4) for recipients and their MSSanté addresses (ECO.3.1.4, SC.MSS/CONF.20).

An LPS looks a recipient up in the national directory before writing: :class:`AnnuaireClient` searches
professionals (by name, RPPS / idNatPs, profession, savoir-faire, city, address) and structures (by name,
idNatStruct, city) and returns typed results whose :attr:`~Practitioner.mailboxes` are the published MSSanté
BALs, with their type (PER, ORG, APP, CAB) from the IG's ``as-mailbox-mss`` ContactPoint profile::

    async with AnnuaireClient("https://gateway.api.esante.gouv.fr/fhir/v2", api_key) as annuaire:
        page = await annuaire.search_practitioners(name="curie", city="paris")
        for pro in page.entries:
            print(pro.family_name, [m.address for m in pro.mailboxes])

The sandbox serves a mock of the directory with its professionals and BALs; ``AnnuaireClient.from_sandbox``
reads its URL and test API key from ``sandbox.json``. The search syntax itself (:func:`parse_search`,
:class:`SearchQuery`) is shared with that mock.
"""

from mssante.annuaire._client import API_KEY_HEADER, AnnuaireClient, SearchPage
from mssante.annuaire._fhir import Mailbox, MailboxKind, Organization, Practitioner, mailboxes_of
from mssante.annuaire._query import MAX_COUNT, SearchParameterError, SearchQuery, parse_search

__all__ = [
    "API_KEY_HEADER",
    "MAX_COUNT",
    "AnnuaireClient",
    "Mailbox",
    "MailboxKind",
    "Organization",
    "Practitioner",
    "SearchPage",
    "SearchParameterError",
    "SearchQuery",
    "mailboxes_of",
    "parse_search",
]
