"""`dte build --net --key KEYFILE`: the options that compile the token-protocol server into the firmware.

Used by build_cmd.py: `@net_build_options` on the command, then
`options = apply_network(board, options, net, key_file)` before `build_firmware`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from ..board import Board
from ..errors import DteError
from ..toolchain import FirmwareOptions


def net_build_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Adds `--net` and `--key KEYFILE` (parameters `net`, `key_file`)."""
    command = click.option(
        "--key", "key_file", type=click.Path(dir_okay=False), default=None,
        help="Appliance key file (`dte keygen -o KEYFILE`) compiled into the firmware for --net; clients "
             "need the same file. Implies --net.")(command)
    return click.option(
        "--net", is_flag=True,
        help="Serve the token protocol after the boot prompt (UDP on the board's [network] address and port; "
             "virtio-net, else mlx5). Needs --key: an appliance never serves unauthenticated.")(command)


def apply_network(board: Board, options: FirmwareOptions, net: bool, key_file: str | None) -> FirmwareOptions:
    """`options` with the network server compiled in when --net or --key was given; unchanged otherwise."""
    if not net and key_file is None:
        return options
    from ..netboot import network_options
    from ..protocol import load_key

    if key_file is None:
        raise DteError("--net needs --key KEYFILE: the appliance only serves authenticated frames",
                       "make a key with `dte keygen -o appliance.key`, then pass `--key appliance.key`")
    return network_options(board, options, load_key(key_file))
