"""Every command's ``--help`` lists the exit codes and shows no docstring section (issue 13, item 5)."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from mssante._i18n import translator
from mssante.cli import EXIT_CODES, cli


def _paths() -> list[tuple[str, ...]]:
    """Every command path of the click tree, the root included, sub-groups walked."""
    found: list[tuple[str, ...]] = [()]

    def walk(group: click.Group, prefix: tuple[str, ...]) -> None:
        ctx = click.Context(group)
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            assert command is not None, name
            if command.hidden:
                continue
            found.append((*prefix, name))
            if isinstance(command, click.Group):
                walk(command, (*prefix, name))

    walk(cli, ())
    return found


PATHS = _paths()
_SECTION = re.compile(r"^\s*(Raises|Returns|Args|Yields|Example|Examples|Note|Attributes):\s*$", re.M)


def test_the_tree_is_walked_deep() -> None:
    assert len(PATHS) > 30
    assert ("sandbox", "fault") in PATHS and ("xdm", "validate") in PATHS and ("check",) in PATHS


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "mssante")
def test_help_lists_exit_codes_and_no_docstring_section(path: tuple[str, ...]) -> None:
    res = CliRunner().invoke(cli, [*path, "--help"], terminal_width=100)
    assert res.exit_code == 0, res.output
    assert "Codes de sortie :" in res.output
    lines = [" ".join(line.split()) for line in res.output.splitlines()]
    table = EXIT_CODES if "réseau ou découverte" in res.output else [(c, t) for c, t in EXIT_CODES if c == 130]
    for code, text in table:  # the full table, or a command's own (which still says 130)
        assert f"{code} {translator('fr').gettext(text)}" in lines, (code, res.output)
    assert any(line.startswith("0 ") for line in lines) and any(line.startswith("2 ") for line in lines)
    assert not _SECTION.search(res.output), res.output
    assert "Raises" not in res.output and ":class:" not in res.output


@pytest.mark.parametrize(("page", "heading"), [("fr/index.md", "## Codes de sortie"), ("en/index.md", "## Exit codes")])
def test_the_guides_list_the_same_exit_codes(page: str, heading: str) -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / page).read_text(encoding="utf-8")
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    assert re.findall(r"^\| (\d+) \|", section, re.M) == [str(code) for code, _ in EXIT_CODES]


@pytest.mark.parametrize("path", [(), ("send",), ("sandbox", "fault"), ("xdm", "validate"), ("xdm", "inspect")],
                         ids=lambda p: " ".join(p) or "mssante")
def test_the_exit_codes_follow_lang(path: tuple[str, ...]) -> None:
    english = CliRunner().invoke(cli, ["--lang", "en", *path, "--help"], terminal_width=100)
    assert english.exit_code == 0, english.output
    assert "Exit codes:" in english.output and "130  interrupted (Ctrl-C)" in english.output
    assert "Codes de sortie" not in english.output and "interrompu" not in english.output
    french = CliRunner().invoke(cli, [*path, "--help"], terminal_width=100)  # the same process, back to French
    assert "Codes de sortie :" in french.output and "130  interrompu (Ctrl-C)" in french.output
