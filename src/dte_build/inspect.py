"""`dte inspect`: what is inside a dte disk image (partition table, ESP, firmware, manifest, model).

The GPT and manifests are read with dte's own readers, which check every field against the disk's size before
using it; the ESP with pyfatfs (image/esp.py), the EFI image with lief, and the model with the engine itself
(image/model_check.py: architecture, tokenizer, chat template, and whether the firmware would run it), mapped in
place inside the weights partition (no copy). A GGUF file is described on its own.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import crc32c

from .errors import DteError
from .image import gpt
from .image import manifest as mf
from .image.esp import FatReader
from .image.model_check import ModelInfo, describe_model


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


def _model_dict(info: ModelInfo) -> dict[str, Any]:
    return {**info.to_dict(), "runs_on_dte": info.verdict}


def inspect_model(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A JSON-ready description of a GGUF file: what it is and whether dte's engine runs it (its own check)."""
    info = describe_model(path)
    problems = [] if info.runs else [f"would not run on dte: {info.reason}"]
    return {"model": {"path": str(path), **_model_dict(info)}, "problems": problems}


def _model_summary(path: Path, table: gpt.GptTable, manifest: dict[str, Any] | None) -> dict[str, Any] | None:
    part = next((p for p in table.partitions if p.type_guid == gpt.WEIGHTS_TYPE), None)
    if part is None:
        return None
    start = part.first_lba * table.sector_size
    length = part.sectors * table.sector_size
    model = (manifest or {}).get("model") or {}
    if 0 < model.get("size", 0) <= length:
        length = model["size"]
    try:
        info = describe_model(path, start=start, length=length, name=str(model.get("name") or ""),
                              what=f"in partition {part.number}")
    except DteError as exc:
        return {"partition": part.number, "error": str(exc)}
    return {"partition": part.number, "offset": start, "layout": model.get("layout", "gguf"), **_model_dict(info)}


def _weights_check(path: Path, table: gpt.GptTable, manifest: dict[str, Any] | None) -> dict[str, Any] | None:
    """CRC32C of every chunk of the weights partition as it is on disk against the manifest's list (what the
    firmware checks at boot): {"chunks", "bad": [chunk indices]}; None without a model or a partition."""
    model = (manifest or {}).get("model")
    part = next((p for p in table.partitions if p.type_guid == gpt.WEIGHTS_TYPE), None)
    if not model or part is None or model["size"] > part.sectors * table.sector_size:
        return None
    start, chunk, crcs = part.first_lba * table.sector_size, model["chunk_size"], model["crc32c"]
    bad: list[int] = []
    buf = bytearray(chunk)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        for i, want in enumerate(crcs):
            n = min(chunk, model["size"] - i * chunk)
            f.seek(start + i * chunk)
            got = f.readinto(view[:n])
            if got != n or crc32c.crc32c(view[:n]) != want:
                bad.append(i)
    return {"chunks": len(crcs), "chunk_size": chunk, "bad": bad}


