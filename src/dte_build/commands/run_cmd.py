"""`dte run`: boot an image under QEMU + OVMF and report what the firmware said."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..board import load_board
from ..console import err
from ..errors import DteError
from ..qemu import DEFAULT_TIMEOUT, DRIVES, RC_FAIL, RC_OK, RC_PANIC, run_image


@click.command()
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--board", "board_name", default="qemu-q35", show_default=True, metavar="NAME",
              help="Board whose [qemu] settings to use (machine, CPU, memory).")
@click.option("--smp", type=int, default=1, show_default=True, help="Virtual CPUs.")
@click.option("--memory", "memory_mib", type=int, default=None, help="Guest RAM in MiB (default: the board's).")
@click.option("--timeout", type=float, default=DEFAULT_TIMEOUT, show_default=True,
              help="Kill QEMU after this many seconds.")
@click.option("--drive", type=click.Choice(DRIVES), default="nvme", show_default=True, help="How the disk attaches.")
@click.option("--qemu-arg", "qemu_args", multiple=True, metavar="ARG", help="Extra QEMU argument (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the parsed status lines as JSON to stdout.")
@click.option("--quiet", is_flag=True, help="Do not stream the console to stderr.")
def run(image: Path, board_name: str, smp: int, memory_mib: int | None, timeout: float, drive: str,
        qemu_args: tuple[str, ...], as_json: bool, quiet: bool) -> None:
    """Boot IMAGE in QEMU q35 + OVMF (TCG unless KVM really works) and stream its console.

    \b
    Exits 0 only when the firmware reported `dte: exit status=ok` (QEMU rc 33);
    a firmware failure (rc 35), panic (rc 37) or timeout exits non-zero.
    """
    board = load_board(board_name)

    def show(line: str) -> None:
        if not quiet:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()

    result = run_image(image, board=board, smp=smp, memory_mib=memory_mib, timeout=timeout,
                       extra_args=qemu_args, drive=drive, on_line=show)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    if result.ok:
        err.print(f"dte run: ok ({result.seconds:.1f} s, {result.accel})", markup=False)
        return
    why = {RC_FAIL: "the firmware reported a failure", RC_PANIC: "the firmware panicked",
           RC_OK: "QEMU exited 33 but the firmware never printed `dte: exit status=ok`"}.get(
        result.rc, f"QEMU exited with code {result.rc}")
    if result.timed_out:
        why = f"timed out after {timeout:.0f} s"
    panic = result.status.get("panic")
    detail = result.status.get("error", {}).get("text") or (
        "panic " + " ".join(f"{k}={v}" for k, v in panic.items()) if panic else None)
    raise DteError(f"run failed: {why}" + (f" ({detail})" if detail else ""),
                   "see the console output above", exit_code=2)
