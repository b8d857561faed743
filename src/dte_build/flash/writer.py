"""`flash()`: write a Source to a checked target, safely ordered, fast, and read back.

Order of writes (what makes an interrupted flash detectable):
1. invalidate the target's old GPT (zero the primary and backup GPT ranges, and the device's last 4 KiB) + fsync,
   so a half-written target never still looks like the previous, complete appliance;
2. every data chunk (holes zeroed with BLKZEROOUT / punched, or left alone on a fresh sparse file) + fsync;
3. the GPT ranges (backup, then primary + protective MBR) + fsync + BLKFLSBUF;
4. read every written chunk back past the page cache and compare CRC32C.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from ..console import progress
from ..errors import DteError
from . import blockio
from .blockio import Chunk
from .source import Source
from .target import System, Target, inspect_target, open_exclusive
from .verify import VerifyResult, source_crc, verify_chunks


@dataclass
class FlashReport:
    """What a flash did; `to_dict()` is the `--json` output."""

    image: str
    target: str
    image_size: int
    bytes_written: int = 0  # data sent to the target
    bytes_zeroed: int = 0  # holes made zero without sending data (BLKZEROOUT / punched)
    bytes_skipped: int = 0  # already right: unchanged chunks (--changed-only) or holes of a fresh file
    chunks_written: int = 0
    chunks_skipped: int = 0
    seconds: float = 0.0
    write_seconds: float = 0.0
    verify_seconds: float = 0.0
    mib_per_s: float = 0.0
    verified: bool | None = None
    verify_status: str | None = None
    first_bad_offset: int | None = None
    direct_io: bool = False
    dry_run: bool = False

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


Confirm = Callable[[Target, Source], bool]


def flash(source: Source, target_path: str | Path, *, confirm: Confirm | None = None, dry_run: bool = False,
          verify: bool = True, changed_only: bool = False, direct: bool = True,
          on_chunk: Callable[[Chunk], None] | None = None, on_target: Callable[[Target], object] | None = None,
          system: System | None = None, image_path: Path | None = None, to_file: bool = True) -> FlashReport:
    """Check `target_path`, write `source` to it and (by default) read it back.

    `confirm(target, source)` is asked before anything is written (not in a dry run); returning False aborts.
    `on_target(target)` sees the checked target first (to print its warnings).
    `on_chunk` is called after each chunk is written (progress hooks, tests that interrupt a flash).
    `to_file` False: refuse anything but an existing block device (the CLI without --to-file).
    Raises DteError on refusal, on I/O errors and when the read-back does not match.
    """
    target = inspect_target(target_path, source.size, source.sector_size, image=image_path, system=system,
                            to_file=to_file, sources=source.files())
    report = FlashReport(source.name, str(target.path), source.size, dry_run=dry_run)
    if on_target is not None:
        on_target(target)
    if not dry_run and confirm is not None and not confirm(target, source):
        raise DteError("flash cancelled; nothing was written")
    start = time.monotonic()
    chunks = source.chunks()
    use_direct = direct and source.size % target.sector_size == 0
    fd = _open(target, dry_run=dry_run, direct=use_direct)
    report.direct_io = use_direct and bool(os.O_DIRECT & _flags(fd))
    try:
        fresh = target.kind == "file" and not target.exists
        if fresh and not dry_run:
            os.ftruncate(fd, source.size)
        todo = _select(source, chunks, fd, target, changed_only=changed_only, fresh=fresh, report=report)
        expected: dict[int, int] = {}
        if dry_run:
            _count_would_write(todo, report)
        elif todo:
            try:
                if not fresh:
                    _invalidate_gpt(fd, target, [c for c in chunks if c.gpt])
                _write(source, todo, fd, target, expected, report, on_chunk, fresh=fresh, verify=verify)
            except KeyboardInterrupt:
                raise DteError(f"interrupted: {target.path} is incomplete (no GPT)",
                               "run the same `dte flash` again to finish", exit_code=130) from None
            except OSError as exc:
                raise DteError(f"writing {target.path} failed: {exc}", "check the device (dmesg)") from None
    finally:
        os.close(fd)
    report.write_seconds = time.monotonic() - start
    if verify and not dry_run and todo:
        result = verify_chunks(source, target.path, todo, expected=expected)
        _record(report, result)
    elif changed_only and target.exists and not todo and not dry_run:
        report.verified, report.verify_status = True, "OK (every chunk already matched)"
    report.seconds = time.monotonic() - start
    moved = report.bytes_written + report.bytes_zeroed
    if report.write_seconds > 0 and not dry_run:
        report.mib_per_s = round(moved / (1 << 20) / report.write_seconds, 1)
    if report.verified is False:
        raise FlashVerifyError(report, result)
    return report


def write_fresh_file(source: Source, fd: int, name: str, *, label: str | None = None) -> FlashReport:
    """Write `source` into a regular file open at `fd` that reads as zeros wherever it was not written (new,
    sparse, sized by the caller): `dte build`'s path into this writer. Only data chunks are written, only their
    data ranges (holes stay holes); the GPT chunks last, as for a drive. No read-back (the builder fsyncs)."""
    target = Target(Path(name), "file", source.size, exists=False)
    report = FlashReport(source.name, name, source.size)
    start = time.monotonic()
    _write(source, [c for c in source.chunks() if c.data], fd, target, {}, report, None, fresh=True, verify=False,
           label=label)
    report.write_seconds = report.seconds = time.monotonic() - start
    return report


class FlashVerifyError(DteError):
    """The read-back after a flash did not match; carries the report for `--json`."""

    def __init__(self, report: FlashReport, result: VerifyResult) -> None:
        super().__init__(f"read-back of {report.target} failed: {result.line()}",
                         "the device may be failing; run `dte flash` again or try another disk")
        self.report = report


def _record(report: FlashReport, result: VerifyResult) -> None:
    report.verified = result.ok
    report.verify_status = result.line()
    report.first_bad_offset = result.first_bad_offset
    report.verify_seconds = result.seconds


def _count_would_write(todo: list[Chunk], report: FlashReport) -> None:
    report.chunks_written = len(todo)
    report.bytes_written = sum(c.length for c in todo if c.data)
    report.bytes_zeroed = sum(c.length for c in todo if not c.data)


def _flags(fd: int) -> int:
    return fcntl.fcntl(fd, fcntl.F_GETFL)


def _open(target: Target, *, dry_run: bool, direct: bool) -> int:
    if not dry_run:
        return open_exclusive(target, direct=direct)
    if not target.path.exists():
        return os.open("/dev/null", os.O_RDONLY)
    flags = os.O_RDONLY | os.O_CLOEXEC | (os.O_EXCL if target.is_block else 0)
    try:
        return os.open(target.path, flags)
    except OSError as exc:
        raise DteError(f"target {target.path} is busy or unreadable: {exc.strerror}") from None


def _select(source: Source, chunks: list[Chunk], fd: int, target: Target, *, changed_only: bool, fresh: bool,
            report: FlashReport) -> list[Chunk]:
    """The chunks to write: all of them, minus holes of a fresh file, minus (with --changed-only) every
    chunk whose CRC32C on the target already equals the image's."""
    compare = changed_only and target.exists
    skip = {c.offset for c in chunks if fresh and not c.data}
    if compare:
        def same(c: Chunk, view: memoryview) -> bool:
            got = blockio.read_all(fd, view, c.offset)
            have = blockio.crc(view)
            return got == c.length and have == source_crc(source, c, view)

        candidates = [c for c in chunks if c.offset not in skip]
        with progress("compare", sum(c.length for c in candidates)) as bar:
            for c, equal in blockio.pipeline(candidates, same):
                if equal:
                    skip.add(c.offset)
                bar.advance(c.length)
    todo = [c for c in chunks if c.offset not in skip]
    if any(not c.gpt for c in todo) and not fresh:
        # The old GPT is invalidated before any data is written, so every GPT chunk must be written again.
        todo += [c for c in chunks if c.gpt and c not in todo]
    report.chunks_skipped = len(chunks) - len(todo)
    report.bytes_skipped = sum(c.length for c in chunks) - sum(c.length for c in todo)
    return todo


