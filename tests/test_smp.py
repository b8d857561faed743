"""SMP: MADT decoding, the hosted pthreads pool under stress (+ ThreadSanitizer), and bring-up under QEMU.

Expected values come from outside the code under test: MADT bytes are laid out here from ACPI 6.5 §5.2.12
(Tables 5.19, 5.23, 5.37), the pool's rows are checked against a plain loop in tests/hosted/pool_stress.c, and
the firmware's self-test checksum (splitmix64 rows hashed with FNV-1a 64, firmware/boot/smp_selftest.c) is
recomputed here in Python. QEMU TCG runs each vCPU on a host thread, so -smp 2/4 really runs the APs."""

from __future__ import annotations

import ctypes
import dataclasses
import json
import os
import struct
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from _hostc import build, firmware
from dte_build.board import load_board
from dte_build.cli import main
from dte_build.image.builder import build_image
from dte_build.qemu import run_image
from dte_build.paths import FIRMWARE_DIR, MODELS_DIR, REPO_ROOT
from dte_build.toolchain import HOSTED_CFLAGS, FirmwareOptions, build_firmware, find_clang

BOOT_TIMEOUT = 180.0
SELFTEST_ROWS = 10007
M64 = (1 << 64) - 1


# ---- MADT ----

class MadtCpu(ctypes.Structure):
    _fields_ = [("apic_id", ctypes.c_uint32), ("uid", ctypes.c_uint32), ("flags", ctypes.c_uint32),
                ("x2apic", ctypes.c_uint8)]


class MadtInfo(ctypes.Structure):
    _fields_ = [("lapic_base", ctypes.c_uint64), ("listed", ctypes.c_int)]


def _madt(entries: list[bytes], lapic: int = 0xFEE00000) -> bytes:
    """A MADT: 36-byte SDT header (checksum over the whole table = 0), local APIC address, flags, entries."""
    body = struct.pack("<II", lapic, 1) + b"".join(entries)
    header = bytearray(struct.pack("<4sIBB6s8sI4sI", b"APIC", 36 + len(body), 5, 0, b"DTEOEM", b"DTETABLE", 1,
                                   b"DTE ", 1))
    table = bytearray(header + body)
    table[9] = (-sum(table)) & 0xFF
    return bytes(table)


def _lapic(uid: int, apic_id: int, flags: int) -> bytes:      # type 0, length 8 (ACPI 6.5 Table 5.22)
    return struct.pack("<BBBBI", 0, 8, uid, apic_id, flags)


def _x2apic(x2apic_id: int, flags: int, uid: int) -> bytes:    # type 9, length 16 (Table 5.37)
    return struct.pack("<BBHIII", 9, 16, 0, x2apic_id, flags, uid)


@pytest.fixture(scope="module")
def madt_lib() -> ctypes.CDLL:
    lib = ctypes.CDLL(str(build("madt", firmware("drivers/madt.c", "drivers/acpi.c"), shared=True)))
    lib.madt_parse.argtypes = [ctypes.c_char_p, ctypes.POINTER(MadtCpu), ctypes.c_int, ctypes.POINTER(MadtInfo)]
    lib.madt_parse.restype = ctypes.c_int
    return lib


def _parse(lib: ctypes.CDLL, table: bytes, cap: int = 16) -> tuple[int, list[tuple[int, int, int, int]], MadtInfo]:
    cpus, info = (MadtCpu * cap)(), MadtInfo()
    n = lib.madt_parse(table, cpus, cap, ctypes.byref(info))
    return n, [(c.apic_id, c.uid, c.flags, c.x2apic) for c in cpus[:max(n, 0)]], info


def test_madt_lists_enabled_and_online_capable_processors(madt_lib: ctypes.CDLL) -> None:
    table = _madt([
        _lapic(0, 0, 1),                        # enabled
        _lapic(1, 2, 0),                        # neither enabled nor online-capable: not usable
        _lapic(2, 4, 2),                        # online-capable
        _lapic(3, 0xFF, 1),                     # 0xFF: not a processor
        struct.pack("<BBHQ", 5, 12, 0, 0xFEC0_0000_0000),   # Local APIC Address Override (Table 5.29)
        _x2apic(0x1000, 1, 7),                  # x2APIC id above 255
        _x2apic(4, 1, 2),                       # the same processor listed again: skipped
        struct.pack("<BBBBI", 1, 12, 0, 0, 0) + b"\0" * 4,  # an I/O APIC entry: ignored
    ])
    n, cpus, info = _parse(madt_lib, table)
    assert n == 3 and info.listed == 3
    assert cpus == [(0, 0, 1, 0), (4, 2, 2, 0), (0x1000, 7, 1, 1)]
    assert info.lapic_base == 0xFEC0_0000_0000


