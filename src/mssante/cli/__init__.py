"""The ``mssante`` command line.

Sub-commands live in private modules and are imported lazily, so ``mssante --help`` stays fast
and the server extras are only needed by the commands that use them.

Errors from :mod:`mssante.errors` become a one-line message on stderr and the exit code of their
family; a user error never prints a traceback.

Messages are in French or English (:mod:`mssante._i18n`): ``--lang``, else the locale
(``LC_ALL``, ``LC_MESSAGES``, ``LANG``); French when the locale names no language.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from mssante._i18n import N_, choose, current, parse_lang
from mssante._i18n import gettext as _
from mssante._version import __version__
from mssante.errors import MssanteError

__all__ = ["EXIT_CODES", "cli", "exit_codes_epilog", "main"]

#: The exit codes of every command (shown at the end of each ``--help``, in the language in use; the
#: guides carry the same table). The texts are catalogue ids.
EXIT_CODES: tuple[tuple[int, str], ...] = (
    (0, N_("success")),
    (1, N_("failure, or findings of error level")),
    (2, N_("usage or configuration")),
    (3, N_("network or discovery (DNS SRV)")),
    (4, N_("trust (TLS, certificate)")),
    (5, N_("authentication or PSC")),
    (6, N_("protocol, or command refused by the server")),
    (7, N_("invalid content or limit exceeded")),
    (130, N_("interrupted (Ctrl-C)")),
)
#: The attribute where a command keeps a table of its own (``xdm validate``), catalogue ids too.
EXIT_CODES_ATTR = "mssante_exit_codes"


def exit_codes_epilog(table: tuple[tuple[int, str], ...] = EXIT_CODES) -> str:
    """The exit-code table as a help epilog, in the language in use (``\\b``: click keeps its lines)."""
    t = current()
    rows = "".join(f"  {code:<4} {t.gettext(text)}\n" for code, text in table)
    return "\b\n" + t.gettext("Exit codes:") + "\n" + rows


def _with_exit_codes(command: click.Command) -> click.Command:
    """Give ``command`` and each of its sub-commands its exit-code table as epilog, in the language in use.

    Done each time the command is looked up (after ``--lang``); an epilog of the command's own
    making is left alone.
    """
    table = getattr(command, EXIT_CODES_ATTR, None)
    if not command.epilog or table is not None or getattr(command, "_mssante_epilog", False):
        command.epilog = exit_codes_epilog(table or EXIT_CODES)
        command._mssante_epilog = True  # type: ignore[attr-defined]  # ours: redone in the next language
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _with_exit_codes(sub)
    return command

#: command name -> ("module:attribute", short help); a module is imported only when its command runs.
_COMMANDS: dict[str, tuple[str, str]] = {
    "annuaire": ("mssante.cli._annuaire:annuaire", "Search the Annuaire Santé (FHIR) for MSSanté addresses."),
    "bridge": ("mssante.cli._bridge:bridge", "Run the PSC intermediate server for thick clients."),
    "conformance": ("mssante.cli._conformance:conformance", "Run the conformance suite (the local MOTCO2) on an LPS."),
    "discover": ("mssante.cli._client:discover_command", "Find a BAL's API LPS servers by DNS SRV (priority 10/20)."),
    "fetch": ("mssante.cli._client:fetch", "Fetch messages of a BAL (IMAP)."),
    "fleet": ("mssante.cli._fleet:fleet", "Watch many BALs with worker processes coordinated through Redis."),
    "send": ("mssante.cli._client:send", "Send a message from a BAL (SMTP submission)."),
    "watch": ("mssante.cli._client:watch", "Watch a BAL for new messages (IDLE, or polling)."),
    "demo": ("mssante.cli._demo:demo", "Start the sandbox and run the end-to-end demo (PER via the bridge, APP)."),
    "check": ("mssante.cli._check:check", "Check an MSSanté message (.eml) against Référentiel #2."),
    "sandbox": ("mssante.cli._sandbox:sandbox", "Run the sandbox operator (PSC, DNS, PKI, IMAP/SMTP fronts)."),
    "xdm": ("mssante.cli._xdm:xdm", "Build, inspect and validate IHE_XDM.ZIP archives of CDA documents."),
}


class _LazyGroup(click.Group):
    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        if parent is None:  # each run starts from the locale's language; --lang (if given) then chooses
            choose(None)
        return super().make_context(info_name, args, parent, **extra)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = _COMMANDS.get(cmd_name)
        if entry is None:
            return super().get_command(ctx, cmd_name)
        module_name, attr = entry[0].split(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            missing = exc.name or "a dependency"
            raise click.ClickException(
                _("'{command}' needs {module}; install the extra: pip install 'mssante[sandbox,bridge]'").format(
                    command=cmd_name, module=missing)
            ) from exc
        command = getattr(module, attr)
        assert isinstance(command, click.Command)
        return _with_exit_codes(command)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self.epilog = exit_codes_epilog()  # the root's table, in the language --lang chose
        super().format_epilog(ctx, formatter)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Help lists the lazy commands from the registry, without importing them.
        rows = [(name, entry[1]) for name, entry in sorted(_COMMANDS.items())]
        rows += [
            (name, cmd.get_short_help_str())
            for name, cmd in sorted(self.commands.items())
            if not cmd.hidden and name not in _COMMANDS
        ]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _choose_lang(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    choose(parse_lang(value))  # None (no --lang): the locale's, also after an earlier run in this process
    from mssante.cli._progress import reset

    reset()


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mssante")
@click.option("--lang", type=click.Choice(["fr", "en"]), expose_value=False, is_eager=True, callback=_choose_lang,
              help="Langue des messages (par défaut : celle de LC_ALL, LC_MESSAGES ou LANG ; français sinon).")
def cli() -> None:
    """mssante: the MSSanté API LPS toolkit (client, sandbox operator, PSC bridge, conformance)."""


def _describe(exc: MssanteError) -> str:
    """The message and the server's codes on one line; the rule it enforces on a second line."""
    codes = [str(c) for c in (exc.imap_code, exc.smtp_code, exc.enhanced_code) if c is not None]
    text = exc.message + (f" ({' '.join(codes)})" if codes else "")
    return text + (f"\n  [{exc.requirement}]" if exc.requirement else "")


def main(argv: list[str] | None = None) -> None:
    """Run the CLI and exit with the code of the outcome.

    Exit codes (:data:`EXIT_CODES`, shown in every ``--help``): 0 success, 1 generic failure or
    error findings, 2 usage or configuration error, 3 network or discovery, 4 trust
    (TLS/certificate), 5 authentication or PSC, 6 protocol or refused command, 7 invalid content
    or limit, 130 interrupted.

    Raises:
        SystemExit: always, with the exit code above.
    """
    try:
        rv = cli.main(args=argv, prog_name="mssante", standalone_mode=False)
    except MssanteError as exc:
        click.echo(_("mssante: error: {message}").format(message=_describe(exc)), err=True)
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo(_("mssante: interrupted"), err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    sys.exit(rv if isinstance(rv, int) else 0)
