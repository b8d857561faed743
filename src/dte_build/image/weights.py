"""The weights partition in one streaming pass at copy speed (docs/design.md "Manifest"): read the GGUF once
(mapped, no copy), SHA-256 of the original bytes on a thread of its own (hashlib releases the GIL), the layout's
transform of the tensors it lays out (engine/layout.c through the hosted library, GIL released), CRC32C of each
1 MiB chunk of the bytes as written, and the write — with the kernel's writeback started window by window, so the
one fsync at the end finds almost nothing left to write.

SHA-256 is the slowest step (≈ 1.2 GB/s with SHA-NI, about a copy's speed): everything else runs beside it.
"""

from __future__ import annotations

import ctypes
import hashlib
import mmap
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import crc32c

from ..console import progress
from ..errors import DteError
from .manifest import CHUNK_SIZE, ModelDigest

WINDOW = 2 * CHUNK_SIZE  # bytes packed, checksummed and written per step: small enough to stay in the CPU's cache
HASH_STEP = 16 * CHUNK_SIZE  # bytes per hashlib call (the GIL is released inside)
WRITEBACK_STEP = 16 * CHUNK_SIZE  # writeback is started in steps of this
_SYNC_FILE_RANGE_WRITE = 2  # linux/fs.h: start writeback of dirty pages in the range, do not wait


class LaidOut(Protocol):
    """A tensor the layout transforms (dte_build.layout.Range): bytes [offset, offset + size) of the file."""

    offset: int
    size: int
    type: int
    n_cols: int
    n_rows: int


Transform = Callable[[int, int, int, memoryview, memoryview], object]
"""pack(type, n_cols, n_rows, src, dst): GGUF bytes of n_rows whole rows -> the layout's bytes, same length."""


@dataclass(frozen=True)
class _Piece:
    start: int
    end: int
    tensor: LaidOut | None  # None: bytes written as they are


