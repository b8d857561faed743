"""The C files already brought to .clang-format stay there (clang-format-19 --dry-run -Werror). The set grows as
directories are formatted; engine/ and boot/ are the next pass (docs/design.md)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from dte_build.paths import FIRMWARE_DIR

FORMATTED = [*sorted((FIRMWARE_DIR / "lib").glob("*.[ch]")), FIRMWARE_DIR / "net" / "net_stack.c",
             *sorted((FIRMWARE_DIR / "net").glob("proto*.[ch]")),
             FIRMWARE_DIR / "engine" / "conversation.c", FIRMWARE_DIR / "engine" / "conversation.h",
             *sorted(p for p in (FIRMWARE_DIR / "drivers").glob("*.[ch]") if not p.name.startswith("thermal"))]


def test_formatted_files_follow_clang_format() -> None:
    tool = shutil.which("clang-format-19")
    if tool is None:
        pytest.skip("clang-format-19 not installed (scripts/setup installs it)")
    proc = subprocess.run([tool, "--dry-run", "-Werror", *map(str, FORMATTED)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[:3000]
