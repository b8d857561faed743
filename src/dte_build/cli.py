"""The `dte` command line: a thin shell over the library. Each command lives in `commands/`."""

from __future__ import annotations

import sys

import click

from . import __version__
from .commands import boards_cmd
from .commands import build_cmd, run_cmd
from .commands import flash_cmd
from .commands import net_cmd
from .commands import inspect_cmd
from .commands import generate_cmd
from .commands import kernels_cmd
from .commands import attest_cmd
from .console import err
from .errors import DteError


class _Group(click.Group):
    """Turns DteError into one line on stderr and a non-zero exit, never a traceback."""

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
@click.version_option(__version__, prog_name="dte")
def main() -> None:
    """dte: turn an x86-64 server into an LLM appliance with no operating system.

    \b
    Typical flow:
      dte boards                          list the machines dte can target
      dte build --board qemu-q35          compile firmware + pack dte_boot.img
      dte run dte_boot.img                boot it in QEMU and watch it generate
      dte flash dte_boot.img /dev/nvme0n1 write it to a drive and read it back
    """


main.add_command(boards_cmd.boards)
main.add_command(flash_cmd.flash_command)
main.add_command(flash_cmd.verify_command)
main.add_command(build_cmd.build)
main.add_command(run_cmd.run)
main.add_command(net_cmd.keygen)
main.add_command(net_cmd.chat)
main.add_command(net_cmd.remote)
main.add_command(inspect_cmd.inspect)
main.add_command(generate_cmd.generate)
main.add_command(kernels_cmd.kernels)
main.add_command(attest_cmd.attest)
