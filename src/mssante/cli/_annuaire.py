"""``mssante annuaire search``: look recipients up in the Annuaire Santé (FHIR), in French or as JSON.

The directory is either the sandbox's mock (``--sandbox``: a ``sandbox.json`` or its state directory) or a real
FHIR base (``--url``, e.g. ``https://gateway.api.esante.gouv.fr/fhir/v2``) whose API key is read from an
environment variable (``--api-key-env``, default ``MSSANTE_ANNUAIRE_API_KEY``), never from the command line.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import click

from mssante._i18n import N_
from mssante._i18n import gettext as _
from mssante.annuaire import AnnuaireClient, Organization, Practitioner, SearchPage
from mssante.errors import ConfigError, UsageError

__all__ = ["annuaire"]

_KEY_ENV = "MSSANTE_ANNUAIRE_API_KEY"
#: TRE_G15 labels of the commonest professions (the code is shown for the others).
_PROFESSIONS = {
    "10": N_("physician"), "21": N_("pharmacist"), "40": N_("dental surgeon"), "50": N_("midwife"),
    "60": N_("nurse"), "70": N_("physiotherapist"), "80": N_("podiatrist"), "91": N_("speech therapist"),
}
_KINDS = {"PER": N_("Personal BAL"), "ORG": N_("Organisational BAL"), "APP": N_("Application BAL"),
          "CAB": N_("Practice BAL")}


@click.group()
def annuaire() -> None:
    """Search the Annuaire Santé (FHIR R4) for professionals, structures and their MSSanté addresses."""


def _client(sandbox: Path | None, url: str | None, key_env: str, ca_bundle: Path | None,
            timeout: float) -> AnnuaireClient:
    if (sandbox is None) == (url is None):
        raise UsageError(_("give --sandbox (the sandbox) or --url (the Annuaire Santé), one of the two"))
    if sandbox is not None:
        path = sandbox / "sandbox.json" if sandbox.is_dir() else sandbox
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(_("cannot read {path}: {reason}").format(path=path, reason=exc)) from None
        if not isinstance(info, dict):
            raise ConfigError(_("{path} is not a sandbox.json").format(path=path))
        return AnnuaireClient.from_sandbox(info, timeout=timeout, ca_bundle=ca_bundle)
    key = os.environ.get(key_env)
    if not key:
        raise ConfigError(_("the Annuaire Santé API key is expected in the variable {name}").format(name=key_env))
    assert url is not None
    return AnnuaireClient(url, key, timeout=timeout, ca_bundle=ca_bundle)


def _practitioner_lines(p: Practitioner) -> list[str]:
    ident = f"RPPS {p.rpps}" if p.rpps else (f"idNatPs {p.national_id}" if p.national_id else _("no identifier"))
    unknown = _("profession")
    jobs = [f"{_(_PROFESSIONS[c]) if c in _PROFESSIONS else unknown} ({c})" for c in p.professions]
    jobs += list(p.specialties)
    where = ", ".join(p.cities) or _("place of practice not published")
    job = ", ".join(jobs) or _("profession not published")
    lines = [f"{p.family_name} {p.given_name} — {ident} — {job} — {where}"]
    return lines + _mailbox_lines(p.mailboxes)


def _organization_lines(o: Organization) -> list[str]:
    where = " ".join(x for x in (o.postal_code, o.city) if x) or _("address not published")
    ident = o.national_id or _("not published")
    lines = [f"{o.name} — idNatStruct {ident} — {where}"]
    return lines + _mailbox_lines(o.mailboxes)


def _mailbox_lines(boxes: Any) -> list[str]:
    if not boxes:
        return ["  " + _("no MSSanté BAL published")]
    return ["  " + _("{kind} ({code}): {address}").format(
        kind=_(_KINDS[b.kind]) if b.kind in _KINDS else _("BAL of unknown kind"), code=b.kind or "?", address=b.address)
        for b in boxes]


@annuaire.command("search")
@click.option("--name", help="Début du nom ou du prénom (ou de la raison sociale avec --structures).")
@click.option("--identifier", help="RPPS (11 chiffres), idNatPs, idNatStruct, ou système|valeur.")
@click.option("--profession", help="Code de profession TRE_G15 (10 médecin, 21 pharmacien...).")
@click.option("--specialty", help="Code de savoir-faire TRE_R38 (SM54 médecine générale...).")
@click.option("--city", help="Début du nom de la ville.")
@click.option("--mailbox", help="Début de l'adresse MSSanté.")
@click.option("--structures", is_flag=True, help="Chercher des structures plutôt que des professionnels.")
@click.option("--count", type=click.IntRange(1, 100), default=20, show_default=True, help="Résultats par page.")
@click.option("--pages", type=click.IntRange(1, 50), default=1, show_default=True, help="Pages à lire au plus.")
@click.option("--sandbox", type=click.Path(path_type=Path), help="sandbox.json (ou son dossier) du bac à sable.")
@click.option("--url", help="URL de base FHIR de l'Annuaire Santé.")
@click.option("--api-key-env", default=_KEY_ENV, show_default=True, metavar="VAR",
              help="Variable d'environnement contenant la clé d'API (ESANTE-API-KEY).")
@click.option("--ca-bundle", type=click.Path(dir_okay=False, path_type=Path), help="Ancres de confiance TLS (PEM).")
@click.option("--timeout", type=float, default=10.0, show_default=True, help="Délai réseau en secondes.")
@click.option("--json", "as_json", is_flag=True, help="Sortie JSON.")
def search(**kw: Any) -> None:
    """Chercher des destinataires dans l'Annuaire Santé, avec leurs adresses MSSanté.

    \f
    Raises:
        UsageError: no criterion, both or neither of --sandbox and --url, or a criterion the search refuses.
        ConfigError: sandbox.json unreadable, API key variable unset, bad URL or CA bundle.
        AuthError: the API key was refused.
        TimeoutError, ConnectError, TransportError, TrustError: the directory could not be reached.
        RemoteProtocolError, LimitError: the answer is not a usable FHIR Bundle.
    """
    criteria = {k: kw[k] for k in ("name", "identifier", "city", "mailbox")}
    if not kw["structures"]:
        criteria.update(profession=kw["profession"], specialty=kw["specialty"])
    elif kw["profession"] or kw["specialty"]:
        raise UsageError(_("--profession and --specialty apply to professionals, not to structures"))
    if not any(criteria.values()):
        raise UsageError(_("give at least one criterion: --name, --identifier, --profession, --specialty, --city..."))

    async def run() -> tuple[list[Any], int | None, bool]:
        async with _client(kw["sandbox"], kw["url"], kw["api_key_env"], kw["ca_bundle"], kw["timeout"]) as client:
            page: SearchPage[Any]
            if kw["structures"]:
                page = await client.search_organizations(count=kw["count"], **criteria)
            else:
                page = await client.search_practitioners(count=kw["count"], **criteria)
            found, total = list(page.entries), page.total
            for _ in range(kw["pages"] - 1):
                following: SearchPage[Any] | None = await client.next_page(page)
                if following is None:
                    break
                page = following
                found.extend(page.entries)
            return found, total, page.next_url is not None

    found, total, more = asyncio.run(run())
    if kw["as_json"]:
        click.echo(json.dumps({"total": total, "more": more, "results": [dataclasses.asdict(r) for r in found]},
                              ensure_ascii=False, indent=2))
        return
    what = _("Structures found: {n}") if kw["structures"] else _("Professionals found: {n}")
    click.echo(what.format(n=len(found)) + (" " + _("(of {total})").format(total=total) if total is not None else ""))
    for item in found:
        lines = _organization_lines(item) if kw["structures"] else _practitioner_lines(item)
        click.echo("\n".join(lines))
    if more:
        click.echo(_("There are more results: raise --pages or narrow the search."))
