"""Firmware toolchain: PE checks (lief and a hand parser of the PE/COFF spec), errors, reproducibility,
the generated config header and dte_fmt (against libc's snprintf)."""

from __future__ import annotations

import ctypes
import hashlib
import struct
import subprocess
from pathlib import Path

import lief
import pytest

from dte_build import toolchain
from dte_build.board import load_board
from dte_build.errors import DteError
from dte_build.paths import FIRMWARE_DIR
from dte_build.toolchain import FirmwareOptions, build_firmware, compile_hosted_library, config_header

try:
    toolchain.find_toolchain()
    HAVE_TOOLCHAIN = True
except DteError:
    HAVE_TOOLCHAIN = False
needs_toolchain = pytest.mark.skipif(not HAVE_TOOLCHAIN, reason="clang-19/lld-link-19 not installed")

# PE/COFF specification facts (Microsoft "PE Format"): machine, optional-header magic, subsystem.
IMAGE_FILE_MACHINE_AMD64 = 0x8664
PE32_PLUS_MAGIC = 0x20B
IMAGE_SUBSYSTEM_EFI_APPLICATION = 10
IMAGE_DIRECTORY_ENTRY_BASERELOC = 5


@pytest.fixture(scope="module")
def q35_build(tmp_path_factory: pytest.TempPathFactory) -> toolchain.FirmwareBuild:
    if not HAVE_TOOLCHAIN:
        pytest.skip("clang-19/lld-link-19 not installed")
    return build_firmware(load_board("qemu-q35"), build_dir=tmp_path_factory.mktemp("fw-a"))


def _parse_pe_by_hand(data: bytes) -> dict[str, int]:
    assert data[:2] == b"MZ"
    pe = struct.unpack_from("<I", data, 0x3C)[0]
    assert data[pe:pe + 4] == b"PE\0\0"
    machine, = struct.unpack_from("<H", data, pe + 4)
    opt = pe + 24
    magic, = struct.unpack_from("<H", data, opt)
    entry, = struct.unpack_from("<I", data, opt + 16)
    subsystem, = struct.unpack_from("<H", data, opt + 68)
    reloc_rva, reloc_size = struct.unpack_from("<II", data, opt + 112 + 8 * IMAGE_DIRECTORY_ENTRY_BASERELOC)
    return {"machine": machine, "magic": magic, "entry": entry, "subsystem": subsystem, "reloc_size": reloc_size}


@needs_toolchain
@pytest.mark.slow
def test_firmware_is_an_efi_application(q35_build: toolchain.FirmwareBuild) -> None:
    data = q35_build.efi_path.read_bytes()
    by_hand = _parse_pe_by_hand(data)
    assert by_hand["machine"] == IMAGE_FILE_MACHINE_AMD64
    assert by_hand["magic"] == PE32_PLUS_MAGIC
    assert by_hand["subsystem"] == IMAGE_SUBSYSTEM_EFI_APPLICATION
    assert by_hand["entry"] != 0 and by_hand["reloc_size"] > 0
    pe = lief.PE.parse(str(q35_build.efi_path))
    assert pe.header.machine == lief.PE.Header.MACHINE_TYPES.AMD64
    assert int(pe.optional_header.subsystem) == IMAGE_SUBSYSTEM_EFI_APPLICATION
    assert pe.has_relocations
    assert q35_build.sha256 == hashlib.sha256(data).hexdigest()
    assert q35_build.size == len(data)
    assert len(q35_build.build_id) == 16 and int(q35_build.build_id, 16) >= 0


@needs_toolchain
@pytest.mark.slow
def test_build_is_reproducible(tmp_path: Path) -> None:
    board = load_board("qemu-q35")
    for attempt in range(3):   # a source edited between the two builds changes the id: build again
        first = build_firmware(board, build_dir=tmp_path / f"a{attempt}")
        second = build_firmware(board, build_dir=tmp_path / f"b{attempt}")
        if first.build_id == second.build_id:
            break
    assert second.build_id == first.build_id
    assert second.efi_path.read_bytes() == first.efi_path.read_bytes()


