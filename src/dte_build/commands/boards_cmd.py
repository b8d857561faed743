"""`dte boards` and `dte boards show NAME`."""

from __future__ import annotations

import json

import click
from rich.table import Table

from ..board import list_boards, load_board
from ..console import err


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON to stdout.")
@click.pass_context
def boards(ctx: click.Context, as_json: bool) -> None:
    """List the boards dte can build for (files under boards/)."""
    if ctx.invoked_subcommand is not None:
        return
    found = list_boards()
    if as_json:
        click.echo(json.dumps([b.to_dict() for b in found], indent=2))
        return
    table = Table("board", "cpu", "vector", "cores", "memory", "storage", "network", "weights LBA")
    for b in found:
        table.add_row(b.name, f"{b.cpu_name} ({b.march})", f"{b.vector_bits}-bit", str(b.max_workers),
                      f"{b.memory_mib // 1024} GiB", b.storage.get("device", b.storage["driver"]),
                      b.network.get("device", b.network["driver"]), str(b.weights_lba))
    err.print(table)


@boards.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON to stdout.")
def show(name: str, as_json: bool) -> None:
    """Print one board's full definition (NAME or a path to a .toml file)."""
    board = load_board(name)
    data = board.to_dict()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"{board.name}: {board.description}")
    for section in ("cpu", "memory", "storage", "network", "model", "qemu"):
        value = data[section]
        if not value:
            continue
        click.echo(f"[{section}]")
        if section == "memory":
            click.echo(f"  total_mib = {value['total_mib']}")
            for r in value["regions"]:
                click.echo(f"  region {r['name']:<9} {r['size_mib']:>8} MiB (at least {r['min_mib']} MiB)")
            continue
        for key, item in value.items():
            click.echo(f"  {key} = {item}")
