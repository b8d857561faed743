"""What `dte flash` writes to, and the checks that stop it from writing the wrong disk.

Each check is a small function that raises a one-line DteError saying what is wrong and what to do. They read
the kernel's view of the machine (/sys/class/block, /proc/self/mountinfo, /proc/swaps) through a `System`, so
tests can point them at a fake tree.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DteError

# Linux block-device ioctls (include/uapi/linux/fs.h).
BLKSSZGET = 0x1268  # _IO(0x12, 104): logical sector size
BLKGETSIZE64 = 0x80081272  # _IOR(0x12, 114, size_t): size in bytes
BLKFLSBUF = 0x1261  # _IO(0x12, 97): flush dirty buffers and drop the device's page cache
BLKZEROOUT = 0x127F  # _IO(0x12, 127): zero a byte range (WRITE ZEROES on the device when it has it)

FAR_LARGER = 8  # warn when the device is this many times the image size (and at least 64 GiB)


@dataclass(frozen=True)
class System:
    """Where the kernel's tables live; tests substitute a fake tree."""

    sys_block: Path = Path("/sys/class/block")
    sys_dev_block: Path = Path("/sys/dev/block")
    mountinfo: Path = Path("/proc/self/mountinfo")
    swaps: Path = Path("/proc/swaps")


@dataclass
class Target:
    """A checked target: a whole block device or a regular file."""

    path: Path
    kind: str  # "block" or "file"
    size: int
    sector_size: int = 512
    name: str = ""  # kernel name (nvme0n1) for a block device
    model: str = ""
    exists: bool = True
    warnings: list[str] = field(default_factory=list)

    @property
    def is_block(self) -> bool:
        return self.kind == "block"

    def describe(self) -> str:
        what = f"{self.model} " if self.model else ""
        return f"{self.path} ({what}{human(self.size)}, {self.kind})"


def human(n: int) -> str:
    """Bytes as B/KiB/MiB/GiB/TiB with the exact count for large values."""
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f} {unit} ({n} bytes)"
    return f"{n} bytes"


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _dev_id(rdev: int) -> str:
    return f"{os.major(rdev)}:{os.minor(rdev)}"


def _under_dev(path: Path) -> bool:
    resolved = Path(os.path.realpath(path))
    return resolved.parts[:2] == ("/", "dev") or path.absolute().parts[:2] == ("/", "dev")


def check_target_kind(path: Path, *, to_file: bool = True) -> str:
    """The target must be an existing block device, or (with `to_file`) a regular file or a new file in an
    existing directory.

    Writing a disk image into a character device (/dev/null, a tty), a directory or a socket is always a typo;
    so is a path under /dev that names no device (`/dev/nvme9n9` would become a file in RAM-backed /dev).
    Refusing costs nothing and avoids "success" that wrote nowhere.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if _under_dev(path):
            raise DteError(f"target {path} does not exist: no such device",
                           "`dte flash --list-devices` shows the drives this machine has") from None
        if not path.parent.is_dir():
            raise DteError(f"target {path}: directory {path.parent} does not exist") from None
        _check_file_allowed(path, to_file)
        return "file"
    if stat.S_ISBLK(st.st_mode):
        return "block"
    if stat.S_ISREG(st.st_mode):
        if _under_dev(path):
            raise DteError(f"target {path} is a regular file under /dev, not a device (left by a mistyped "
                           "command?)", f"remove it (rm {path}) and give a real device")
        _check_file_allowed(path, to_file)
        return "file"
    if stat.S_ISCHR(st.st_mode):
        raise DteError(f"target {path} is a character device, not a disk",
                       "give a block device such as /dev/nvme0n1 or a file name")
    if stat.S_ISDIR(st.st_mode):
        raise DteError(f"target {path} is a directory", "give a block device or a file name inside it")
    raise DteError(f"target {path} is neither a block device nor a regular file")


def _check_file_allowed(path: Path, to_file: bool) -> None:
    if not to_file:
        raise DteError(f"target {path} is not a block device", "pass --to-file to write an image file there, or "
                       "give a drive (`dte flash --list-devices`)")


def block_name(path: Path, system: System) -> str:
    """The kernel's name for a block device node (sda, nvme0n1p1), found through /sys/dev/block/MAJ:MIN."""
    dev = _dev_id(os.stat(path).st_rdev)
    link = system.sys_dev_block / dev
    try:
        return Path(os.readlink(link)).name
    except OSError:
        raise DteError(f"target {path}: the kernel does not list block device {dev} in {system.sys_dev_block}") \
            from None