@needs_toolchain
@pytest.mark.slow
def test_options_change_the_build_id(q35_build: toolchain.FirmwareBuild, tmp_path: Path) -> None:
    other = build_firmware(load_board("qemu-q35"), options=FirmwareOptions(prompt="Hello"), build_dir=tmp_path)
    assert other.build_id != q35_build.build_id
    assert f'#define DTE_BUILD_ID "{other.build_id}"' in (tmp_path / "dte_config.h").read_text()


def _fake_firmware(monkeypatch: pytest.MonkeyPatch, root: Path, source: str) -> None:
    (root / "x").mkdir(parents=True)
    (root / "x" / "main.c").write_text(source)
    (root / "sources.toml").write_text('[common]\nfiles = []\n[firmware]\nfiles = ["x/main.c"]\n')
    monkeypatch.setattr(toolchain, "FIRMWARE_DIR", root)


@needs_toolchain
def test_compile_error_is_a_dte_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _fake_firmware(monkeypatch, tmp_path / "fw", "int efi_main(void) { return undeclared_thing; }\n")
    with pytest.raises(DteError, match=r"compile failed: firmware/x/main\.c:.*undeclared_thing"):
        build_firmware(load_board("qemu-q35"), build_dir=tmp_path / "out")


@needs_toolchain
def test_undefined_symbol_is_a_dte_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _fake_firmware(monkeypatch, tmp_path / "fw",
                   "int dte_missing_function(void);\nint efi_main(void) { return dte_missing_function(); }\n")
    with pytest.raises(DteError, match="undefined symbol.*dte_missing_function"):
        build_firmware(load_board("qemu-q35"), build_dir=tmp_path / "out")
    assert not (tmp_path / "out" / "BOOTX64.EFI").exists()


