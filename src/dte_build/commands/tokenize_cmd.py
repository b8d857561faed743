"""`dte tokenize`: the token ids (and pieces) the engine makes of a text, like llama.cpp's llama-tokenize."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..engine import Engine
from ..errors import DteError
from . import options


def _shown(piece: bytes) -> str:
    """A piece for the terminal: UTF-8 as is; a piece that is not whole UTF-8 as <xx xx> bytes."""
    try:
        return piece.decode("utf-8")
    except UnicodeDecodeError:
        return "<" + " ".join(f"{b:02x}" for b in piece) + ">"


@click.command("tokenize")
@options.model(required=True, help="A GGUF model or vocabulary-only GGUF file.")
@click.argument("text")
@click.option("--no-bos", is_flag=True, help="Do not add BOS (by default it is added when the model asks for it).")
@click.option("--special", is_flag=True,
              help="Parse control tokens written in the text (<|im_start|> becomes one token).")
@click.option("--ids", "ids_only", is_flag=True, help="Print only the ids, as a list.")
@options.json_output
def tokenize(model: Path, text: str, no_bos: bool, special: bool, ids_only: bool, as_json: bool) -> None:
    """Print the token ids of TEXT, one per line with its piece (`id -> 'piece'`).

    Works on vocabulary-only GGUFs (llama.cpp's models/ggml-vocab-*.gguf) as on full models; only the tokenizer
    is loaded.

    \b
    Example:
      dte tokenize -m "$(dte fetch smollm2-135m)" --special "<|im_start|>user Hi<|im_end|>"
    """
    if not model.is_file():
        raise DteError(f"model file not found: {model}", hint="pass -m PATH to a .gguf file")
    with Engine(model, vocab_only=True) as engine:
        ids = engine.tokenize(text, add_bos=not no_bos, special=special)
        pieces = [engine.piece(i, special=True) for i in ids]
    if as_json:
        click.echo(json.dumps({"schema": options.JSON_SCHEMA_VERSION, "model": str(model), "ids": ids,
                               "pieces": [p.decode("utf-8", errors="replace") for p in pieces],
                               "count": len(ids)}))
        return
    if ids_only:
        click.echo("[" + ", ".join(str(i) for i in ids) + "]")
        return
    for i, piece in zip(ids, pieces):
        click.echo(f"{i:6d} -> '{_shown(piece)}'")
