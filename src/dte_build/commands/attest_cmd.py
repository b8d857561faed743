"""`dte attest verify`: check an appliance's boot attestation against a disk image (docs/identity.md)."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.table import Table

from ..console import err, out
from ..errors import DteError
from . import options


@click.group()
def attest() -> None:
    """Check what a dte appliance measured at boot (firmware, weights, persona, TPM PCR)."""


@attest.command("verify")
@click.argument("report", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--image", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The disk image the appliance booted (dte build's output).")
@click.option("--persona", "persona_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Also compare the compiled-in persona hash with this persona file.")
@options.json_output
def verify(report: Path, image: Path, persona_file: Path | None, as_json: bool) -> None:
    """Recompute from IMAGE what REPORT says the appliance measured, part by part.

    \b
    REPORT is the console log of a boot (it holds `dte: attest ...`) or `dte run --json` output.
    Checked: the firmware file on the ESP (and against the manifest), the weights hash (manifest
    and the GGUF the weights partition holds, its layout undone), the persona hash, the TPM PCR 12 value and the digest.
    Exits 1 when any part differs and names it.
    \b
    Example:  dte run dte_boot.img --json > boot.json; dte attest verify boot.json --image dte_boot.img
    """
    from ..attest import verify_files

    result = verify_files(report, image, persona_file)
    if as_json:
        click.echo(json.dumps({"schema": options.JSON_SCHEMA_VERSION, **result}, indent=2))
    else:
        table = Table("part", "result", "reported", "expected", title="attestation", title_justify="left")
        for part in result["parts"]:
            colour = {"match": "green", "differ": "red"}.get(part["status"], "yellow")
            table.add_row(part["name"], f"[{colour}]{part['status']}[/]", part["reported"], part["expected"])
        out.print(table)
        out.print(f"platform (reported, not checkable from the image): {result['platform']}", markup=False)
    if result["differ"]:
        raise DteError(f"attestation differs: {', '.join(result['differ'])}",
                       "the image is not what the appliance booted (or was changed since)")
    err.print("dte attest verify: every part matches", markup=False)
