"""`dte attest verify`: check the attestation a dte appliance printed at boot against a disk image.

The firmware's report (firmware/boot/attest.c, formats in docs/identity.md) is the `dte: attest ...` status line
(in a console log or in `dte run --json` output). From the image this module recomputes the firmware file's
SHA-256 (from the ESP), the weights' SHA-256 (from the manifest and from the weights partition's bytes), the
persona hash (from the manifest, or a persona file), the TPM PCR value the firmware should have produced, and the
attestation digest over the documented canonical encoding, then says per part whether it matches.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .errors import DteError
from .image import gpt
from .image import manifest as mf
from .image.esp import FatReader
from .image.extract import gguf_sha256
from .inspect import _find_table
from .qemu import parse_status_line, strip_escapes

FORMAT = "dte-attest/1"
PCR = 12
ZERO = "0" * 64


@dataclass(frozen=True)
class Part:
    name: str
    status: str          # "match" | "differ" | "absent" (the report or the image lacks it)
    reported: str
    expected: str
    what: str            # what was compared with what


@dataclass(frozen=True)
class ImageFacts:
    efi_sha256: str              # of EFI/BOOT/BOOTX64.EFI on the ESP
    manifest_efi_sha256: str
    weights_sha256: str          # the manifest's (zeros when the image has no model)
    partition_sha256: str | None  # of the GGUF the weights partition holds (layout undone); None without a model
    persona_sha256: str | None


def canonical(efi: str, weights: str, persona: str, platform: str) -> bytes:
    """The bytes the attestation digest is the SHA-256 of (docs/identity.md "Canonical encoding")."""
    return (f"{FORMAT}\nefi_sha256={efi}\nweights_sha256={weights}\npersona_sha256={persona}\n"
            f"platform={platform}\n").encode()


def expected_pcr(persona_sha256: str, weights_sha256: str) -> str:
    """PCR 12 after the firmware's two events (TPM 2.0 Part 1 §17: extend = SHA-256(old || event digest); each
    event's digest is SHA-256 of the 32-byte hash it measures), starting from 32 zero bytes."""
    pcr = bytes(32)
    for measured in (persona_sha256, weights_sha256):
        pcr = hashlib.sha256(pcr + hashlib.sha256(bytes.fromhex(measured)).digest()).digest()
    return pcr.hex()


def read_report(path: Path) -> dict[str, dict[str, Any]]:
    """The firmware's `attest`, `attest_weights` and `tpm` status lines from a console log or `dte run --json`."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as exc:
        raise DteError(f"report {path}: {exc.strerror}", "pass the console log or the dte run --json output") from None
    found: dict[str, dict[str, Any]] = {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("status"), dict):
        found = {k: v for k, v in data["status"].items() if k in ("attest", "attest_weights", "tpm")}
    else:
        for line in strip_escapes(text).splitlines():
            parsed = parse_status_line(line)
            if parsed and parsed[0] in ("attest", "attest_weights", "tpm"):
                found[parsed[0]] = parsed[1]
    if "attest" not in found:
        raise DteError(f"{path} holds no `dte: attest` line", "boot the image (dte run) and save its console or --json")
    return found


def image_facts(image: Path) -> ImageFacts:
    """What the image says: the ESP firmware file's hash, the manifest's hashes, the weights partition's hash."""
    with open(image, "rb") as f:
        table = _find_table(f, f.seek(0, os.SEEK_END))
        ss = table.sector_size
        esp = next((p for p in table.partitions if p.type_guid == gpt.ESP_TYPE), None)
        if esp is None:
            raise DteError(f"{image} has no EFI System Partition", "pass a dte image (dte build)")
        fat = FatReader(f, esp.first_lba * ss)
        efi = hashlib.sha256(fat.read(mf.FIRMWARE_PATH)).hexdigest()
        manifest = mf.parse_manifest_json(fat.read(mf.MANIFEST_PATH))
        model = manifest["model"]
        partition = None
        if model is not None:
            offset = manifest["weights"]["lba"] * manifest["weights"]["sector_size"]
            if f.seek(0, os.SEEK_END) < offset + model["size"]:
                raise DteError("the image ends inside the weights partition")
            # the GGUF's hash, whatever the partition's layout (docs/design.md "Weights layout")
            try:
                partition = gguf_sha256(image, offset, model["size"], model["layout"])
            except DteError:  # the header no longer parses: the bytes' own hash (it differs from the manifest's)
                partition = gguf_sha256(image, offset, model["size"], "gguf")
    persona = manifest.get("persona") or {}
    return ImageFacts(efi, manifest["firmware"]["sha256"], model["sha256"] if model else ZERO, partition,
                      persona.get("sha256"))


def _part(name: str, reported: str | None, expected: str | None, what: str) -> Part:
    if reported is None or expected is None:
        status = "absent"
    else:
        status = "match" if reported == expected else "differ"
    return Part(name, status, reported or "-", expected or "-", what)


def verify(report: dict[str, dict[str, Any]], facts: ImageFacts, persona_file: Path | None = None) -> list[Part]:
    """Every comparison `dte attest verify` makes, in order (see the module docstring)."""
    att = report["attest"]
    persona = facts.persona_sha256
    parts = [
        _part("efi", att.get("efi_sha256"), facts.efi_sha256,
              "firmware hash at boot vs EFI/BOOT/BOOTX64.EFI on the ESP"),
        _part("efi_manifest", facts.efi_sha256, facts.manifest_efi_sha256, "ESP firmware file vs the manifest"),
        _part("weights", att.get("weights_sha256"), facts.weights_sha256, "weights hash at boot vs the manifest"),
    ]
    if facts.partition_sha256 is not None:
        parts.append(_part("weights_partition", facts.partition_sha256, facts.weights_sha256,
                           "SHA-256 of the weights partition's bytes vs the manifest"))
    loaded = report.get("attest_weights", {}).get("sha256")
    if loaded is not None:
        parts.append(_part("weights_loaded", loaded, facts.weights_sha256,
                           "SHA-256 of the weights in the appliance's memory vs the manifest"))
    parts.append(_part("persona", att.get("persona_sha256"), persona, "persona hash compiled in vs the manifest"))
    if persona_file is not None:
        parts.append(_part("persona_file", att.get("persona_sha256"), hashlib.sha256(
            Path(persona_file).read_bytes()).hexdigest(), f"persona hash compiled in vs {persona_file}"))
    pcr = att.get(f"pcr{PCR}")
    if pcr not in (None, "none") and persona is not None:
        parts.append(_part(f"pcr{PCR}", pcr, expected_pcr(persona, facts.weights_sha256),
                           f"TPM PCR {PCR} vs the extends recomputed from the image"))
    platform = att.get("platform")
    digest = None
    if isinstance(platform, str) and persona is not None:
        digest = hashlib.sha256(canonical(facts.efi_sha256, facts.weights_sha256, persona, platform)).hexdigest()
    parts.append(_part("digest", att.get("digest"), digest,
                       "attestation digest vs the canonical encoding recomputed from the image (+ reported platform)"))
    return parts


def verify_files(report_path: Path, image: Path, persona_file: Path | None = None) -> dict[str, Any]:
    """verify() over files; a JSON-ready result with "ok" (no part differs) and "differ" (their names)."""
    report = read_report(report_path)
    parts = verify(report, image_facts(image), persona_file)
    differ = [p.name for p in parts if p.status == "differ"]
    return {"ok": not differ, "differ": differ, "platform": report["attest"].get("platform"),
            "parts": [asdict(p) for p in parts]}
