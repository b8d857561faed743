"""`dte build`: compile the firmware for a board and pack it (with a model) into a bootable GPT image."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from ..appliance import appliance_firmware
from ..board import board_names, load_board
from ..console import out, steps
from ..toolchain import FirmwareOptions
from . import options
from .identity_opts import identity_options, sign_options
from .net_opts import net_build_options

_DEFAULTS = FirmwareOptions()


@click.command()
@options.board(required=True, help=f"Board to build for ({', '.join(board_names())}) or a path to a board .toml.")
@options.model(help="GGUF model for the weights partition (default: the board's default model, if present).")
@click.option("--no-model", is_flag=True, help="Build an image without a weights partition.")
@options.output(default=Path("dte_boot.img"), help="Where to write the disk image.")
@options.prompt(default=_DEFAULTS.prompt, help="Prompt the appliance generates from at boot.")
@click.option("--chat/--no-chat", "chat", default=None,
              help="--chat: the boot prompt is a chat turn (system prompt, then --prompt as the user's message) in "
                   "the model's chat template. --no-chat: ignore the template (plain completion everywhere). "
                   "Default: compile the model's template in for network chat turns; plain boot prompt.")
@options.system
@options.sampling
@options.threads
@click.option("--bench-blockio", is_flag=True,
              help="Benchmark build: also read the weights through UEFI Block I/O before ExitBootServices and "
                   "print both throughputs (`dte: bench ...`). Slows the boot.")
@click.option("--stream-weights", is_flag=True,
              help="Accept a model larger than the board's weights region: the firmware keeps what fits and "
                   "streams the other layers from NVMe as it runs (slower per token).")
@options.ctx_size
@options.weights_layout
@identity_options
@sign_options
@net_build_options
@options.json_output
def build(board_name: str, model: Path | None, no_model: bool, output: Path, prompt: str, chat: bool | None,
          system: str | None, n_predict: int,
          temp: float, top_k: int, top_p: float, seed: int, threads: int | None, bench_blockio: bool,
          stream_weights: bool, n_ctx: int, weights_layout: str, as_json: bool,
          persona_path: Path | None = None, identity_strength: float | None = None, sign_key: Path | None = None,
          sign_cert: Path | None = None, net: bool = False, key_file: str | None = None) -> None:
    """Build BOOTX64.EFI for a board and write a bootable GPT disk image.

    \b
    The image holds an EFI System Partition (firmware + manifest) and, with a model,
    a raw weights partition starting at the board's weights LBA. Same inputs give
    byte-identical output (SOURCE_DATE_EPOCH, derived GUIDs, /Brepro).
    \b
    Example:  dte build --board qemu-q35 -o dte_boot.img && dte run dte_boot.img
    """
    from ..image.builder import default_model, start_image   # imported late so `dte --help` stays fast

    start = time.monotonic()
    board = load_board(board_name)
    settings: dict[str, Any] = {
        "prompt": prompt, "n_predict": n_predict, "n_ctx": n_ctx, "temperature": temp, "top_k": top_k, "top_p": top_p,
        "seed": seed, "threads": threads, "extra_defines": {"DTE_BENCH_BLOCKIO": "1"} if bench_blockio else {}}
    if system is not None:
        settings["system_prompt"] = system
    # The weights partition streams into the image (hash, layout, CRC32C, write) on threads of its own while the
    # engine checks the model (a refusal stops it before anything compiles) and the firmware compiles.
    pending = start_image(board, output, model_path=model, no_model=no_model, stream_weights=stream_weights,
                          n_ctx=n_ctx, weights_layout=weights_layout)
    try:
        with steps(f"firmware for {board.name}") as progress:
            identity, firmware, signed = appliance_firmware(
                board, settings, persona_path=persona_path, identity_strength=identity_strength, net=net,
                key_file=key_file, sign_key=sign_key, sign_cert=sign_cert, on_step=progress.step, chat=chat,
                model=None if no_model else model or default_model(board))
            progress.phase("image (the model's weights partition, ESP and GPT)")
            image = pending.finish(signed.efi_path, persona=identity.manifest_entry(), build_id=firmware.build_id)
    except BaseException:
        pending.abort()
        raise
    packed = image.manifest.get("model")
    result = {
        "schema": options.JSON_SCHEMA_VERSION,
        "board": board.name,
        "build_id": firmware.build_id,
        "firmware": {"path": str(firmware.efi_path), "sha256": firmware.sha256, "size": firmware.size,
                     "seconds": round(firmware.seconds, 3)},
        "image": {"path": str(image.path), "size": image.size, "seconds": round(image.seconds, 3)},
        "model": packed,
        "persona": identity.manifest_entry(),
        "chat": firmware.chat.to_dict() if firmware.chat else None,
        "signature": signed.to_dict(),
        "seconds": round(time.monotonic() - start, 3),
    }
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    table = Table(show_header=False)
    table.add_column("what", no_wrap=True)
    table.add_column("value", overflow="fold")
    table.add_row("board", board.name)
    table.add_row("build id", firmware.build_id)
    table.add_row("firmware", f"{firmware.efi_path} ({firmware.size} bytes, {firmware.seconds:.2f} s)")
    table.add_row("firmware SHA-256", firmware.sha256)
    identity.add_rows(table)
    signed.add_rows(table)
    table.add_row("model", f"{packed['name']} ({packed['size']} bytes, weights layout {packed['layout']})"
                  if packed else "none")
    table.add_row("chat", "none (plain completion)" if firmware.chat is None else
                  "the model's template" + (", boot prompt as a chat turn" if firmware.boot_chat else ""))
    table.add_row("image", f"{image.path} ({image.size / 2**20:.0f} MiB, {image.seconds:.2f} s)")
    out.print(table)
