"""Issue 15 items 8-9 and issue 16 item 7: targets that share storage with a mounted filesystem or with the source
are refused (loop devices resolved to their backing files by inode, through dm/md), a mistyped /dev path is
refused instead of becoming a file, a file target needs --to-file, and `dte flash --list-devices` shows every drive
with the refusal `dte flash` would give it. Real loop devices where this machine allows them (root), the fake
sysfs tree of test_flash_safety.py otherwise."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from flash_helpers import MIB, fake_system, loop_device, loop_reason, make_image, needs_tools

from dte_build.cli import main
from dte_build.errors import DteError
from dte_build.flash import flash, image_source
from dte_build.flash.target import System, list_drives, storage_of

pytestmark = needs_tools
needs_loop = pytest.mark.skipif(loop_reason() is not None, reason=str(loop_reason()))


@pytest.fixture()
def image(tmp_path: Path) -> Path:
    img = tmp_path / "dte.img"
    make_image(img)
    return img


def _attach(backing: Path) -> Path:
    out = subprocess.run(["losetup", "-f", "--show", str(backing)], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip(f"losetup failed: {out.stderr.strip()}")
    return Path(out.stdout.strip())


@needs_loop
def test_second_loop_over_a_mounted_loops_backing_file_is_refused(tmp_path: Path, image: Path) -> None:
    if not shutil.which("mkfs.ext4"):
        pytest.skip("mkfs.ext4 (e2fsprogs) is needed to make a mountable filesystem")
    backing, mnt = tmp_path / "disk", tmp_path / "mnt"
    mnt.mkdir()
    with loop_device(backing, 64 * MIB) as first:
        subprocess.run(["mkfs.ext4", "-q", str(first)], check=True)
        if subprocess.run(["mount", str(first), str(mnt)], capture_output=True).returncode != 0:
            pytest.skip("mount is not permitted here")
        second = _attach(backing)
        try:
            (mnt / "keep").write_text("precious")
            before = backing.read_bytes()
            with pytest.raises(DteError, match=f"{second} shares storage .* with {first} mounted on {mnt}"):
                flash(image_source(image), second)
            with pytest.raises(DteError, match=f"shares storage .* with {first} mounted on {mnt}"):
                flash(image_source(image), backing)  # the backing file itself, as a file target
            assert backing.read_bytes() == before
        finally:
            subprocess.run(["losetup", "-d", str(second)], check=False)
            subprocess.run(["umount", str(mnt)], check=False)


@needs_loop
def test_loop_over_the_source_image_is_refused(tmp_path: Path, image: Path) -> None:
    before = image.read_bytes()
    dev = _attach(image)
    try:
        rdev = dev.stat().st_rdev
        assert storage_of(f"{os.major(rdev)}:{os.minor(rdev)}", System()) \
            == {f"file {image.stat().st_dev}:{image.stat().st_ino}"}
        with pytest.raises(DteError, match=f"{dev} is stored in {image}"):
            flash(image_source(image), dev)
    finally:
        subprocess.run(["losetup", "-d", str(dev)], check=False)
    assert image.read_bytes() == before


def test_mistyped_dev_path_is_refused_not_created(image: Path) -> None:
    ghost = Path("/dev/nvme9n9")
    assert not ghost.exists()
    result = CliRunner().invoke(main, ["flash", "-y", str(image), str(ghost)])
    assert result.exit_code == 1 and "no such device" in result.stderr
    assert not ghost.exists()
    result = CliRunner().invoke(main, ["flash", "-y", "--to-file", str(image), str(ghost)])  # not even then
    assert result.exit_code == 1 and not ghost.exists()


def test_file_target_needs_to_file(image: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.img"
    result = CliRunner().invoke(main, ["flash", "-y", str(image), str(out)])
    assert result.exit_code == 1 and "not a block device" in result.stderr and "--to-file" in result.stderr
    assert not out.exists()
    assert CliRunner().invoke(main, ["flash", "-y", "--to-file", str(image), str(out)]).exit_code == 0
    assert out.read_bytes() == image.read_bytes()


def test_list_devices_fake_tree(tmp_path: Path) -> None:
    """sda: free (8 GiB); vda: holds / through dm-0 (refused); dm-0 itself: mounted."""
    system = fake_system(tmp_path)
    for name, sectors in (("sda", 16 << 20), ("vda", 32 << 20), ("dm-0", 1 << 20)):
        (system.sys_block / name / "size").write_text(f"{sectors}\n")
    (system.sys_block / "sda" / "removable").write_text("1\n")
    drives = {d.name: d for d in list_drives(system)}
    assert sorted(drives) == ["dm-0", "sda", "vda"]  # partitions are not candidates
    assert drives["sda"].refused is None and drives["sda"].size == 8 << 30 and drives["sda"].removable
    assert drives["vda"].system and "running system" in (drives["vda"].refused or "")
    assert drives["dm-0"].mounted == ["/dev/dm-0 on /"] and drives["dm-0"].refused


def test_list_devices_cli_json_names_the_root_disk() -> None:
    if not shutil.which("findmnt") or not shutil.which("lsblk"):
        pytest.skip("findmnt/lsblk (util-linux) name the root disk independently")
    source = subprocess.run(["findmnt", "-no", "SOURCE", "/"], capture_output=True, text=True).stdout.strip()
    parent = subprocess.run(["lsblk", "-no", "PKNAME", source], capture_output=True, text=True).stdout.strip()
    disk = parent.splitlines()[0] if parent else Path(source).name
    result = CliRunner().invoke(main, ["flash", "--list-devices", "--json"])
    assert result.exit_code == 0, result.output
    drives = {d["name"]: d for d in json.loads(result.stdout)["drives"]}
    if disk not in drives:
        pytest.skip(f"the root filesystem's disk {disk!r} is not a block device listed in sysfs here")
    assert drives[disk]["system"] is True and "running system" in drives[disk]["refused"]
    lsblk = json.loads(subprocess.run(["lsblk", "-J", "-b", "-d", "-o", "NAME,SIZE"], capture_output=True,
                                      text=True, check=True).stdout)
    sizes = {d["name"]: int(d["size"]) for d in lsblk["blockdevices"]}
    assert drives[disk]["size"] == sizes[disk]
    table = CliRunner().invoke(main, ["flash", "--list-devices"])
    assert table.exit_code == 0 and f"/dev/{disk}" in table.stdout and "refused" in table.stdout


@needs_loop
def test_inspect_of_a_flashed_drive_larger_than_the_image(tmp_path: Path) -> None:
    """Issue 15 item 6 on a real block device: flashed, 64 MiB larger than the image, inspects clean."""
    from model_factory import sized_model

    from dte_build.board import load_board
    from dte_build.image.builder import build_image
    from dte_build.inspect import inspect_image

    efi = tmp_path / "BOOTX64.EFI"
    efi.write_bytes(b"MZ" + bytes(range(256)) * 300)
    image = build_image(load_board("qemu-q35"), efi, tmp_path / "dte.img", build_id="0123456789abcdef",
                        model_path=sized_model(tmp_path / "m.gguf")).path
    with loop_device(tmp_path / "disk", image.stat().st_size + 64 * MIB) as dev:
        assert flash(image_source(image), dev).verified
        report = inspect_image(dev)
        assert report["problems"] == [] and "larger than the image" in report["image"]["note"]
        assert report["model"]["runs_on_dte"] == "yes"
        result = CliRunner().invoke(main, ["inspect", str(dev)])
        assert result.exit_code == 0, result.output
