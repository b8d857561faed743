"""Boot the firmware under QEMU q35 + OVMF (TCG) and check its status lines; plus the console parser.

Expected CPU facts are QEMU 7.2's TCG `-cpu max` (AVX2 yes, AVX-512F no, SSE4.2 yes); the exit codes are
isa-debug-exit's (value << 1) | 1 for the firmware's 0x10/0x11/0x12 (docs/design.md)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from dte_build.board import load_board
from dte_build.cli import main
from dte_build.errors import DteError
from dte_build.image.builder import build_image
from dte_build.paths import BOARDS_DIR
from dte_build.qemu import parse_status_line, run_image, strip_escapes
from dte_build.toolchain import FirmwareOptions, build_firmware

BOOT_TIMEOUT = 180.0


def test_status_line_parser_reads_the_design_examples() -> None:
    assert parse_status_line("dte: banner build=0123abcd board=qemu-q35 version=0.1.0") == (
        "banner", {"build": "0123abcd", "board": "qemu-q35", "version": "0.1.0"})
    assert parse_status_line("dte: exit_boot_services ok tries=1") == (
        "exit_boot_services", {"ok": True, "tries": "1"})
    assert parse_status_line(r'dte: error text="a \"quoted\" back\\slash\nline" code=3') == (
        "error", {"text": 'a "quoted" back\\slash\nline', "code": "3"})
    assert parse_status_line("dte: ready") == ("ready", {})
    assert parse_status_line("dte banner build=1") is None          # the ConOut copy, for people
    assert parse_status_line("BdsDxe: loading Boot0002") is None


def test_escape_sequences_are_stripped() -> None:
    assert strip_escapes("\x1b[=3h\x1b[0m\x1b[40m\x1b[2Jdte: ready\r") == "dte: ready"
    assert strip_escapes("\x1b[25;01Hplain") == "plain"


def _cli_build(tmp: Path, *extra: str) -> dict:
    # With the board's default model (a model-less image is refused after `ready`), one token to keep boots short.
    result = CliRunner().invoke(main, ["build", "--board", "qemu-q35", "-n", "1", "-o", str(tmp / "boot.img"),
                                       "--json", *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def q35_image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("boot")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DTE_BUILD_DIR", str(tmp / "build"))
        built = _cli_build(tmp)
    return tmp / "boot.img", built


@pytest.mark.qemu
def test_qemu_q35_boots_to_ready(q35_image: tuple[Path, dict]) -> None:
    image, built = q35_image
    result = CliRunner().invoke(main, ["run", str(image), "--json", "--quiet", "--timeout", str(BOOT_TIMEOUT)])
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)
    status = run["status"]
    assert run["ok"] is True and run["rc"] == 33
    assert status["banner"]["board"] == "qemu-q35"
    assert status["banner"]["build"] == built["build_id"]
    assert status["banner"]["version"] == "0.1.0"
    assert (status["cpu"]["sse42"], status["cpu"]["avx2"], status["cpu"]["avx512f"]) == (1, 1, 0)
    assert int(status["xsave"]["xcr0"], 16) & 0x7 == 0x7          # x87 | SSE | AVX enabled
    assert 1500 < int(status["memory"]["usable_mib"]) <= 2048      # -m 2048
    regions = [line for line in run["lines"] if line["word"] == "region"]
    wanted = {r.name: r.size_mib for r in load_board("qemu-q35").regions}
    assert {r["name"]: int(r["size_mib"]) for r in regions} == wanted   # 2 GiB fits every wanted size
    assert status["exit_boot_services"]["ok"] is True
    assert "ready" in status and status["exit"]["status"] == "ok"


@pytest.mark.qemu
def test_small_ram_shrinks_the_weights_region(q35_image: tuple[Path, dict]) -> None:
    result = run_image(q35_image[0], memory_mib=512, timeout=BOOT_TIMEOUT)
    assert result.ok, result.console[-2000:]
    weights = next(r for r in result.all("region") if r["name"] == "weights")
    assert int(weights["wanted_mib"]) == 1024
    assert 16 <= int(weights["size_mib"]) < 512


@pytest.mark.qemu
def test_ram_too_small_fails_clearly(tmp_path: Path) -> None:
    text = (BOARDS_DIR / "qemu-q35.toml").read_text()
    text = text.replace('{ name = "weights",  size_mib = 1024, min_mib = 16 }',
                        '{ name = "weights",  size_mib = 1024, min_mib = 1024 }')
    assert "min_mib = 1024" in text
    (tmp_path / "qemu-q35.toml").write_text(text)
    board = load_board(tmp_path / "qemu-q35.toml")
    fw = build_firmware(board, build_dir=tmp_path / "build")
    build_image(board, fw.efi_path, tmp_path / "small.img", build_id=fw.build_id, no_model=True)
    result = run_image(tmp_path / "small.img", board=board, memory_mib=512, timeout=BOOT_TIMEOUT)
    assert result.rc == 35 and not result.ok
    assert result.status["exit"]["status"] == "fail"
    assert result.status["error"]["text"].startswith("RAM too small: region weights needs 1024 MiB, largest free ")


@pytest.mark.qemu
def test_page_fault_after_exit_boot_services_panics(tmp_path: Path) -> None:
    board = load_board("qemu-q35")
    fw = build_firmware(board, options=FirmwareOptions(extra_defines={"DTE_TEST_FAULT": "1"}),
                        build_dir=tmp_path / "build")
    build_image(board, fw.efi_path, tmp_path / "fault.img", build_id=fw.build_id, no_model=True)
    result = CliRunner().invoke(main, ["run", str(tmp_path / "fault.img"), "--json", "--quiet",
                                       "--timeout", str(BOOT_TIMEOUT)])
    assert result.exit_code == 2
    run = json.loads(result.stdout)
    assert run["rc"] == 37 and run["ok"] is False
    panic = run["status"]["panic"]
    assert panic["vector"] == 14 and panic["subsystem"] == "test" and panic["core"] == 0
    assert int(panic["rip"], 16) != 0
    assert run["status"]["exit"]["status"] == "panic"
    assert "exit_boot_services" in run["status"] and "ready" not in run["status"]


@pytest.mark.qemu
def test_timeout_kills_qemu(q35_image: tuple[Path, dict]) -> None:
    start = time.monotonic()
    result = run_image(q35_image[0], timeout=2.0)
    assert result.timed_out and not result.ok
    assert time.monotonic() - start < 15


def test_missing_image_is_a_dte_error(tmp_path: Path) -> None:
    with pytest.raises(DteError, match="does not exist"):
        run_image(tmp_path / "nope.img")


@pytest.mark.qemu
def test_metal_board_halts_on_a_cpu_it_was_not_built_for(tmp_path: Path) -> None:
    """epyc9654 is an AVX-512 build; TCG -cpu max has no AVX-512F: the firmware says so and, being a metal
    build, halts instead of exiting QEMU (so run_image stops it after the grace period)."""
    board = load_board("epyc9654")
    fw = build_firmware(board, build_dir=tmp_path / "build")
    build_image(board, fw.efi_path, tmp_path / "epyc.img", build_id=fw.build_id, no_model=True)
    result = run_image(tmp_path / "epyc.img", board=board, timeout=BOOT_TIMEOUT,
                       stop_when=lambda line: line.startswith("dte: exit "))
    assert result.stopped and not result.timed_out and not result.ok
    assert result.rc not in (33, 35, 37)                     # QEMU did not exit by itself: the CPU halted
    assert result.status["banner"]["platform"] == "metal"
    assert "lacks AVX-512F" in result.status["error"]["text"]
    assert result.status["exit"]["status"] == "fail"