def test_madt_counts_more_processors_than_fit(madt_lib: ctypes.CDLL) -> None:
    table = _madt([_lapic(i, i, 1) for i in range(6)])
    n, cpus, info = _parse(madt_lib, table, cap=4)
    assert n == 4 and info.listed == 6 and [c[0] for c in cpus] == [0, 1, 2, 3]
    assert info.lapic_base == 0xFEE00000


def test_madt_rejects_other_tables_and_stops_at_a_bad_entry(madt_lib: ctypes.CDLL) -> None:
    assert _parse(madt_lib, b"FACP" + _madt([])[4:])[0] == -1
    broken = _madt([_lapic(0, 0, 1), struct.pack("<BB", 0, 0) + b"\0" * 6, _lapic(1, 1, 1)])
    n, cpus, _ = _parse(madt_lib, broken)
    assert n == 1 and cpus[0][0] == 0


# ---- hosted pool ----

def _build_stress(tmp: Path, sanitize: list[str]) -> Path:
    flags = [f for f in HOSTED_CFLAGS if f not in ("-shared", "-fPIC")]
    out = tmp / ("pool_stress" + ("-tsan" if sanitize else ""))
    cmd = [find_clang(), *flags, *sanitize, "-g", f"-I{FIRMWARE_DIR}", "-o", str(out),
           str(REPO_ROOT / "tests/hosted/pool_stress.c"), str(FIRMWARE_DIR / "hosted/platform_hosted.c")]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0 and sanitize and "tsan" in result.stderr:
        pytest.skip("ThreadSanitizer runtime missing (Debian: apt-get install libclang-rt-19-dev)")
    assert result.returncode == 0, result.stderr
    return out


