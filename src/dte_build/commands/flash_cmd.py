"""`dte flash` and `dte verify`: write an image to a drive (or file) safely, and prove it is there."""

from __future__ import annotations

import json
import os
import sys
from contextlib import ExitStack
from pathlib import Path

import click

from ..console import err, warn
from ..errors import DteError
from ..flash import FlashVerifyError, Source, Target, flash, image_source, plan_source, verify
from ..flash.target import human
from ..image import gpt as gptlib
from .options import JSON_SCHEMA_VERSION


def _say(line: str) -> None:
    """A result line on stdout (the command's result; progress and questions stay on stderr), never wrapped."""
    click.echo(line)


def _board_source(board_name: str, model: Path | None, no_model: bool, target: Path, stack: ExitStack) -> Source:
    """What `dte build --board NAME [--model M]` would write with its defaults (the board's persona, no network,
    unsigned), as an image plan sized to the target when it is a disk or an existing file, streamed without
    writing an image file."""
    from ..board import load_board
    from ..image.builder import default_model
    from ..image.plan import plan_image
    from ..appliance import appliance_firmware
    board = load_board(board_name)
    model = None if no_model else (model if model is not None else default_model(board))
    identity, firmware, _ = appliance_firmware(board, model=model)   # the model's chat template compiled in
    disk_size = None
    if target.exists() and (target.is_block_device() or target.stat().st_size > 0):
        fd = os.open(target, os.O_RDONLY)
        try:
            disk_size = os.lseek(fd, 0, os.SEEK_END)
        finally:
            os.close(fd)
    plan = stack.enter_context(plan_image(board, firmware.efi_path, model_path=model, build_id=firmware.build_id,
                                          disk_size=disk_size, persona=identity.manifest_entry()))
    return plan_source(plan, f"{board.name} + {model.name if model else 'no model'}")


def _source(args: tuple[str, ...], board: str | None, model: Path | None, no_model: bool,
            stack: ExitStack) -> tuple[Source, Path]:
    if no_model and model is not None:
        raise DteError("--model and --no-model contradict each other")
    if board:
        if len(args) != 1:
            raise DteError("with --board give only the DEVICE",
                           "e.g. dte flash --board qemu-q35 --model m.gguf out.img")
        return _board_source(board, model, no_model, Path(args[0]), stack), Path(args[0])
    if model is not None or no_model:
        raise DteError("--model/--no-model need --board", "or flash an image made by `dte build`")
    if len(args) != 2:
        raise DteError("give IMAGE and DEVICE", "e.g. dte flash dte_boot.img /dev/nvme0n1")
    source = image_source(args[0])
    stack.callback(source.close)
    return source, Path(args[1])


def _current_table(target: Target) -> str:
    """One line about the partition table the target has now (what the flash destroys)."""
    if not target.exists:
        return "new file"
    try:
        with open(target.path, "rb") as f:
            table = gptlib.read_gpt(f, target.size, target.sector_size)
    except (DteError, OSError) as exc:
        return f"no valid GPT ({exc})"
    parts = ", ".join(f"{p.number}:{p.name or '?'} {human(p.sectors * table.sector_size).split(' (')[0]}"
                      for p in table.partitions)
    return f"GPT with {len(table.partitions)} partition(s): {parts or 'none'}"


def _stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


def _confirm(target: Target, source: Source) -> bool:
    """Show what will be destroyed and ask; with no terminal to ask on, refuse."""
    err.print(f"[bold]target[/]  {target.describe()}")
    err.print(f"[bold]now[/]     {_current_table(target)}", markup=True)
    err.print(f"[bold]write[/]   {source.name}: {human(source.size)}, of which {human(source.data_bytes)} data")
    if not _stdin_is_terminal():
        raise DteError(f"refusing to overwrite {target.path} without confirmation (stdin is not a terminal)",
                       "pass --yes if you are sure")
    return click.confirm(f"Erase everything on {target.path}?", default=False, err=True)


def _list_devices(as_json: bool) -> None:
    """The drive picker: every disk with its flags and the refusal `dte flash` would give it."""
    from dataclasses import asdict

    from rich.table import Table

    from ..console import out
    from ..flash.target import list_drives

    drives = list_drives()
    if as_json:
        click.echo(json.dumps({"schema": JSON_SCHEMA_VERSION, "drives": [asdict(d) for d in drives]}, indent=2))
        return
    table = Table("device", "model", "size", "transport", "flags", "dte flash", title="drives", title_justify="left")
    for d in drives:
        flags = [f for f, on in (("system", d.system), ("removable", d.removable), ("read-only", d.read_only),
                                 ("mounted", bool(d.mounted)), ("held", bool(d.holders))) if on]
        if d.backing_file:
            flags.append(f"file {d.backing_file}")
        table.add_row(d.path, d.model or "-", human(d.size).split(" (")[0], d.transport, ", ".join(flags) or "-",
                      f"refused: {d.refused}" if d.refused else "can flash")
    out.print(table)


