"""Read a target back and prove it holds the image: CRC32C per chunk, the first differing byte on mismatch.

A target whose GPT is missing is reported as incomplete: `dte flash` writes the GPT last (after invalidating the
old one first), so a flash stopped by Ctrl-C, a kill or a power cut always leaves a target without a valid GPT.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..console import progress
from ..errors import DteError
from ..image import gpt as gptlib
from . import blockio
from .blockio import Chunk
from .source import Source


@dataclass
class VerifyResult:
    status: str  # "ok", "incomplete", "mismatch", "other" (a complete dte image, but not this one)
    bytes_checked: int = 0
    seconds: float = 0.0
    first_bad_offset: int | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def line(self) -> str:
        if self.status == "ok":
            return "OK"
        if self.status == "incomplete":
            return f"incomplete: {self.detail}"
        if self.status == "other":
            return self.detail
        return f"mismatch at offset {self.first_bad_offset}" + (f" ({self.detail})" if self.detail else "")


class _FdFile:
    """Minimal file object over a raw fd, for gpt.read_gpt and the ESP reader."""

    def __init__(self, fd: int) -> None:
        self.fd, self.pos = fd, 0

    def seek(self, pos: int, whence: int = 0) -> int:
        self.pos = pos if whence == 0 else (self.pos + pos if whence == 1 else os.lseek(self.fd, 0, os.SEEK_END) + pos)
        return self.pos

    def read(self, size: int) -> bytes:
        data = os.pread(self.fd, size, self.pos)
        self.pos += len(data)
        return data


def gpt_problem(fd: int, source: Source) -> str | None:
    """Why the target has no valid GPT laid out like the image's (None when it has one)."""
    try:
        gptlib.read_gpt(_FdFile(fd), source.size, source.sector_size)  # type: ignore[arg-type]
    except DteError as exc:
        return f"no GPT ({exc.message})"
    return None


def other_image(fd: int, source: Source) -> str | None:
    """A line naming the image the target holds when it holds a complete one that is not `source` (another disk
    GUID: dte derives it from the image's content), read with the target's own size (a drive larger than its
    image keeps the image's backup GPT); None when it holds `source` or no valid GPT at all."""
    size = os.lseek(fd, 0, os.SEEK_END)
    try:
        table = gptlib.read_gpt(_FdFile(fd), size, source.sector_size)  # type: ignore[arg-type]
    except DteError:
        return None
    if table.disk_guid == source.disk_guid:
        return None
    what = f"disk GUID {table.disk_guid}"
    esp = next((p for p in table.partitions if p.type_guid == gptlib.ESP_TYPE), None)
    if esp is not None:
        from ..image import manifest as mf
        from ..image.esp import FatReader

        try:
            fat = FatReader(_FdFile(fd), esp.first_lba * table.sector_size,  # type: ignore[arg-type]
                            esp.sectors * table.sector_size)
            m = mf.parse_manifest_json(fat.read(mf.MANIFEST_PATH))
            model = (m["model"] or {}).get("name") or "no model"
            what = f"board {m['board']}, build {m['build_id']}, {model}"
        except DteError:
            pass
    return f"this drive holds another image ({what}), not this one: flash it to replace"


def open_for_readback(path: Path, *, direct: bool) -> int:
    """A read fd that bypasses the page cache: O_DIRECT where the device or filesystem allows it, else a plain
    one after fadvise(DONTNEED) has dropped the file's cached pages."""
    if direct:
        try:
            return os.open(path, os.O_RDONLY | os.O_DIRECT | os.O_CLOEXEC)
        except OSError:
            pass
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    blockio.drop_cache(fd)
    return fd


def first_difference(source: Source, path: Path, chunk: Chunk) -> int:
    """Exact byte offset of the first difference inside a chunk whose CRC did not match."""
    want = source.read(chunk.offset, chunk.length)
    fd = open_for_readback(path, direct=False)
    try:
        got = os.pread(fd, chunk.length, chunk.offset)
    finally:
        os.close(fd)
    for i in range(0, min(len(want), len(got)), 4096):
        if want[i:i + 4096] != got[i:i + 4096]:
            return chunk.offset + next(j for j in range(i, i + 4096) if j >= len(got) or want[j] != got[j])
    return chunk.offset + min(len(want), len(got))


def source_crc(source: Source, chunk: Chunk, buf: memoryview) -> int:
    if not chunk.data:
        return blockio.zero_crc(chunk.length)
    view = buf[:chunk.length]
    source.read_into(view, chunk.offset)
    return blockio.crc(view)


def verify_chunks(source: Source, path: Path, chunks: Iterable[Chunk], *,
                  expected: dict[int, int] | None = None, label: str = "verify") -> VerifyResult:
    """Read every chunk back from `path`; compare CRC32C with `expected` (offset -> crc) or the source."""
    chunks = list(chunks)
    start = time.monotonic()
    plain = open_for_readback(path, direct=False)
    try:
        other = other_image(plain, source)
        problem = gpt_problem(plain, source)
    finally:
        os.close(plain)
    if other:
        return VerifyResult("other", detail=other, seconds=time.monotonic() - start)
    fd = open_for_readback(path, direct=True)
    try:
        if problem:
            detail = problem + "; an interrupted flash looks like this: run `dte flash` again"
            return VerifyResult("incomplete", detail=detail,
                                seconds=time.monotonic() - start)
        size = os.lseek(fd, 0, os.SEEK_END)
        if size < source.size:
            return VerifyResult("mismatch", first_bad_offset=size, detail=f"target ends at byte {size}")
        def check(c: Chunk, view: memoryview) -> bool:
            got = blockio.read_all(fd, view, c.offset)
            have = blockio.crc(view)
            want = expected[c.offset] if expected is not None else source_crc(source, c, view)
            return got == c.length and have == want

        checked = 0
        with progress(label, sum(c.length for c in chunks)) as bar:
            results = blockio.pipeline(sorted(chunks, key=lambda c: c.offset), check)
            for c, good in results:
                if not good:
                    results.close()
                    return VerifyResult("mismatch", checked, time.monotonic() - start,
                                        first_difference(source, path, c))
                checked += c.length
                bar.advance(c.length)
        return VerifyResult("ok", checked, time.monotonic() - start)
    finally:
        os.close(fd)
