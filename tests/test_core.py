"""The error tree, the Secret type, the curated public API and the CLI's error mapping."""

from __future__ import annotations

import importlib
import logging
import pickle
import subprocess
import sys

import click
import pytest

import mssante
from mssante import errors
from mssante.cli import _COMMANDS, cli, main
from mssante.secret import Secret

TOKEN = "eyJhbGciOiJSUzI1NiJ9.payload.signature"


#: The lazy part of the curated API: what an LPS editor needs most, by the module that defines it.
LAZY_API = {
    "mssante.client": ("Mailbox", "SyncMailbox", "SessionSupervisor", "TrustSettings", "MailboxOptions"),
    "mssante.message": ("Draft", "Sender", "PdfCompanion", "compose_message", "parse_message", "check_message"),
    "mssante.xdm": ("build_archive", "read_archive", "validate_archive"),
    "mssante.discovery": ("discover",),
    "mssante.psc": ("PSCClient", "PSCSettings"),
    "mssante.credentials": ("StaticTokenSource", "CallbackTokenSource", "ClientCertificate"),
}


def test_public_api_is_curated() -> None:
    assert len(mssante.__all__) == len(set(mssante.__all__))
    public = {name for name in dir(mssante) if not name.startswith("_")}
    # Sub-packages imported by tests may appear as attributes; everything else must be in __all__,
    # the lazy names included before their first access.
    modules = {name for name in public if isinstance(getattr(mssante, name), type(mssante))}
    assert public - modules == set(mssante.__all__) - {"__version__"}
    assert "__version__" in dir(mssante)
    for name in mssante.__all__:
        assert getattr(mssante, name) is not None
    namespace: dict[str, object] = {}
    exec("from mssante import *", namespace)
    assert set(mssante.__all__) <= set(namespace)
    with pytest.raises(AttributeError, match="no attribute 'Mailboxx'"):
        _ = mssante.Mailboxx  # type: ignore[attr-defined]


def test_public_api_lazy_names_come_from_their_modules() -> None:
    for module_name, names in LAZY_API.items():
        module = importlib.import_module(module_name)
        for name in names:
            assert name in mssante.__all__, name
            assert getattr(mssante, name) is getattr(module, name), name


def test_import_mssante_loads_no_network_stack() -> None:
    def run(script: str) -> str:
        return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                              check=True).stdout

    assert run("import mssante, sys; print('mssante.client' in sys.modules)") == "False\n"
    heavy = ("asyncio", "ssl", "socket", "httpx2", "cryptography", "mssante.psc", "mssante.message", "mssante.xdm",
             "mssante.discovery", "mssante.credentials")
    assert run(f"import mssante, sys; print(sorted(m for m in {heavy!r} if m in sys.modules))") == "[]\n"
    assert run("import mssante, sys; mssante.Mailbox; print('mssante.client' in sys.modules)") == "True\n"


def test_every_error_derives_from_root_and_says_whose_fault() -> None:
    classes = [getattr(errors, n) for n in errors.__all__ if n != "Fault"]
    for cls in classes:
        assert issubclass(cls, errors.MssanteError)
        assert cls.fault in ("caller", "config", "input", "peer", "network", "trust")
        assert cls.__doc__
    assert errors.TokenRejected("x").fault == "peer"
    assert errors.ConfigError("x").exit_code == 2
    assert errors.CertificateError("x").fault == "trust"


def test_protocol_error_is_abstract() -> None:
    with pytest.raises(TypeError):
        errors.ProtocolError("x")
    assert errors.RemoteProtocolError("bad line").fault == "peer"
    assert errors.LocalProtocolError("bad call").fault == "caller"


def test_error_carries_server_codes() -> None:
    exc = errors.TokenRejected("refused", imap_code="AUTHENTICATIONFAILED", requirement="ECO.1.2.4")
    assert exc.imap_code == "AUTHENTICATIONFAILED"
    assert "AUTHENTICATIONFAILED" in str(exc) and "ECO.1.2.4" in str(exc)
    smtp = errors.AuthUnavailable("later", smtp_code=454, enhanced_code="4.7.0")
    assert "454 4.7.0" in str(smtp)
    psc = errors.PSCError("no", oauth_error="invalid_grant")
    assert psc.oauth_error == "invalid_grant"


def test_secret_never_shows(caplog: pytest.LogCaptureFixture) -> None:
    secret = Secret(TOKEN)
    assert TOKEN not in repr(secret)
    assert TOKEN not in str(secret)
    assert TOKEN not in f"{secret} {secret!r} {[secret]} {dict(t=secret)}"
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("t").info("token %s %r", secret, secret)
    assert TOKEN not in caplog.text
    assert secret.reveal() == TOKEN
    assert secret == Secret(TOKEN) and secret != Secret("other")
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    with pytest.raises(TypeError):
        Secret(b"bytes")  # type: ignore[arg-type]


def test_cli_version_and_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mssante", "--version"], capture_output=True, text=True, check=True
    )
    assert mssante.__version__ in out.stdout
    out = subprocess.run([sys.executable, "-m", "mssante", "--help"], capture_output=True, text=True, check=True)
    for name in _COMMANDS:
        assert name in out.stdout


def test_cli_maps_errors_to_exit_codes_without_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    @cli.command("_boom", hidden=True)
    def boom() -> None:
        raise errors.CertificateError("the operator's certificate expired", requirement="ECO.1.1.4")

    try:
        with pytest.raises(SystemExit) as exit_info:
            main(["_boom"])
    finally:
        cli.commands.pop("_boom")
    assert exit_info.value.code == errors.CertificateError.exit_code
    err = capsys.readouterr().err
    assert "certificate expired" in err and "Traceback" not in err


def test_cli_unknown_command_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["no-such-command"])
    assert exit_info.value.code == click.UsageError.exit_code
