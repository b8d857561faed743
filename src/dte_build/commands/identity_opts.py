"""Click options shared by the commands that choose an identity or sign the firmware (dte build, dte generate)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..signing import PASSPHRASE_ENV


def persona_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--persona", "persona_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                        default=None, help="Persona file (docs/identity.md; default: the board's [persona] file, "
                                           "personas/deep-tree-echo.txt).")(fn)


def strength_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--identity-strength", type=float, default=None, metavar="S",
                        help="Strength of the sampler's identity stage (default: the persona's `strength:`; "
                             "0 turns it off and leaves the tokens llama.cpp-identical).")(fn)


def identity_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    return persona_option(strength_option(fn))


def sign_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--sign-cert", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
                      help="PEM certificate matching --sign-key (embedded in the signature).")(fn)
    return click.option("--sign-key", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
                        help="Sign BOOTX64.EFI for UEFI Secure Boot (sbsign) with this PEM private key before it "
                             f"goes into the ESP; an encrypted key's passphrase comes from ${PASSPHRASE_ENV}.")(fn)
