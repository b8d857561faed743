"""`build_image`: write an ImagePlan to a sparse file, atomically (temp file in the same directory + rename)."""

from __future__ import annotations

import errno
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..board import Board
from ..console import info, progress, warn
from ..errors import DteError
from .manifest import ModelDigest, digest_model
from .model_check import ModelInfo, check_model
from .plan import Extent, ImagePlan, plan_image

COPY_CHUNK = 8 * 1024 * 1024


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


def _is_zero(chunk: memoryview) -> bool:
    return chunk.nbytes == 0 or (chunk[0] == 0 and chunk == bytes(chunk.nbytes))


def _data_ranges(fd: int, start: int, end: int) -> list[tuple[int, int]]:
    """The [begin, end) ranges of a file holding data (SEEK_DATA/SEEK_HOLE); the whole span if unsupported."""
    ranges, pos = [], start
    try:
        while pos < end:
            try:
                data = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:
                    break
                raise
            if data >= end:
                break
            hole = min(os.lseek(fd, data, os.SEEK_HOLE), end)
            ranges.append((data, hole))
            pos = hole
    except (OSError, AttributeError):
        return [(start, end)]
    return ranges


def _copy(src: int, src_off: int, dst: int, dst_off: int, length: int, *, skip_zeros: bool, bar: Any) -> None:
    """Copy `length` bytes between descriptors: copy_file_range when both are files, read/write otherwise."""
    done = 0
    use_cfr = not skip_zeros and hasattr(os, "copy_file_range")
    buf = bytearray(COPY_CHUNK)
    view = memoryview(buf)
    while done < length:
        want = min(COPY_CHUNK, length - done)
        if use_cfr:
            try:
                n = os.copy_file_range(src, dst, want, src_off + done, dst_off + done)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EBADF):
                    raise
                use_cfr = False
                continue
        else:
            n = os.preadv(src, [view[:want]], src_off + done)
            if n and not (skip_zeros and _is_zero(view[:n])):
                os.pwrite(dst, view[:n], dst_off + done)
        if n == 0:
            raise DteError(f"source ended {length - done} bytes early while copying (file changed?)")
        done += n
        bar.advance(n)


class _NoBar:
    def advance(self, amount: int) -> None:
        pass


def write_extent(extent: Extent, dst: int, *, fresh: bool, bar: Any = None) -> None:
    """Write one extent to descriptor `dst`. `fresh`: the target reads as zeros, so zero runs are skipped."""
    bar = bar or _NoBar()
    if extent.data is not None:
        if len(extent.data) != extent.length:
            raise DteError(f"extent '{extent.what}' holds {len(extent.data)} bytes, not {extent.length}")
        if not (fresh and extent.kind in ("wipe", "weights-pad")):
            os.pwrite(dst, extent.data, extent.offset)
        bar.advance(extent.length)
        return
    assert extent.path is not None
    src = os.open(extent.path, os.O_RDONLY)
    try:
        if os.fstat(src).st_size < extent.file_offset + extent.length:
            raise DteError(f"{extent.path} is shorter than the {extent.length} bytes planned (file changed?)")
        if extent.kind == "esp" and fresh:
            begin, end = extent.file_offset, extent.file_offset + extent.length
            covered = 0
            for a, b in _data_ranges(src, begin, end):
                _copy(src, a, dst, extent.offset + a - begin, b - a, skip_zeros=True, bar=bar)
                covered += b - a
            bar.advance(extent.length - covered)
        else:
            _copy(src, extent.file_offset, dst, extent.offset, extent.length, skip_zeros=False, bar=bar)
    finally:
        os.close(src)


def write_plan(plan: ImagePlan, dst: int, *, fresh: bool, description: str = "writing image",
               skip_kinds: frozenset[str] = frozenset()) -> None:
    """Write every extent of `plan`, in order, to descriptor `dst` (a file sized to plan.disk_size, or a drive).

    `skip_kinds`: extents already written by the caller (build_image copies the weights while hashing them).
    """
    extents = [e for e in plan.extents if e.kind not in skip_kinds]
    with progress(description, sum(e.length for e in extents)) as bar:
        for extent in extents:
            write_extent(extent, dst, fresh=fresh, bar=bar)


def _copy_model_while_hashing(model: Path, dst: int, offset: int) -> ModelDigest:
    """Copy the GGUF to `offset` in `dst` while another thread hashes it (SHA-256 and CRC32C release the GIL,
    copy_file_range runs in the kernel): the build costs about one read of the model, not two."""
    size = model.stat().st_size
    with ThreadPoolExecutor(max_workers=1) as pool:
        hashing = pool.submit(digest_model, model)
        src = os.open(model, os.O_RDONLY)
        try:
            with progress(f"copying {model.name}", size) as bar:
                _copy(src, 0, dst, offset, size, skip_zeros=False, bar=bar)
        finally:
            os.close(src)
        return hashing.result()


def build_image(board: Board, efi_path: Path, out_path: Path, *, model_path: Path | None = None,
                build_id: str, extra_esp_files: dict[str, bytes | Path] | None = None,
                source_date_epoch: int | None = None, no_model: bool = False, persona: dict[str, Any] | None = None,
                stream_weights: bool = False) -> ImageResult:
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
    model_info = check_model(model_path, board, stream_weights=stream_weights) if model_path is not None else None
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
            digest = _copy_model_while_hashing(Path(model_path), fd, board.weights_offset)
        with plan_image(board, efi_path, model_path=model_path, build_id=build_id,
                        extra_esp_files=extra_esp_files, source_date_epoch=source_date_epoch,
                        model_info=model_info, model_digest=digest, persona=persona) as plan:
            os.ftruncate(fd, plan.disk_size)
            write_plan(plan, fd, fresh=True, skip_kinds=frozenset({"weights"}))
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