def test_hosted_pool_matches_a_plain_loop_under_stress(tmp_path: Path) -> None:
    """Many small jobs, uneven splits, n < workers, n = 0, nested calls, a rival thread, resizing."""
    exe = _build_stress(tmp_path, [])
    result = subprocess.run([str(exe), "10"], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0 and result.stdout.startswith("ok jobs="), result.stdout + result.stderr


def test_hosted_pool_is_clean_under_thread_sanitizer(tmp_path: Path) -> None:
    exe = _build_stress(tmp_path, ["-fsanitize=thread", "-O1"])
    env = dict(os.environ, TSAN_OPTIONS="halt_on_error=1 exitcode=66")
    result = subprocess.run([str(exe), "2"], capture_output=True, text=True, timeout=300, check=False, env=env)
    if "FATAL: ThreadSanitizer" in result.stderr and "memory mapping" in result.stderr:
        pytest.skip("ThreadSanitizer cannot run with this kernel's address layout")
    assert "WARNING: ThreadSanitizer" not in result.stderr, result.stderr[-3000:]
    assert result.returncode == 0 and result.stdout.startswith("ok jobs="), result.stdout + result.stderr[-2000:]


# ---- firmware under QEMU ----

def _selftest_checksum(rows: int = SELFTEST_ROWS) -> int:
    def splitmix64(x: int) -> int:
        x = (x + 0x9E3779B97F4A7C15) & M64
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
        return x ^ (x >> 31)
    h = 0xCBF29CE484222325
    for i in range(rows):
        for byte in splitmix64(i).to_bytes(8, "little"):
            h = ((h ^ byte) * 0x100000001B3) & M64
    return h


MODEL = MODELS_DIR / "dte-tiny-q8_0.gguf"
OPTIONS = FirmwareOptions(prompt="Hello. I am Deep Tree Echo,", n_predict=4, temperature=1.5, top_k=0, top_p=1.0,
                          seed=3)   # hot sampling: any difference in any logit changes the ids


def _image(tmp: Path, name: str, options: FirmwareOptions = OPTIONS, model: Path | None = MODEL) -> Path:
    if model is not None and not model.is_file():
        pytest.skip(f"{model.name} is not in models/ (the appliance needs a model to reach `exit status=ok`)")
    board = load_board("qemu-q35")
    fw = build_firmware(board, options=options, build_dir=tmp / f"build-{name}")
    image = tmp / f"{name}.img"
    build_image(board, fw.efi_path, image, model_path=model, build_id=fw.build_id, no_model=model is None)
    return image


@pytest.fixture(scope="module")
def smp_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _image(tmp_path_factory.mktemp("smp"), "smp")


@pytest.fixture(scope="module")
def hosted_ids() -> list[int]:
    """The oracle for the firmware's ids: the hosted engine (`dte generate`) with the same settings."""
    if not MODEL.is_file():
        pytest.skip(f"{MODEL.name} is not in models/")
    result = CliRunner().invoke(main, ["generate", "-m", str(MODEL), "-p", OPTIONS.prompt, "-n",
                                       str(OPTIONS.n_predict), "--temp", str(OPTIONS.temperature), "--top-k", "0",
                                       "--top-p", "1.0", "--seed", str(OPTIONS.seed), "--threads", "1", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["ids"]


def _run_json(image: Path, smp: int) -> tuple[int, dict]:
    result = CliRunner().invoke(main, ["run", str(image), "--smp", str(smp), "--json", "--quiet",
                                       "--timeout", str(BOOT_TIMEOUT)])
    return result.exit_code, json.loads(result.stdout)


@pytest.mark.qemu
@pytest.mark.parametrize("smp", [1, 2, 4])
def test_every_vcpu_checks_in_and_computes_the_same_result(smp_image: Path, hosted_ids: list[int],
                                                           smp: int) -> None:
    code, run = _run_json(smp_image, smp)
    assert code == 0 and run["ok"], run["status"]
    assert run["cpus"] == smp                                   # qemu-q35 allows 4 workers
    assert [line for line in run["lines"] if line["word"] == "smp" and "status" in line] == []
    summary = run["status"]["smp"]
    assert summary["listed"] == smp and summary["bsp_apic"] == 0 and summary["cap"] == 4
    test = run["status"]["smp_selftest"]
    assert int(test["checksum"], 16) == _selftest_checksum()
    assert (test["workers"], test["active"], test["rc"]) == (smp, smp, 0)
    assert test["nested_rc"] == -1                              # a nested dte_parallel_for is rejected
    assert run["ids"] == hosted_ids and len(hosted_ids) == OPTIONS.n_predict   # same tokens at any core count


@pytest.mark.qemu
def test_smt_siblings_stay_parked_when_the_board_says_so(smp_image: Path) -> None:
    """2 cores x 2 threads: CPUID leaf 0BH gives 1 SMT bit of the APIC id; qemu-q35 has use_smt = false, so the
    odd APIC ids (the second thread of each core) are not woken."""
    result = run_image(smp_image, smp=4, extra_args=["-smp", "4,sockets=1,cores=2,threads=2"],
                       timeout=BOOT_TIMEOUT, stop_when=lambda line: line.startswith("dte: smp_selftest"))
    summary = result.status["smp"]
    assert (summary["cpus"], summary["listed"], summary["smt_bits"], summary["use_smt"]) == ("2", "4", "1", "0")
    assert int(result.status["smp_selftest"]["checksum"], 16) == _selftest_checksum()


@pytest.mark.qemu
def test_a_cpu_that_does_not_answer_is_reported_and_skipped(tmp_path: Path) -> None:
    """APIC id 1 gets no INIT/SIPI in this test build (DTE_TEST_AP_SILENT=1): it is reported as timed out and
    the next CPU still comes up as worker 1. maxcpus=4 adds a hot-pluggable CPU that QEMU's MADT lists as
    disabled (flags 0): it is not woken at all."""
    image = _image(tmp_path, "silent", FirmwareOptions(extra_defines={"DTE_TEST_AP_SILENT": "1"}), model=None)
    result = run_image(image, smp=3, extra_args=["-smp", "3,maxcpus=4"], timeout=BOOT_TIMEOUT,
                       stop_when=lambda line: line.startswith("dte: smp_selftest"))
    per_cpu = [line for line in result.all("smp") if "status" in line]
    assert per_cpu == [{"cpu": "1", "apic": "1", "status": "timeout"}]
    summary = result.status["smp"]
    assert (summary["cpus"], summary["listed"]) == ("2", "3")
    test = result.status["smp_selftest"]
    assert (test["workers"], test["active"]) == ("2", "2")
    assert int(test["checksum"], 16) == _selftest_checksum()


@pytest.mark.qemu
def test_build_threads_caps_the_workers(tmp_path: Path) -> None:
    image = _image(tmp_path, "one", dataclasses.replace(OPTIONS, threads=1))
    code, run = _run_json(image, 2)
    assert code == 0 and run["cpus"] == 1
    assert run["status"]["smp"]["listed"] == 2 and run["status"]["smp"]["cap"] == 1   # --json: decimal values are numbers
    assert int(run["status"]["smp_selftest"]["checksum"], 16) == _selftest_checksum()


@pytest.mark.qemu
def test_a_fault_on_an_application_processor_names_its_core(tmp_path: Path) -> None:
    image = _image(tmp_path, "apfault", FirmwareOptions(extra_defines={"DTE_TEST_AP_FAULT": "1"}), model=None)
    code, run = _run_json(image, 2)
    assert code == 2 and run["rc"] == 37 and not run["timed_out"]
    panic = run["status"]["panic"]
    assert panic["vector"] == 6                                 # ud2: invalid opcode (SDM Vol. 3A Table 6-1)
    assert (panic["core"], panic["worker"]) == (1, 1)           # QEMU numbers APIC ids 0..N-1
    assert panic["subsystem"] == "smp"
    assert run["status"]["exit"]["status"] == "panic" and "ready" not in run["status"]
    assert len(run_panics := [line for line in run["lines"] if line["word"] == "panic"]) == 1, run_panics
