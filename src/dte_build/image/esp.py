"""The EFI System Partition: FAT32 built in its own zeroed file with mkfs.fat + mtools, and a reader.

Writing uses the standard tools (dosfstools' `mkfs.fat --invariant` with a fixed volume id, mtools' `mmd`/`mcopy`
with `SOURCE_DATE_EPOCH` and TZ=UTC), so the same inputs give the same bytes. FAT timestamps cannot go below
1980-01-01, so earlier epochs (the default 0) are clamped to it.

Reading is our own small FAT32 parser (Microsoft FAT spec "fatgen103": BPB, FAT chain, 8.3 + long-name entries),
so `dte inspect` and the tests need no tools to look inside an image.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from ..errors import DteError

FAT_EPOCH_MIN = 315532800  # 1980-01-01T00:00:00Z, the earliest FAT timestamp
VOLUME_LABEL = "DTEESP"
_INSTALL_HINT = "install them: apt-get install dosfstools mtools"


def _tool(name: str) -> str:
    found = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if os.path.exists(p)),
                                       None)
    if not found:
        raise DteError(f"'{name}' is needed to build the ESP but was not found", _INSTALL_HINT)
    return found


def _run(args: list[str], env: dict[str, str]) -> None:
    proc = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        detail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        raise DteError(f"{Path(args[0]).name} failed building the ESP: {detail[-1] if detail else proc.returncode}")


def _dirs_of(paths: list[str]) -> list[str]:
    """Every directory the files need, parents first; FAT names are case-insensitive, so "DTE" and "dte" are one."""
    dirs: dict[str, str] = {}
    for p in sorted(paths):
        for parent in PurePosixPath(p).parents:
            if str(parent) != ".":
                dirs.setdefault(str(parent).upper(), str(parent))
    return sorted(dirs.values(), key=lambda d: (d.count("/"), d.upper()))


def build_esp(path: Path, files: dict[str, bytes | Path], *, size_mib: int, sector_size: int = 512,
              hidden_sectors: int = 0, volume_id: int = 0, source_date_epoch: int = 0) -> None:
    """Create `path` (must not exist) as a FAT32 filesystem of `size_mib` MiB holding `files`.

    `files` maps a path inside the ESP ("EFI/BOOT/BOOTX64.EFI") to its bytes or a file on disk. Directories are
    created and files copied in sorted order so cluster allocation is reproducible.
    """
    seen: set[str] = set()
    for name in files:
        if name.upper() in seen:
            raise DteError(f"ESP path '{name}' is given twice (FAT names ignore case)")
        seen.add(name.upper())
        if name.startswith("/") or ".." in PurePosixPath(name).parts or not name:
            raise DteError(f"ESP path '{name}' must be relative, without '..'")
    if not 0 <= volume_id <= 0xFFFFFFFF:
        raise DteError(f"FAT volume id {volume_id:#x} does not fit 32 bits")
    epoch = max(int(source_date_epoch), FAT_EPOCH_MIN)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TZ": "UTC", "LC_ALL": "C",
           "SOURCE_DATE_EPOCH": str(epoch), "MTOOLS_SKIP_CHECK": "1", "MTOOLSRC": "/dev/null",
           "HOME": str(path.parent)}
    _run([_tool("mkfs.fat"), "-F", "32", "-S", str(sector_size), "-h", str(hidden_sectors), "-n", VOLUME_LABEL,
          "--invariant", "-i", f"{volume_id:08x}", "--mbr=n", "-C", str(path), str(size_mib * 1024)], env)
    image = str(path)
    dirs = _dirs_of(list(files))
    if dirs:
        _run([_tool("mmd"), "-i", image, *(f"::/{d}" for d in dirs)], env)
    staging = path.parent / f".{path.name}.staging"
    staging.mkdir(exist_ok=True)
    try:
        for i, name in enumerate(sorted(files)):
            source = files[name]
            if isinstance(source, bytes):
                tmp = staging / str(i)
                tmp.write_bytes(source)
                source = tmp
            elif not Path(source).is_file():
                raise DteError(f"file for the ESP '{name}' does not exist: {source}")
            _run([_tool("mcopy"), "-i", image, "-D", "o", str(source), f"::/{name}"], env)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@dataclass(frozen=True)
class EspEntry:
    path: str          # "EFI/BOOT/BOOTX64.EFI"
    size: int
    is_dir: bool
    cluster: int


class FatReader:
    """Read-only FAT32 over a file object, starting at byte `offset` (the partition's start)."""

    def __init__(self, f: BinaryIO, offset: int = 0) -> None:
        self._f, self._offset = f, offset
        boot = self._read(0, 512)
        if len(boot) < 512 or boot[510:512] != b"\x55\xaa":
            raise DteError(f"no FAT boot sector at byte {offset} (missing 0x55AA signature)")
        # BPB (fatgen103 §3.1/§3.3): BytsPerSec@11 SecPerClus@13 RsvdSecCnt@14 NumFATs@16 RootEntCnt@17
        # TotSec16@19 Media@21 FATSz16@22 ... TotSec32@32 FATSz32@36 ExtFlags@40 FSVer@42 RootClus@44
        (self.bytes_per_sector, self.sectors_per_cluster, reserved, fats, root_entries, total16, _media,
         fat16) = struct.unpack_from("<HBHBHHBH", boot, 11)
        total32, fat32, self.root_cluster = struct.unpack_from("<II4xI", boot, 32)
        if self.bytes_per_sector not in (512, 1024, 2048, 4096) or self.sectors_per_cluster == 0:
            raise DteError(f"FAT boot sector at byte {offset} has an invalid geometry")
        if fat16 != 0 or root_entries != 0 or fat32 == 0:
            raise DteError(f"the filesystem at byte {offset} is FAT12/16, not FAT32")
        self.volume_id = struct.unpack_from("<I", boot, 67)[0]
        self.label = boot[71:82].decode("ascii", errors="replace").strip()
        self.total_sectors = total32 or total16
        self.cluster_bytes = self.bytes_per_sector * self.sectors_per_cluster
        self._fat_offset = reserved * self.bytes_per_sector
        self._fat_bytes = fat32 * self.bytes_per_sector
        self._data_offset = (reserved + fats * fat32) * self.bytes_per_sector
        self._fat: bytes | None = None

    def _read(self, at: int, size: int) -> bytes:
        self._f.seek(self._offset + at)
        return self._f.read(size)

    def _chain(self, cluster: int) -> list[int]:
        if self._fat is None:
            self._fat = self._read(self._fat_offset, self._fat_bytes)
        chain: list[int] = []
        limit = len(self._fat) // 4
        while 2 <= cluster < 0x0FFFFFF8:
            if cluster >= limit or len(chain) > limit:
                raise DteError(f"FAT chain is broken at cluster {cluster}")
            chain.append(cluster)
            cluster = struct.unpack_from("<I", self._fat, cluster * 4)[0] & 0x0FFFFFFF
        return chain

    def _cluster_data(self, chain: list[int]) -> bytes:
        return b"".join(self._read(self._data_offset + (c - 2) * self.cluster_bytes, self.cluster_bytes)
                        for c in chain)

    def _dir(self, cluster: int) -> list[tuple[str, int, bool, int]]:
        raw = self._cluster_data(self._chain(cluster))
        found, long_parts = [], []
        for at in range(0, len(raw), 32):
            e = raw[at:at + 32]
            if e[0] == 0:
                break
            if e[0] == 0xE5:
                long_parts = []
                continue
            attr = e[11]
            if attr & 0x3F == 0x0F:  # long-name entry: 13 UTF-16 characters in three runs
                long_parts.append(e[1:11] + e[14:26] + e[28:32])
                continue
            if attr & 0x08:  # volume label
                long_parts = []
                continue
            name = self._entry_name(e, long_parts)
            long_parts = []
            if name in (".", ".."):
                continue
            cluster_no = (struct.unpack_from("<H", e, 20)[0] << 16) | struct.unpack_from("<H", e, 26)[0]
            found.append((name, struct.unpack_from("<I", e, 28)[0], bool(attr & 0x10), cluster_no))
        return found

    @staticmethod
    def _entry_name(e: bytes, long_parts: list[bytes]) -> str:
        if long_parts:
            text = b"".join(reversed(long_parts)).decode("utf-16-le", errors="replace")
            return text.split("\x00", 1)[0]
        base = e[0:8].decode("ascii", errors="replace").rstrip()
        ext = e[8:11].decode("ascii", errors="replace").rstrip()
        if e[0] == 0x05:
            base = "\xe5" + base[1:]
        if e[12] & 0x08:
            base = base.lower()
        if e[12] & 0x10:
            ext = ext.lower()
        return f"{base}.{ext}" if ext else base

    def list(self) -> list[EspEntry]:
        """Every file and directory, depth first, in on-disk order."""
        out: list[EspEntry] = []

        def walk(cluster: int, prefix: str, depth: int) -> None:
            if depth > 16:
                raise DteError("FAT directory tree is deeper than 16 levels (loop?)")
            for name, size, is_dir, first in self._dir(cluster):
                path = f"{prefix}{name}"
                out.append(EspEntry(path, 0 if is_dir else size, is_dir, first))
                if is_dir:
                    walk(first, f"{path}/", depth + 1)

        walk(self.root_cluster, "", 0)
        return out

    def find(self, path: str) -> EspEntry | None:
        want = path.strip("/").upper()
        return next((e for e in self.list() if e.path.upper() == want), None)

    def read(self, path: str) -> bytes:
        """The bytes of one file (path matched case-insensitively, as FAT does)."""
        entry = self.find(path)
        if entry is None or entry.is_dir:
            raise DteError(f"the ESP has no file '{path}'")
        return self._cluster_data(self._chain(entry.cluster))[:entry.size]
