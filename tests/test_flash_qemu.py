"""A flashed target boots in QEMU exactly like the image it came from (TCG, hard timeout)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from dte_build.cli import main

BOOT_TIMEOUT = 180.0

try:  # `dte build` and `dte run` come from other parts; skip cleanly where they are missing
    from dte_build.qemu import run_image
    from dte_build.toolchain import build_firmware  # noqa: F401
except ImportError as exc:  # pragma: no cover
    run_image = None
    MISSING = str(exc)
else:
    MISSING = ""


@pytest.mark.qemu
@pytest.mark.skipif(bool(MISSING), reason=f"dte build / dte run not available: {MISSING}")
def test_flashed_file_boots_like_the_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DTE_BUILD_DIR", str(tmp_path / "build"))
    image = tmp_path / "boot.img"
    built = CliRunner().invoke(main, ["build", "--board", "qemu-q35", "--no-model", "-o", str(image), "--json"])
    assert built.exit_code == 0, built.output
    build_id = json.loads(built.stdout)["build_id"]
    # A target that held something else first: every byte of the image range must be replaced.
    target = tmp_path / "disk.img"
    target.write_bytes(b"\xa5" * image.stat().st_size)
    flashed = CliRunner().invoke(main, ["flash", "--to-file", "-y", "--json", str(image), str(target)])
    assert flashed.exit_code == 0, flashed.output
    assert json.loads(flashed.stdout)["verified"] is True
    assert target.read_bytes() == image.read_bytes()
    assert run_image is not None
    result = run_image(target, timeout=BOOT_TIMEOUT)
    # It boots through ExitBootServices; with no model in the image the firmware then refuses (failure exit).
    assert result.status["banner"]["build"] == build_id and "ready" in result.status, result.console[-2000:]
    assert result.status["weights"]["status"] == "missing" and result.status["exit"]["status"] == "fail"
    # --board streams the same plan without an image file: to a fresh file it gives the same bytes.
    direct = tmp_path / "direct.img"
    streamed = CliRunner().invoke(main, ["flash", "--to-file", "-y", "--board", "qemu-q35", "--no-model", str(direct)])
    assert streamed.exit_code == 0, streamed.output
    assert direct.read_bytes() == image.read_bytes()
    assert CliRunner().invoke(main, ["verify", "--board", "qemu-q35", "--no-model", str(direct)]).exit_code == 0
