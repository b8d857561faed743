"""The disk image as a list of extents: what `dte build` writes to a file and `dte flash` to a drive, both through
the one writer (flash/writer.py; `flash.plan_source(plan)` is the plan as a Source).

The writer puts the GPT (backup first, the protective MBR last) down after everything else and invalidates an old
one first, so an interrupted write never looks like a complete disk. Holes are not extents: a fresh (sparse, zero)
file needs no writing there, and a drive's gaps are don't-care. The ESP is built in a temporary directory that
lives as long as the plan: use the plan as a context manager (or call `close()`).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..board import Board
from ..console import progress
from ..errors import DteError
from ..flash.source import Extent
from . import gpt, manifest as mf
from .esp import build_esp
from .model_check import ModelInfo, check_model
from .weights import DEFAULT_LAYOUT, laid_out_tensors, layout_id, write_model

MIB = 1024 * 1024
ESP_OFFSET = MIB  # first byte of partition 1 (LBA 2048 at 512-byte sectors)
ESP_NAME = "EFI System Partition"
WEIGHTS_NAME = "dte-weights"


@dataclass
class ImagePlan:
    board: str
    disk_size: int
    sector_size: int
    extents: list[Extent]
    manifest: dict[str, Any]
    table: gpt.GptTable
    model: ModelInfo | None
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    def close(self) -> None:
        """Remove the temporary ESP file; the plan's path extents are unusable afterwards."""
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> ImagePlan:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def written_bytes(self) -> int:
        return sum(e.length for e in self.extents)


def resolve_epoch(source_date_epoch: int | None) -> int:
    """The timestamp every file in the image gets: the argument, else $SOURCE_DATE_EPOCH, else 0."""
    if source_date_epoch is not None:
        return int(source_date_epoch)
    raw = os.environ.get("SOURCE_DATE_EPOCH", "0")
    try:
        return int(raw)
    except ValueError:
        raise DteError(f"SOURCE_DATE_EPOCH='{raw}' is not an integer") from None


def _esp_files(efi: bytes, manifest_bytes: bytes, weights_man: bytes,
               extra: dict[str, bytes | Path] | None) -> dict[str, bytes]:
    files = {mf.FIRMWARE_PATH: efi, mf.MANIFEST_PATH: manifest_bytes, mf.WEIGHTS_MAN_PATH: weights_man}
    for name, source in sorted((extra or {}).items()):
        name = name.strip("/")
        if name.upper() in {k.upper() for k in files}:
            raise DteError(f"extra ESP file '{name}' would replace one dte writes itself")
        if isinstance(source, bytes):
            files[name] = source
        else:
            try:
                files[name] = Path(source).read_bytes()
            except OSError as exc:
                raise DteError(f"extra ESP file '{name}': cannot read {source}: {exc.strerror}") from None
    return files


def _content_hash(files: dict[str, bytes]) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(f"{name}\0{hashlib.sha256(files[name]).hexdigest()}\0".encode())
    return h.hexdigest()