def _invalidate_gpt(fd: int, target: Target, gpt_chunks: list[Chunk]) -> None:
    """Zero the GPT ranges (and the device's last 4 KiB, where an old backup header may live) first."""
    for c in gpt_chunks:
        blockio.zero_range(fd, c.offset, c.length, block=target.is_block)
    if target.size > max(c.offset + c.length for c in gpt_chunks):
        blockio.zero_range(fd, target.size - blockio.ALIGN, blockio.ALIGN, block=target.is_block)
    blockio.flush(fd, block=target.is_block)


def _runs(chunks: list[Chunk]) -> list[tuple[int, int]]:
    """Merge adjacent chunks into [lo, hi) runs."""
    runs: list[tuple[int, int]] = []
    for c in sorted(chunks, key=lambda c: c.offset):
        if runs and runs[-1][1] == c.offset:
            runs[-1] = (runs[-1][0], c.offset + c.length)
        else:
            runs.append((c.offset, c.offset + c.length))
    return runs


def _is_zero(view: memoryview, crc: int | None) -> bool:
    """All zero bytes? The CRC (when known) or the first 4 KiB rule most chunks out before a full compare."""
    if crc is not None and crc != blockio.zero_crc(len(view)):
        return False
    head = min(len(view), 4096)
    return view[:head] == blockio.zeros(head) and view == blockio.zeros(len(view))


