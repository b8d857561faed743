"""Helpers for the flash tests (test modules import this, never each other): GPT disk images made with
independent tools (sgdisk, mkfs.fat, mtools) — never by dte's own image builder, so a bug there cannot hide a bug
in `dte flash` — loop devices, and a fake kernel view (/sys/class/block, /sys/dev/block, mountinfo, swaps) laid
out as Documentation/ABI/stable/sysfs-block and proc(5) describe it."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from dte_build.flash.target import System

MIB = 1 << 20


ESP_MIB = 8


WEIGHTS_OFFSET = 16 * MIB


needs_tools = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("sgdisk", "mkfs.fat", "mcopy")),
    reason="sgdisk (gdisk), mkfs.fat (dosfstools) and mcopy (mtools) are needed to make test images")


def make_image(path: Path, *, size_mib: int = 40, weights: bytes | None = None, sparse: bool = True,
               seed: int = 1) -> bytes:
    """A dte-shaped disk: GPT by sgdisk, FAT ESP at 1 MiB with a file, weights at 16 MiB. Returns the weights.

    `sparse` leaves the gaps as holes; otherwise every byte is allocated (zeros written out).
    """
    weights = weights if weights is not None else random.Random(seed).randbytes(5 * MIB + 12345)
    with open(path, "wb") as f:
        if sparse:
            f.truncate(size_mib * MIB)
        else:
            for _ in range(size_mib):
                f.write(bytes(MIB))
    wsectors = -(-len(weights) // MIB) * MIB // 512
    subprocess.run(["sgdisk", "-n", f"1:2048:+{ESP_MIB}M", "-t", "1:ef00", "-c", "1:esp",
                    "-n", f"2:{WEIGHTS_OFFSET // 512}:+{wsectors}", "-t", "2:37ec13c1-6a25-4592-b112-756bc636b8bc",
                    "-c", "2:dte-weights", str(path)], check=True, capture_output=True)
    esp = path.with_suffix(".esp")
    subprocess.run(["mkfs.fat", "-C", str(esp), str(ESP_MIB * 1024)], check=True, capture_output=True)
    hello = path.with_suffix(".txt")
    hello.write_text("dte flash test\n")
    subprocess.run(["mcopy", "-i", str(esp), str(hello), "::/HELLO.TXT"], check=True, capture_output=True)
    with open(path, "r+b") as f, open(esp, "rb") as e:
        f.seek(MIB)
        _copy_sparse(e, f, sparse)
        f.seek(WEIGHTS_OFFSET)
        f.write(weights)
    esp.unlink()
    hello.unlink()
    return weights


def _copy_sparse(src, dst, sparse: bool) -> None:
    """Copy src into dst at its position, seeking over all-zero 4 KiB blocks when `sparse`."""
    while block := src.read(4096):
        if sparse and not any(block):
            dst.seek(len(block), os.SEEK_CUR)
        else:
            dst.write(block)


def allocated(path: Path) -> int:
    """Bytes the file really occupies on disk (st_blocks is in 512-byte units by POSIX)."""
    return os.stat(path).st_blocks * 512


def loop_reason() -> str | None:
    if os.geteuid() != 0:
        return "loop devices need root"
    if not shutil.which("losetup"):
        return "losetup (util-linux) is not installed"
    probe = subprocess.run(["losetup", "-f"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"no free loop device: {probe.stderr.strip()}"
    return None


@contextmanager
def loop_device(backing: Path, size: int, *args: str) -> Iterator[Path]:
    with open(backing, "wb") as f:
        f.truncate(size)
    out = subprocess.run(["losetup", "-f", "--show", *args, str(backing)], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip(f"losetup failed: {out.stderr.strip()}")
    dev = Path(out.stdout.strip())
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "-d", str(dev)], check=False)


def fake_system(root: Path, *, mounts: str = "", swaps: str = "") -> System:
    """sda (8:0) with partitions sda1 (8:1), sda2 (8:2); vda (254:0) with vda2 (254:2) under dm-0 (253:0)."""
    devices = root / "devices"
    disks = {"sda": ("8:0", {"sda1": "8:1", "sda2": "8:2"}), "vda": ("254:0", {"vda2": "254:2"})}
    sys_block, sys_dev = root / "class" / "block", root / "dev" / "block"
    sys_block.mkdir(parents=True)
    sys_dev.mkdir(parents=True)
    for disk, (dev, parts) in disks.items():
        d = devices / disk
        (d / "holders").mkdir(parents=True)
        (d / "dev").write_text(dev + "\n")
        (sys_block / disk).symlink_to(d)
        (sys_dev / dev).symlink_to(d)
        for i, (part, pdev) in enumerate(parts.items(), 1):
            p = d / part
            (p / "holders").mkdir(parents=True)
            (p / "dev").write_text(pdev + "\n")
            (p / "partition").write_text(f"{i}\n")
            (sys_block / part).symlink_to(p)
            (sys_dev / pdev).symlink_to(p)
    dm = devices / "dm-0"
    (dm / "slaves").mkdir(parents=True)
    (dm / "holders").mkdir()
    (dm / "dev").write_text("253:0\n")
    (dm / "slaves" / "vda2").symlink_to(devices / "vda" / "vda2")
    (devices / "vda" / "vda2" / "holders" / "dm-0").symlink_to(dm)
    (sys_block / "dm-0").symlink_to(dm)
    (sys_dev / "253:0").symlink_to(dm)
    (root / "mountinfo").write_text(mounts or "22 1 253:0 / / rw,relatime - ext4 /dev/mapper/root rw\n")
    (root / "swaps").write_text("Filename\tType\tSize\tUsed\tPriority\n" + swaps)
    return System(sys_block, sys_dev, root / "mountinfo", root / "swaps")
