"""`dte generate`: run a GGUF model with the hosted engine on this machine."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..console import info
from ..engine import Engine
from ..errors import DteError
from . import options
from .identity_opts import persona_option, strength_option


class _Utf8Stream:
    """Writes token bytes to stdout as soon as they form complete UTF-8 characters."""

    def __init__(self) -> None:
        self._pending = b""

    def __call__(self, piece: bytes) -> None:
        data = self._pending + piece
        cut = len(data)
        for back in range(1, min(4, len(data)) + 1):  # hold back an incomplete trailing sequence
            byte = data[-back]
            if byte & 0xC0 == 0x80:
                continue
            need = 2 if byte & 0xE0 == 0xC0 else 3 if byte & 0xF0 == 0xE0 else 4 if byte & 0xF8 == 0xF0 else 1
            if need > back:
                cut = len(data) - back
            break
        self._pending = data[cut:]
        sys.stdout.write(data[:cut].decode("utf-8", errors="replace"))
        sys.stdout.flush()

    def finish(self) -> None:
        if self._pending:
            sys.stdout.write(self._pending.decode("utf-8", errors="replace"))
        sys.stdout.write("\n")
        sys.stdout.flush()


@click.command("generate")
@options.model(help="A GGUF model file (F32/F16/BF16, Q4_0..Q8_0, Q2_K..Q6_K).")
@click.option("--remote", metavar="HOST:PORT", default=None,
              help="Generate on a running appliance over the token protocol instead of here (needs --key).")
@click.option("--key", "key_file", type=click.Path(dir_okay=False), default=None,
              help="The appliance key file (`dte keygen`), with --remote.")
@options.prompt(required=True, help="Text to continue (with --chat: the user's message).")
@click.option("--chat", is_flag=True,
              help="Format the prompt as a chat turn with the model's chat template: [system, user] and the "
                   "assistant's opening, tokenized with special tokens; prints the reply.")
@options.system
@options.sampling
@options.threads
@options.ctx_size
@persona_option
@strength_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (ids, text, speeds) instead of text.")
def generate(model: Path | None, remote: str | None, key_file: str | None, prompt: str, chat: bool,
             system: str | None, n_predict: int, temp: float, top_k: int, top_p: float, seed: int,
             threads: int | None, n_ctx: int, as_json: bool,
             persona_path: Path | None = None, identity_strength: float | None = None) -> None:
    """Generate text with dte's own engine on this host (the same C code the firmware runs),
    or with --remote HOST:PORT --key KEYFILE on a running appliance.

    Streams the continuation to stdout; with --json prints
    {"prompt_ids", "ids", "text", "tok_per_s", "prompt_tok_per_s"} (the same shape both ways:
    equal settings and model give equal ids; with --chat also "chat_prompt", the rendered turn).

    \b
    Example:  dte generate -m SmolLM2-135M-Instruct.Q4_1.gguf --chat -p "Who are you?"
    """
    if remote is not None and (persona_path is not None or identity_strength is not None):
        raise DteError("--persona/--identity-strength apply to the local engine only",
                       hint="an appliance's persona is compiled into its firmware (dte build --persona)")
    if system is not None and not chat:
        raise DteError("--system applies to chat turns", hint="add --chat")
    if remote is not None and chat:
        raise DteError("--chat applies to the local engine",
                       hint="an appliance formats chat turns with the template compiled in by dte build")
    if remote is not None:
        _generate_remote(remote, key_file, model, prompt, n_predict, temp, top_k, top_p, seed, as_json)
        return
    if model is None:
        raise DteError("no model to run", hint="pass --model GGUF, or --remote HOST:PORT --key KEYFILE")
    identity = None
    if chat or persona_path is not None or identity_strength is not None:
        from ..persona import DEFAULT_PERSONA, check_strength, load_persona

        identity = load_persona(persona_path or DEFAULT_PERSONA)
    chat_prompt = None
    if chat:
        chat_prompt = _chat_turn(model, prompt, identity.system if system is None else system)
    if identity is not None and (persona_path is not None or identity_strength is not None):
        identity_strength = identity.strength if identity_strength is None else check_strength(identity_strength)
    with Engine(model, n_ctx=n_ctx, threads=threads) as engine:
        if identity is not None and identity_strength:
            engine.set_identity(identity.digest, identity_strength)
        stream = None if as_json else _Utf8Stream()
        # A chat turn is tokenized with special tokens parsed and no BOS added (the template writes it), as
        # llama-cpp-python's chat handler does.
        ids = engine.tokenize(chat_prompt, add_bos=False, special=True) if chat_prompt is not None else prompt
        result = engine.generate(ids, n_predict=n_predict, temp=temp, top_k=top_k, top_p=top_p, seed=seed,
                                 on_piece=stream)
    if stream is not None:
        stream.finish()
        info(f"{len(result.prompt_ids)} prompt tokens at {result.prompt_tok_per_s:.1f} tok/s, "
             f"{len(result.ids)} generated at {result.tok_per_s:.1f} tok/s")
        return
    result_json = {"schema": options.JSON_SCHEMA_VERSION, "prompt_ids": result.prompt_ids, "ids": result.ids,
                   "text": result.text, "tok_per_s": round(result.tok_per_s, 3),
                   "prompt_tok_per_s": round(result.prompt_tok_per_s, 3)}
    if chat_prompt is not None:
        result_json["chat_prompt"] = chat_prompt
    click.echo(json.dumps(result_json, ensure_ascii=False))


def _chat_turn(model: Path, prompt: str, system: str) -> str:
    """[system (when not empty), user] and the generation prompt, rendered by the model's chat template."""
    from ..chat_template import model_chat_template

    template = model_chat_template(model)
    if template is None:
        raise DteError(f"{model.name} has no chat template (tokenizer.chat_template)",
                       hint="drop --chat: the model does plain completion")
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    return template.render(messages, add_generation_prompt=True)


def _generate_remote(remote: str, key_file: str | None, model: Path | None, prompt: str, n_predict: int,
                     temp: float, top_k: int, top_p: float, seed: int, as_json: bool) -> None:
    from ..client import generate_remote, parse_endpoint
    from ..protocol import load_key

    if key_file is None:
        raise DteError("--remote needs the appliance key", hint="pass --key KEYFILE (the file given to dte build)")
    if model is not None:
        raise DteError("--model and --remote were both given", hint="the appliance runs its own model; drop --model")
    host, port = parse_endpoint(remote)
    stream = None if as_json else _Utf8Stream()
    result = generate_remote(host, port, load_key(key_file), prompt, n_predict, temp, top_k=top_k, top_p=top_p,
                             seed=seed, on_token=(lambda token: stream(token.piece)) if stream else None)
    if stream is not None:
        stream.finish()
        info(f"{len(result['prompt_ids'])} prompt tokens at {result['prompt_tok_per_s']:.1f} tok/s, "
             f"{len(result['ids'])} generated at {result['tok_per_s']:.1f} tok/s (on {remote})")
        return
    result = {"schema": options.JSON_SCHEMA_VERSION, **result}
    result["tok_per_s"] = round(result["tok_per_s"], 3)
    result["prompt_tok_per_s"] = round(result["prompt_tok_per_s"], 3)
    click.echo(json.dumps(result, ensure_ascii=False))