def pieces(size: int, laid_out: Sequence[LaidOut], window: int = WINDOW) -> Iterator[_Piece]:
    """The file cut into pieces of at most `window` bytes (or one group of 4 rows, when a group is larger), each
    either written as it is or a run of whole 4-row groups of one laid-out tensor (its last piece holds the
    remainder rows), in file order."""
    at = 0
    for t in sorted(laid_out, key=lambda t: t.offset):
        if t.offset < at or t.offset + t.size > size or t.n_rows <= 0 or t.size % t.n_rows:
            raise DteError(f"layout: tensor bytes {t.offset}..{t.offset + t.size} do not fit the {size}-byte model")
        while at < t.offset:
            yield _Piece(at, min(t.offset, at + window), None)
            at = min(t.offset, at + window)
        group = 4 * (t.size // t.n_rows)
        step = max(group, window - window % group)
        end = t.offset + t.size
        while at < end:
            yield _Piece(at, min(end, at + step), t)
            at = min(end, at + step)
    while at < size:
        yield _Piece(at, min(size, at + window), None)
        at = min(size, at + window)


class _ChunkCrcs:
    """CRC32C of each `chunk`-byte chunk of a stream fed in pieces of any length."""

    def __init__(self, chunk: int) -> None:
        self.chunk, self.crcs, self._crc, self._filled = chunk, [], 0, 0

    def feed(self, view: memoryview) -> None:
        at = 0
        while at < len(view):
            n = min(len(view) - at, self.chunk - self._filled)
            self._crc = crc32c.crc32c(view[at:at + n], self._crc)
            self._filled += n
            at += n
            if self._filled == self.chunk:
                self.crcs.append(self._crc)
                self._crc, self._filled = 0, 0

    def done(self) -> tuple[int, ...]:
        if self._filled:
            self.crcs.append(self._crc)
            self._crc, self._filled = 0, 0
        return tuple(self.crcs)


def _libc_sync_file_range() -> Callable[[int, int, int], None]:
    """Start writeback of a written range without waiting (Linux sync_file_range); a no-op elsewhere."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.sync_file_range
    except (OSError, AttributeError):
        return lambda fd, at, n: None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return lambda fd, at, n: fn(fd, at, n, _SYNC_FILE_RANGE_WRITE) and None


def write_all(fd: int, views: list[memoryview], at: int) -> None:
    """Write `views` back to back at byte `at` of `fd`, finishing a short write."""
    total = sum(len(v) for v in views)
    done = os.pwritev(fd, views, at)
    if done == total:
        return
    for v in views:  # a short vectored write (rare on a file): finish piece by piece
        if done >= len(v):
            done -= len(v)
            continue
        v, done = v[done:], 0
        while len(v):
            n = os.pwrite(fd, v, at)
            if n <= 0:
                raise DteError(f"writing the weights at byte {at} failed (disk full?)")
            v, at = v[n:], at + n


def write_weights(model: Path, fd: int, offset: int, *,
                  laid_out: Sequence[LaidOut] | Callable[[], Sequence[LaidOut]] = (),
                  pack: Transform | None = None, label: str | None = None, chunk_size: int = CHUNK_SIZE,
                  stop: threading.Event | None = None) -> ModelDigest:
    """Write the GGUF at `model` to `fd` at byte `offset`, transforming the `laid_out` tensors with `pack`, in one
    pass. Returns the SHA-256 of the file as it is (the model's identity) and the CRC32C of each `chunk_size`
    chunk of the bytes as written (what the firmware checks). The caller fsyncs once.
    `laid_out` may be a function, called once the hashing has started (finding the tensors costs the engine's
    GGUF parse). `stop`: set it to end the pass early (it raises DteError)."""
    try:
        src = os.open(model, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise DteError(f"cannot read model {model}: {exc.strerror}") from None
    try:
        size = os.fstat(src).st_size
        if size == 0:
            raise DteError(f"model {model} is empty (0 bytes)", "pass a GGUF file")
        mapped = mmap.mmap(src, size, access=mmap.ACCESS_COPY)  # private: the transform's C reads it, never writes
    finally:
        os.close(src)
    try:
        return _stream(mapped, size, fd, offset, laid_out, pack, label or f"copying {Path(model).name}", chunk_size,
                       stop or threading.Event())
    finally:
        try:
            mapped.close()
        except BufferError:  # a view still held by an exception's traceback: unmapped when that goes
            pass


def _stream(mapped: mmap.mmap, size: int, fd: int, offset: int,
            laid_out: Sequence[LaidOut] | Callable[[], Sequence[LaidOut]], pack: Transform | None, label: str,
            chunk_size: int, stop: threading.Event) -> ModelDigest:
    mapped.madvise(mmap.MADV_SEQUENTIAL)
    view = memoryview(mapped)
    sha = hashlib.sha256()
    failed: list[BaseException] = []

    def hasher() -> None:  # the slowest step, so it starts first and walks the mapping on its own
        try:
            for at in range(0, size, HASH_STEP):
                if stop.is_set():
                    return
                sha.update(view[at:at + HASH_STEP])
        except BaseException as exc:  # reported by the writer below
            failed.append(exc)

    thread = threading.Thread(target=hasher, name="dte-sha256", daemon=True)
    thread.start()
    try:
        crcs = _write_pass(view, size, fd, offset, laid_out, pack, label, chunk_size, stop)
    except BaseException:
        stop.set()
        raise
    finally:
        thread.join()
    if failed:
        raise failed[0]
    if stop.is_set():
        raise DteError("the weights pass was stopped")
    return ModelDigest(size, sha.hexdigest(), chunk_size, crcs)


def _write_pass(view: memoryview, size: int, fd: int, offset: int,
                laid_out: Sequence[LaidOut] | Callable[[], Sequence[LaidOut]], pack: Transform | None, label: str,
                chunk_size: int, stop: threading.Event) -> tuple[int, ...]:
    """The writer's side of the pass: pack, CRC32C and write, window by window; the CRC32C list."""
    tensors = laid_out() if callable(laid_out) else laid_out
    if tensors and pack is None:
        raise DteError("write_weights: laid-out tensors need a pack function")
    crcs = _ChunkCrcs(chunk_size)
    start_writeback = _libc_sync_file_range()
    out = bytearray(WINDOW)
    out_view = memoryview(out)
    batch: list[_Piece] = []
    synced = offset  # writeback started up to here

    def flush() -> None:
        nonlocal synced
        if stop.is_set():
            raise DteError("the weights pass was stopped")
        lo, hi = batch[0].start, batch[-1].end
        iov: list[memoryview] = []
        used = 0
        for p in batch:
            if p.tensor is None:
                iov.append(view[p.start:p.end])
                continue
            n = p.end - p.start
            if used + n > len(out_view):  # one group wider than the window: a buffer of its own
                dst = memoryview(bytearray(n))
            else:
                dst, used = out_view[used:used + n], used + n
            t = p.tensor
            pack(t.type, t.n_cols, n // (t.size // t.n_rows), view[p.start:p.end], dst)
            iov.append(dst)
        for v in iov:
            crcs.feed(v)
        write_all(fd, iov, offset + lo)
        if offset + lo - synced >= WRITEBACK_STEP:  # what is written so far: start writing it out, do not wait
            start_writeback(fd, synced, offset + lo - synced)
            synced = offset + lo
        bar.advance(hi - lo)
        batch.clear()

    with progress(label, size) as bar:
        for p in pieces(size, tensors):
            if batch and (p.end - batch[0].start > WINDOW or len(batch) >= 64):
                flush()
            batch.append(p)
        flush()
    return crcs.done()


LAYOUTS = ("gguf", "rows4")
"""The weights partition's layouts (docs/design.md "Manifest", docs/kernels.md "Weight layouts"): `gguf`, the file's
bytes as they are; `rows4`, the legacy 32-element types' matrices 4 rows interleaved (engine/layout.h)."""
DEFAULT_LAYOUT = "rows4"


def layout_id(name: str) -> int:
    """The engine's DTE_LAYOUT_* id of a layout name."""
    from .. import layout

    ids = {v: k for k, v in layout.NAMES.items()}
    if name not in ids:
        raise DteError(f"unknown weights layout '{name}'", f"pick one of {', '.join(LAYOUTS)}")
    return ids[name]


def laid_out_tensors(model: Path, layout_name: str) -> list[LaidOut]:
    """The tensors of the GGUF at `model` that `layout_name` stores differently, in file order (none for gguf)."""
    lid = layout_id(layout_name)
    if lid == 0:
        return []
    from .. import layout

    return list(layout.ranges(model, lid))


def laid_out_tensors_in(data: memoryview, size: int, layout_name: str) -> list[LaidOut]:
    """The same for a GGUF held in `data` (`size` bytes; its header is the same in every layout)."""
    lid = layout_id(layout_name)
    if lid == 0:
        return []
    from .. import layout

    return list(layout.ranges_in(data, size, lid))


def write_model(model: Path, fd: int, offset: int, layout_name: str = DEFAULT_LAYOUT, *,
                label: str | None = None, stop: threading.Event | None = None) -> ModelDigest:
    """`write_weights` in the named layout, with the engine's own pack (engine/layout.c)."""
    from .. import layout

    lid = layout_id(layout_name)
    def pack(type_id: int, n_cols: int, n_rows: int, src: memoryview, dst: memoryview) -> object:
        return layout.pack(type_id, n_cols, n_rows, src, dst, layout=lid)

    return write_weights(model, fd, offset, laid_out=lambda: laid_out_tensors(model, layout_name), pack=pack,
                         label=label or f"weights {Path(model).name} ({layout_name})", stop=stop)
