"""`dte inspect`: what is inside a dte disk image (partition table, ESP, firmware, manifest, model).

Everything is read with dte's own readers (GPT, FAT32, manifests), lief for the EFI image and gguf-py for the
model, which is parsed in place inside the weights partition (no copy).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from .errors import DteError
from .image import gpt
from .image import manifest as mf
from .image.esp import FatReader
from .image.model_check import open_gguf, summarize


def describe_efi(data: bytes) -> dict[str, Any]:
    """Machine, subsystem, sections, size, SHA-256 and signature presence of a PE/COFF (UEFI) image."""
    out: dict[str, Any] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    try:
        import lief
    except ImportError:
        out["error"] = "lief is not installed (pip install lief)"
        return out
    try:
        lief.logging.disable()
    except AttributeError:
        pass
    pe = lief.PE.parse(data) if data[:2] == b"MZ" else None
    if pe is None:
        out["error"] = "not a PE/COFF image"
        return out
    out.update({
        "format": "PE32+" if pe.optional_header.magic == lief.PE.PE_TYPE.PE32_PLUS else "PE32",
        "machine": str(pe.header.machine).rsplit(".", 1)[-1],
        "subsystem": str(pe.optional_header.subsystem).rsplit(".", 1)[-1],
        "entry_rva": int(pe.optional_header.addressof_entrypoint),
        "relocations": bool(pe.has_relocations),
        "signed": bool(pe.has_signatures),
        "signature": _signature(data) if pe.has_signatures else None,
        "sections": [{"name": s.name, "virtual_size": int(s.virtual_size), "raw_size": int(s.size)}
                     for s in pe.sections],
    })
    return out


def _signature(data: bytes) -> dict[str, Any]:
    """The Authenticode signature (signing.signature_info: issuer, serial, digest, lief's verification)."""
    from .signing import signature_info

    info = signature_info(data)
    return info.to_dict() if info is not None else {}


def _find_table(f: Any, size: int) -> gpt.GptTable:
    first_error: DteError | None = None
    for sector in (512, 4096):
        try:
            return gpt.read_gpt(f, size, sector)
        except DteError as exc:
            first_error = first_error or exc
    assert first_error is not None
    raise first_error


def _model_summary(path: Path, table: gpt.GptTable, manifest: dict[str, Any] | None) -> dict[str, Any] | None:
    part = next((p for p in table.partitions if p.type_guid == gpt.WEIGHTS_TYPE), None)
    if part is None:
        return None
    start = part.first_lba * table.sector_size
    length = part.sectors * table.sector_size
    model = (manifest or {}).get("model") or {}
    if isinstance(model.get("size"), int) and 0 < model["size"] <= length:
        length = model["size"]
    try:
        reader = open_gguf(path, start=start, length=length, what=f"in partition {part.number}")
    except DteError as exc:
        return {"partition": part.number, "error": str(exc)}
    info = summarize(reader, name=str(model.get("name", "")), size=length).to_dict()
    return {"partition": part.number, "offset": start, **info}


def _checks(report: dict[str, Any]) -> list[str]:
    """Disagreements between the manifest and what the image holds."""
    problems: list[str] = []
    manifest, efi = report.get("manifest"), report.get("efi")
    if not isinstance(manifest, dict) or "error" in manifest:
        return ["no readable manifest"]
    if efi and efi.get("sha256") != manifest["firmware"].get("sha256"):
        problems.append("BOOTX64.EFI's SHA-256 differs from the manifest's")
    weights = next((p for p in report["partitions"] if p["type"] == str(gpt.WEIGHTS_TYPE)), None)
    if manifest.get("model") is not None:
        if weights is None:
            problems.append("the manifest names a model but there is no weights partition")
        elif weights["first_lba"] != manifest["weights"]["lba"]:
            problems.append(f"weights partition starts at LBA {weights['first_lba']}, manifest says "
                            f"{manifest['weights']['lba']}")
        elif manifest["model"]["size"] > weights["size"]:
            problems.append("the model is larger than its partition")
    wman = report.get("weights_manifest")
    if isinstance(wman, dict) and "error" not in wman and manifest.get("model") is not None:
        if wman["model_size"] != manifest["model"]["size"] or wman["sha256"] != manifest["model"]["sha256"]:
            problems.append("WEIGHTS.MAN and MANIFEST.JSN disagree about the model")
    return problems


def inspect_image(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A JSON-ready description of a dte image. Raises DteError when it has no valid GPT."""
    p = Path(path)
    if not p.is_file() and not p.is_block_device():
        raise DteError(f"image {p} does not exist")
    with open(p, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        table = _find_table(f, size)
        ss = table.sector_size
        report: dict[str, Any] = {
            "image": {"path": str(p), "size": size, "sector_size": ss, "disk_guid": str(table.disk_guid)},
            "partitions": [part.to_dict(ss) for part in table.partitions],
        }
        esp = next((part for part in table.partitions if part.type_guid == gpt.ESP_TYPE), None)
        manifest: dict[str, Any] | None = None
        if esp is None:
            report["esp"] = {"error": "no EFI System Partition"}
        else:
            try:
                fat = FatReader(f, esp.first_lba * ss)
                entries = fat.list()
                report["esp"] = {"label": fat.label, "volume_id": f"{fat.volume_id:08x}", "files": [
                    {"path": e.path, "size": e.size, "dir": e.is_dir} for e in entries]}
                names = {e.path.upper() for e in entries if not e.is_dir}
                if mf.FIRMWARE_PATH in names:
                    report["efi"] = describe_efi(fat.read(mf.FIRMWARE_PATH))
                if mf.MANIFEST_PATH in names:
                    try:
                        manifest = mf.parse_manifest_json(fat.read(mf.MANIFEST_PATH))
                        report["manifest"] = manifest
                    except DteError as exc:
                        report["manifest"] = {"error": str(exc)}
                if mf.WEIGHTS_MAN_PATH in names:
                    try:
                        w = mf.parse_weights_man(fat.read(mf.WEIGHTS_MAN_PATH))
                        report["weights_manifest"] = {"model_size": w.model_size, "weights_lba": w.weights_lba,
                                                      "chunk_size": w.chunk_size, "chunk_count": w.chunk_count,
                                                      "sha256": w.sha256.hex()}
                    except DteError as exc:
                        report["weights_manifest"] = {"error": str(exc)}
            except DteError as exc:
                report["esp"] = {"error": str(exc)}
    report["model"] = _model_summary(p, table, manifest)
    report["problems"] = _checks(report)
    return report
