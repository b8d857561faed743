"""`dte kernels`: inspect the llvmlite-generated SIMD kernels of a board (symbols, object, assembly)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click
from rich.table import Table

from ..board import load_board
from ..console import err, info
from ..errors import DteError
from ..kernels import KERNEL_SYMBOLS, assembly, board_isa, board_target, emit_kernel_object

BOARD_OPTION = click.option("--board", "board_name", default="qemu-q35", show_default=True,
                            help="Board whose vector width, CPU and features the kernels are built for.")


@click.group()
def kernels() -> None:
    """The SIMD dot-product kernels generated with llvmlite for a board (see docs/kernels.md)."""


@kernels.command("list")
@BOARD_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON to stdout.")
def list_kernels(board_name: str, as_json: bool) -> None:
    """Show the instruction set the board's kernels use and every kernel symbol."""
    board = load_board(board_name)
    isa, target = board_isa(board), board_target(board)
    data = {"board": board.name, "width": isa.width, "vnni": isa.vnni, "cpu": target.cpu,
            "features": target.features, "symbols": list(KERNEL_SYMBOLS)}
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    err.print(f"{board.name}: {isa.width}-bit vectors{', VNNI' if isa.vnni else ''}, cpu {target.cpu}")
    table = Table("kernel", "weights", "activations", "tokens per call")
    for symbol in KERNEL_SYMBOLS:
        tokens, weights, acts = re.fullmatch(r"dte_k_vec_dot(4?)_(.+?)_(q8_[01K]|f32|f16|bf16)", symbol).groups()
        table.add_row(symbol, weights, acts, tokens or "1")
    err.print(table)


@kernels.command("emit")
@BOARD_OPTION
@click.option("--format", "fmt", type=click.Choice(["coff", "elf"]), default="coff", show_default=True,
              help="coff: the firmware's object (x86_64-unknown-windows); elf: this host's triple.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Object file to write.")
def emit(board_name: str, fmt: str, output: Path) -> None:
    """Write the board's kernel object (the one `dte build` links)."""
    symbols = emit_kernel_object(load_board(board_name), fmt, output)
    info(f"wrote {output} ({output.stat().st_size} bytes, {len(symbols)} kernels)")


@kernels.command("asm")
@BOARD_OPTION
@click.option("--symbol", default=None, help="Print only this kernel (e.g. dte_k_vec_dot_q4_0_q8_0).")
def asm(board_name: str, symbol: str | None) -> None:
    """Print the kernels' assembly to stdout (e.g. `dte kernels asm --board epyc9654 | grep vpdpbusd`)."""
    board = load_board(board_name)
    text = assembly(board_isa(board), board_target(board))
    if symbol is not None:
        if symbol not in KERNEL_SYMBOLS:
            raise DteError(f"no kernel named {symbol}", "see `dte kernels list` for the names")
        labels = {m.group(1): m.start() for m in re.finditer(r"^(\w+):", text, re.M) if m.group(1) in KERNEL_SYMBOLS}
        if symbol not in labels:
            raise DteError(f"{symbol} not found in the assembly", "this is a bug in dte_build.kernels")
        after = [pos for pos in labels.values() if pos > labels[symbol]]
        text = text[labels[symbol]:min(after, default=len(text))]
    click.echo(text)
