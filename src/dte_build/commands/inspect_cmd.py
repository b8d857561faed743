"""`dte inspect IMAGE`: partition table, ESP files, firmware, manifest and model of a dte image."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from ..console import info, out, warn
from ..errors import DteError
from ..inspect import inspect_image
from . import options

MIB = 1024 * 1024


def _size(n: int) -> str:
    return f"{n / MIB:.1f} MiB" if n >= MIB else f"{n} B"


def _kv(title: str, rows: list[tuple[str, Any]]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("key", no_wrap=True)
    table.add_column("value", overflow="fold")
    for key, value in rows:
        table.add_row(key, "-" if value is None else str(value))
    return table


def _signature_rows(sig: dict[str, Any] | None) -> list[tuple[str, Any]]:
    if not sig:
        return []
    return [("signed by", f"{sig['signer_issuer']} (serial {sig['signer_serial']})"),
            ("signature", f"{sig['digest_algorithm']}, lief verification {sig['verification']}")]


def _model_rows(model: dict[str, Any]) -> list[tuple[str, Any]]:
    types = ", ".join(f"{k} x{v}" for k, v in model["types"].items())
    return [("architecture", model["architecture"] or None), ("tokenizer", model["tokenizer"] or None),
            ("pre-tokenizer", model["pre_tokenizer"] or None), ("vocabulary", model["n_vocab"]),
            ("chat template", "present" if model["chat_template"] else "none (plain completion)"),
            ("GGUF version", model["version"]), ("tensors", model["tensor_count"]), ("types", types),
            ("layers", model["n_layer"]), ("embedding", model["n_embd"]), ("context", model["context_length"]),
            ("runs on dte", model["runs_on_dte"])]


def _print(report: dict[str, Any]) -> None:
    if "image" not in report:  # a GGUF file
        model = report["model"]
        out.print(_kv(f"model {model['path']} ({_size(model['size'])})", _model_rows(model)))
        return
    image = report["image"]
    out.print(f"{image['path']}: {_size(image['size'])}, {image['sector_size']}-byte sectors, "
              f"disk GUID {image['disk_guid']}", markup=False)
    if "note" in image:
        out.print(image["note"], markup=False)
    parts = Table("#", "name", "type", "first LBA", "last LBA", "size", title="partitions", title_justify="left")
    for p in report["partitions"]:
        parts.add_row(str(p["number"]), p["name"], p["type_name"], str(p["first_lba"]), str(p["last_lba"]),
                      _size(p["size"]))
    out.print(parts)
    esp = report["esp"]
    if "error" in esp:
        warn(f"ESP: {esp['error']}")
    else:
        files = Table("path", "size", title=f"ESP files (volume {esp['label']}, id {esp['volume_id']})",
                      title_justify="left")
        for f in esp["files"]:
            files.add_row(f["path"] + ("/" if f["dir"] else ""), "" if f["dir"] else str(f["size"]))
        out.print(files)
    efi = report.get("efi")
    if efi and "size" not in efi:
        warn(f"firmware EFI/BOOT/BOOTX64.EFI: {efi.get('error', 'unreadable')}")
    elif efi:
        rows = [("size", efi["size"]), ("sha256", efi["sha256"])]
        if "error" in efi:
            rows.append(("problem", efi["error"]))
        else:
            rows += [("format", efi["format"]), ("machine", efi["machine"]), ("subsystem", efi["subsystem"]),
                     ("relocations", efi["relocations"]), ("signed", efi["signed"]),
                     *_signature_rows(efi.get("signature")),
                     ("sections", ", ".join(f"{s['name']} ({s['virtual_size']} B)" for s in efi["sections"]))]
        out.print(_kv("firmware EFI/BOOT/BOOTX64.EFI", rows))
    manifest = report.get("manifest")
    if manifest and "error" not in manifest:
        model = manifest["model"]
        rows = [("board", manifest["board"]), ("build id", manifest["build_id"]),
                ("source date epoch", manifest["source_date_epoch"]),
                ("firmware sha256", manifest["firmware"]["sha256"]), ("weights LBA", manifest["weights"]["lba"])]
        persona = manifest.get("persona")
        if persona:
            rows += [("persona", f"{persona['name']} (identity strength {persona['strength']:g})"),
                     ("persona sha256", persona["sha256"])]
        if model is None:
            rows.append(("model", "none (this image carries no weights)"))
        else:
            rows += [("model", model["name"]), ("model size", f"{model['size']} ({_size(model['size'])})"),
                     ("model sha256", f"{model['sha256']} (of the GGUF file)"),
                     ("weights layout", model["layout"]),
                     ("CRC32C chunks", f"{len(model['crc32c'])} x {model['chunk_size']} B")]
        out.print(_kv("manifest /DTE/MANIFEST.JSN", rows))
    elif manifest:
        warn(f"manifest: {manifest['error']}")
    model = report.get("model")
    if model and "error" in model:
        warn(f"model: {model['error']}")
    elif model:
        out.print(_kv(f"model (partition {model['partition']})", _model_rows(model)))


def _extract(image: str, report: dict[str, Any], to: Path) -> dict[str, Any]:
    from ..image.extract import extract_gguf
    from ..image.gpt import read_gpt

    if "image" not in report:
        raise DteError(f"{image} is a GGUF file already", "--extract-gguf takes a dte disk image")
    manifest = report.get("manifest")
    if not isinstance(manifest, dict) or "error" in manifest:
        raise DteError(f"{image}: no readable manifest, so no model to extract")
    with open(image, "rb") as f:
        table = read_gpt(f, f.seek(0, 2), report["image"]["sector_size"])
    done = extract_gguf(Path(image), manifest, table, to)
    info(f"wrote {done.path} ({done.size} bytes, SHA-256 {done.sha256}, from the {done.layout} layout)")
    return done.to_dict()


@click.command("inspect")
@click.argument("image", type=click.Path(dir_okay=False))
@click.option("--extract-gguf", "extract_to", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the image's model back out as the GGUF file it was built from (the weights layout "
                   "undone, byte-identical, its SHA-256 checked against the manifest).")
@options.json_output
def inspect(image: str, extract_to: Path | None, as_json: bool) -> None:
    """Show what is inside a dte disk IMAGE (a file or a drive), or a GGUF model file.

    \b
    Prints the GPT partition table, the files on the EFI System Partition, the firmware
    (machine, subsystem, sections, size, SHA-256, signed or not), the manifest, and the model
    read in place from the weights partition: architecture, tokenizer, pre-tokenizer, vocabulary,
    chat template, and whether dte runs it (the engine's own check, as the firmware does at boot).
    Exits non-zero when the parts disagree, the image is corrupt, or the model would not run.
    """
    report = inspect_image(image)
    if extract_to is not None:
        report["extracted"] = _extract(image, report, extract_to)
    if as_json:
        click.echo(json.dumps({"schema": options.JSON_SCHEMA_VERSION, **report}, indent=2))
    else:
        _print(report)
    if report["problems"]:
        for problem in report["problems"]:
            warn(problem)
        hint = "use a model dte runs (dte inspect MODEL.gguf)" if "image" not in report else \
            "rebuild the image with dte build"
        raise DteError(f"{image}: {len(report['problems'])} problem(s) found", hint)
