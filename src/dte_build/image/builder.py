"""`build_image`: write an ImagePlan to a sparse file, atomically (temp file in the same directory + rename): the
weights partition in one streaming pass (image/weights.py: hash, layout, CRC32C and write), then the ESP and the GPT
through `dte flash`'s writer (a file is a target), one fsync."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
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
from .manifest import ModelDigest
from .plan import plan_image
from .weights import DEFAULT_LAYOUT, layout_id, write_model


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


class PendingImage:
    """An image being built: the model checked and its weights partition streaming into a temporary file beside
    `out_path` on a thread of its own (`start_image`), while the caller compiles the firmware; `finish` adds the
    ESP and GPT once the firmware exists, fsyncs once and renames; `abort` removes the temporary file."""

    def __init__(self, board: Board, out_path: Path, model_path: Path | None, model_info: ModelInfo | None,
                 weights_layout: str, start: float) -> None:
        self.board, self.out_path, self.model_path, self.model_info = board, out_path, model_path, model_info
        self.weights_layout, self._start = weights_layout, start
        self._fd, self._tmp = tempfile.mkstemp(dir=out_path.parent, prefix=f"{out_path.name}.tmp-")
        self._weights: Future[ModelDigest] | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._stop = threading.Event()
        try:
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(self._fd, 0o666 & ~umask)
            if model_path is not None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="dte-weights")
                self._weights = self._pool.submit(write_model, Path(model_path), self._fd, board.weights_offset,
                                                  weights_layout, stop=self._stop)
        except BaseException:
            self.abort()
            raise

    def _digest(self) -> ModelDigest | None:
        if self._weights is None:
            return None
        digest = self._weights.result()
        assert self.model_info is not None
        if digest.size != self.model_info.size:
            raise DteError(f"model {self.model_path} changed while the image was built ({self.model_info.size} "
                           f"bytes when checked, {digest.size} when copied)")
        return digest

    def finish(self, efi_path: Path, *, build_id: str, extra_esp_files: dict[str, bytes | Path] | None = None,
               source_date_epoch: int | None = None, persona: dict[str, Any] | None = None) -> ImageResult:
        try:
            if not Path(efi_path).is_file():
                raise DteError(f"firmware {efi_path} does not exist", "build the firmware first")
            digest = self._digest()
            with plan_image(self.board, efi_path, model_path=self.model_path, build_id=build_id,
                            extra_esp_files=extra_esp_files, source_date_epoch=source_date_epoch,
                            model_info=self.model_info, model_digest=digest, persona=persona,
                            weights_layout=self.weights_layout) as plan:
                os.ftruncate(self._fd, plan.disk_size)
                # The rest through the flash writer; the weights (and their zero padding) are there already.
                source = plan_source(plan, self.out_path.name, without=frozenset({"weights", "weights-pad"}))
                try:
                    write_fresh_file(source, self._fd, self._tmp, label="writing image")
                finally:
                    source.close()
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
            os.replace(self._tmp, self.out_path)
        except BaseException:
            self.abort()
            raise
        _fsync_dir(self.out_path.parent)
        seconds = time.monotonic() - self._start
        info(f"wrote {self.out_path} ({plan.disk_size / (1024 * 1024):.0f} MiB, "
             f"{'model ' + self.model_info.name if self.model_info else 'no model'}) in {seconds:.2f} s")
        return ImageResult(self.out_path, plan.disk_size, plan.manifest, seconds, plan.model)

    def abort(self) -> None:
        """Stop the weights pass and remove the temporary file."""
        self._stop.set()
        if self._weights is not None:
            self._weights.cancel()
            try:
                self._weights.exception()
            except BaseException:
                pass
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        Path(self._tmp).unlink(missing_ok=True)


def start_image(board: Board, out_path: Path, *, model_path: Path | None = None, no_model: bool = False,
                stream_weights: bool = False, n_ctx: int = 0,
                weights_layout: str = DEFAULT_LAYOUT) -> PendingImage:
    """Check the output and the model, then start writing the weights partition (see PendingImage).

    Without `model_path` the board's default model is used if it exists (`no_model` forces none); an image without
    a model has no weights partition and `"model": null` in its manifest.
    `stream_weights`: accept a model larger than the board's weights region (the firmware streams it).
    `weights_layout`: how the weights partition stores the tensors (LAYOUTS; the manifest records it).
    """
    start = time.monotonic()
    out_path = Path(out_path)
    if out_path.is_dir():
        raise DteError(f"output {out_path} is a directory", "give a file name, e.g. -o dte_boot.img")
    if not out_path.parent.is_dir():
        raise DteError(f"output directory {out_path.parent} does not exist")
    if no_model and model_path is not None:
        raise DteError("a model path and no_model (--no-model) were both given", "pick one")
    layout_id(weights_layout)
    if model_path is None and not no_model:
        model_path = default_model(board)
    if model_path is not None and not Path(model_path).is_file():
        raise DteError(f"model {model_path} does not exist or is not a file")
    # The weights pass starts first (its SHA-256 is the build's longest step); the engine's check runs beside it
    # and, when it refuses the model, stops it and removes the temporary file.
    pending = PendingImage(board, out_path, Path(model_path) if model_path else None, None, weights_layout, start)
    try:
        if model_path is not None:
            pending.model_info = check_model(model_path, board, stream_weights=stream_weights,
                                             n_ctx=firmware_context(n_ctx))
    except BaseException:
        pending.abort()
        raise
    if no_model:
        info("no model (asked for): the image carries no weights partition")
    elif model_path is None:
        warn(f"no model: the image carries no weights partition (board default "
             f"{board.default_model or 'none'} not found); pass --model PATH.gguf")
    return pending


def build_image(board: Board, efi_path: Path, out_path: Path, *, model_path: Path | None = None,
                build_id: str, extra_esp_files: dict[str, bytes | Path] | None = None,
                source_date_epoch: int | None = None, no_model: bool = False, persona: dict[str, Any] | None = None,
                stream_weights: bool = False, n_ctx: int = 0, weights_layout: str = DEFAULT_LAYOUT) -> ImageResult:
    """Validate the model, then write the GPT image to `out_path` atomically and sparsely (start_image, then
    PendingImage.finish). On any error no file is left behind.
    `persona`: the manifest's "persona" entry ({"name", "sha256", "strength"}, docs/identity.md).
    """
    if not Path(efi_path).is_file():
        raise DteError(f"firmware {efi_path} does not exist", "build the firmware first")
    pending = start_image(board, out_path, model_path=model_path, no_model=no_model, stream_weights=stream_weights,
                          n_ctx=n_ctx, weights_layout=weights_layout)
    return pending.finish(efi_path, build_id=build_id, extra_esp_files=extra_esp_files,
                          source_date_epoch=source_date_epoch, persona=persona)


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
