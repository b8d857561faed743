"""A newcomer's first commands: the README's set-up and demo block, run verbatim from a fresh clone in a temporary
folder (the clone line points at this checkout). Slow: it creates a virtual environment and boots QEMU."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from dte_build.paths import REPO_ROOT
from helpers import offensive_words

README = REPO_ROOT / "README.md"


def _demo_block() -> list[str]:
    """The lines of the README's first ```sh block (under "Try it")."""
    text = README.read_text()
    block = re.search(r"## Try it.*?```sh\n(.*?)```", text, re.S)
    assert block, "README has no `Try it` sh block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_the_demo_block_starts_with_a_clone() -> None:
    lines = _demo_block()
    assert lines[0].startswith("git clone ") and "&& cd " in lines[0]
    assert any("dte run dte_boot.img" in line for line in lines)


@pytest.mark.qemu
@pytest.mark.slow
def test_readme_demo_from_a_fresh_clone(tmp_path) -> None:
    lines = _demo_block()
    clone = f"git clone --quiet {REPO_ROOT} dte " + lines[0][lines[0].index("&& cd "):]   # this checkout's HEAD
    script = "set -euo pipefail\n" + "\n".join([clone, *lines[1:]]) + "\n"
    env = {**os.environ, "DTE_BUILD_DIR": str(tmp_path / "build"), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("VIRTUAL_ENV", None)
    proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout.strip().splitlines()[-1]             # dte run's result: the generated text, last on stdout
    assert len(text.split()) >= 5, proc.stdout
    assert offensive_words(text) == [], text
    assert "dte run: ok" in proc.stderr and "tok/s" in proc.stderr
