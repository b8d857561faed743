"""Every refusal of `dte flash`: on real nodes where this machine has them, else on a fake /sys + /proc tree
laid out as the kernel documents it (Documentation/ABI/stable/sysfs-block, proc(5) mountinfo and swaps)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from flash_helpers import fake_system, make_image, needs_tools

from dte_build.cli import main
from dte_build.errors import DteError
from dte_build.flash.target import (
    System,
    check_no_holders,
    check_not_mounted,
    check_not_swap,
    check_not_system_disk,
    check_whole_disk,
    inspect_target,
)

pytestmark = needs_tools


def refuse(*args: str) -> str:
    result = CliRunner().invoke(main, ["flash", "--to-file", "-y", *args])
    assert result.exit_code != 0
    return " ".join(result.stderr.split())


@pytest.fixture()
def image(tmp_path: Path) -> Path:
    if not shutil.which("sgdisk"):
        pytest.skip("sgdisk (gdisk) is needed to make a test image")
    img = tmp_path / "dte.img"
    make_image(img)
    return img


@pytest.mark.parametrize("node", ["/dev/null", "/dev/zero"])
def test_refuses_character_devices(image: Path, node: str) -> None:
    assert f"{node} is a character device" in refuse(str(image), node)


def test_refuses_directory_and_missing_parent(image: Path, tmp_path: Path) -> None:
    assert "is a directory" in refuse(str(image), str(tmp_path))
    assert "does not exist" in refuse(str(image), str(tmp_path / "no" / "such" / "out.img"))


def test_refuses_too_small_file_showing_both_sizes(image: Path, tmp_path: Path) -> None:
    small = tmp_path / "small.img"
    small.write_bytes(b"x" * (3 << 20))
    line = refuse(str(image), str(small))
    assert "smaller than the image" in line and str(3 << 20) in line and str(image.stat().st_size) in line
    assert small.read_bytes() == b"x" * (3 << 20)  # untouched


def test_refuses_the_image_itself(image: Path) -> None:
    assert "the image itself" in refuse(str(image), str(image))


def test_refuses_the_running_systems_disk() -> None:
    """The real root disk, named independently by findmnt + lsblk."""
    if not shutil.which("findmnt") or not shutil.which("lsblk"):
        pytest.skip("findmnt/lsblk (util-linux) needed to name the root disk independently")
    source = subprocess.run(["findmnt", "-no", "SOURCE", "/"], capture_output=True, text=True).stdout.strip()
    if not source.startswith("/dev/") or not Path(source).exists():
        pytest.skip(f"root filesystem source {source!r} is not a block device node here")
    parent = subprocess.run(["lsblk", "-no", "PKNAME", source], capture_output=True, text=True).stdout.strip()
    disk = parent.splitlines()[0] if parent else Path(source).name
    if not Path(f"/dev/{disk}").exists():
        pytest.skip(f"/dev/{disk} has no device node")
    with pytest.raises(DteError, match="running system"):
        inspect_target(f"/dev/{disk}", 1 << 20)
    with pytest.raises(DteError, match="running system"):
        check_not_system_disk(disk, System())


# ---- a fake kernel view: /sys/class/block, /sys/dev/block, mountinfo, swaps -----------------------------------


def test_fake_partition_names_its_disk(tmp_path: Path) -> None:
    system = fake_system(tmp_path)
    with pytest.raises(DteError, match=r"/dev/sda2 is partition 2 of /dev/sda.*flash /dev/sda instead"):
        check_whole_disk("sda2", system)
    check_whole_disk("sda", system)


def test_fake_mounted_partition_refuses_the_disk(tmp_path: Path) -> None:
    system = fake_system(tmp_path, mounts="30 22 8:2 / /data rw - ext4 /dev/sda2 rw\n")
    with pytest.raises(DteError, match="/dev/sda2 is mounted on /data"):
        check_not_mounted("sda", system)
    check_not_mounted("vda", fake_system(tmp_path / "b", mounts="30 22 8:2 / /data rw - ext4 /dev/sda2 rw\n"))


def test_fake_root_on_dm_over_partition_is_the_system_disk(tmp_path: Path) -> None:
    system = fake_system(tmp_path)  # / on dm-0 (253:0), whose slave is vda2, a partition of vda
    with pytest.raises(DteError, match="/dev/vda holds the running system"):
        check_not_system_disk("vda", system)
    check_not_system_disk("sda", system)


def test_fake_holders_refuse_lvm_member(tmp_path: Path) -> None:
    system = fake_system(tmp_path)
    with pytest.raises(DteError, match="/dev/vda2 is part of dm-0"):
        check_no_holders("vda", system)
    check_no_holders("sda", system)


def test_swap_partition_refuses_the_disk(tmp_path: Path) -> None:
    """/proc/swaps names a device node; its MAJ:MIN (from a real node) is matched against the disk's partitions."""
    node = Path("/dev/loop0")
    if not node.is_block_device():
        pytest.skip("needs a block device node (/dev/loop0) for its MAJ:MIN")
    rdev = os.stat(node).st_rdev
    system = fake_system(tmp_path, swaps=f"{node}\tpartition\t1024\t0\t-2\n")
    (tmp_path / "devices" / "sda" / "sda1" / "dev").write_text(f"{os.major(rdev)}:{os.minor(rdev)}\n")
    with pytest.raises(DteError, match=f"{node} is active swap"):
        check_not_swap("sda", system)
    check_not_swap("vda", system)


def test_far_larger_target_warns_and_smaller_refuses() -> None:
    from dte_build.flash.target import Target, check_size
    big = Target(Path("/dev/fake"), "block", 1 << 40)
    check_size(big, 1 << 30)
    assert big.warnings and "far larger" in big.warnings[0] and str(1 << 40) in big.warnings[0]
    fitting = Target(Path("/dev/fake"), "block", 2 << 30)
    check_size(fitting, 1 << 30)
    assert fitting.warnings == []
    with pytest.raises(DteError, match=f"is 1.0 GiB .*{1 << 30}.*smaller than the image .*{(1 << 30) + 512}"):
        check_size(Target(Path("/dev/fake"), "block", 1 << 30), (1 << 30) + 512)
