"""The EFI System Partition: FAT32 built in its own zeroed file with mkfs.fat + mtools, and a reader.

Writing uses the standard tools (dosfstools' `mkfs.fat --invariant` with a fixed volume id, mtools' `mmd`/`mcopy`
with `SOURCE_DATE_EPOCH` and TZ=UTC), so the same inputs give the same bytes. FAT timestamps cannot go below
1980-01-01, so earlier epochs (the default 0) are clamped to it.

Reading goes through pyfatfs (a well-kept FAT12/16/32 + VFAT reader) over a read-only window of the partition,
after the boot sector's geometry has been checked against the partition's size (Microsoft FAT spec "fatgen103"
§3: sector and cluster sizes, reserved sectors, FAT size and count, total sectors, root cluster), so a corrupt or
hostile ESP is refused in one line instead of sending pyfatfs into a huge read or a cluster-chain loop.
"""

from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

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


class _Window(io.RawIOBase):
    """Read-only, seekable view of bytes [offset, offset + length) of a file: pyfatfs never reads outside it."""

    def __init__(self, f: BinaryIO, offset: int, length: int) -> None:
        super().__init__()
        self._f, self._offset, self._length, self._pos = f, offset, length, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def seek(self, pos: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._length}[whence]
        self._pos = max(0, base + pos)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buf: Any) -> int:
        n = max(0, min(len(buf), self._length - self._pos))
        if n == 0:
            return 0
        self._f.seek(self._offset + self._pos)
        data = self._f.read(n)
        buf[:len(data)] = data
        self._pos += len(data)
        return len(data)


def check_boot_sector(boot: bytes, length: int, where: str) -> None:
    """Refuse a FAT32 boot sector whose geometry does not fit a `length`-byte partition (fatgen103 §3.1, §3.3)."""
    if len(boot) < 512 or boot[510:512] != b"\x55\xaa":
        raise DteError(f"no FAT boot sector at {where} (missing 0x55AA signature)")
    bps, spc, reserved, fats, root_entries, total16, _media, fat16 = struct.unpack_from("<HBHBHHBH", boot, 11)
    total32, fat32, root_cluster = struct.unpack_from("<II4xI", boot, 32)
    if bps not in (512, 1024, 2048, 4096) or spc not in (1, 2, 4, 8, 16, 32, 64, 128):
        raise DteError(f"FAT boot sector at {where} has an invalid geometry ({bps}-byte sectors, {spc} per cluster)")
    if fat16 != 0 or root_entries != 0 or fat32 == 0:
        raise DteError(f"the filesystem at {where} is FAT12/16, not FAT32")
    total = total16 or total32
    data_start = reserved + fats * fat32
    if reserved == 0 or not 1 <= fats <= 4:
        raise DteError(f"FAT boot sector at {where}: {reserved} reserved sectors, {fats} FATs (corrupt)")
    if total == 0 or total * bps > length:
        raise DteError(f"FAT boot sector at {where} claims {total} sectors of {bps} bytes, the partition holds "
                       f"{length} bytes (corrupt)")
    if data_start >= total:
        raise DteError(f"FAT boot sector at {where}: {fats} FATs of {fat32} sectors after {reserved} reserved "
                       f"leave no data area in {total} sectors (corrupt)")
    clusters = (total - data_start) // spc
    if fat32 * bps < (clusters + 2) * 4 or not 2 <= root_cluster < clusters + 2:
        raise DteError(f"FAT boot sector at {where}: FAT of {fat32} sectors for {clusters} clusters, root cluster "
                       f"{root_cluster} (corrupt)")


def _pyfat_classes() -> tuple[type, type]:
    """pyfatfs's filesystem class with a cluster-chain walk that stops on a loop (pyfatfs follows one forever)."""
    from pyfatfs._exceptions import PyFATException
    from pyfatfs.PyFat import PyFat
    from pyfatfs.PyFatFS import PyFatBytesIOFS, PyFatFS

    class BoundedFat(PyFat):  # type: ignore[misc]
        def get_cluster_chain(self, first_cluster: int) -> Any:
            for n, cluster in enumerate(super().get_cluster_chain(first_cluster)):
                if n > len(self.fat):
                    raise PyFATException("FAT cluster chain loops")
                yield cluster

    class EspFS(PyFatBytesIOFS):  # type: ignore[misc]
        def __init__(self, fp: io.RawIOBase) -> None:  # PyFatBytesIOFS.__init__ with BoundedFat
            super(PyFatFS, self).__init__()
            self.preserve_case = True
            self.fs = BoundedFat(lazy_load=True)
            self.fs.set_fp(fp)
            self.tz = __import__("datetime").timezone.utc

    return EspFS, PyFATException


class FatReader:
    """Read-only FAT32 over a file object: the partition at byte `offset`, `length` bytes long (default: to the
    end of the file). Every problem, including pyfatfs's own exceptions on a corrupt volume, is a DteError."""

    def __init__(self, f: BinaryIO, offset: int = 0, length: int | None = None) -> None:
        if length is None:
            length = max(0, f.seek(0, os.SEEK_END) - offset)
        where = f"byte {offset}"
        f.seek(offset)
        boot = f.read(512)
        check_boot_sector(boot, length, where)
        self.volume_id = struct.unpack_from("<I", boot, 67)[0]
        self.label = boot[71:82].decode("ascii", errors="replace").strip()
        fs_class, self._fat_error = _pyfat_classes()
        self._fs = self._guard(lambda: fs_class(_Window(f, offset, length)))
        self._entries: list[EspEntry] | None = None

    def _guard(self, action: Any) -> Any:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return action()
        except DteError:
            raise
        except Exception as exc:  # pyfatfs raises its own and assorted built-in errors on a corrupt volume
            raise DteError(f"the ESP's FAT filesystem is corrupt ({type(exc).__name__}: {exc})") from None

    def list(self) -> list[EspEntry]:
        """Every file and directory, depth first."""
        if self._entries is None:
            out: list[EspEntry] = []

            def walk(path: str, depth: int) -> None:
                if depth > 16:
                    raise DteError("FAT directory tree is deeper than 16 levels (loop?)")
                for info in self._fs.scandir(path or "/", namespaces=["details"]):
                    child = f"{path}{info.name}"
                    out.append(EspEntry(child, 0 if info.is_dir else int(info.size), bool(info.is_dir)))
                    if info.is_dir:
                        walk(f"{child}/", depth + 1)

            self._guard(lambda: walk("", 0))
            self._entries = out
        return self._entries

    def find(self, path: str) -> EspEntry | None:
        want = path.strip("/").upper()
        return next((e for e in self.list() if e.path.upper() == want), None)

    def read(self, path: str) -> bytes:
        """The bytes of one file (path matched case-insensitively, as FAT does)."""
        entry = self.find(path)
        if entry is None or entry.is_dir:
            raise DteError(f"the ESP has no file '{path}'")
        data: bytes = self._guard(lambda: self._fs.readbytes("/" + entry.path))
        if len(data) != entry.size:
            raise DteError(f"the ESP's file '{entry.path}' is {entry.size} bytes but its clusters hold {len(data)}")
        return data
