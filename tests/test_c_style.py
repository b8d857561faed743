"""Every C file of firmware/ follows .clang-format (clang-format-19 --dry-run -Werror), except the generated
Unicode tables (engine/unicode_data.c, written by dte_build.unicode_gen)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from dte_build.paths import FIRMWARE_DIR

pytestmark = pytest.mark.slow   # the edit-test loop's fast tier leaves it out: `pytest -m "not slow"`

UNFORMATTED = {"engine/unicode_data.c"}
FORMATTED = [p for p in sorted(FIRMWARE_DIR.rglob("*.[ch]"))
             if p.relative_to(FIRMWARE_DIR).as_posix() not in UNFORMATTED]


def test_formatted_files_follow_clang_format() -> None:
    tool = shutil.which("clang-format-19")
    if tool is None:
        pytest.skip("clang-format-19 not installed (scripts/setup installs it)")
    proc = subprocess.run([tool, "--dry-run", "-Werror", *map(str, FORMATTED)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[:3000]
