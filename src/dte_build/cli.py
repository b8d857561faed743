"""The `dte` command line: a thin shell over the library. Each command lives in `commands/`."""

from __future__ import annotations

import importlib
import sys

import click

from . import __version__
from .console import err
from .errors import DteError


# name -> (module under dte_build.commands, attribute). Modules are imported only when their command runs (or
# `--help` lists them), so `dte flash` does not pay for numpy, llvmlite or the toolchain at start-up.
COMMANDS: dict[str, tuple[str, str]] = {
    "boards": ("boards_cmd", "boards"),
    "build": ("build_cmd", "build"),
    "inspect": ("inspect_cmd", "inspect"),
    "run": ("run_cmd", "run"),
    "flash": ("flash_cmd", "flash_command"),
    "verify": ("flash_cmd", "verify_command"),
    "generate": ("generate_cmd", "generate"),
    "tokenize": ("tokenize_cmd", "tokenize"),
    "keygen": ("net_cmd", "keygen"),
    "chat": ("chat_cmd", "chat"),
    "serve": ("serve_cmd", "serve"),
    "remote": ("net_cmd", "remote"),
    "attest": ("attest_cmd", "attest"),
    "kernels": ("kernels_cmd", "kernels"),
    "fetch": ("fetch_cmd", "fetch"),
}


class _Group(click.Group):
    """Loads commands lazily and turns DteError into one line on stderr and a non-zero exit, never a traceback."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attr = COMMANDS[cmd_name]
        return getattr(importlib.import_module(f".commands.{module}", __package__), attr)

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except DteError as exc:
            err.print(f"error: {exc}", style="bold red", markup=False, soft_wrap=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            err.print("error: interrupted", style="bold red")
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="dte")
def main() -> None:
    """dte: turn an x86-64 server into an LLM appliance with no operating system.

    \b
    Typical flow:
      dte boards                          list the machines dte can target
      dte build --board qemu-q35          compile firmware + pack dte_boot.img
      dte run dte_boot.img                boot it in QEMU and watch it generate
      dte flash dte_boot.img /dev/nvme0n1 write it to a drive and read it back
    """


if __name__ == "__main__":
    main()
