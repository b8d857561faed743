"""`dte build --net --key KEYFILE`: the options that compile the token-protocol server into the firmware.

Used by build_cmd.py: `@net_build_options` on the command; the library's `appliance.appliance_firmware` (or
`appliance.apply_network`) turns the two parameters into firmware options.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click


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
