"""The `dte` entry point: every registered command loads, and user errors are one line with no traceback."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from dte_build.cli import COMMANDS, main
from dte_build.commands.options import VOCABULARY


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_loads_and_has_help(name: str) -> None:
    result = CliRunner().invoke(main, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert f"  {name} " in result.output


def test_user_error_is_one_line_without_traceback() -> None:
    proc = subprocess.run([sys.executable, "-m", "dte_build.cli", "boards", "show", "no-such-board"],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: unknown board 'no-such-board'"), proc.stderr
    assert "Traceback" not in proc.stderr


def _all_commands() -> list[tuple[str, click.Command]]:
    """Every command and subcommand, by its full name ("kernels list")."""
    found: list[tuple[str, click.Command]] = []
    ctx = click.Context(main)

    def walk(prefix: str, command: click.Command) -> None:
        found.append((prefix, command))
        if isinstance(command, click.Group):
            for sub in command.list_commands(ctx):
                walk(f"{prefix} {sub}", command.get_command(ctx, sub))

    for name in COMMANDS:
        walk(name, main.get_command(ctx, name))
    return found


@pytest.mark.parametrize("name", [name for name, _ in _all_commands()])
def test_every_subcommand_has_help(name: str) -> None:
    result = CliRunner().invoke(main, [*name.split(), "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output, result.output


def test_one_option_vocabulary() -> None:
    """An option of the shared vocabulary (commands/options.py) has the same flags and the same default in every
    command: -m is the model everywhere, --temp defaults to the one value in dte_build.defaults, and so on."""
    wrong: list[str] = []
    for name, command in _all_commands():
        for param in command.params:
            if not isinstance(param, click.Option) or param.name not in VOCABULARY:
                continue
            flags, default = VOCABULARY[param.name]
            if tuple(param.opts) != flags:
                wrong.append(f"{name}: {param.name} spelled {param.opts}, not {flags}")
            per_command = param.name in ("prompt", "output", "model") or param.required
            actual = param.get_default(click.Context(command))
            if not per_command and actual != default:
                wrong.append(f"{name}: {param.name} defaults to {actual!r}, not {default!r}")
        short = [opt for p in command.params if isinstance(p, click.Option) for opt in p.opts
                 if len(opt) == 2 and opt != "-h"]
        meaning = {flags[0]: n for n, (flags, _) in VOCABULARY.items() if len(flags[0]) == 2}
        for p in command.params:
            for opt in getattr(p, "opts", []):
                if opt in meaning and p.name != meaning[opt]:
                    wrong.append(f"{name}: {opt} means {p.name} here, {meaning[opt]} elsewhere")
        assert len(short) == len(set(short)), name
    assert wrong == []


def test_version_short_flag() -> None:
    result = CliRunner().invoke(main, ["-V"])
    assert result.exit_code == 0 and result.output.startswith("dte, version ")
