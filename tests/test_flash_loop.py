"""`dte flash` to real block devices: loop devices (needs root and a kernel with loop support).

The kernel here may lack partition-table support (CONFIG_EFI_PARTITION), so `losetup -P` may create no
partition nodes; the mounted-partition case then runs on the fake tree in test_flash_safety.py, and here a
filesystem mounted on the whole loop device stands in for it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from flash_helpers import MIB, loop_device, loop_reason, make_image, needs_tools

from dte_build.errors import DteError
from dte_build.flash import flash, image_source, verify


pytestmark = [needs_tools, pytest.mark.skipif(loop_reason() is not None, reason=str(loop_reason()))]


@pytest.fixture()
def image(tmp_path: Path) -> Path:
    img = tmp_path / "dte.img"
    make_image(img)
    return img


def test_flash_loop_device_direct_io_and_verify(tmp_path: Path, image: Path) -> None:
    size = image.stat().st_size
    with loop_device(tmp_path / "disk", size + 8 * MIB) as dev:
        with open(dev, "r+b") as f:  # old contents everywhere, so zeroed holes are really checked
            f.write(b"\xa5" * (size + 8 * MIB))
        report = flash(image_source(image), dev)
        assert report.verified is True and report.direct_io is True
        assert report.bytes_zeroed > 0  # the image's holes were zeroed on the device, not skipped
        assert verify(image_source(image), dev).ok
        with open(dev, "rb") as f:
            assert f.read(size) == image.read_bytes()
        again = flash(image_source(image), dev, changed_only=True)
        assert again.chunks_written == 0
    out = subprocess.run(["sgdisk", "-v", str(tmp_path / "disk")], capture_output=True, text=True)
    assert "No problems found" in out.stdout or "secondary header" in out.stdout  # backup GPT at the image's end


def test_refuses_too_small_loop_device(tmp_path: Path, image: Path) -> None:
    with loop_device(tmp_path / "disk", 16 * MIB) as dev:
        with pytest.raises(DteError, match=f"{dev} is 16.0 MiB .* smaller than the image"):
            flash(image_source(image), dev)


def test_refuses_mounted_loop_device(tmp_path: Path, image: Path) -> None:
    if not shutil.which("mkfs.ext4"):
        pytest.skip("mkfs.ext4 (e2fsprogs) is needed to make a mountable filesystem")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with loop_device(tmp_path / "disk", 64 * MIB) as dev:
        subprocess.run(["mkfs.ext4", "-q", str(dev)], check=True)
        if subprocess.run(["mount", str(dev), str(mnt)], capture_output=True).returncode != 0:
            pytest.skip("mount is not permitted here")
        try:
            with pytest.raises(DteError, match=f"{dev} is mounted on {mnt}"):
                flash(image_source(image), dev)
        finally:
            subprocess.run(["umount", str(mnt)], check=False)


def test_refuses_mounted_partition_of_loop_device(tmp_path: Path, image: Path) -> None:
    if not shutil.which("mkfs.ext4"):
        pytest.skip("mkfs.ext4 (e2fsprogs) is needed to make a mountable filesystem")
    backing = tmp_path / "disk"
    with open(backing, "wb") as f:
        f.truncate(64 * MIB)
    subprocess.run(["sgdisk", "-n", "1:2048:+32M", str(backing)], check=True, capture_output=True)
    with loop_device(backing, 64 * MIB, "-P") as dev:
        part = Path(f"{dev}p1")
        if not part.exists():
            pytest.skip("the kernel made no partition node for losetup -P (no CONFIG_EFI_PARTITION?)")
        subprocess.run(["mkfs.ext4", "-q", str(part)], check=True)
        mnt = tmp_path / "mnt"
        mnt.mkdir()
        subprocess.run(["mount", str(part), str(mnt)], check=True)
        try:
            with pytest.raises(DteError, match=f"{part.name} is mounted"):
                flash(image_source(image), dev)
            with pytest.raises(DteError, match="not a whole disk"):
                flash(image_source(image), part)
        finally:
            subprocess.run(["umount", str(mnt)], check=False)


def test_refuses_device_held_open_exclusively(tmp_path: Path, image: Path) -> None:
    with loop_device(tmp_path / "disk", 64 * MIB) as dev:
        holder = os.open(dev, os.O_RDONLY | os.O_EXCL)
        try:
            with pytest.raises(DteError, match="busy"):
                flash(image_source(image), dev)
        finally:
            os.close(holder)


def test_refuses_4k_sector_device_for_512_image(tmp_path: Path, image: Path) -> None:
    with loop_device(tmp_path / "disk", 64 * MIB, "--sector-size", "4096") as dev:
        with pytest.raises(DteError, match="4096-byte sectors, the image 512"):
            flash(image_source(image), dev)
