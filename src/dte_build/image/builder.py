"""`build_image`: write an ImagePlan to a sparse file, atomically (temp file in the same directory + rename): the
weights partition in one streaming pass (image/weights.py: hash, layout, CRC32C and write), then the ESP and the GPT
through `dte flash`'s writer (a file is a target), one fsync."""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..board import Board
from ..console import info, warn
from ..errors import DteError
from ..flash.source import plan_source
from ..flash.writer import write_fresh_file
from ..toolchain import firmware_context
from .model_check import ModelInfo, check_model
from .plan import plan_image
from .weights import write_weights


@dataclass(frozen=True)
class ImageResult:
    path: Path
    size: int
    manifest: dict[str, Any]
    seconds: float
    model: ModelInfo | None


def default_model(board: Board) -> Path | None:
    """The board's default model when that file exists (models/ fills in later), else None."""
    path = board.default_model
    return path if path is not None and path.is_file() else None


def build_image(board: Board, efi_path: Path, out_path: Path, *, model_path: Path | None = None,
                build_id: str, extra_esp_files: dict[str, bytes | Path] | None = None,
                source_date_epoch: int | None = None, no_model: bool = False, persona: dict[str, Any] | None = None,
                stream_weights: bool = False, n_ctx: int = 0) -> ImageResult:
    """Validate the model, then write the GPT image to `out_path` atomically and sparsely.

    Without `model_path` the board's default model is used if it exists (`no_model` forces none); an image without
    a model has no weights partition and `"model": null` in its manifest. On any error no file is left behind.
    `persona`: the manifest's "persona" entry ({"name", "sha256", "strength"}, docs/identity.md).
    `stream_weights`: accept a model larger than the board's weights region (the firmware streams it).
    """
    start = time.monotonic()
    out_path = Path(out_path)
    if out_path.is_dir():
        raise DteError(f"output {out_path} is a directory", "give a file name, e.g. -o dte_boot.img")
    if not out_path.parent.is_dir():
        raise DteError(f"output directory {out_path.parent} does not exist")
    if not Path(efi_path).is_file():
        raise DteError(f"firmware {efi_path} does not exist", "build the firmware first")
    if no_model and model_path is not None:
        raise DteError("a model path and no_model (--no-model) were both given", "pick one")
    if model_path is None and not no_model:
        model_path = default_model(board)
    model_info = (check_model(model_path, board, stream_weights=stream_weights, n_ctx=firmware_context(n_ctx))
                  if model_path is not None else None)
    if no_model:
        info("no model (asked for): the image carries no weights partition")
    elif model_info is None:
        warn(f"no model: the image carries no weights partition (board default "
             f"{board.default_model or 'none'} not found); pass --model PATH.gguf")
    fd, tmp_name = tempfile.mkstemp(dir=out_path.parent, prefix=f"{out_path.name}.tmp-")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        digest = None
        if model_path is not None:
            digest = write_weights(Path(model_path), fd, board.weights_offset)
            if digest.size != model_info.size:
                raise DteError(f"model {model_path} changed while the image was built ({model_info.size} bytes "
                               f"when checked, {digest.size} when copied)")
        with plan_image(board, efi_path, model_path=model_path, build_id=build_id,
                        extra_esp_files=extra_esp_files, source_date_epoch=source_date_epoch,
                        model_info=model_info, model_digest=digest, persona=persona) as plan:
            os.ftruncate(fd, plan.disk_size)
            # The rest through the same writer; the weights (and their zero padding) are there already.
            source = plan_source(plan, out_path.name, without=frozenset({"weights", "weights-pad"}))
            try:
                write_fresh_file(source, fd, tmp_name, label="writing image")
            finally:
                source.close()
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp_name, out_path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _fsync_dir(out_path.parent)
    seconds = time.monotonic() - start
    info(f"wrote {out_path} ({plan.disk_size / (1024 * 1024):.0f} MiB, "
         f"{'model ' + model_info.name if model_info else 'no model'}) in {seconds:.2f} s")
    return ImageResult(out_path, plan.disk_size, plan.manifest, seconds, plan.model)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
