"""Issue 15 item 10: two `dte build` at once in one checkout (one build directory) both succeed, and each image is
byte-identical to the same build run alone (the firmware step is locked per board, its output content-addressed,
every temporary file per invocation)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dte_build.board import load_board
from dte_build.image.builder import default_model

pytestmark = pytest.mark.skipif(default_model(load_board("qemu-q35")) is None, reason="needs models/ (in git)")


def _build(build_dir: Path, out: Path, prompt: str) -> subprocess.Popen[str]:
    env = {**os.environ, "DTE_BUILD_DIR": str(build_dir), "SOURCE_DATE_EPOCH": "1700000000"}
    return subprocess.Popen([sys.executable, "-m", "dte_build.cli", "build", "--board", "qemu-q35", "--prompt",
                             prompt, "-o", str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


@pytest.mark.slow
def test_two_builds_at_once(tmp_path: Path) -> None:
    shared = tmp_path / "build"
    runs = {name: _build(shared, tmp_path / f"{name}.img", prompt) for name, prompt in
            (("a", "Once upon a time"), ("b", "The sea"))}
    for name, proc in runs.items():
        out, _ = proc.communicate(timeout=900)
        assert proc.returncode == 0, f"build {name}: {out[-2000:]}"
    for name, prompt in (("a", "Once upon a time"), ("b", "The sea")):  # alone, in a fresh build directory
        proc = _build(tmp_path / f"alone-{name}", tmp_path / f"alone-{name}.img", prompt)
        out, _ = proc.communicate(timeout=900)
        assert proc.returncode == 0, out[-2000:]
        assert (tmp_path / f"{name}.img").read_bytes() == (tmp_path / f"alone-{name}.img").read_bytes(), name
    assert (tmp_path / "a.img").read_bytes() != (tmp_path / "b.img").read_bytes()
    leftovers = [p.name for p in tmp_path.iterdir() if ".tmp" in p.name]
    leftovers += [p.name for p in shared.rglob("*.tmp*")]
    assert leftovers == []
