"""`dte kernels`: inspect the llvmlite-generated SIMD kernels of a board (symbols, object, assembly)."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import click
from rich.table import Table

from ..board import load_board
from ..console import info, out
from ..errors import DteError
from ..kernels import (
    FLOAT_ROW_SYMBOLS,
    GEMM_SYMBOLS,
    KERNEL_SYMBOLS,
    MULTI_SYMBOLS,
    TILE_ROWS,
    TOKENS,
    WIDE_SYMBOLS,
    WIDE_TOKENS,
    assembly,
    board_isa,
    board_target,
    emit_kernel_object,
)
from ..kernels.objinfo import function_symbols
from . import options

BOARD_OPTION = options.board(help="Board whose vector width, CPU and features the kernels are built for.")


@click.group()
def kernels() -> None:
    """The SIMD dot-product kernels generated with llvmlite for a board (see docs/kernels.md)."""


@kernels.command("list")
@BOARD_OPTION
@options.json_output
def list_kernels(board_name: str, as_json: bool) -> None:
    """Show the instruction set of the board's kernels and every kernel the compiled object defines (read from its
    symbol table), with its machine-code size."""
    board = load_board(board_name)
    isa, target = board_isa(board), board_target(board)
    with tempfile.TemporaryDirectory(prefix="dte-kernels-") as tmp:
        obj = Path(tmp) / "kernels.o"
        emit_kernel_object(board, "elf", obj)
        defined = {s.name: s for s in function_symbols(obj)}
    missing = [name for name in KERNEL_SYMBOLS if name not in defined]
    if missing:
        raise DteError(f"the kernel object lacks {', '.join(missing)}", "this is a bug in dte_build.kernels")
    rows = [{"name": name, "kind": _kind(name), "size": defined[name].size} for name in KERNEL_SYMBOLS]
    if as_json:
        click.echo(json.dumps({"schema": options.JSON_SCHEMA_VERSION, "board": board.name, "width": isa.width,
                               "vnni": isa.vnni, "cpu": target.cpu, "features": target.features,
                               "symbols": list(KERNEL_SYMBOLS), "kernels": rows}, indent=2))
        return
    out.print(f"{board.name}: {isa.width}-bit vectors{', VNNI' if isa.vnni else ''}, cpu {target.cpu}",
              markup=False)
    table = Table("kernel", "kind", "bytes")
    for row in rows:
        table.add_row(row["name"], row["kind"], str(row["size"]))
    out.print(table)


def _kind(symbol: str) -> str:
    """Which ABI of firmware/engine/kernels.h the kernel has."""
    if symbol in GEMM_SYMBOLS:
        return f"gemm ({TILE_ROWS} rows x {TOKENS} tokens)"
    if symbol in MULTI_SYMBOLS:
        return f"vec_dot x{TOKENS} tokens"
    if symbol in WIDE_SYMBOLS:
        return f"vec_dot x{WIDE_TOKENS} tokens"
    if symbol in FLOAT_ROW_SYMBOLS:
        return "16 rows x 1 token"
    return "vec_dot"


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