def _checks(report: dict[str, Any]) -> list[str]:
    """Disagreements between the manifest and what the image holds (the manifest passed its schema check)."""
    problems: list[str] = []
    manifest, efi = report.get("manifest"), report.get("efi")
    model = report.get("model")
    if isinstance(model, dict) and "error" in model:
        problems.append(f"weights partition: {model['error']}")
    elif isinstance(model, dict) and not model["runs"]:
        problems.append(f"the model would not run on dte: {model['reason']}")
    if not isinstance(manifest, dict) or "error" in manifest:
        return problems + ["no readable manifest"]
    if efi and efi.get("sha256") != manifest["firmware"]["sha256"]:
        problems.append("BOOTX64.EFI's SHA-256 differs from the manifest's")
    weights = next((p for p in report["partitions"] if p["type"] == str(gpt.WEIGHTS_TYPE)), None)
    if manifest["model"] is not None:
        if weights is None:
            problems.append("the manifest names a model but there is no weights partition")
        elif weights["first_lba"] != manifest["weights"]["lba"]:
            problems.append(f"weights partition starts at LBA {weights['first_lba']}, manifest says "
                            f"{manifest['weights']['lba']}")
        elif manifest["model"]["size"] > weights["size"]:
            problems.append("the model is larger than its partition")
    elif weights is not None:
        problems.append("there is a weights partition but the manifest names no model")
    check = report.get("weights_check")
    for i in (check or {}).get("bad", [])[:8]:
        at = i * check["chunk_size"]
        problems.append(f"weights chunk {i} (partition bytes {at}..{at + check['chunk_size']}) fails its CRC32C: the "
                        f"bytes on disk differ from what was built")
    wman = report.get("weights_manifest")
    if isinstance(wman, dict) and "error" in wman:
        problems.append(f"WEIGHTS.MAN: {wman['error']}")
    elif isinstance(wman, dict):
        m = manifest["model"] or {"size": 0, "sha256": "00" * 32, "crc32c": []}
        if wman["model_size"] != m["size"] or wman["sha256"] != m["sha256"]:
            problems.append("WEIGHTS.MAN and MANIFEST.JSN disagree about the model")
        elif manifest["model"] is not None and wman["chunk_size"] != m["chunk_size"]:
            problems.append(f"WEIGHTS.MAN's CRC32C chunk size {wman['chunk_size']} differs from MANIFEST.JSN's "
                            f"{m['chunk_size']} (damaged manifest)")
        elif wman["crc32c"] != m["crc32c"]:
            bad = next(i for i, (a, b) in enumerate(zip(wman["crc32c"], m["crc32c"])) if a != b)
            problems.append(f"WEIGHTS.MAN's CRC32C of chunk {bad} differs from MANIFEST.JSN's (damaged manifest)")
        if manifest["model"] is not None and wman["layout"] != manifest["model"]["layout"]:
            problems.append(f"WEIGHTS.MAN's layout {wman['layout']} differs from MANIFEST.JSN's "
                            f"{manifest['model']['layout']}")
        if wman["weights_lba"] != manifest["weights"]["lba"]:
            problems.append("WEIGHTS.MAN and MANIFEST.JSN disagree about the weights LBA")
    elif manifest is not None:
        problems.append("the ESP has no DTE/WEIGHTS.MAN")
    return problems


def _read_esp(f: Any, esp: gpt.Partition, ss: int, report: dict[str, Any]) -> dict[str, Any] | None:
    """Fill report's esp / efi / weights_manifest entries; return the parsed manifest (None when unreadable)."""
    manifest: dict[str, Any] | None = None
    try:
        fat = FatReader(f, esp.first_lba * ss, esp.sectors * ss)
        entries = fat.list()
    except DteError as exc:
        report["esp"] = {"error": str(exc)}
        return None
    report["esp"] = {"label": fat.label, "volume_id": f"{fat.volume_id:08x}", "files": [
        {"path": e.path, "size": e.size, "dir": e.is_dir} for e in entries]}
    names = {e.path.upper() for e in entries if not e.is_dir}
    try:
        if mf.FIRMWARE_PATH in names:
            report["efi"] = describe_efi(fat.read(mf.FIRMWARE_PATH))
    except DteError as exc:
        report["efi"] = {"error": str(exc)}
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
                                          "sha256": w.sha256.hex(), "layout": w.layout_name,
                                          "crc32c": list(w.crc32c)}
        except DteError as exc:
            report["weights_manifest"] = {"error": str(exc)}
    return manifest


def inspect_image(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A JSON-ready description of a dte image (a file or a drive), or of a GGUF model file.

    Raises DteError when it is neither a GGUF nor a disk with a valid GPT; everything after the GPT that is
    damaged is reported in the description and listed in "problems"."""
    p = Path(path)
    if not p.is_file() and not p.is_block_device():
        raise DteError(f"image {p} does not exist")
    try:
        with open(p, "rb") as f:
            if f.read(4) == b"GGUF":
                return inspect_model(p)
            size = f.seek(0, os.SEEK_END)
            table = _find_table(f, size)
            ss = table.sector_size
            image_size = table.disk_sectors * ss
            report: dict[str, Any] = {
                "image": {"path": str(p), "size": size, "image_size": image_size, "sector_size": ss,
                          "disk_guid": str(table.disk_guid)},
                "partitions": [part.to_dict(ss) for part in table.partitions],
            }
            if image_size < size:  # docs/flash.md: a drive larger than the image keeps the image's backup GPT
                report["image"]["note"] = (f"the disk is larger than the image: its backup GPT is at LBA "
                                           f"{table.disk_sectors - 1}, as dte flash leaves it")
            esp = next((part for part in table.partitions if part.type_guid == gpt.ESP_TYPE), None)
            manifest = None
            if esp is None:
                report["esp"] = {"error": "no EFI System Partition"}
            else:
                manifest = _read_esp(f, esp, ss, report)
    except OSError as exc:
        raise DteError(f"cannot read {p}: {exc.strerror or exc}") from None
    report["model"] = _model_summary(p, table, manifest)
    report["weights_check"] = _weights_check(p, table, manifest)
    report["problems"] = _checks(report)
    return report
