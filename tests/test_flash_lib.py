"""The flash tests' image helper itself: its GPT passes sgdisk's check and its gaps stay holes."""

from __future__ import annotations

import subprocess
from pathlib import Path

from flash_helpers import MIB, allocated, make_image, needs_tools


@needs_tools
def test_helper_image_is_valid_gpt(tmp_path: Path) -> None:
    img = tmp_path / "a.img"
    make_image(img)
    out = subprocess.run(["sgdisk", "-v", str(img)], capture_output=True, text=True)
    assert "No problems found" in out.stdout
    assert allocated(img) < 20 * MIB  # sparse: far less than the 40 MiB size
