"""`dte flash` / `dte verify` to regular files: exactness, sparseness, corruption, --changed-only, interruption.

Images come from sgdisk + mkfs.fat + mtools (test_flash_lib); the expected bytes are the image file itself,
compared with `cmp` semantics (Python byte equality) and checked with `sgdisk -v` and `mtype`.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from flash_helpers import MIB, WEIGHTS_OFFSET, allocated, make_image, needs_tools

from dte_build.cli import main
from dte_build.errors import DteError
from dte_build.flash import flash, image_source, plan_source, verify
from dte_build.flash.blockio import CHUNK

pytestmark = needs_tools


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture()
def image(tmp_path: Path) -> Path:
    img = tmp_path / "dte.img"
    make_image(img)
    return img


@pytest.mark.parametrize("sparse", [True, False])
def test_flash_file_is_byte_identical_and_verifies(tmp_path: Path, sparse: bool) -> None:
    img = tmp_path / "dte.img"
    make_image(img, sparse=sparse)
    out = tmp_path / "out.img"
    rc, stdout, _ = run("flash", "--to-file", "--yes", "--json", str(img), str(out))
    assert rc == 0
    report = json.loads(stdout)
    assert report["verified"] is True and report["first_bad_offset"] is None
    assert out.read_bytes() == img.read_bytes()
    assert "No problems found" in subprocess.run(["sgdisk", "-v", str(out)], capture_output=True, text=True).stdout
    hello = subprocess.run(["mtype", "-i", f"{out}@@{MIB}", "::/HELLO.TXT"], capture_output=True, text=True)
    assert hello.stdout == "dte flash test\n"
    # The target keeps the image's holes: it occupies about what the sparse image's data does, not 40 MiB.
    sparse_data = sum(n for _, n in _data_map(img)) if sparse else None
    if sparse:
        assert report["bytes_written"] <= sparse_data + 64 * 1024
        assert allocated(out) <= sparse_data + 1 * MIB
    assert run("verify", str(img), str(out))[0] == 0


def test_flash_over_an_existing_file_full_of_junk(tmp_path: Path, image: Path) -> None:
    """Every byte of the old contents inside the image range must be replaced, holes included."""
    out = tmp_path / "old.img"
    size = image.stat().st_size
    out.write_bytes(b"\xa5" * (size + MIB))
    report = flash(image_source(image), out)
    assert report.verified is True and report.bytes_zeroed > 0
    data = out.read_bytes()
    assert data[:size] == image.read_bytes()
    # Past the image only the target's last 4 KiB changed: zeroed, so no stale backup GPT header survives there.
    assert data[size:] == b"\xa5" * (MIB - 4096) + bytes(4096)


def _data_map(path: Path) -> list[tuple[int, int]]:
    from dte_build.flash.source import data_extents
    fd = os.open(path, os.O_RDONLY)
    try:
        return data_extents(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)


def test_corrupt_byte_is_named_by_offset(tmp_path: Path, image: Path) -> None:
    out = tmp_path / "out.img"
    assert run("flash", "--to-file", "-y", str(image), str(out))[0] == 0
    bad = WEIGHTS_OFFSET + 3 * MIB + 4567
    with open(out, "r+b") as f:
        f.seek(bad)
        old = f.read(1)
        f.seek(bad)
        f.write(bytes([old[0] ^ 0x40]))
    rc, stdout, stderr = run("verify", "--json", str(image), str(out))
    assert rc != 0
    result = json.loads(stdout)
    assert result["status"] == "mismatch" and result["first_bad_offset"] == bad
    assert f"mismatch at offset {bad}" in run("verify", str(image), str(out))[1]   # the result: stdout


def test_corrupted_hole_is_detected(tmp_path: Path, image: Path) -> None:
    """Bytes the image has as a hole (zeros) must read back as zeros too."""
    out = tmp_path / "out.img"
    flash(image_source(image), out)
    bad = 30 * MIB + 5  # between the weights and the backup GPT: a hole in the image
    with open(out, "r+b") as f:
        f.seek(bad)
        f.write(b"\x01")
    result = verify(image_source(image), out)
    assert result.status == "mismatch" and result.first_bad_offset == bad


def test_changed_only_writes_only_changed_chunks(tmp_path: Path, image: Path) -> None:
    out = tmp_path / "out.img"
    flash(image_source(image), out)
    size = image.stat().st_size
    total_chunks = len(image_source(image).chunks())
    again = flash(image_source(image), out, changed_only=True)
    assert again.chunks_written == 0 and again.bytes_written == 0 and again.chunks_skipped == total_chunks
    assert again.verified is True  # every chunk was read and matched
    # Change two bytes in two different data chunks of the image, and flash only what changed.
    offsets = [WEIGHTS_OFFSET + 10, WEIGHTS_OFFSET + CHUNK + 10]
    with open(image, "r+b") as f:
        for off in offsets:
            f.seek(off)
            f.write(b"\xff")
    changed = {off // CHUNK for off in offsets}
    gpt_chunks = sum(1 for c in image_source(image).chunks() if c.gpt)
    report = flash(image_source(image), out, changed_only=True)
    assert report.chunks_written == len(changed) + gpt_chunks  # the changed chunks + the GPT, rewritten last
    assert report.chunks_skipped == total_chunks - report.chunks_written
    assert report.verified is True
    assert out.read_bytes() == image.read_bytes()
    assert out.stat().st_size == size


def test_dry_run_writes_nothing(tmp_path: Path, image: Path) -> None:
    out = tmp_path / "out.img"
    rc, stdout, _ = run("flash", "--to-file", "--dry-run", "--json", str(image), str(out))
    assert rc == 0 and json.loads(stdout)["dry_run"] is True
    assert not out.exists()
    existing = tmp_path / "old.img"
    existing.write_bytes(b"old" * (20 * MIB))
    before = existing.read_bytes()
    assert run("flash", "--to-file", "--dry-run", "-y", str(image), str(existing))[0] == 0
    assert existing.read_bytes() == before


def test_no_confirmation_without_terminal(tmp_path: Path, image: Path) -> None:
    out = tmp_path / "out.img"
    rc, _, stderr = run("flash", "--to-file", str(image), str(out))
    assert rc != 0 and "--yes" in stderr
    assert "new file" in stderr and str(image.stat().st_size) in stderr  # what would be destroyed / written
    assert not out.exists() or out.stat().st_size == 0


def test_confirmation_prompt_no_keeps_the_target_yes_flashes(tmp_path: Path, image: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from dte_build.commands import flash_cmd
    monkeypatch.setattr(flash_cmd, "_stdin_is_terminal", lambda: True)
    out = tmp_path / "old.img"
    out.write_bytes(b"old!" * (image.stat().st_size // 4))
    before = out.read_bytes()
    result = CliRunner().invoke(main, ["flash", "--to-file", str(image), str(out)], input="n\n")
    assert result.exit_code != 0 and "cancelled" in result.stderr and "Erase everything" in result.stderr
    assert "no valid GPT" in " ".join(result.stderr.split())  # what is there now, shown before asking
    assert out.read_bytes() == before
    result = CliRunner().invoke(main, ["flash", "--to-file", str(image), str(out)], input="y\n")
    assert result.exit_code == 0, result.stderr
    assert out.read_bytes() == image.read_bytes()


def test_interrupted_flash_is_incomplete_and_rerun_completes(tmp_path: Path, image: Path) -> None:
    out = tmp_path / "out.img"
    flash(image_source(image), out)
    other = tmp_path / "other.img"
    make_image(other, seed=2)  # a different complete appliance, flashed over the first one and interrupted

    def stop_after_first(chunk: object) -> None:
        raise KeyboardInterrupt

    with pytest.raises(DteError, match="interrupted"):
        flash(image_source(other), out, on_chunk=stop_after_first)
    result = verify(image_source(other), out)
    assert result.status == "incomplete" and "no GPT" in result.line()
    assert verify(image_source(image), out).status == "incomplete"  # nor does it pass as the old appliance
    rc, stdout, _ = run("verify", str(other), str(out))
    assert rc != 0 and "incomplete" in stdout
    assert flash(image_source(other), out).verified is True
    assert out.read_bytes() == other.read_bytes()


def test_power_loss_truncated_write_is_incomplete(tmp_path: Path, image: Path) -> None:
    """Simulate a power cut: only a prefix of the data reached the disk, and (written last) no GPT."""
    data = image.read_bytes()
    gpt_primary, gpt_backup = 34 * 512, 33 * 512
    out = tmp_path / "out.img"
    cut = WEIGHTS_OFFSET + 2 * MIB + 333
    body = bytes(gpt_primary) + data[gpt_primary:cut]
    out.write_bytes(body + bytes(len(data) - len(body)))
    assert verify(image_source(image), out).status == "incomplete"
    rc, stdout, _ = run("flash", "--to-file", "-y", "--json", str(image), str(out))
    assert rc == 0 and json.loads(stdout)["verified"] is True
    assert out.read_bytes() == data
    assert gpt_backup < len(data)


@pytest.mark.slow
def test_killed_flash_process_leaves_incomplete_target(tmp_path: Path) -> None:
    """SIGKILL a real `dte flash` as soon as it has invalidated the old GPT; verify says incomplete, a re-run fixes."""
    import signal
    import sys
    import time
    img = tmp_path / "big.img"
    make_image(img, size_mib=192, weights=os.urandom(150 * MIB))
    out = tmp_path / "out.img"
    flash(image_source(img), out, verify=False)
    make_image(img, size_mib=192, weights=os.urandom(150 * MIB))
    proc = subprocess.Popen([sys.executable, "-c", "from dte_build.cli import main; main()", "flash", "--to-file", "-y",
                             "--no-verify", str(img), str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    with open(out, "rb") as f:
        while proc.poll() is None and time.monotonic() < deadline:
            if os.pread(f.fileno(), 2, 510) != b"\x55\xaa":  # protective MBR gone: writing has begun
                break
            time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    if proc.wait() == 0:
        pytest.skip("the flash finished before it could be killed")
    assert verify(image_source(img), out).status == "incomplete"
    assert flash(image_source(img), out).verified is True


@pytest.mark.slow
def test_plan_source_flashes_without_an_image(tmp_path: Path) -> None:
    """--board/--model path: a plan from plan_image written straight to a file equals `dte build`'s image."""
    from model_factory import sized_model

    from dte_build.board import load_board
    from dte_build.image.builder import build_image
    from dte_build.image.plan import plan_image
    efi = tmp_path / "BOOTX64.EFI"
    efi.write_bytes(b"MZ" + bytes(range(256)) * 300)
    model = sized_model(tmp_path / "m.gguf", 1_200_000)
    board = load_board("qemu-q35")
    built = tmp_path / "built.img"
    build_image(board, efi, built, model_path=model, build_id="0123456789abcdef")
    out = tmp_path / "out.img"
    with plan_image(board, efi, model_path=model, build_id="0123456789abcdef") as plan:
        source = plan_source(plan)
        report = flash(source, out)
        assert report.verified is True
        assert verify(source, out).ok
    assert out.read_bytes() == built.read_bytes()
    assert verify(image_source(built), out).ok
    # Sized to a larger "drive" holding junk: the backup GPT goes to its end; gaps are don't-care.
    drive = tmp_path / "drive.img"
    drive.write_bytes(b"\x5a" * (built.stat().st_size + 8 * MIB))
    with plan_image(board, efi, model_path=model, build_id="0123456789abcdef",
                    disk_size=drive.stat().st_size) as plan:
        assert flash(plan_source(plan), drive).verified is True
        assert verify(plan_source(plan), drive).ok
    check = subprocess.run(["sgdisk", "-v", str(drive)], capture_output=True, text=True)
    assert "No problems found" in check.stdout, check.stdout
    weights = out.read_bytes()[board.weights_offset:board.weights_offset + model.stat().st_size]
    assert weights == model.read_bytes()


def test_missing_image_and_bad_args(tmp_path: Path) -> None:
    rc, _, stderr = run("flash", "--to-file", "-y", str(tmp_path / "nope.img"), str(tmp_path / "out.img"))
    assert rc != 0 and "does not exist" in stderr
    rc, _, stderr = run("flash", "--to-file", "-y", str(tmp_path / "only-one.img"))
    assert rc != 0 and "IMAGE and DEVICE" in stderr
    not_gpt = tmp_path / "plain.img"
    not_gpt.write_bytes(bytes(4 * MIB))
    rc, _, stderr = run("flash", "--to-file", "-y", str(not_gpt), str(tmp_path / "out.img"))
    assert rc != 0 and "no valid GPT" in stderr


def test_no_verify_writes_the_same_bytes(tmp_path: Path, image: Path) -> None:
    out = tmp_path / "out.img"
    out.write_bytes(b"\x5a" * image.stat().st_size)
    rc, stdout, _ = run("flash", "--to-file", "-y", "--no-verify", "--json", str(image), str(out))
    report = json.loads(stdout)
    assert rc == 0 and report["verified"] is None and report["verify_seconds"] == 0.0
    assert out.read_bytes() == image.read_bytes()
    assert verify(image_source(image), out).ok
