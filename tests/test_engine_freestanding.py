"""The engine's platform-free files compile for the firmware target (x86_64-unknown-windows, freestanding,
-Werror) and reach nothing outside the engine but platform.h, dte_fmt and the compiler's mem* helpers."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from dte_build.paths import FIRMWARE_DIR

CLANG = shutil.which("clang-19")
NM = shutil.which("llvm-nm-19") or shutil.which("llvm-nm")
FLAGS = ["-target", "x86_64-unknown-windows", "-ffreestanding", "-fno-builtin", "-mno-stack-arg-probe",
         "-fshort-wchar", "-mno-red-zone", "-Wall", "-Wextra", "-Werror", "-std=c11", "-O2"]
ENGINE_FILES = ["gguf.c", "arch.c", "model_load.c", "forward.c", "engine.c", "mathf.c", "sampler.c",
                "tokenizer.c", "generate.c"]
PLATFORM = {"dte_alloc", "dte_log", "dte_time_ns", "dte_parallel_for", "dte_worker_count"}
ALLOWED_OTHER = {"dte_fmt", "memcpy", "memset", "memmove", "memcmp", "_fltused"}


def engine_exports() -> set[str]:
    """Functions declared in the engine headers (quants.h, gguf.h, mathf.h, ...)."""
    names: set[str] = set()
    for header in (FIRMWARE_DIR / "engine").glob("*.h"):
        names |= set(re.findall(r"\b(dte_\w+)\s*\(", header.read_text()))
    return names


@pytest.mark.skipif(CLANG is None or NM is None, reason="clang-19 / llvm-nm-19 not installed")
@pytest.mark.parametrize("name", ENGINE_FILES)
def test_compiles_freestanding_with_only_engine_imports(tmp_path: Path, name: str) -> None:
    obj = tmp_path / (name + ".obj")
    subprocess.run([CLANG, *FLAGS, f"-I{FIRMWARE_DIR}", "-c", str(FIRMWARE_DIR / "engine" / name), "-o", str(obj)],
                   check=True, capture_output=True, text=True)
    out = subprocess.run([NM, "-u", str(obj)], check=True, capture_output=True, text=True).stdout
    undefined = {line.split()[-1] for line in out.splitlines() if line.strip()}
    assert undefined, "nm found no imports at all (every file uses at least _fltused or dte_alloc)"
    stray = undefined - PLATFORM - ALLOWED_OTHER - engine_exports()
    assert not stray, f"{name} reaches outside the engine: {sorted(stray)}"
