"""What `dte build` compiles for a board, as a library call: the persona and identity strength, the firmware
settings (prompt, sampling, threads), the token-protocol server when asked for, and the Secure Boot signature.

`dte build` and `dte flash --board` both call `appliance_firmware`; nothing here knows about the command line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .board import Board
from .errors import DteError
from .toolchain import FirmwareBuild, FirmwareOptions, build_firmware

if TYPE_CHECKING:
    from .identity_build import Identity, SignedFirmware


def apply_network(board: Board, options: FirmwareOptions, net: bool, key_file: str | None) -> FirmwareOptions:
    """`options` with the network server compiled in when `net` or a key file was given; unchanged otherwise."""
    if not net and key_file is None:
        return options
    from .netboot import network_options
    from .protocol import load_key

    if key_file is None:
        raise DteError("--net needs --key KEYFILE: the appliance only serves authenticated frames",
                       "make a key with `dte keygen -o appliance.key`, then pass `--key appliance.key`")
    return network_options(board, options, load_key(key_file))


def model_name(model: Path | None) -> str:
    """The name the appliance gives its model in the protocol's INFO answer (docs/protocol.md): the GGUF file's
    stem (`dte-tiny-q8_0`), cut to 255 UTF-8 bytes on a character boundary; "" without a model."""
    if model is None:
        return ""
    return Path(model).stem.encode("utf-8", "replace")[:255].decode("utf-8", "ignore")


def appliance_firmware(board: Board, settings: dict[str, Any] | None = None, *, persona_path: Path | None = None,
                       identity_strength: float | None = None, net: bool = False, key_file: str | None = None,
                       sign_key: Path | None = None, sign_cert: Path | None = None,
                       on_step: Callable[[str, int], None] | None = None, model: Path | None = None,
                       chat: bool | None = None) -> tuple[Identity, FirmwareBuild, SignedFirmware]:
    """The firmware `dte build` compiles for `board`: the persona (`persona_path`, else the board's) and identity
    strength, the FirmwareOptions fields in `settings` (prompt, sampling, threads, ...; defaults otherwise), the
    network server with `net`/`key_file`, signed when a key and certificate are given. With no arguments:
    `dte build`'s defaults (the board's persona, no network, unsigned), which is what `dte flash --board` writes.
    `on_step`: build_firmware's progress callback. `model`'s chat template is compiled in (chat_template.
    firmware_chat: refused when it does not fit), and its name (model_name) for the protocol's INFO answer; `chat`
    True makes the boot prompt a chat turn, False leaves the template out (plain completion)."""
    from .chat_template import firmware_chat
    from .identity_build import resolve_identity, sign_firmware
    from .image.plan import resolve_epoch

    identity = resolve_identity(board, persona_path, identity_strength)
    chat_settings = {"chat": firmware_chat(model, chat, resolve_epoch(None)), "boot_chat": bool(chat),
                     "model_name": model_name(model)}
    options = apply_network(board, FirmwareOptions(**{**identity.firmware_options(), **chat_settings,
                                                      **(settings or {})}), net, key_file)
    firmware = build_firmware(board, options=options, on_step=on_step)
    return identity, firmware, sign_firmware(firmware, sign_key, sign_cert)