def plan_image(board: Board, efi_path: Path, *, model_path: Path | None, build_id: str,
               extra_esp_files: dict[str, bytes | Path] | None = None, source_date_epoch: int | None = None,
               disk_size: int | None = None, model_info: ModelInfo | None = None,
               model_digest: mf.ModelDigest | None = None, persona: dict[str, Any] | None = None,
               weights_layout: str = DEFAULT_LAYOUT) -> ImagePlan:
    """Validate the inputs and lay out the image.

    `disk_size`: the target's size (a drive for `dte flash`); default the smallest disk that holds everything,
    with 1 MiB after the last partition for the backup GPT. `model_info` / `model_digest`: skip re-validating /
    re-hashing a model the caller already checked / hashed and written in `weights_layout` (without a digest, the
    weights partition is written here, in that layout, into the plan's temporary directory, unless the layout
    leaves the file as it is). `persona`: the manifest's "persona" entry.
    """
    epoch = resolve_epoch(source_date_epoch)
    ss = board.sector_size
    try:
        efi = Path(efi_path).read_bytes()
    except OSError as exc:
        raise DteError(f"firmware {efi_path}: {exc.strerror}", "build it first (dte build)") from None
    digest = None
    tmp = tempfile.TemporaryDirectory(prefix="dte-esp-")
    try:
        weights_path = Path(model_path) if model_path is not None else None
        if model_path is not None:
            model_info = model_info or check_model(model_path, board)
            size = Path(model_path).stat().st_size
            digest = model_digest
            if digest is None and laid_out_tensors(Path(model_path), weights_layout):
                weights_path = Path(tmp.name) / "weights.bin"
                fd = os.open(weights_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
                try:
                    digest = write_model(Path(model_path), fd, 0, weights_layout,
                                         label=f"laying out {Path(model_path).name} ({weights_layout})")
                finally:
                    os.close(fd)
            elif digest is None:
                with progress("hashing model", size) as bar:
                    digest = mf.digest_model(Path(model_path), on_bytes=bar.advance)
            elif digest.size != size:
                raise DteError(f"model {model_path} is {size} bytes now but {digest.size} when it was hashed")
        return _plan(board, efi, epoch, build_id, model_path, weights_path, model_info, digest, persona,
                     weights_layout, extra_esp_files, disk_size, tmp)
    except BaseException:
        tmp.cleanup()
        raise


def _plan(board: Board, efi: bytes, epoch: int, build_id: str, model_path: Path | None, weights_path: Path | None,
          model_info: ModelInfo | None, digest: mf.ModelDigest | None, persona: dict[str, Any] | None,
          weights_layout: str, extra_esp_files: dict[str, bytes | Path] | None, disk_size: int | None,
          tmp: tempfile.TemporaryDirectory[str]) -> ImagePlan:
    ss = board.sector_size
    manifest = mf.make_manifest(
        board=board.name, build_id=build_id, source_date_epoch=epoch, efi=efi, weights_lba=board.weights_lba,
        sector_size=ss, model_name=Path(model_path).name if model_path else None,
        architecture=model_info.architecture if digest else None,
        tensor_count=model_info.tensor_count if digest else None, digest=digest, persona=persona,
        layout=weights_layout)
    files = _esp_files(efi, mf.manifest_json(manifest),
                       mf.weights_man(board.weights_lba, digest, layout_id(weights_layout)), extra_esp_files)
    content = _content_hash(files)

    esp_first = ESP_OFFSET // ss
    esp_bytes = board.esp_mib * MIB
    end = ESP_OFFSET + esp_bytes
    partitions = [gpt.Partition(1, gpt.ESP_TYPE, gpt.derive_guid("esp", board.name, content), esp_first,
                                esp_first + esp_bytes // ss - 1, ESP_NAME)]
    if digest is not None:
        weights_bytes = -(-digest.size // MIB) * MIB
        partitions.append(gpt.Partition(2, gpt.WEIGHTS_TYPE, gpt.derive_guid("weights", board.name, digest.sha256,
                                                                          weights_layout),
                                        board.weights_lba, board.weights_lba + weights_bytes // ss - 1,
                                        WEIGHTS_NAME))
        end = board.weights_offset + weights_bytes
    least = end + MIB
    if disk_size is None:
        disk_size = least
    elif disk_size < least:
        raise DteError(f"the target holds {disk_size} bytes but the image needs {least} "
                       f"({least / MIB:.0f} MiB)")
    disk_size -= disk_size % ss
    table = gpt.make_table(gpt.derive_guid("disk", board.name, content, digest.sha256 if digest else "-",
                                           disk_size), disk_size, ss, partitions)

    esp_path = Path(tmp.name) / "esp.img"
    build_esp(esp_path, files, size_mib=board.esp_mib, sector_size=ss, hidden_sectors=esp_first,
              volume_id=int(content[:8], 16), source_date_epoch=epoch)
    if esp_path.stat().st_size != esp_bytes:
        raise DteError(f"mkfs.fat made a {esp_path.stat().st_size}-byte ESP, expected {esp_bytes}")

    extents = [Extent(ESP_OFFSET, esp_bytes, path=esp_path, kind="esp", what="EFI System Partition")]
    if digest is not None:
        extents.append(Extent(board.weights_offset, digest.size, path=weights_path, kind="weights",
                              what=f"model {Path(model_path).name} ({weights_layout} layout)"))
        pad = -digest.size % MIB
        if pad:
            extents.append(Extent(board.weights_offset + digest.size, pad, data=bytes(pad), kind="weights-pad",
                                  what="zeros to the end of the weights partition"))
    extents += [Extent(b.offset, len(b.data), data=b.data, kind="gpt", what=b.what) for b in gpt.render(table)]
    return ImagePlan(board.name, disk_size, ss, extents, manifest, table, model_info if digest else None, tmp)
