"""`dte boards` and `dte boards show NAME`."""

from __future__ import annotations

import json

import click
from rich.table import Table

from ..board import board_file, list_boards, load_board
from ..console import out
from . import options


@click.group(invoke_without_command=True)
@options.json_output
@click.pass_context
def boards(ctx: click.Context, as_json: bool) -> None:
    """List the boards dte can build for (files under boards/)."""
    if ctx.invoked_subcommand is not None:
        return
    found = list_boards()
    if as_json:
        click.echo(json.dumps({"schema": options.JSON_SCHEMA_VERSION, "boards": [b.to_dict() for b in found]},
                              indent=2))
        return
    table = Table("board", "cpu", "vector", "cores", "memory", "storage", "network", "weights LBA")
    for b in found:
        table.add_row(b.name, f"{b.cpu_name} ({b.march})", f"{b.vector_bits}-bit", str(b.max_workers),
                      f"{b.memory_mib // 1024} GiB", b.storage.get("device", b.storage["driver"]),
                      b.network.get("device", b.network["driver"]), str(b.weights_lba))
    out.print(table)


@boards.command("show")
@click.argument("name")
@options.json_output
def show(name: str, as_json: bool) -> None:
    """Print one board's definition (NAME or a path to a .toml file): its TOML file, after checking every field;
    with --json the parsed values."""
    board = load_board(name)
    if as_json:
        click.echo(json.dumps({"schema": options.JSON_SCHEMA_VERSION, **board.to_dict()}, indent=2))
        return
    click.echo(board_file(name).read_text(), nl=False)