@needs_toolchain
@pytest.mark.slow
def test_header_edit_triggers_a_recompile(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _fake_firmware(monkeypatch, tmp_path / "fw", '#include "x/value.h"\nconst char *volatile table[] = {"a", "b"};\n'
                   "int _fltused = 0;\nint efi_main(void) { return VALUE + (table[1] != 0); }\n")
    header = tmp_path / "fw" / "x" / "value.h"
    header.write_text("#define VALUE 1\n")
    board = load_board("qemu-q35")
    first = build_firmware(board, build_dir=tmp_path / "out").efi_path.read_bytes()
    assert build_firmware(board, build_dir=tmp_path / "out").efi_path.read_bytes() == first   # cached objects
    header.write_text("#define VALUE 2\n")
    assert build_firmware(board, build_dir=tmp_path / "out").efi_path.read_bytes() != first


def test_missing_clang_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("DTE_CLANG", raising=False)
    monkeypatch.setattr(toolchain, "LLVM_DIRS", [tmp_path / "no-llvm"])
    with pytest.raises(DteError, match="clang not found") as caught:
        toolchain.find_toolchain()
    assert "apt-get install clang-19" in (caught.value.hint or "")


def test_bad_options_are_rejected() -> None:
    with pytest.raises(DteError, match="top-p"):
        FirmwareOptions(top_p=1.5)
    with pytest.raises(DteError, match="token count"):
        FirmwareOptions(n_predict=0)


@needs_toolchain
def test_config_header_strings_survive_the_c_compiler(tmp_path: Path) -> None:
    """The prompt goes through c_string into dte_config.h; a C program prints its bytes back."""
    prompt = 'say "hi"\\ then\nnew line ??= é 日本 \t tab 0\x01'
    (tmp_path / "dte_config.h").write_text(
        config_header(load_board("qemu-q35"), FirmwareOptions(prompt=prompt), "0123456789abcdef"))
    program = tmp_path / "p.c"
    program.write_text('#include <stdio.h>\n#include <string.h>\n#include "dte_config.h"\n'
                       "#define R(n, w, m) printf(\"%s:%llu:%llu,\", n, w, m);\n"
                       "int main(void) { fwrite(DTE_PROMPT, 1, sizeof DTE_PROMPT - 1, stdout); putchar('|');\n"
                       "  DTE_REGIONS(R) printf(\"|%llu|%s\", DTE_WEIGHTS_LBA, DTE_BOARD_NAME); return 0; }\n")
    exe = tmp_path / "p"
    subprocess.run([toolchain.find_clang(), "-std=c11", "-Wall", "-Werror", f"-I{tmp_path}", str(program),
                    "-o", str(exe)], check=True)
    out = subprocess.run([str(exe)], capture_output=True, check=True).stdout
    text, regions, rest = out.split(b"|", 2)
    assert text == prompt.encode("utf-8")
    assert regions == b"runtime:16:8,scratch:64:16,weights:1024:16,kv_cache:128:4,"   # boards/qemu-q35.toml
    assert rest == b"131072|qemu-q35"


@pytest.fixture(scope="module")
def fmt_lib(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    if not HAVE_TOOLCHAIN:
        pytest.skip("clang-19 not installed")
    out = tmp_path_factory.mktemp("fmt") / "libfmt.so"
    return ctypes.CDLL(str(compile_hosted_library([FIRMWARE_DIR / "lib/fmt.c"], out)))


FMT_CASES = [
    ("%d|%i|%u", (ctypes.c_int(-42), ctypes.c_int(7), ctypes.c_uint(4000000000))),
    ("%x|%X|%08x|%-6d|%6d", (ctypes.c_uint(0xbeef), ctypes.c_uint(0xbeef), ctypes.c_uint(0xab),
                             ctypes.c_int(12), ctypes.c_int(-12))),
    ("%lld|%llu|%llx|%zu", (ctypes.c_longlong(-2**63), ctypes.c_ulonglong(2**64 - 1),
                           ctypes.c_ulonglong(0x123456789abcdef0), ctypes.c_size_t(12345))),
    ("%ld|%lu|%lx", (ctypes.c_long(-5), ctypes.c_ulong(2**40), ctypes.c_ulong(255))),
    ("%s|%.3s|%-5s|%5s|%c|%%", (b"hello", b"abcdef", b"ab", b"cd", ctypes.c_int(ord("Z")))),
    ("%f|%.2f|%.0f|%.3f|%f", (ctypes.c_double(3.14159), ctypes.c_double(-2.005), ctypes.c_double(2.5),
                             ctypes.c_double(1234567.0004), ctypes.c_double(0.0))),
    ("%08.3f|%p", (ctypes.c_double(-1.5), ctypes.c_void_p(0x1234))),
]


@needs_toolchain
@pytest.mark.parametrize("fmt,args", FMT_CASES)
def test_dte_fmt_matches_libc_snprintf(fmt_lib: ctypes.CDLL, fmt: str, args: tuple) -> None:
    libc = ctypes.CDLL(None)
    ours, theirs = ctypes.create_string_buffer(256), ctypes.create_string_buffer(256)
    n_ours = fmt_lib.dte_fmt(ours, ctypes.c_size_t(256), fmt.encode(), *args)
    n_theirs = libc.snprintf(theirs, ctypes.c_size_t(256), fmt.encode(), *args)
    assert ours.value == theirs.value
    assert n_ours == n_theirs


@needs_toolchain
def test_dte_fmt_truncates_like_snprintf(fmt_lib: ctypes.CDLL) -> None:
    buf = ctypes.create_string_buffer(b"\xff" * 8)
    n = fmt_lib.dte_fmt(buf, ctypes.c_size_t(5), b"%s", b"truncated")
    assert n == len("truncated") and buf.raw[:5] == b"trun\0" and buf.raw[5:8] == b"\xff\xff\xff"
