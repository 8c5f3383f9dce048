"""Configuration of the sandbox operator: test professionals, structures, BALs, lifetimes, ports.

The sandbox works with no configuration file: :func:`default_config` gives a PER, an ORG and an
APP BAL with sensible test professionals. A TOML file may replace any part of it
(:func:`load_config`); see ``docs/sandbox-config.md`` for the format.

Everything here is pure data: frozen dataclasses with keyword-only fields, validated at
construction, so that every service of the sandbox can trust what it is given.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from mssante._i18n import LANGS, Lang
from mssante.errors import ConfigError

__all__ = [
    "BALConfig",
    "Lifetimes",
    "PSCClientConfig",
    "Ports",
    "Professional",
    "SandboxConfig",
    "Structure",
    "SubmissionSettings",
    "default_config",
    "load_config",
]

BALKind = Literal["PER", "ORG", "APP"]

# idNat_PS: "8" + RPPS (11 digits) or "0" + ADELI (9 digits) (psc-igc.md §1.5).
_NATIONAL_ID = re.compile(r"^(8\d{11}|0\d{9})$")
# IdNat_Struct: type digit (TRE_G07: 0 ADELI, 1 FINESS, 2 SIREN, 3 SIRET, 4 RPPS) + identifier.
_STRUCTURE_ID = re.compile(r"^[0-4][0-9A-Z]{8,16}$")
_ADDRESS = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")


@dataclass(frozen=True, kw_only=True)
class Professional:
    """A test health professional, standing in for a CPS / e-CPS holder.

    Attributes:
        national_id: idNat_PS (``8`` + RPPS, or ``0`` + ADELI); PSC's ``preferred_username``.
        ciba: ``"approve"`` (default) or ``"deny"``: how CIBA requests for this person end.
        profession_code: TRE_G15 profession code (``10`` = médecin).
        specialty_code: savoir-faire code (``SM54`` = médecine générale).
    """

    national_id: str
    given_name: str
    family_name: str
    profession_code: str = "10"
    specialty_code: str = "SM54"
    civility: str = "DR"
    ciba: Literal["approve", "deny"] = "approve"

    def __post_init__(self) -> None:
        if not _NATIONAL_ID.match(self.national_id):
            raise ConfigError(f"national_id {self.national_id!r} is not 8+RPPS(11) or 0+ADELI(9)")
        if self.ciba not in ("approve", "deny"):
            raise ConfigError(f"ciba must be 'approve' or 'deny', not {self.ciba!r}")
        if not self.given_name or not self.family_name:
            raise ConfigError("a professional needs a given_name and a family_name")


@dataclass(frozen=True, kw_only=True)
class Structure:
    """A health structure (establishment, practice, lab) that owns ORG and APP BALs.

    Attributes:
        national_id: IdNat_Struct, the certificate's OU (type digit + FINESS/SIRET/...).
        name: raison sociale, the certificate's O (truncated to 64 characters there).
        departement: department label as IGC Santé writes it in ST, e.g. ``Paris (75)``.
    """

    national_id: str
    name: str
    departement: str = "Paris (75)"

    def __post_init__(self) -> None:
        if not _STRUCTURE_ID.match(self.national_id):
            raise ConfigError(f"structure national_id {self.national_id!r} is not an IdNat_Struct")


@dataclass(frozen=True, kw_only=True)
class BALConfig:
    """A mailbox of the sandbox operator.

    PER: one holder, its owner. ORG: one or more holders. APP: no holder; reached with an
    ORG AUTH_CLI certificate of ``structure_id``.
    """

    address: str
    kind: BALKind
    holders: tuple[str, ...] = ()
    structure_id: str | None = None

    def __post_init__(self) -> None:
        if not _ADDRESS.match(self.address):
            raise ConfigError(f"BAL address {self.address!r} is not a mail address")
        if self.kind not in ("PER", "ORG", "APP"):
            raise ConfigError(f"BAL kind must be PER, ORG or APP, not {self.kind!r}")
        if self.kind == "PER" and len(self.holders) != 1:
            raise ConfigError(f"PER BAL {self.address} needs exactly one holder")
        if self.kind == "ORG" and not self.holders:
            raise ConfigError(f"ORG BAL {self.address} needs at least one holder")
        if self.kind in ("ORG", "APP") and not self.structure_id:
            raise ConfigError(f"{self.kind} BAL {self.address} needs a structure_id")
        if self.kind == "APP" and self.holders:
            raise ConfigError(f"APP BAL {self.address} has no holders (it uses a certificate)")


@dataclass(frozen=True, kw_only=True)
class PSCClientConfig:
    """A relying party registered at the mock PSC."""

    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...] = ()
    post_logout_redirect_uris: tuple[str, ...] = ()
    backchannel_logout_uri: str | None = None
    ciba: bool = True


@dataclass(frozen=True, kw_only=True)
class Lifetimes:
    """Lifetimes in seconds. Defaults are PSC's (psc-igc.md §1.5); tests use a few seconds."""

    access_token: float = 120.0
    refresh_token: float = 1800.0
    sso_max: float = 4 * 3600.0
    sso_idle: float = 1800.0
    auth_code: float = 60.0
    ciba_request: float = 120.0
    ciba_interval: float = 1.0
    ciba_approve_delay: float = 2.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"lifetime {f.name} must be a number of seconds >= 0")


