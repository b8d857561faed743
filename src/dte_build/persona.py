"""Personas: the identity compiled into the firmware (format and meaning: docs/identity.md).

A persona file is UTF-8 text: a header of `key: value` lines (`name`, `strength`, `system`; `#` lines are
comments) up to the first blank line, then free text describing who the persona is. Its identity is the SHA-256
of the file's exact bytes: that hash is compiled into BOOTX64.EFI, written to the manifest, measured at boot and
drives the sampler's identity stage.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .board import Board
from .errors import DteError
from .paths import PERSONAS_DIR

DEFAULT_PERSONA = PERSONAS_DIR / "deep-tree-echo.txt"
MAX_STRENGTH = 16.0
HEADER_KEYS = ("name", "strength", "system")


@dataclass(frozen=True)
class Persona:
    name: str
    sha256: str            # of the file's bytes, lowercase hex
    strength: float        # the identity stage's default strength (0: stage off)
    system: str            # the system message of every chat turn ("" when none); plain prompts go as they are
    description: str
    path: Path

    @property
    def digest(self) -> bytes:
        return bytes.fromhex(self.sha256)

    def manifest_entry(self, strength: float | None = None) -> dict[str, Any]:
        return {"name": self.name, "sha256": self.sha256,
                "strength": self.strength if strength is None else float(strength)}


def check_strength(value: float, where: str = "identity strength") -> float:
    if not math.isfinite(value) or not 0.0 <= value <= MAX_STRENGTH:
        raise DteError(f"{where} must be between 0 and {MAX_STRENGTH:g}, not {value}",
                       "0 turns the identity stage off; 0.1-2 is the useful range")
    return float(value)


def parse_persona(data: bytes, path: Path) -> Persona:
    """Parse a persona file's bytes (see the module docstring); a DteError names the line that is wrong."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise DteError(f"persona {path}: not UTF-8 text", "save the file as UTF-8") from None
    lines = text.splitlines()
    fields: dict[str, list[str]] = {}
    body_at = len(lines)
    for number, line in enumerate(lines, 1):
        if not line.strip():
            body_at = number
            break
        if line.startswith("#"):
            continue
        match = re.fullmatch(r"([a-z]+):\s?(.*)", line)
        if not match or match.group(1) not in HEADER_KEYS:
            raise DteError(f"persona {path}: line {number} is not a 'name:', 'strength:' or 'system:' header line",
                           "end the header with a blank line before the description")
        fields.setdefault(match.group(1), []).append(match.group(2).rstrip())
    name = " ".join(fields.get("name", [])).strip()
    if not name:
        raise DteError(f"persona {path}: no 'name:' line in the header", "add e.g. 'name: Deep Tree Echo'")
    if len(fields.get("strength", [])) > 1:
        raise DteError(f"persona {path}: more than one 'strength:' line")
    try:
        strength = float(fields.get("strength", ["0"])[0])
    except ValueError:
        raise DteError(f"persona {path}: strength '{fields['strength'][0]}' is not a number") from None
    check_strength(strength, f"persona {path}: strength")
    return Persona(name=name, sha256=hashlib.sha256(data).hexdigest(), strength=strength,
                   system="\n".join(fields.get("system", [])), description="\n".join(lines[body_at:]).strip(),
                   path=path)


def load_persona(path: str | Path) -> Persona:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DteError(f"persona {path}: {exc.strerror}", "pass an existing persona file (see personas/)") from None
    return parse_persona(data, path)


def board_persona(board: Board, override: str | Path | None = None) -> Persona:
    """The persona a build uses: `override` (dte build --persona), else the board's [persona] file, else
    personas/deep-tree-echo.txt."""
    return load_persona(override or board.persona_file or DEFAULT_PERSONA)
