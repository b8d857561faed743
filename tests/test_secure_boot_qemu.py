"""Secure Boot under QEMU: OVMF's secure-boot build (SMM) with Debian's snakeoil key enrolled as PK/KEK/db starts
an image signed with that key and refuses an unsigned one or one signed by another key. The judge is OVMF itself:
our banner on the console (started) or BdsDxe's "Access Denied" (refused)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from dte_build.cli import main
from dte_build.qemu import OVMF_SECURE_PAIRS, SECURE_BOOT_REFUSAL, run_image

SNAKEOIL = Path("/usr/share/ovmf/PkKek-1-snakeoil")
HAVE_ALL = (shutil.which("qemu-system-x86_64") is not None and shutil.which("sbsign") is not None
            and all(p.is_file() for pair in OVMF_SECURE_PAIRS for p in pair)
            and SNAKEOIL.with_suffix(".key").is_file())
pytestmark = [pytest.mark.qemu, pytest.mark.skipif(not HAVE_ALL, reason="needs qemu-system-x86, sbsigntool and "
                                                                       "ovmf's secure-boot files + snakeoil key")]
TIMEOUT = 120.0


def _stop(line: str) -> bool:
    return line.startswith("dte: banner") or SECURE_BOOT_REFUSAL in line


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("sb")
    key, cert = tmp / "other.key", tmp / "other.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=not enrolled",
                    "-days", "2", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    signers = {"snakeoil": ["--sign-key", str(SNAKEOIL.with_suffix(".key")),
                            "--sign-cert", str(SNAKEOIL.with_suffix(".pem"))],
               "unsigned": [], "other": ["--sign-key", str(key), "--sign-cert", str(cert)]}
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DTE_BUILD_DIR", str(tmp / "build"))
        mp.setenv("DTE_SIGN_KEY_PASS", "snakeoil")
        for name, args in signers.items():
            out[name] = tmp / f"{name}.img"
            result = CliRunner().invoke(main, ["build", "--board", "qemu-q35", "--no-model", "-o", str(out[name]),
                                               *args])
            assert result.exit_code == 0, result.output
    return out


def test_snakeoil_signed_image_boots_under_secure_boot(images: dict[str, Path]) -> None:
    result = run_image(images["snakeoil"], secure_boot=True, timeout=TIMEOUT, stop_when=_stop)
    assert not result.timed_out
    assert "banner" in result.status, result.console[-2000:]
    assert SECURE_BOOT_REFUSAL not in result.console


@pytest.mark.parametrize("which", ["unsigned", "other"])
def test_unsigned_or_foreign_signed_image_is_refused(images: dict[str, Path], which: str) -> None:
    result = run_image(images[which], secure_boot=True, timeout=TIMEOUT, stop_when=_stop)
    assert not result.timed_out
    assert "banner" not in result.status
    assert any(SECURE_BOOT_REFUSAL in line and "NVMe" in line for line in result.console.splitlines()), \
        result.console[-2000:]


def test_unsigned_image_still_boots_without_secure_boot(images: dict[str, Path]) -> None:
    result = run_image(images["unsigned"], timeout=TIMEOUT, stop_when=_stop)
    assert "banner" in result.status, result.console[-2000:]
