"""Every command's help reads well: no reST artefacts, no type placeholders, a description on every option, and
``-h`` as well as ``--help``; ``--version`` answers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import typer
from typer.testing import CliRunner

from guildgate import __version__
from guildgate.cli.main import app
from tests.conftest import base_env, cli

ENV = {"COLUMNS": "200", "NO_COLOR": "1"}
# what a help text must not show: reST literals, Typer's and Click's type placeholders, a required argument in
# braces, Rich's panels
ARTEFACTS = [
    r"``",
    r"<(?:bool|str|int|float|path|list\[[^\]]*\]|int range|float range|[a-z_]+)>",
    r"\{[A-Za-z_]+\}",
    r"\b(?:TEXT|INTEGER|BOOLEAN|FLOAT|PATH|FILENAME|RANGE)\b",
    r"[╭│╰]",
]


def commands() -> Iterator[list[str]]:
    def walk(command: object, path: list[str]) -> Iterator[list[str]]:
        yield path
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            yield from walk(sub, [*path, name])

    yield from walk(typer.main.get_command(app), [])


def option_rows(text: str) -> Iterator[tuple[str, str]]:
    """(the option's names, its description) for each row of the Options and Arguments sections."""
    section = None
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if not line.startswith(" "):
            section = line.rstrip(":") if line.endswith(":") else None
            continue
        if section not in ("Options", "Arguments") or not re.match(r"^  \S", line):
            continue
        names, _, description = line.strip().partition("  ")
        if not description.strip() and i + 1 < len(lines) and re.match(r"^ {6,}\S", lines[i + 1]):
            description = lines[i + 1].strip()  # a long name: its description starts on the next line
        yield names, description.strip()


def test_every_commands_help_is_free_of_artefacts_and_describes_every_option() -> None:
    runner = CliRunner()
    walked = list(commands())
    assert len(walked) >= 20, walked  # the root, the commands and the groups' commands
    for path in walked:
        for flag in ("--help", "-h"):
            result = runner.invoke(app, [*path, flag], env=ENV, prog_name="guildgate")
            shown = " ".join(["guildgate", *path, flag])
            assert result.exit_code == 0, (shown, result.output)
            assert result.output.startswith("Usage: guildgate"), (shown, result.output)
            for pattern in ARTEFACTS:
                found = re.search(pattern, result.output)
                assert found is None, (shown, found and found.group(), result.output)
            rows = list(option_rows(result.output))
            assert any(names.startswith("-h, --help") for names, _ in rows), (shown, result.output)
            for names, description in rows:
                assert description, (shown, names, result.output)


def test_version_and_short_help_from_the_installed_command(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    assert cli(["--version"], env=env).stdout.strip() == f"guildgate {__version__}"
    short = cli(["keys", "revoke", "-h"], env=env).stdout
    assert short == cli(["keys", "revoke", "--help"], env=env).stdout
    assert "Usage: guildgate keys revoke [OPTIONS] KEY_ID_OR_KEY" in short
