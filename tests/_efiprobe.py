"""Build a test-only UEFI application from firmware sources and put it on a small bootable GPT/FAT disk, for the
QEMU probes in tests/qemu/ (the same flags the firmware build uses; AVX off, as OVMF leaves XCR0)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from dte_build import qemu
from dte_build.paths import FIRMWARE_DIR
from dte_build.toolchain import FIRMWARE_CFLAGS, FIRMWARE_TARGET, LINK_RESPONSE_FILE, find_toolchain


def need_qemu_tools() -> None:
    """Skip (with the reason) when QEMU, OVMF or the disk tools are missing."""
    for tool in ("qemu-system-x86_64", "sgdisk", "mformat", "mcopy", "mmd"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed")
    try:
        qemu.find_ovmf()
    except Exception as exc:  # noqa: BLE001 - any failure to find OVMF means skip
        pytest.skip(f"OVMF not found: {exc}")


def build_tiny_efi(work: Path) -> Path:
    """A minimal PE32+ EFI application (efi_main returns 0), for tests that need any real EFI binary."""
    src = work / "tiny_efi.c"
    src.write_text("typedef unsigned long long u64;\n"
                   "__attribute__((ms_abi)) u64 efi_main(void *image, void *system_table)\n"
                   "{ (void)image; (void)system_table; return 0; }\n")
    return link_efi([src], work)


def build_probe_disk(sources: list[Path], work: Path) -> Path:
    """Compile + link `sources` into BOOTX64.EFI and return an 8 MiB disk image that boots it."""
    efi = link_efi(sources, work)
    return _boot_disk(efi, work)


def link_efi(sources: list[Path], work: Path) -> Path:
    """Compile + link `sources` with the firmware's flags into work/BOOTX64.EFI."""
    tc = find_toolchain()
    objs = []
    for src in sources:
        obj = work / (src.stem + ".obj")
        subprocess.run([tc.clang, "-target", FIRMWARE_TARGET, *FIRMWARE_CFLAGS, "-march=x86-64",
                        f"-I{FIRMWARE_DIR}", "-c", str(src), "-o", str(obj)], check=True)
        objs.append(str(obj))
    efi = work / "BOOTX64.EFI"
    subprocess.run([tc.lld_link, f"@{LINK_RESPONSE_FILE}", f"/out:{efi}", *objs], check=True)
    return efi


def _boot_disk(efi: Path, work: Path) -> Path:
    disk = work / "boot.img"
    with open(disk, "wb") as f:
        f.truncate(8 << 20)
    subprocess.run(["sgdisk", "-o", "-n", "1:2048:16350", "-t", "1:ef00", str(disk)], check=True,
                   stdout=subprocess.DEVNULL)
    part = f"{disk}@@1M"
    subprocess.run(["mformat", "-i", part, "-T", str(16350 - 2048 + 1), "-h", "64", "-s", "32", "::"], check=True)
    subprocess.run(["mmd", "-i", part, "::/EFI", "::/EFI/BOOT"], check=True)
    subprocess.run(["mcopy", "-i", part, str(efi), "::/EFI/BOOT/BOOTX64.EFI"], check=True)
    return disk