def check_whole_disk(name: str, system: System) -> None:
    """Refuse a partition: dte writes a whole disk (GPT at LBA 0), and a GPT inside a partition boots nothing.

    A partition has a `partition` file in sysfs; its parent directory names the disk it belongs to.
    """
    entry = system.sys_block / name
    if (entry / "partition").exists():
        parent = entry.resolve().parent.name
        raise DteError(f"target /dev/{name} is partition {_read(entry / 'partition')} of /dev/{parent}, "
                       f"not a whole disk", f"flash /dev/{parent} instead (it erases the whole disk)")


def partitions_of(name: str, system: System) -> list[str]:
    """Kernel names of a disk's partitions (subdirectories of its sysfs entry that have a `partition` file)."""
    entry = system.sys_block / name
    try:
        return sorted(d.name for d in entry.iterdir() if (d / "partition").exists())
    except OSError:
        return []


def _dev_ids(name: str, system: System) -> dict[str, str]:
    """MAJ:MIN -> kernel name for a disk and all of its partitions."""
    out = {}
    for n in [name, *partitions_of(name, system)]:
        dev = _read(system.sys_block / n / "dev") or _read(system.sys_block / name / n / "dev")
        if dev:
            out[dev] = n
    return out


def check_not_mounted(name: str, system: System) -> None:
    """Refuse a disk that is mounted or has a mounted partition: overwriting a live filesystem destroys it
    and whatever is running from it. Mounts are matched by MAJ:MIN in /proc/self/mountinfo (field 3)."""
    ids = _dev_ids(name, system)
    for line in _read(system.mountinfo).splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[2] in ids:
            raise DteError(f"target /dev/{name}: /dev/{ids[fields[2]]} is mounted on {fields[4]}",
                           f"unmount it first (umount {fields[4]})")


def _swaps(system: System) -> list[tuple[str, os.stat_result]]:
    """Active swap areas (/proc/swaps) that exist, with their stat."""
    out = []
    for line in _read(system.swaps).splitlines()[1:]:
        swap = line.split()[0] if line.split() else ""
        try:
            out.append((swap, os.stat(swap)))
        except OSError:
            continue
    return out


def check_not_swap(name: str, system: System) -> None:
    """Refuse a disk used as swap (the disk or one of its partitions in /proc/swaps): the kernel writes
    pages there at any moment, corrupting the image and crashing whatever was swapped out."""
    ids = _dev_ids(name, system)
    for swap, st in _swaps(system):
        if stat.S_ISBLK(st.st_mode) and _dev_id(st.st_rdev) in ids:
            raise DteError(f"target /dev/{name}: {swap} is active swap", f"run `swapoff {swap}` first")


def check_no_holders(name: str, system: System) -> None:
    """Refuse a disk (or partition of it) held by md RAID, LVM or device-mapper (sysfs `holders` non-empty):
    the array or volume above it would be silently corrupted and may write back over the image."""
    for n in [name, *partitions_of(name, system)]:
        held = system.sys_block / n / "holders"
        if not held.is_dir():
            held = system.sys_block / name / n / "holders"
        users = sorted(h.name for h in held.iterdir()) if held.is_dir() else []
        if users:
            raise DteError(f"target /dev/{name}: /dev/{n} is part of {', '.join(users)} (md/LVM/dm)",
                           "stop the array or deactivate the volume group first")