@click.command("flash")
@click.argument("args", nargs=-1, metavar="IMAGE DEVICE")
@click.option("--board", help="Write BOARD's firmware (+ --model) directly, without an image file.")
@click.option("-m", "--model", type=click.Path(dir_okay=False, path_type=Path),
              help="GGUF model, with --board (default: the board's default model when present).")
@click.option("--no-model", is_flag=True, help="With --board: no weights partition.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before erasing the target.")
@click.option("--dry-run", is_flag=True, help="Run every check and show what would be written; write nothing.")
@click.option("--no-verify", is_flag=True, help="Skip reading the target back after writing.")
@click.option("--changed-only", is_flag=True,
              help="Re-flash: read each chunk first and write only those whose CRC32C differs.")
@click.option("--to-file", is_flag=True,
              help="DEVICE may be a regular file (an image file to write); without it only a drive is a target.")
@click.option("--list-devices", is_flag=True,
              help="List the drives this machine has (model, size, transport, flags) and why dte would refuse each.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def flash_command(args: tuple[str, ...], board: str | None, model: Path | None, no_model: bool, yes: bool,
                  dry_run: bool, no_verify: bool, changed_only: bool, to_file: bool, list_devices: bool,
                  as_json: bool) -> None:
    """Write a dte image to DEVICE (a whole disk such as /dev/nvme0n1, or a file) and read it back.

    \b
    Refuses character devices, directories, partitions, mounted or swap disks, md/LVM/dm members, the disk the
    running system is on, and disks smaller than the image. Asks before erasing unless --yes.
    Writes in large aligned chunks (O_DIRECT where allowed), zeroes holes without sending them, writes the
    GPT last (an interrupted flash leaves no valid GPT: `dte verify` says incomplete, re-running completes it),
    flushes, then reads every chunk back and compares CRC32C.

    \b
      dte flash --list-devices
      dte flash dte_boot.img /dev/sdb
      dte flash --changed-only --yes dte_boot.img /dev/sdb
      dte flash --board qemu-q35 --model models/tiny.gguf --to-file disk.img
    """
    if list_devices:
        _list_devices(as_json)
        return
    with ExitStack() as stack:
        source, target = _source(args, board, model, no_model, stack)
        image_path = Path(args[0]) if not board else None
        try:
            report = flash(source, target, confirm=None if yes else _confirm, dry_run=dry_run,
                           verify=not no_verify, changed_only=changed_only, image_path=image_path, to_file=to_file,
                           on_target=lambda t: [warn(w) for w in t.warnings])
        except FlashVerifyError as exc:
            if as_json:
                click.echo(json.dumps({"schema": JSON_SCHEMA_VERSION, **exc.report.to_dict()}, indent=2))
            raise
    if as_json:
        click.echo(json.dumps({"schema": JSON_SCHEMA_VERSION, **report.to_dict()}, indent=2))
        return
    verb = "would write" if dry_run else "wrote"
    _say(f"{verb} {human(report.bytes_written)} to {report.target}, zeroed {human(report.bytes_zeroed)}, "
         f"skipped {human(report.bytes_skipped)} ({report.chunks_written} chunks written, "
         f"{report.chunks_skipped} skipped) in {report.write_seconds:.2f} s, {report.mib_per_s} MiB/s")
    if report.verified:
        _say(f"verified: {report.verify_status} ({report.verify_seconds:.2f} s)")


@click.command("verify")
@click.argument("args", nargs=-1, metavar="IMAGE DEVICE")
@click.option("--board", help="Check against BOARD's firmware (+ --model) instead of an image file.")
@click.option("-m", "--model", type=click.Path(dir_okay=False, path_type=Path), help="GGUF model, with --board.")
@click.option("--no-model", is_flag=True, help="With --board: no weights partition.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def verify_command(args: tuple[str, ...], board: str | None, model: Path | None, no_model: bool,
                   as_json: bool) -> None:
    """Read DEVICE back and check it holds IMAGE: prints OK, "incomplete: no GPT ..." (an interrupted flash;
    run `dte flash` again), "this drive holds another image (...)" or "mismatch at offset N".
    Exits 0 when OK, 2 when incomplete, 1 otherwise."""
    with ExitStack() as stack:
        source, target = _source(args, board, model, no_model, stack)
        result = verify(source, target)
    if as_json:
        click.echo(json.dumps({"schema": JSON_SCHEMA_VERSION, "target": str(target), "image": source.name,
                               "status": result.status,
                               "verified": result.ok, "line": result.line(), "bytes_checked": result.bytes_checked,
                               "seconds": round(result.seconds, 3), "first_bad_offset": result.first_bad_offset,
                               "mib_per_s": round(result.bytes_checked / (1 << 20) / result.seconds, 1)
                               if result.seconds > 0 else 0.0}, indent=2))
    else:
        _say(f"{target}: {result.line()}")
    if not result.ok:
        sys.exit(2 if result.status == "incomplete" else 1)


__all__ = ["flash_command", "verify_command"]
