"""Low-level disk I/O for flash and verify: aligned buffers, zeroing ranges, flushing, cache dropping."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import mmap
import os
import queue
import struct
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import crc32c

from .target import BLKFLSBUF, BLKZEROOUT

CHUNK = 8 << 20  # bytes per write: large enough to stream, small enough to retry and report precisely
DEPTH = 4  # chunks in flight at once: queue depth for the device (dd keeps one)
ALIGN = 4096  # covers 512-byte and 4Kn logical sectors for O_DIRECT

_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]


T = TypeVar("T")


@dataclass(frozen=True)
class Chunk:
    """One unit of work: [offset, offset + length); `data` False when the source is all zeros there;
    `gpt` True for the GPT ranges, which are written last."""

    offset: int
    length: int
    data: bool
    gpt: bool = False


def aligned_buffer(size: int) -> mmap.mmap:
    """A page-aligned anonymous buffer (what O_DIRECT needs)."""
    return mmap.mmap(-1, size)


def pipeline(chunks: list[Chunk], work: Callable[[Chunk, memoryview], T], depth: int = DEPTH
             ) -> Iterator[tuple[Chunk, T]]:
    """Run `work(chunk, buffer)` on up to `depth` chunks at once (threads; the I/O and CRC32C calls release the
    GIL), each with its own aligned CHUNK-sized buffer; yield results in chunk order. On an exception or when
    the consumer stops, chunks not yet started are cancelled and those running finish before this returns."""
    free: queue.SimpleQueue[mmap.mmap] = queue.SimpleQueue()
    for _ in range(depth):
        free.put(aligned_buffer(CHUNK))

    def run(c: Chunk) -> T:
        buf = free.get()
        view = memoryview(buf)[:c.length]
        try:
            return work(c, view)
        finally:
            view.release()
            free.put(buf)

    pool = ThreadPoolExecutor(depth, thread_name_prefix="dte-flash")
    pending: deque[tuple[Chunk, Future[T]]] = deque()
    try:
        for c in chunks:
            pending.append((c, pool.submit(run, c)))
            if len(pending) >= 2 * depth:
                done, fut = pending.popleft()
                yield done, fut.result()
        while pending:
            done, fut = pending.popleft()
            yield done, fut.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def plan_chunks(size: int, gpt_ranges: list[tuple[int, int]], has_data, chunk: int = CHUNK) -> list[Chunk]:
    """Split [0, size) into chunk-aligned pieces, the GPT ranges cut out and appended at the end.

    GPT ranges are widened to ALIGN so every piece stays aligned for O_DIRECT.
    """
    gpt = [(lo - lo % ALIGN, min(size, -(-hi // ALIGN) * ALIGN)) for lo, hi in gpt_ranges]
    pieces: list[Chunk] = []
    pos = 0
    for lo, hi in sorted(gpt) + [(size, size)]:
        while pos < lo:
            end = min(lo, (pos // chunk + 1) * chunk)
            pieces.append(Chunk(pos, end - pos, has_data(pos, end - pos)))
            pos = end
        pos = max(pos, hi)
    pieces += [Chunk(lo, hi - lo, True, gpt=True) for lo, hi in sorted(gpt, reverse=True)]
    return pieces


def zero_range(fd: int, offset: int, length: int, *, block: bool) -> None:
    """Make [offset, offset + length) read as zeros without sending zeros when the target can.

    Block device: BLKZEROOUT (WRITE ZEROES / deallocate on NVMe; the kernel falls back to writing zeros).
    Regular file: punch a hole (stays sparse); fall back to writing zeros.
    """
    if block:
        fcntl.ioctl(fd, BLKZEROOUT, struct.pack("QQ", offset, length))
        return
    if _libc.fallocate(fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, offset, length) == 0:
        return
    zeros = bytes(min(length, CHUNK))
    for at in range(offset, offset + length, len(zeros)):
        write_all(fd, memoryview(zeros)[:min(len(zeros), offset + length - at)], at)


def write_all(fd: int, view: memoryview, offset: int) -> None:
    """pwrite until done. A write O_DIRECT refuses (EINVAL: unaligned, or a filesystem without it) is
    retried once through the page cache by clearing O_DIRECT on the descriptor for that write."""
    done = 0
    while done < len(view):
        n = _direct_or_cached(fd, lambda: os.pwritev(fd, [view[done:]], offset + done))
        if n <= 0:
            raise OSError(f"short write at {offset + done}")
        done += n


def read_all(fd: int, view: memoryview, offset: int) -> int:
    """Read into `view` until full or end of file; returns bytes read."""
    done = 0
    while done < len(view):
        n = _direct_or_cached(fd, lambda: os.preadv(fd, [view[done:]], offset + done))
        if n <= 0:
            break
        done += n
    return done


def flush(fd: int, *, block: bool) -> None:
    """fsync, and for a block device BLKFLSBUF (write back + drop its page cache) then fsync again,
    which also sends the device a cache flush."""
    os.fsync(fd)
    if block:
        try:
            fcntl.ioctl(fd, BLKFLSBUF, 0)
        except OSError:
            pass
        os.fsync(fd)


def drop_cache(fd: int, offset: int = 0, length: int = 0) -> None:
    """Ask the kernel to forget cached pages so a read-back comes from the device, not from memory."""
    try:
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)
    except OSError:
        pass


_zero_crcs: dict[int, int] = {}


def zero_crc(length: int) -> int:
    """CRC32C of `length` zero bytes (cached: chunk sizes repeat)."""
    if length not in _zero_crcs:
        _zero_crcs[length] = crc32c.crc32c(bytes(length))
    return _zero_crcs[length]


_ZEROS = bytes(CHUNK)


def zeros(length: int) -> memoryview:
    """A read-only view of `length` zero bytes (length <= CHUNK)."""
    return memoryview(_ZEROS)[:length]


def crc(view: memoryview | bytes) -> int:
    return crc32c.crc32c(view)


def _direct_or_cached(fd: int, io: Callable[[], int]) -> int:
    """Run one read/write `io` on `fd`; when O_DIRECT refuses it (EINVAL: unaligned, or a filesystem without
    direct I/O), run it once more through the page cache by clearing O_DIRECT for that call only."""
    try:
        return io()
    except OSError as exc:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        if exc.errno != errno.EINVAL or not flags & os.O_DIRECT:
            raise
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_DIRECT)
        try:
            return io()
        finally:
            fcntl.fcntl(fd, fcntl.F_SETFL, flags)