def _disks_under(dev: str, system: System, seen: set[str] | None = None) -> set[str]:
    """The whole disks beneath MAJ:MIN `dev`: a partition's parent, and through `slaves` for dm/md."""
    seen = set() if seen is None else seen
    try:
        entry = Path(os.path.realpath(system.sys_dev_block / dev))
    except OSError:
        return set()
    if not entry.exists() or dev in seen:
        return set()
    seen.add(dev)
    if (entry / "partition").exists():
        entry = entry.parent
    slaves = entry / "slaves"
    below = sorted(slaves.iterdir()) if slaves.is_dir() else []
    if not below:
        return {entry.name}
    out: set[str] = set()
    for s in below:
        out |= _disks_under(_read(s / "dev"), system, seen)
    return out


def _file_id(st: os.stat_result) -> str:
    return f"file {st.st_dev}:{st.st_ino}"


def storage_of(dev: str, system: System, seen: set[str] | None = None) -> set[str]:
    """Where the data of block device MAJ:MIN `dev` really lives: whole disks ("disk sda") and, for a loop
    device, its backing file by inode ("file DEV:INO"), followed down partitions, dm and md (`slaves`)."""
    seen = set() if seen is None else seen
    if not dev or dev in seen:
        return set()
    seen.add(dev)
    entry = Path(os.path.realpath(system.sys_dev_block / dev))
    if not entry.exists():
        return set()
    if (entry / "partition").exists():
        entry = entry.parent
    backing = _read(entry / "loop" / "backing_file").removesuffix(" (deleted)")
    if backing:
        try:
            return {_file_id(os.stat(backing))}
        except OSError:
            return {f"loop {entry.name}"}
    slaves = entry / "slaves"
    below = sorted(slaves.iterdir()) if slaves.is_dir() else []
    if not below:
        return {f"disk {entry.name}"}
    out: set[str] = set()
    for s in below:
        out |= storage_of(_read(s / "dev"), system, seen)
    return out


def mounted_storage(system: System) -> dict[str, str]:
    """Storage (as storage_of names it) -> what uses it: every mounted block device and active swap, and the
    files behind them (a mounted loop device's backing file, a swap file)."""
    used: dict[str, str] = {}
    for line in _read(system.mountinfo).splitlines():
        fields = line.split()
        if len(fields) > 4 and not fields[2].startswith("0:"):
            source = line.split(" - ", 1)[1].split()[1] if " - " in line else fields[2]
            for where in storage_of(fields[2], system):
                used.setdefault(where, f"{source} mounted on {fields[4]}")
    for swap, st in _swaps(system):
        found = storage_of(_dev_id(st.st_rdev), system) if stat.S_ISBLK(st.st_mode) else {_file_id(st)}
        for where in found:
            used.setdefault(where, f"swap {swap}")
    return used


def check_shared_storage(path: Path, kind: str, system: System, sources: Sequence[Path] = ()) -> None:
    """Refuse a target whose storage is also under a mounted filesystem, swap, or the source image: a second
    loop device over a mounted loop device's backing file, a loop device over the image itself, the backing file
    of a mounted loop device given as a file target, a dm/md device stacked on any of these."""
    st = os.stat(path) if path.exists() else None
    if st is None:
        return
    mine = storage_of(_dev_id(st.st_rdev), system) if kind == "block" else {_file_id(st)}
    for source in sources:
        if _file_id(os.stat(source)) in mine:
            raise DteError(f"target {path} is stored in {source}, which the flash reads from (a loop device over "
                           "the image?)", "flash another drive, or copy the source first")
    used = mounted_storage(system)
    for where in sorted(mine & used.keys()):
        shared = "its backing file" if where.startswith("file ") else where
        raise DteError(f"target {path} shares storage ({shared}) with {used[where]}",
                       "unmount it / detach the loop device first")


