"""Helpers shared by test modules (test modules import this, never each other)."""

from __future__ import annotations

import functools
import shutil

from dte_build import qemu
from dte_build.errors import DteError


@functools.cache
def qemu_missing() -> str | None:
    """Why QEMU tests cannot run here (no qemu-system-x86_64, no OVMF where `qemu.find_ovmf` looks), else None."""
    if shutil.which(qemu.QEMU_BINARY) is None:
        return f"{qemu.QEMU_BINARY} not installed (apt-get install qemu-system-x86)"
    try:
        qemu.find_ovmf()
    except DteError as exc:
        return str(exc)
    return None


def offensive_words(text: str) -> list[str]:
    """Words of `text` on better_profanity's English word list (an independent list of ~900 offensive words), also
    in their plain inflections (+s, +es, +ed, +ing: the list has "rape" but not "rapes")."""
    import re
    from importlib import resources

    listed = {w.strip().lower() for w in resources.files("better_profanity").joinpath(
        "profanity_wordlist.txt").read_text().splitlines() if w.strip()}
    found = []
    for word in re.findall(r"[a-z]+", text.lower()):
        stems = {word} | {word[: -len(end)] for end in ("s", "es", "ed", "ing", "d") if word.endswith(end)}
        if stems & listed:
            found.append(word)
    return found
