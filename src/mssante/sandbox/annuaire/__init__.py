"""A mock of the ANS Annuaire Santé (FHIR R4) serving the sandbox's professionals, structures and BALs.

See :mod:`mssante.sandbox.annuaire._app` for the routes and :mod:`mssante.sandbox.annuaire._data` for how the
sandbox configuration becomes ``Practitioner``, ``PractitionerRole`` and ``Organization`` resources with
``as-mailbox-mss`` ContactPoints. Clients use :class:`mssante.annuaire.AnnuaireClient`.
"""

from mssante.sandbox.annuaire._app import ANNUAIRE_PATH, SANDBOX_API_KEY, AccessRecord, AnnuaireMock, annuaire_info

__all__ = ["ANNUAIRE_PATH", "SANDBOX_API_KEY", "AccessRecord", "AnnuaireMock", "annuaire_info"]
