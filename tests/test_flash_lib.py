"""Helpers for the flash tests: GPT disk images made with independent tools (sgdisk, mkfs.fat, mtools).

The images never come from dte's own image builder, so a bug there cannot hide a bug in `dte flash`.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

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


@needs_tools
def test_helper_image_is_valid_gpt(tmp_path: Path) -> None:
    img = tmp_path / "a.img"
    make_image(img)
    out = subprocess.run(["sgdisk", "-v", str(img)], capture_output=True, text=True)
    assert "No problems found" in out.stdout
    assert allocated(img) < 20 * MIB  # sparse: far less than the 40 MiB size
