"""Builds small hosted C programs/libraries from firmware sources for tests (clang-19, cached by content hash).

Used until `dte_build.toolchain.compile_hosted_library` exists; then tests switch to it.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from dte_build.paths import FIRMWARE_DIR, REPO_ROOT, build_root

CLANG = shutil.which("clang-19") or shutil.which("clang")
CFLAGS = ["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-g"]


def _digest(paths: list[Path], extra: list[str]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(str(p).encode())
        h.update(p.read_bytes())
    for header in sorted(FIRMWARE_DIR.rglob("*.h")) + sorted((REPO_ROOT / "tests/devmodels").glob("*.h")):
        h.update(header.read_bytes())
    h.update(" ".join(extra).encode())
    return h.hexdigest()[:16]


def build(name: str, sources: list[Path], *, shared: bool, extra: list[str] | None = None) -> Path:
    """Compile `sources` (absolute paths) into build/tests/<name>-<hash>.so or an executable."""
    if CLANG is None:
        pytest.skip("clang-19 not installed (apt-get install clang-19)")
    extra = list(extra or [])
    out_dir = build_root() / "tests"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{name}-{_digest(sources, extra)}{'.so' if shared else ''}"
    if out.exists():
        return out
    cmd = [CLANG, *CFLAGS, f"-I{FIRMWARE_DIR}", f"-I{FIRMWARE_DIR / 'lib'}", f"-I{FIRMWARE_DIR / 'net'}",
           *(["-shared", "-fPIC"] if shared else []), *extra, "-o", str(out) + ".tmp", *map(str, sources)]
    subprocess.run(cmd, check=True, timeout=120)
    Path(str(out) + ".tmp").rename(out)
    return out


def firmware(*relative: str) -> list[Path]:
    return [FIRMWARE_DIR / r for r in relative]
