"""What `dte build` adds for identity: the persona (hash, strength, system prompt) it compiles in and the Secure
Boot signature of BOOTX64.EFI. Library functions; the CLI only wires them (commands/build_cmd.py)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .board import Board
from .errors import DteError
from .image.plan import resolve_epoch
from .persona import Persona, board_persona, check_strength
from .signing import SignatureInfo, sign_efi, signature_info
from .toolchain import FirmwareBuild



@dataclass(frozen=True)
class Identity:
    persona: Persona
    strength: float

    def firmware_options(self) -> dict[str, Any]:
        """The FirmwareOptions fields that compile this identity in."""
        return {"persona_name": self.persona.name, "persona_sha256": self.persona.sha256,
                "system_prompt": self.persona.system, "identity_strength": self.strength}

    def manifest_entry(self) -> dict[str, Any]:
        return self.persona.manifest_entry(self.strength)

    def add_rows(self, table: Any) -> None:
        table.add_row("persona", f"{self.persona.name} ({self.persona.path}), identity strength {self.strength:g}")
        table.add_row("persona SHA-256", self.persona.sha256)


def resolve_identity(board: Board, persona_path: Path | None = None, strength: float | None = None) -> Identity:
    """The persona a build compiles in (`persona_path`, else the board's) and the identity stage strength
    (`strength`, else the persona's own)."""
    persona = board_persona(board, persona_path)
    return Identity(persona, persona.strength if strength is None else check_strength(strength))


@dataclass(frozen=True)
class SignedFirmware:
    efi_path: Path                    # what goes into the ESP (the signed copy, or the unsigned build)
    signature: SignatureInfo | None

    def to_dict(self) -> dict[str, Any] | None:
        return None if self.signature is None else self.signature.to_dict()

    def add_rows(self, table: Any) -> None:
        sig = self.signature
        table.add_row("Secure Boot", "unsigned" if sig is None else
                      f"signed ({sig.digest_algorithm}) by {sig.signer_issuer}, serial {sig.signer_serial}")
        if sig is not None:
            table.add_row("signed SHA-256", hashlib.sha256(self.efi_path.read_bytes()).hexdigest())


def sign_firmware(firmware: FirmwareBuild, key: Path | None, cert: Path | None) -> SignedFirmware:
    """Sign the build's firmware (next to it, as <build id>-<cert hash>.signed.EFI) when a key and certificate
    are given."""
    if key is None and cert is None:
        return SignedFirmware(firmware.efi_path, None)
    if key is None or cert is None:
        raise DteError("--sign-key and --sign-cert go together", "pass both (a PEM key and its certificate)")
    # Named by the unsigned file's build id and the certificate, so concurrent builds never share the output.
    tag = hashlib.sha256(Path(cert).read_bytes() if Path(cert).is_file() else str(cert).encode()).hexdigest()[:8]
    out = sign_efi(firmware.efi_path, key, cert, firmware.efi_path.with_name(f"{firmware.build_id}-{tag}.signed.EFI"),
                   source_date_epoch=resolve_epoch(None))
    return SignedFirmware(out, signature_info(out))