@dataclass(frozen=True, kw_only=True)
class Ports:
    """Listening ports on ``host``; 0 picks a free port."""

    dns: int = 0
    http: int = 0
    imap_psc: int = 0
    imap_authcli: int = 0
    smtp_psc: int = 0
    smtp_authcli: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or not 0 <= value <= 65535:
                raise ConfigError(f"port {f.name} must be an integer in 0..65535")


@dataclass(frozen=True, kw_only=True)
class SubmissionSettings:
    """The ``[submission]`` table: behaviour of both SMTP submission fronts."""

    #: Advertise PIPELINING (RFC 2920) after STARTTLS, as Postfix operators do.
    pipelining: bool = True
    #: Advertise CHUNKING (RFC 3030, ``BDAT``) after STARTTLS, as Postfix does since 3.4 (MailKit
    #: then sends with BDAT); false keeps clients on the DATA path.
    chunking: bool = True
    #: Language of the delivery status notifications' subject and text (RFC 3464 §2: the
    #: machine-readable part never changes): "fr" (default, what French operators send) or "en".
    report_lang: Lang = "fr"

    def __post_init__(self) -> None:
        for name in ("pipelining", "chunking"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"submission.{name} must be true or false")
        if self.report_lang not in LANGS:
            raise ConfigError(f"submission.report_lang must be one of {', '.join(LANGS)}")