def system_disks(system: System) -> set[str]:
    """Disks holding /, /boot or /boot/efi, from the MAJ:MIN (or the device named) in mountinfo."""
    wanted = {"/", "/boot", "/boot/efi"}
    disks: set[str] = set()
    for line in _read(system.mountinfo).splitlines():
        fields = line.split()
        if len(fields) < 5 or fields[4] not in wanted:
            continue
        dev = fields[2]
        if dev.startswith("0:") and " - " in line:  # btrfs and friends: anonymous dev, use the source device
            source = line.split(" - ", 1)[1].split()[1:2]
            try:
                dev = _dev_id(os.stat(source[0]).st_rdev) if source else dev
            except OSError:
                continue
        disks |= _disks_under(dev, system)
    return disks


def check_not_system_disk(name: str, system: System) -> None:
    """Refuse the disk the running system lives on (/, /boot, /boot/efi, through dm/md to the real disk):
    flashing it would wipe the machine you are typing on."""
    if name in system_disks(system):
        raise DteError(f"target /dev/{name} holds the running system (/, /boot or /boot/efi)",
                       "pick another disk; `lsblk` shows which is which")


@dataclass
class Drive:
    """A candidate drive for `dte flash --list-devices`, with why dte would refuse it (None: it would not)."""

    name: str
    path: str
    model: str
    size: int
    transport: str
    removable: bool
    read_only: bool
    system: bool
    mounted: list[str]
    holders: list[str]
    backing_file: str | None
    refused: str | None


def _transport(name: str, entry: Path) -> str:
    for prefix, kind in (("nvme", "nvme"), ("loop", "loop"), ("vd", "virtio"), ("dm-", "dm"), ("md", "md"),
                         ("sr", "optical"), ("mmcblk", "mmc")):
        if name.startswith(prefix):
            return kind
    where = os.path.realpath(entry)
    for part, kind in (("/usb", "usb"), ("/ata", "sata"), ("/virtio", "virtio")):
        if part in where:
            return kind
    return "scsi" if name.startswith("sd") else "other"


def _refusal(name: str, system: System) -> str | None:
    """The first check (the same ones `dte flash` runs) that refuses this disk, as its one-line message."""
    checks = [check_whole_disk, check_not_system_disk, check_not_mounted, check_not_swap, check_no_holders]
    try:
        for check in checks:
            check(name, system)
        node = Path("/dev") / name
        if node.exists():
            check_shared_storage(node, "block", system)
    except DteError as exc:
        return exc.message
    if _read(system.sys_block / name / "ro") == "1":
        return f"/dev/{name} is read-only"
    return None


def list_drives(system: System | None = None) -> list[Drive]:
    """Every whole disk the kernel lists (sysfs), sized, with the flags and the refusal `dte flash` would give;
    empty loop devices and zero-size nodes are left out."""
    system = system or System()
    try:
        names = sorted(d.name for d in system.sys_block.iterdir())
    except OSError:
        return []
    drives = []
    for name in names:
        entry = system.sys_block / name
        sectors = _read(entry / "size")
        if (entry / "partition").exists() or not sectors.isdigit() or int(sectors) == 0:
            continue
        ids = _dev_ids(name, system)
        mounts = [f"/dev/{ids[f[2]]} on {f[4]}" for f in (line.split() for line in _read(system.mountinfo)
                                                          .splitlines()) if len(f) > 4 and f[2] in ids]
        holders = sorted({h.name for n in [name, *partitions_of(name, system)]
                          for held in (system.sys_block / n / "holders", entry / n / "holders") if held.is_dir()
                          for h in held.iterdir()})
        model = " ".join(x for x in (_read(entry / "device" / "vendor"), _read(entry / "device" / "model")) if x)
        drives.append(Drive(name, f"/dev/{name}", model, int(sectors) * 512, _transport(name, entry),
                            _read(entry / "removable") == "1", _read(entry / "ro") == "1",
                            name in system_disks(system), mounts, holders,
                            _read(entry / "loop" / "backing_file") or None, _refusal(name, system)))
    return drives


