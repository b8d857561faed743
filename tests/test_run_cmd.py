"""`dte run`: refuses what OVMF would not boot before QEMU starts, refuses vCPU counts the board lacks, and never
leaves QEMU behind — whichever signal ends it (SIGTERM, SIGINT, SIGHUP, SIGKILL: issue 15 item 12)."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from dte_build.cli import main
from dte_build.qemu import QEMU_BINARY

LOCK_START, LOCK_LEN = 100, 200   # QEMU's image lock bytes (block/file-posix.c: 100 + permission, 200 + shared)


def test_a_text_file_is_refused_at_once(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello, this is not a disk image\n" * 100)
    start = time.monotonic()
    result = CliRunner().invoke(main, ["run", str(text)])
    assert time.monotonic() - start < 10          # before: 300 s in the UEFI shell
    assert result.exit_code == 1 and "is not a dte image" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_gpt_disk_without_boot_loader_is_refused(tmp_path: Path) -> None:
    disk = tmp_path / "disk.img"
    with open(disk, "wb") as f:
        f.truncate(64 << 20)
    made = subprocess.run(["sgdisk", "-n", "1:2048:+32M", "-t", "1:ef00", str(disk)], capture_output=True)
    if made.returncode != 0:
        pytest.skip("sgdisk (apt-get install gdisk) missing")
    result = CliRunner().invoke(main, ["run", str(disk)])
    assert result.exit_code == 1 and "is not a dte image" in result.output, result.output


@pytest.mark.parametrize("smp", ["0", "-1", "5"])
def test_smp_outside_the_boards_cpus_is_refused(tmp_path: Path, smp: str) -> None:
    image = tmp_path / "x.img"
    image.write_bytes(b"\0" * 4096)
    result = CliRunner().invoke(main, ["run", "--smp", smp, str(image)])
    assert result.exit_code == 1 and f"--smp {smp}: qemu-q35 has 1 to 4 CPUs" in result.output, result.output


def _qemu_pids(image: Path) -> list[int]:
    """QEMU processes whose command line names `image`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(QEMU_BINARY.encode()) and any(str(image).encode() in a for a in argv):
            found.append(int(entry.name))
    return found


def _locked(image: Path) -> bool:
    """True while some process holds QEMU's image lock (POSIX and OFD locks conflict with each other)."""
    with open(image, "r+b") as f:
        try:
            fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB, LOCK_LEN, LOCK_START)
        except OSError:
            return True
        fcntl.lockf(f, fcntl.LOCK_UN, LOCK_LEN, LOCK_START)
        return False


@pytest.fixture(scope="module")
def bootable(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default dte image (board model): it runs ~15 s under TCG, long enough to be signalled mid-run."""
    from dte_build.board import load_board
    from dte_build.image.builder import build_image
    from dte_build.toolchain import build_firmware

    work = tmp_path_factory.mktemp("run")
    board = load_board("qemu-q35")
    fw = build_firmware(board, build_dir=work / "build")
    build_image(board, fw.efi_path, work / "boot.img", build_id=fw.build_id)
    return work / "boot.img"


@pytest.mark.qemu
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGKILL])
def test_qemu_dies_with_dte_run(bootable: Path, tmp_path: Path, sig: signal.Signals) -> None:
    image = tmp_path / "boot.img"      # one copy per run: a leftover QEMU of one case cannot mask another
    image.write_bytes(bootable.read_bytes())
    proc = subprocess.Popen([sys.executable, "-c", "from dte_build.cli import main; main()", "run", "--timeout", "300",
                             "--quiet", str(image)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not _qemu_pids(image) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        pids = _qemu_pids(image)
        assert pids, "QEMU never started"
        lock_deadline = time.monotonic() + 30
        while not _locked(image) and time.monotonic() < lock_deadline:
            time.sleep(0.1)
        assert _locked(image), "QEMU never locked the image (the lock check below could not fail)"
        os.kill(proc.pid, sig)      # the parent alone, as `timeout` or a closing terminal does
        proc.wait(timeout=30)
        # an exiting process's cmdline reads empty once its memory is released, a moment before its files (and the
        # image lock) are closed: wait for both, within the same deadline
        deadline = time.monotonic() + 15
        while (_qemu_pids(image) or _locked(image)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _qemu_pids(image) == [], f"QEMU outlived dte run after {sig.name}"
        assert not _locked(image)
        if sig != signal.SIGKILL:
            assert proc.returncode != 0 and b"Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in _qemu_pids(image):
            os.kill(pid, signal.SIGKILL)
