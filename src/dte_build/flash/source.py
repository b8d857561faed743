"""What `dte flash` writes: a disk's bytes described as data extents (everything else reads as zero).

Two kinds of source give the same thing:
- an image file made by `dte build`: its data extents come from SEEK_DATA / SEEK_HOLE, so the holes of a sparse
  image are never read;
- an image plan (`dte_build.image.plan.plan_image`): the extents the builder would have written into a fresh sparse
  file, streamed straight from the firmware, the ESP bytes and the GGUF without materialising the image.

The GPT ranges (protective MBR + primary header + entries, backup entries + header) come from the image's own
GPT, read with `dte_build.image.gpt.read_gpt`; the writer puts them last.
"""

from __future__ import annotations

import io
import mmap
import os
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DteError
from ..image import gpt as gptlib
from .blockio import Chunk, plan_chunks

SECTOR_SIZES = (512, 4096)


@dataclass(frozen=True)
class Extent:
    """`length` bytes at disk byte `offset`: either `data` or the file `path` from `file_offset`.
    `kind` ("esp", "weights", "weights-pad", "gpt", or "" for an image file's data) and `what` describe it."""

    offset: int
    length: int
    data: bytes | None = None
    path: Path | None = None
    file_offset: int = 0
    kind: str = ""
    what: str = ""

    @property
    def end(self) -> int:
        return self.offset + self.length


class Source:
    """A disk image of `size` bytes: sorted, non-overlapping data extents; gaps read as zeros."""

    def __init__(self, name: str, size: int, extents: Iterable[Extent], *, gaps_matter: bool = True,
                 has_gpt: bool = True) -> None:
        self.name = name
        # An image file's holes are zeros that may matter (zero runs inside the ESP or the GGUF); a plan's gaps
        # are don't-care by contract (everything that matters is an extent), so they are neither written nor read.
        self.gaps_matter = gaps_matter
        self.size = size
        self.extents = sorted((e for e in extents if e.length > 0), key=lambda e: e.offset)
        for a, b in zip(self.extents, self.extents[1:]):
            if b.offset < a.end:
                raise DteError(f"{name}: extents at {a.offset} and {b.offset} overlap")
        if self.extents and self.extents[-1].end > size:
            raise DteError(f"{name}: an extent ends at {self.extents[-1].end}, past the disk size {size}")
        self._files: dict[Path, int] = {}
        self._maps: dict[Path, mmap.mmap] = {}
        self._lock = threading.Lock()  # read_into runs in several threads at once
        # has_gpt False: a piece of a disk (the builder writes the weights while they are hashed, before the
        # manifest and GPT exist); no GPT ranges, nothing held back for last.
        self.sector_size, self.gpt_ranges, self.disk_guid = _gpt_geometry(self) if has_gpt else (512, [], None)

    def chunks(self) -> list[Chunk]:
        """The units flash writes and verify reads: aligned chunks, GPT ranges last, don't-care gaps left out."""
        chunks = plan_chunks(self.size, self.gpt_ranges, self.has_data)
        return [c for c in chunks if c.data or self.gaps_matter]

    def files(self) -> list[Path]:
        """The files this source reads (the image file, or a plan's ESP and GGUF)."""
        return sorted({e.path for e in self.extents if e.path is not None})

    @property
    def data_bytes(self) -> int:
        return sum(e.length for e in self.extents)

    def has_data(self, offset: int, length: int) -> bool:
        """True when any extent overlaps [offset, offset + length)."""
        end = offset + length
        return any(e.offset < end and offset < e.end for e in self._near(offset, end))

    def data_ranges(self, offset: int, length: int) -> list[tuple[int, int]]:
        """The [lo, hi) pieces of [offset, offset + length) that extents cover, in order."""
        end = offset + length
        out = [(max(offset, e.offset), min(end, e.end)) for e in self._near(offset, end)]
        return [(lo, hi) for lo, hi in out if lo < hi]

    def read_into(self, buf: memoryview, offset: int) -> None:
        """Fill `buf` with the disk's bytes from `offset` (zeros where no extent lies)."""
        end = offset + len(buf)
        pos = offset
        for e in self._near(offset, end):
            lo, hi = max(offset, e.offset), min(end, e.end)
            if lo >= hi:
                continue
            _zero(buf[pos - offset:lo - offset])
            pos = hi
            dst = buf[lo - offset:hi - offset]
            if e.data is not None:
                dst[:] = e.data[lo - e.offset:hi - e.offset]
            else:
                assert e.path is not None
                got = os.preadv(self._fd(e.path), [dst], e.file_offset + lo - e.offset)
                if got != hi - lo:
                    raise DteError(f"{e.path} is shorter than the image expects (read {got} of {hi - lo} "
                                   f"bytes at {e.file_offset + lo - e.offset})", "rebuild the image")
        _zero(buf[pos - offset:])

    def read(self, offset: int, length: int) -> bytes:
        buf = bytearray(length)
        self.read_into(memoryview(buf), offset)
        return bytes(buf)

    def _covering(self, offset: int, length: int) -> Extent | None:
        """The one file extent that covers [offset, offset + length) whole, if there is one."""
        near = self._near(offset, offset + length)
        if len(near) != 1 or near[0].path is None or near[0].offset > offset or near[0].end < offset + length:
            return None
        return near[0]

    def file_range(self, offset: int, length: int) -> tuple[int, int] | None:
        """(descriptor, offset in it) of a file holding [offset, offset + length) whole, for copy_file_range."""
        e = self._covering(offset, length)
        if e is None:
            return None
        assert e.path is not None
        return self._fd(e.path), e.file_offset + offset - e.offset

    def mapped(self, offset: int, length: int) -> memoryview | None:
        """Zero-copy: a view of the page cache (mmap) when one file extent covers the whole range, else None.
        The caller releases the view when done."""
        e = self._covering(offset, length)
        if e is None:
            return None
        assert e.path is not None
        with self._lock:
            if e.path not in self._maps:
                self._maps[e.path] = mmap.mmap(self._fd_locked(e.path), 0, prot=mmap.PROT_READ)
            m = self._maps[e.path]
        start = e.file_offset + offset - e.offset
        if start + length > len(m):
            return None
        return memoryview(m)[start:start + length]

    def close(self) -> None:
        for m in self._maps.values():
            try:
                m.close()
            except BufferError:  # a view is still alive somewhere; the mapping goes with it
                pass
        self._maps.clear()
        for fd in self._files.values():
            os.close(fd)
        self._files.clear()

    def _near(self, offset: int, end: int) -> list[Extent]:
        # Binary search for the first extent that may overlap, then walk while extents start before `end`.
        lo, hi = 0, len(self.extents)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.extents[mid].end <= offset:
                lo = mid + 1
            else:
                hi = mid
        out = []
        for e in self.extents[lo:]:
            if e.offset >= end:
                break
            out.append(e)
        return out

    def _fd(self, path: Path) -> int:
        with self._lock:
            return self._fd_locked(path)

    def _fd_locked(self, path: Path) -> int:
        if path not in self._files:
            self._files[path] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        return self._files[path]


