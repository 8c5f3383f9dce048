"""Sandbox configuration: defaults, TOML loading and validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from mssante.errors import ConfigError
from mssante.sandbox.config import BALConfig, Professional, default_config, load_config


def test_default_config_has_per_org_app() -> None:
    cfg = default_config()
    kinds = {b.kind for b in cfg.bals}
    assert kinds == {"PER", "ORG", "APP"}
    assert any(p.ciba == "deny" for p in cfg.professionals)
    for bal in cfg.bals:
        assert bal.address.endswith("@" + cfg.domain)
    assert cfg.host_name("imap", "psc") == f"imap.psc.{cfg.domain}"
    assert f"smtp.authcli.{cfg.domain}" in cfg.server_names


def test_load_toml_overrides(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.toml"
    path.write_text(
        """
domain = "example.test"
[lifetimes]
access_token = 5
[ports]
dns = 10053
[[professionals]]
national_id = "899700000042"
given_name = "Ada"
family_name = "LOVELACE"
[[bals]]
address = "ada@example.test"
kind = "PER"
holders = ["899700000042"]
""",
        encoding="utf-8",
    )
    cfg = load_config(path)
    assert cfg.domain == "example.test"
    assert cfg.lifetimes.access_token == 5
    assert cfg.lifetimes.refresh_token == 1800
    assert cfg.ports.dns == 10053
    assert [b.address for b in cfg.bals] == ["ada@example.test"]


@pytest.mark.parametrize(
    "text",
    [
        "nonsense = 1",
        "[ports]\ndns = 70000",
        "[lifetimes]\naccess_token = -1",
        '[[bals]]\naddress = "x@mss.sandbox.test"\nkind = "PER"\nholders = ["899799999999"]',
        '[[professionals]]\nnational_id = "123"\ngiven_name = "A"\nfamily_name = "B"',
        "not toml at all [",
    ],
)
def test_invalid_config_is_a_config_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError):
        load_config(path)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml")


def test_bal_rules() -> None:
    with pytest.raises(ConfigError):
        BALConfig(address="a@b.test", kind="APP", holders=("899700000001",), structure_id="1750000001")
    with pytest.raises(ConfigError):
        BALConfig(address="not-an-address", kind="PER", holders=("899700000001",))
    with pytest.raises(ConfigError):
        Professional(national_id="899700000001", given_name="A", family_name="B", ciba="maybe")  # type: ignore[arg-type]
