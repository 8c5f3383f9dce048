"""Server certificates an LPS must refuse (Ref #2 ECO.1.1.5, 1.1.6, 1.1.10; RFC 6125).

Five kinds, each with one defect only (the other names, profile and chain are those of the
real sandbox server certificate):

* ``expired``: issued by the ORG CA, validity ended yesterday (ECO.1.1.5);
* ``foreign``: same names, issued by a self-signed CA that is in no bundle (ECO.1.1.10);
* ``wrong-host``: issued by the ORG CA, valid, but for other host names only (RFC 6125 §6);
* ``revoked``: issued by the ORG CA, valid, revoked for keyCompromise and in the ORG CRL (ECO.1.1.6);
* ``impostor``: issued by a chain from another root that **reuses IGC Santé's names**: a root
  and an ORGANISATIONS CA with exactly the subject DNs of the sandbox's (so of IGC Santé's
  layout), but their own keys. Only a client that trusts by key (the IGC Santé roots are the
  only trust anchors, ECO.1.1.10) refuses it; one that checks the issuer's *name* accepts it.
  The chain served is the leaf and the impostor ORGANISATIONS CA, as the real one.

Files: ``server/bad/<kind>.pem`` (leaf + issuing CA) and ``<kind>.key``; the index kind is
``bad_server_<kind>`` with the server names it was made for, so that a restart reuses them.
Callers hold the state lock and save the index.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, get_args

from cryptography import x509

from mssante.errors import UsageError
from mssante.sandbox.pki import _build, _crl, _issue, _store, names

__all__ = ["BAD_SERVER_KINDS", "BadServerKind", "ensure_bad_server"]

BadServerKind = Literal["expired", "foreign", "wrong-host", "revoked", "impostor"]
BAD_SERVER_KINDS: tuple[BadServerKind, ...] = get_args(BadServerKind)

_WRONG_NAMES = ("wrong-host.invalid", "autre-operateur.invalid")
_SKEW = timedelta(minutes=5)


def _usable(entry: dict[str, Any], server_names: list[str], state_dir: Path, now: datetime) -> bool:
    if entry.get("server_names") != server_names or not (state_dir / entry["cert"]).exists():
        return False
    return entry["kind"] == "bad_server_expired" or datetime.fromisoformat(entry["not_after"]) > now + timedelta(days=1)


def ensure_bad_server(
    issuer: _issue.Issuer, index: dict[str, Any], kind: BadServerKind, server_names: list[str], now: datetime
) -> tuple[Path, Path, str, bool]:
    """Issue (once) the bad server certificate ``kind``; return ``(chain, key, serial, new_revocation)``.

    ``new_revocation`` is True when a ``revoked`` certificate was just marked revoked in the
    index: the caller then re-issues the ORG CRL.

    Raises:
        UsageError: unknown ``kind``.
        ConfigError: a file cannot be written.
    """
    if kind not in BAD_SERVER_KINDS:
        raise UsageError(f"bad server certificate must be one of {', '.join(BAD_SERVER_KINDS)}")
    index_kind = f"bad_server_{kind}"
    for serial, entry in reversed(list(index["certs"].items())):
        if entry["kind"] == index_kind and _usable(entry, server_names, issuer.state_dir, now):
            return issuer.state_dir / entry["cert"], issuer.state_dir / entry["key"], serial, False
    dns = list(_WRONG_NAMES) if kind == "wrong-host" else server_names
    ips = () if kind == "wrong-host" else ("127.0.0.1",)
    if kind == "expired":
        start, end = _build.add_years(now, -1), now - timedelta(days=1)
    else:
        start, end = now - _SKEW, now + timedelta(days=397)
    spec = _build.LeafSpec(profile="server", subject=_build.server_subject(dns[0]), not_before=start, not_after=end,
                           dns_names=dns, ip_addresses=ips)
    key = _build.new_key()
    if kind == "foreign":
        ca_key = _build.new_key()
        ca = _build.build_ca(subject=names.FOREIGN_CA_NAME, key=ca_key, issuer=None, now=now, base_url=None)
        cert = _build.build_leaf(spec, key.public_key(), issuer_cert=ca, issuer_key=ca_key, issuer_file=None,
                                 base_url=None)
    elif kind == "impostor":  # the names of the sandbox's IGC Santé chain, other keys (2048 bits: names matter)
        root_key, ca_key = _build.new_key(), _build.new_key()
        root = _build.build_ca(subject=names.ROOT_NAME, key=root_key, issuer=None, now=now, base_url=None)
        ca = _build.build_ca(subject=issuer.org_cert.subject, key=ca_key, issuer=(root, root_key), now=now,
                             base_url=None)
        cert = _build.build_leaf(spec, key.public_key(), issuer_cert=ca, issuer_key=ca_key, issuer_file=None,
                                 base_url=None)
    else:
        ca = issuer.org_cert
        cert = issuer.sign(spec, key)
    rel = Path("server") / "bad" / kind
    cert_path, key_path = rel.with_suffix(".pem"), rel.with_suffix(".key")
    _store.write_private(issuer.state_dir / key_path, _store.key_pem(key))
    _store.write_private(issuer.state_dir / cert_path, _crl.pem(cert) + _crl.pem(ca))
    serial = _issue.add(index, cert, kind=index_kind, issuer=kind if kind in ("foreign", "impostor") else "org",
                        cert_path=cert_path, key_path=key_path)
    entry = index["certs"][serial]
    entry["server_names"] = list(server_names)
    revoked = False
    if kind == "revoked":
        entry["revoked"] = {"at": now.isoformat(), "reason": x509.ReasonFlags.key_compromise.value}
        revoked = True
    return issuer.state_dir / cert_path, issuer.state_dir / key_path, serial, revoked