_ZEROS = memoryview(bytes(1 << 20))


def _zero(view: memoryview) -> None:
    for at in range(0, len(view), len(_ZEROS)):
        n = min(len(_ZEROS), len(view) - at)
        view[at:at + n] = _ZEROS[:n]


class _SourceFile(io.RawIOBase):
    """A read-only file view of a Source, so `gpt.read_gpt` can parse it."""

    def __init__(self, source: Source) -> None:
        self._source, self._pos = source, 0

    def readable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = 0) -> int:
        self._pos = pos if whence == 0 else (self._pos + pos if whence == 1 else self._source.size + pos)
        return self._pos

    def read(self, size: int = -1) -> bytes:
        size = self._source.size - self._pos if size < 0 else min(size, self._source.size - self._pos)
        data = self._source.read(self._pos, max(size, 0))
        self._pos += len(data)
        return data


def _gpt_geometry(source: Source) -> tuple[int, list[tuple[int, int]], uuid.UUID]:
    """Sector size, the two GPT byte ranges ([0, first usable LBA) and (last usable LBA, end of disk]) and the
    disk GUID (derived from the image's content, so another image has another one)."""
    reasons = []
    for ss in SECTOR_SIZES:
        try:
            table = gptlib.read_gpt(_SourceFile(source), source.size, ss)
        except DteError as exc:
            reasons.append(f"{ss}-byte sectors: {exc}")
            continue
        return ss, [(0, table.first_usable_lba * ss), ((table.last_usable_lba + 1) * ss, source.size)], \
            table.disk_guid
    raise DteError(f"{source.name} holds no valid GPT ({'; '.join(reasons)})",
                   "pass an image made by `dte build`")


def data_extents(fd: int, size: int) -> list[tuple[int, int]]:
    """(offset, length) of every data range of a file, skipping holes with SEEK_DATA / SEEK_HOLE."""
    out: list[tuple[int, int]] = []
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:  # ENXIO: no data after pos
            break
        end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
        out.append((start, end - start))
        pos = end
    return out


def image_source(path: str | Path) -> Source:
    """The Source for an image file (a `dte build` image); refuses a missing or non-GPT file."""
    p = Path(path)
    if not p.exists():
        raise DteError(f"image {p} does not exist", "build one with `dte build` or check the path")
    if not p.is_file():
        raise DteError(f"image {p} is not a regular file")
    fd = os.open(p, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        ranges = data_extents(fd, size)
    finally:
        os.close(fd)
    if size == 0:
        raise DteError(f"image {p} is empty")
    return Source(str(p), size, [Extent(off, n, path=p, file_offset=off) for off, n in ranges])


def plan_source(plan: Any, name: str = "image plan", *, without: frozenset[str] = frozenset(),
                has_gpt: bool = True) -> Source:
    """The Source for an `ImagePlan` (image/plan.py: disk_size + these Extents); `without`: extent kinds left out
    (the builder has written the weights already)."""
    extents = [e for e in plan.extents if e.kind not in without]
    return Source(name, int(plan.disk_size), extents, gaps_matter=False, has_gpt=has_gpt)
