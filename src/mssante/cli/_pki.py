"""``mssante sandbox pki``: inspect the sandbox test PKI, issue client certificates, revoke.

These commands work on the state directory of a sandbox, possibly while it runs: the PKI
serialises writers with a file lock and the sandbox reads the new CRL on its next check.
They never create a PKI (the sandbox does, on its first start).

``--state-dir`` takes either the sandbox state directory (``.sandbox``, as every other
``mssante sandbox`` command) or the PKI directory inside it (``.sandbox/pki``, holding
``index.json``).
"""

from __future__ import annotations

import string
from pathlib import Path

import click

from mssante.errors import ConfigError, UsageError
from mssante.sandbox.config import Structure, load_config
from mssante.sandbox.pki import TestPKI

__all__ = ["parse_serial", "pki", "resolve_pki_dir"]

_INDEX = "index.json"
_PKI_SUBDIR = "pki"


def resolve_pki_dir(state_dir: Path) -> Path:
    """Return the PKI directory for ``--state-dir``: STATE_DIR itself, or its ``pki`` sub-directory.

    STATE_DIR is used as is when it holds ``index.json``, or when neither it nor ``STATE_DIR/pki``
    does (then :meth:`TestPKI.load` reports the missing PKI on STATE_DIR). Otherwise, when
    ``STATE_DIR/pki/index.json`` exists, STATE_DIR is the sandbox state directory and its
    ``pki`` sub-directory is returned.

    Raises:
        Nothing: a missing PKI is reported by :meth:`TestPKI.load`.
    """
    if not (state_dir / _INDEX).exists() and (state_dir / _PKI_SUBDIR / _INDEX).exists():
        return state_dir / _PKI_SUBDIR
    return state_dir


def _resolve_option(_ctx: click.Context, _param: click.Parameter, value: Path) -> Path:
    return resolve_pki_dir(value)


_state_dir = click.option(
    "--state-dir", required=True, type=click.Path(path_type=Path, file_okay=False), callback=_resolve_option,
    help="Sandbox state directory (.sandbox), or its PKI directory (.sandbox/pki, holding index.json).",
)


def parse_serial(text: str) -> int:
    """Parse a serial number written in hex, as ``show`` and ``openssl x509 -serial`` print it.

    Accepts an optional ``0x`` prefix and ``:`` separators (``openssl x509 -text`` style).

    Raises:
        UsageError: not a hexadecimal number.
    """
    digits = text.strip().lower().removeprefix("0x").replace(":", "")
    if not digits or any(ch not in string.hexdigits for ch in digits):
        raise UsageError(f"--serial must be hexadecimal (as printed by 'show' or 'openssl x509 -serial'), not {text!r}")
    return int(digits, 16)


@click.group("pki")
def pki() -> None:
    """Manage the sandbox test PKI (IGC Santé TEST look-alike): show, issue, revoke.

    \f
    Raises:
        ConfigError, UsageError: from the sub-commands; ``mssante``'s main prints them on one line.
    """


@pki.command("show")
@_state_dir
def show(state_dir: Path) -> None:
    """List the CAs, CRLs and every issued certificate with its status.

    \f
    Raises:
        ConfigError: no PKI in STATE_DIR (nor in STATE_DIR/pki), or it is damaged.
    """
    p = TestPKI.load(state_dir)
    click.echo(f"state directory: {p.state_dir}")
    click.echo(f"root CA:         {p.root_cert.subject.rfc4514_string()}")
    click.echo(f"ORG CA:          {p.org_ca_cert.subject.rfc4514_string()}")
    click.echo(f"CA bundle:       {p.ca_bundle_path}")
    click.echo(f"server cert:     {p.server_cert_path}")
    for name in p.crl_names:
        if name.endswith(".crl"):
            click.echo(f"CRL:             {p.crl_url(name)}")
    click.echo("")
    click.echo(f"{'serial (hex)':<42} {'kind':<14} {'status':<30} subject")
    for rec in p.records():
        if rec.revoked_at is not None:
            status = f"revoked {rec.revoked_at:%Y-%m-%d}" + (f" {rec.reason}" if rec.reason else "")
        else:
            status = f"valid to {rec.not_after:%Y-%m-%d}"
        click.echo(f"{rec.serial:<42X} {rec.kind:<14} {status:<30} {rec.subject}")


@pki.command("issue")
@_state_dir
@click.option("--structure-id", required=True, help="IdNat_Struct of the structure (the certificate OU).")
@click.option("--cn", default="LPS SANDBOX", show_default=True, help="Certificate CN (software or service label).")
@click.option(
    "--config", "config_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
    help="Sandbox TOML configuration where the structure is declared (default: built-in configuration).",
)
@click.option("--name", default=None, help="Raison sociale (O), for a structure absent from the configuration.")
@click.option("--departement", default="Paris (75)", show_default=True, help="ST, with --name.")
def issue(
    state_dir: Path, structure_id: str, cn: str, config_path: Path | None, name: str | None, departement: str
) -> None:
    """Issue (or reuse) an ORG AUTH_CLI client certificate and print its paths.

    \f
    Raises:
        ConfigError: no PKI, unknown structure without --name, or an invalid CN or structure id.
    """
    structure = load_config(config_path).structure(structure_id)
    if structure is None:
        if name is None:
            raise ConfigError(
                f"structure {structure_id} is not in the sandbox configuration; pass --config or --name"
            )
        structure = Structure(national_id=structure_id, name=name, departement=departement)
    p = TestPKI.load(state_dir)
    cert = p.issue_client_cert(structure, cn)
    click.echo(f"certificate: {cert.cert_path}")
    click.echo(f"key:         {cert.key_path}")
    click.echo(f"ca bundle:   {p.ca_bundle_path}")
    click.echo(f"serial:      {cert.serial:X}")


@pki.command("revoke")
@_state_dir
@click.option("--serial", default=None, help="Serial number in hex (as printed by 'show').")
@click.option("--reason", default=None, help="CRL reason code, e.g. keyCompromise, superseded (RFC 5280 §5.3.1).")
@click.argument("cert", required=False, type=click.Path(path_type=Path, dir_okay=False))
def revoke(state_dir: Path, serial: str | None, reason: str | None, cert: Path | None) -> None:
    """Revoke a certificate by --serial or by its PEM file CERT, and re-issue the CRL.

    \f
    Raises:
        UsageError: neither or both of --serial and CERT, a bad serial or reason, or a
            certificate not issued by the sandbox CAs.
        ConfigError: no PKI in STATE_DIR (nor in STATE_DIR/pki), or CERT cannot be read.
    """
    target: int | Path
    if serial is not None and cert is None:
        target = parse_serial(serial)
    elif cert is not None and serial is None:
        target = cert
    else:
        raise UsageError("give exactly one of --serial N or CERT.pem")
    p = TestPKI.load(state_dir)
    outcome = p.revoke(target, reason=reason)
    if outcome.newly_revoked:
        click.echo(f"revoked serial {outcome.serial:X}; the issuing CA's CRL was re-issued")
    else:
        click.echo(f"serial {outcome.serial:X} was already revoked on {outcome.revoked_at:%Y-%m-%d %H:%M:%S}Z")