def _write_file_extents(source: Source, fd: int, c: Chunk, view: memoryview, *, fresh: bool) -> int:
    """On a regular file, write only the source's data ranges of a chunk and keep (or punch) the gaps as holes.
    Returns the bytes written."""
    written, pos, end = 0, c.offset, c.offset + c.length
    # Widen each range to 4 KiB (the view holds the zeros around it) so O_DIRECT accepts every write.
    ranges = [(max(c.offset, lo - lo % blockio.ALIGN), min(end, -(-hi // blockio.ALIGN) * blockio.ALIGN))
              for lo, hi in source.data_ranges(c.offset, c.length)]
    merged: list[tuple[int, int]] = []
    for lo, hi in ranges:
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    for lo, hi in merged + [(end, end)]:
        if lo > pos and not fresh:
            blockio.zero_range(fd, pos, lo - pos, block=False)
        if hi > lo:
            blockio.write_all(fd, view[lo - c.offset:hi - c.offset], lo)
            written += hi - lo
        pos = hi
    return written


def _copy_in_kernel(source: Source, fd: int, c: Chunk) -> bool:
    """copy_file_range the chunk when one source file holds it whole and has no hole there (a hole would be
    copied as written zeros; the page-cache path keeps it a hole); False when it cannot."""
    where = source.file_range(c.offset, c.length)
    if where is None or not hasattr(os, "copy_file_range"):
        return False
    src, at = where
    try:
        if os.lseek(src, at, os.SEEK_HOLE) < at + c.length:
            return False
    except OSError:
        return False
    done = 0
    try:
        while done < c.length:
            n = os.copy_file_range(src, fd, c.length - done, at + done, c.offset + done)
            if n == 0:
                raise DteError(f"{source.name}: a source file ended early at byte {at + done} (file changed?)")
            done += n
    except OSError as exc:
        if done == 0 and exc.errno in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EBADF):
            return False
        raise
    return True


def _write(source: Source, todo: list[Chunk], fd: int, target: Target, expected: dict[int, int],
           report: FlashReport, on_chunk: Callable[[Chunk], None] | None, *, fresh: bool, verify: bool,
           label: str | None = None) -> None:
    """Write the body chunks (DEPTH at a time), flush, then the GPT chunks, flush. All-zero chunks become
    BLKZEROOUT / punched holes (or nothing on a fresh file) instead of zeros sent over the bus."""
    block = target.is_block

    def put(c: Chunk, buf: memoryview) -> tuple[int | None, int, int, int]:
        """(crc, bytes written, bytes zeroed, bytes skipped) for one data chunk."""
        if not block and not verify and not c.gpt and _copy_in_kernel(source, fd, c):
            return None, c.length, 0, 0  # file to file, nothing to checksum: the kernel copies (dte build's path)
        mapped = source.mapped(c.offset, c.length)  # write straight from the image's page cache: no copy
        try:
            return put_view(c, mapped if mapped is not None else _filled(buf, c))
        finally:
            if mapped is not None:
                mapped.release()

    def _filled(buf: memoryview, c: Chunk) -> memoryview:
        source.read_into(buf, c.offset)
        return buf

    def put_view(c: Chunk, view: memoryview) -> tuple[int | None, int, int, int]:
        crc = blockio.crc(view) if verify else None
        if not c.gpt and _is_zero(view, crc):
            if fresh:
                return crc, 0, 0, c.length
            blockio.zero_range(fd, c.offset, c.length, block=block)
            return crc, 0, c.length, 0
        if block:
            blockio.write_all(fd, view, c.offset)
            return crc, c.length, 0, 0
        written = _write_file_extents(source, fd, c, view, fresh=fresh)
        return crc, written, 0, c.length - written

    with progress(label or f"flash {target.path}", sum(c.length for c in todo)) as bar:
        holes = [c for c in todo if not c.data]
        for lo, hi in _runs(holes):  # one BLKZEROOUT / punch per run of holes: cheap, and parallel ones contend
            if not fresh:
                blockio.zero_range(fd, lo, hi - lo, block=block)
        for c in holes:
            expected[c.offset] = blockio.zero_crc(c.length)
            report.bytes_skipped += c.length if fresh else 0
            report.bytes_zeroed += 0 if fresh else c.length
            report.chunks_written += 1
            bar.advance(c.length)
            if on_chunk:
                on_chunk(c)
        for part in ([c for c in todo if c.data and not c.gpt], [c for c in todo if c.gpt]):
            for c, (crc, written, zeroed, skipped) in blockio.pipeline(part, put):
                if crc is not None:
                    expected[c.offset] = crc
                report.bytes_written += written
                report.bytes_zeroed += zeroed
                report.bytes_skipped += skipped
                report.chunks_written += 1
                bar.advance(c.length)
                if on_chunk:
                    on_chunk(c)
            blockio.flush(fd, block=block)  # data durable before the GPT goes down, GPT durable before verify