def block_geometry(fd: int) -> tuple[int, int]:
    """(size in bytes, logical sector size) of an open block device."""
    size = struct.unpack("Q", fcntl.ioctl(fd, BLKGETSIZE64, b"\0" * 8))[0]
    sector = struct.unpack("i", fcntl.ioctl(fd, BLKSSZGET, b"\0" * 4))[0]
    return size, sector


def check_size(target: Target, image_size: int) -> None:
    """Refuse a target smaller than the image (the backup GPT and the weights' tail would be cut off, and the
    firmware would read past the end); warn when it is far larger, which often means the wrong disk."""
    if target.exists and target.size < image_size:
        raise DteError(f"target {target.path} is {human(target.size)}, smaller than the image "
                       f"({human(image_size)})", "use a larger disk (or delete the file)")
    if target.size >= FAR_LARGER * image_size and target.size >= 64 << 30:
        target.warnings.append(f"{target.path} is {human(target.size)}, far larger than the image "
                               f"({human(image_size)}): is it the right disk?")


def check_sector_size(target: Target, image_sector: int) -> None:
    """Refuse a disk whose logical sector size differs from the image's: a GPT laid out for 512-byte
    sectors sits at the wrong LBA on a 4Kn disk, so the firmware would find no partitions."""
    if target.is_block and target.sector_size != image_sector:
        raise DteError(f"target {target.path} has {target.sector_size}-byte sectors, the image "
                       f"{image_sector}-byte ones", "build for a board whose storage.sector_size matches")


def check_not_image(path: Path, image: Path | None) -> None:
    """Refuse writing an image onto itself (same inode): it would read back what it just overwrote."""
    if image is None or not path.exists():
        return
    a, b = os.stat(path), os.stat(image)
    if (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino):
        raise DteError(f"target {path} is the image itself", "give a different target")


def inspect_target(path: str | Path, image_size: int, image_sector: int = 512, *, image: Path | None = None,
                   system: System | None = None, to_file: bool = True, sources: Sequence[Path] = ()) -> Target:
    """Run every check on `path` and return what it is; raises DteError on the first refusal.
    `to_file` False: only an existing block device is a target (`dte flash` without --to-file).
    `sources`: the files the flash reads (the image, or a plan's GGUF): the target may not be stored in them."""
    system = system or System()
    p = Path(path)
    sources = [*sources, *([image] if image is not None else [])]
    kind = check_target_kind(p, to_file=to_file)
    check_not_image(p, image)
    if kind == "file":
        check_shared_storage(p, kind, system, sources)
        exists = p.exists() and p.stat().st_size > 0
        target = Target(p, "file", p.stat().st_size if exists else image_size, exists=exists)
        check_size(target, image_size)
        return target
    name = block_name(p, system)
    check_whole_disk(name, system)
    check_not_system_disk(name, system)
    check_not_mounted(name, system)
    check_not_swap(name, system)
    check_no_holders(name, system)
    check_shared_storage(p, kind, system, sources)
    fd = os.open(p, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size, sector = block_geometry(fd)
    finally:
        os.close(fd)
    entry = system.sys_block / name
    model = " ".join(x for x in (_read(entry / "device" / "vendor"), _read(entry / "device" / "model")) if x)
    target = Target(p, "block", size, sector, name, model)
    check_size(target, image_size)
    check_sector_size(target, image_sector)
    return target


def open_exclusive(target: Target, *, direct: bool) -> int:
    """Open the target for writing, with O_DIRECT when asked (and the filesystem allows it); a block device
    with O_EXCL, which fails if anything else has it open exclusively: a mount, md, LVM, another dte flash."""
    flags = os.O_RDWR | os.O_CLOEXEC | (os.O_DIRECT if direct else 0)
    flags |= os.O_EXCL if target.is_block else os.O_CREAT
    try:
        return os.open(target.path, flags, 0o644)
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            raise DteError(f"target {target.path} is busy (mounted, in an array, or open by another program)",
                           "unmount it / stop whatever uses it") from None
        if exc.errno == errno.EINVAL and direct:
            return open_exclusive(target, direct=False)
        raise DteError(f"cannot open {target.path}: {exc.strerror}") from None