@dataclass(frozen=True, kw_only=True)
class SandboxConfig:
    """The whole sandbox configuration."""

    domain: str = "mss.sandbox.test"
    host: str = "127.0.0.1"
    professionals: tuple[Professional, ...] = ()
    structures: tuple[Structure, ...] = ()
    bals: tuple[BALConfig, ...] = ()
    clients: tuple[PSCClientConfig, ...] = ()
    lifetimes: Lifetimes = field(default_factory=Lifetimes)
    ports: Ports = field(default_factory=Ports)
    submission: SubmissionSettings = field(default_factory=SubmissionSettings)
    #: How the fronts check PSC tokens: "local" (signature against the JWKS, as Dovecot's local
    #: validation) or "introspection" (RFC 7662 over HTTP). Which one real operators use is not
    #: published (ref2-requirements.md §7): both are offered; local is the default.
    token_check: Literal["local", "introspection"] = "local"  # noqa: S105 - a mode name
    #: Addresses answered by the XDM auto-responder (ANS webinar's "répondeur automatique"):
    #: address -> document kind ("vsm" or "crbio"). Each must also be listed as an APP BAL.
    responders: tuple[tuple[str, str], ...] = ()
    #: Octets allowed on an SMTP ``AUTH`` command line, CRLF included (RFC 4954 §4 keeps the
    #: 512-octet command line of RFC 5321 §4.5.3.1.4; Dovecot submission enforces it). A PSC
    #: token sent as the initial response exceeds it: send it after ``334``. 0: no limit.
    smtp_auth_line_limit: int = 512

    def __post_init__(self) -> None:
        if self.token_check not in ("local", "introspection"):
            raise ConfigError("token_check must be 'local' or 'introspection'")
        if self.smtp_auth_line_limit != 0 and not 16 <= self.smtp_auth_line_limit <= 65536:
            raise ConfigError("smtp_auth_line_limit must be 0 (no limit) or between 16 and 65536 octets")
        for address, kind in self.responders:
            if kind not in ("vsm", "crbio"):
                raise ConfigError(f"responder {address}: kind must be 'vsm' or 'crbio', not {kind!r}")
            if self.bal(address) is None:
                raise ConfigError(f"responder {address} must also be configured as a BAL")
        ids = {p.national_id for p in self.professionals}
        structures = {s.national_id for s in self.structures}
        seen: set[str] = set()
        for bal in self.bals:
            if bal.address.lower() in seen:
                raise ConfigError(f"BAL {bal.address} is listed twice")
            seen.add(bal.address.lower())
            for holder in bal.holders:
                if holder not in ids:
                    raise ConfigError(f"BAL {bal.address}: holder {holder} is not a configured professional")
            if bal.structure_id is not None and bal.structure_id not in structures:
                raise ConfigError(f"BAL {bal.address}: structure {bal.structure_id} is not configured")

    def host_name(self, protocol: Literal["imap", "smtp"], front: Literal["psc", "authcli"]) -> str:
        """Return the DNS name of a front, e.g. ``imap.psc.mss.sandbox.test``."""
        return f"{protocol}.{front}.{self.domain}"

    @property
    def server_names(self) -> tuple[str, ...]:
        """Every DNS name a sandbox server certificate must cover."""
        names = [self.host_name(p, f) for p in ("imap", "smtp") for f in ("psc", "authcli")]
        return (self.domain, *names)

    def professional(self, national_id: str) -> Professional | None:
        """Return the professional with this national id, or None."""
        return next((p for p in self.professionals if p.national_id == national_id), None)

    def structure(self, national_id: str) -> Structure | None:
        """Return the structure with this national id, or None."""
        return next((s for s in self.structures if s.national_id == national_id), None)

    def bal(self, address: str) -> BALConfig | None:
        """Return the BAL with this address (case-insensitive), or None."""
        return next((b for b in self.bals if b.address.lower() == address.lower()), None)

    def client(self, client_id: str) -> PSCClientConfig | None:
        """Return the registered PSC client with this id, or None."""
        return next((c for c in self.clients if c.client_id == client_id), None)


