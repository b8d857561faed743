"""Builds hosted C from firmware sources for tests, cached by content hash under build/tests/.

Shared libraries go through `dte_build.toolchain.compile_hosted_library` (the project's hosted flags); test
executables (a server on the loopnic) are linked here with the same flags minus -shared/-fPIC.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from dte_build.errors import DteError
from dte_build.paths import FIRMWARE_DIR, REPO_ROOT, build_root
from dte_build.toolchain import HOSTED_CFLAGS, compile_hosted_library, find_clang

INCLUDE_DIRS = [FIRMWARE_DIR / "lib", FIRMWARE_DIR / "net", REPO_ROOT / "tests/devmodels"]


SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]


def _digest(paths: list[Path], extra: list[str]) -> str:
    h = hashlib.sha256(" ".join([*HOSTED_CFLAGS, *extra]).encode())
    for p in paths:
        h.update(str(p).encode() + p.read_bytes())
    for header in sorted(FIRMWARE_DIR.rglob("*.h")) + sorted((REPO_ROOT / "tests/devmodels").glob("*.h")):
        h.update(header.read_bytes())
    return h.hexdigest()[:16]


def build(name: str, sources: list[Path], *, shared: bool, sanitize: bool = False) -> Path:
    """Compile `sources` (absolute paths) into build/tests/<name>-<hash>.so, or an executable.

    `sanitize` (executables only): AddressSanitizer + UBSan, aborting on the first error; raises
    subprocess.CalledProcessError when the sanitizer runtime (Debian libclang-rt-19-dev) is missing."""
    try:
        clang = find_clang()
    except DteError as exc:
        pytest.skip(f"no clang to build hosted C: {exc}")
    out_dir = build_root() / "tests"
    extra = SANITIZE if sanitize else []
    out = out_dir / f"{name}-{_digest(sources, extra)}{'.so' if shared else ''}"
    if out.exists():
        return out
    if shared:
        return compile_hosted_library(sources, out, include_dirs=INCLUDE_DIRS)
    out_dir.mkdir(parents=True, exist_ok=True)
    flags = [f for f in HOSTED_CFLAGS if f not in ("-shared", "-fPIC")]
    tmp = out.with_name(out.name + ".tmp")
    cmd = [clang, *flags, *extra, "-g", f"-I{FIRMWARE_DIR}", *(f"-I{d}" for d in INCLUDE_DIRS), "-o", str(tmp),
           *map(str, sources)]
    subprocess.run(cmd, check=True, timeout=120, capture_output=sanitize)
    tmp.replace(out)
    return out


def firmware(*relative: str) -> list[Path]:
    return [FIRMWARE_DIR / r for r in relative]