def default_config(domain: str = "mss.sandbox.test") -> SandboxConfig:
    """Return the configuration used when no file is given.

    Three professionals (the third is refused by CIBA), three structures, a PER, an ORG and
    two APP BALs, plus the XDM auto-responder's APP BALs ``vsm@`` and ``crbio-xdm@``; one
    registered PSC client (``mssante-sandbox``) for the bridge and the
    webmail, whose secret is fixed because it only protects a loopback test service.
    """
    pros = (
        Professional(national_id="899700000001", given_name="Marie", family_name="CURIE"),
        Professional(
            national_id="899700000002", given_name="Louis", family_name="PASTEUR",
            profession_code="21", specialty_code="",
        ),
        Professional(national_id="899700000003", given_name="Claude", family_name="BERNARD", ciba="deny"),
    )
    structures = (
        Structure(national_id="1750000001", name="CENTRE HOSPITALIER DE TEST", departement="Paris (75)"),
        Structure(national_id="318751275100020", name="LABORATOIRE DE BIOLOGIE TEST", departement="Côte-d'Or (21)"),
        Structure(national_id="1999999990", name="REPONDEUR AUTOMATIQUE SANDBOX", departement="Paris (75)"),
    )
    bals = (
        BALConfig(address=f"marie.curie@{domain}", kind="PER", holders=("899700000001",)),
        BALConfig(
            address=f"secretariat.cardio@{domain}", kind="ORG",
            holders=("899700000001", "899700000002"), structure_id="1750000001",
        ),
        BALConfig(address=f"dpi.hopital@{domain}", kind="APP", structure_id="1750000001"),
        BALConfig(address=f"sil.labo@{domain}", kind="APP", structure_id="318751275100020"),
        BALConfig(address=f"vsm@{domain}", kind="APP", structure_id="1999999990"),
        BALConfig(address=f"crbio-xdm@{domain}", kind="APP", structure_id="1999999990"),
    )
    client = PSCClientConfig(
        client_id="mssante-sandbox",
        client_secret="sandbox-secret-not-for-production",  # noqa: S106 - public test credential
        redirect_uris=("http://127.0.0.1/callback",),
    )
    responders = ((f"vsm@{domain}", "vsm"), (f"crbio-xdm@{domain}", "crbio"))
    return SandboxConfig(
        domain=domain, professionals=pros, structures=structures, bals=bals, clients=(client,), responders=responders
    )


def _build(cls: type[Any], data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a table")
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def load_config(path: Path | None) -> SandboxConfig:
    """Read a TOML configuration; missing sections keep their defaults.

    Top-level keys: ``domain``, ``host``; tables ``lifetimes``, ``ports`` and ``submission``;
    arrays of tables ``professionals``, ``structures``, ``bals`` and ``clients``. Listing one of
    the arrays replaces the default list of that kind.

    Raises:
        ConfigError: the file cannot be read, is not TOML, or describes an invalid sandbox.
    """
    if path is None:
        return default_config()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    base = default_config(str(data.get("domain", "mss.sandbox.test")))
    changes: dict[str, Any] = {}
    for key in ("domain", "host", "token_check"):
        if key in data:
            changes[key] = str(data.pop(key))
    if "smtp_auth_line_limit" in data:
        limit = data.pop("smtp_auth_line_limit")
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise ConfigError(f"{path}: smtp_auth_line_limit must be an integer (0: no limit)")
        changes["smtp_auth_line_limit"] = limit
    if "responders" in data:
        table = data.pop("responders")
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: responders must be a table of address = \"vsm\" | \"crbio\"")
        changes["responders"] = tuple((str(k), str(v)) for k, v in table.items())
    list_kinds: dict[str, type[Any]] = {
        "professionals": Professional, "structures": Structure, "bals": BALConfig, "clients": PSCClientConfig,
    }
    for key, cls in list_kinds.items():
        if key in data:
            items = data.pop(key)
            if not isinstance(items, list):
                raise ConfigError(f"{path}: {key} must be an array of tables")
            changes[key] = tuple(_build(cls, item, f"{path}: {key}[{i}]") for i, item in enumerate(items))
    for key, cls in (("lifetimes", Lifetimes), ("ports", Ports), ("submission", SubmissionSettings)):
        if key in data:
            changes[key] = _build(cls, data.pop(key), f"{path}: {key}")
    if data:
        raise ConfigError(f"{path}: unknown keys {sorted(data)}")
    if "bals" in changes and "responders" not in changes:
        # The default responders only stay when their BALs are still configured.
        kept = {b.address.lower() for b in changes["bals"]}
        changes["responders"] = tuple(r for r in base.responders if r[0].lower() in kept)
    return replace(base, **changes)
