"""Attestation: the firmware's boot report (QEMU, with swtpm for the TPM) against `dte attest verify`, and
tampering with the weights partition or the EFI file detected and named. Expected hashes, the PCR value and the
digest are recomputed here with hashlib from the spec facts and docs/identity.md, not by dte_build.attest."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from dte_build.cli import main
from dte_build.image.esp import FatReader
from dte_build.paths import MODELS_DIR
from dte_build.qemu import run_image

MODEL = MODELS_DIR / "dte-tiny-q8_0.gguf"
ESP_OFFSET = 1024 * 1024
HAVE_SWTPM = shutil.which("swtpm") is not None


def _esp(image: Path, name: str) -> bytes:
    with open(image, "rb") as f:
        return FatReader(f, ESP_OFFSET).read(name)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not MODEL.is_file():
        pytest.skip(f"{MODEL.name} not present")
    tmp = tmp_path_factory.mktemp("attest")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DTE_BUILD_DIR", str(tmp / "build"))
        result = CliRunner().invoke(main, ["build", "--board", "qemu-q35", "--model", str(MODEL), "-n", "1",
                                           "-o", str(tmp / "boot.img")])
    assert result.exit_code == 0, result.output
    return tmp / "boot.img"


def _reference(image: Path, platform: str) -> dict[str, str]:
    """What the report must say, from the image's bytes and docs/identity.md."""
    manifest = json.loads(_esp(image, "DTE/MANIFEST.JSN"))
    efi = hashlib.sha256(_esp(image, "EFI/BOOT/BOOTX64.EFI")).hexdigest()
    weights, persona = manifest["model"]["sha256"], manifest["persona"]["sha256"]
    text = (f"dte-attest/1\nefi_sha256={efi}\nweights_sha256={weights}\npersona_sha256={persona}\n"
            f"platform={platform}\n")
    pcr = bytes(32)      # TPM 2.0 Part 1: PCRs reset to zeros; extend: new = H(old || digest)
    for measured in (persona, weights):
        pcr = hashlib.sha256(pcr + hashlib.sha256(bytes.fromhex(measured)).digest()).digest()
    return {"efi_sha256": efi, "weights_sha256": weights, "persona_sha256": persona,
            "digest": hashlib.sha256(text.encode()).hexdigest(), "pcr12": pcr.hex()}


def _synthetic_report(tmp: Path, image: Path) -> Path:
    fields = _reference(image, "cpuid:0x60fb1,cores:2,ram_mib:2000,tsc:12345")
    line = " ".join(f"{k}={fields[k]}" for k in ("efi_sha256", "weights_sha256", "persona_sha256"))
    report = tmp / "console.log"
    report.write_text("BdsDxe: loading Boot0002\r\n\x1b[0mdte: banner build=1\r\n"
                      f"dte: attest {line} platform=cpuid:0x60fb1,cores:2,ram_mib:2000,tsc:12345 "
                      f"pcr12={fields['pcr12']} digest={fields['digest']}\r\n")
    return report


def _verify(report: Path, image: Path) -> tuple[int, dict]:
    result = CliRunner().invoke(main, ["attest", "verify", str(report), "--image", str(image), "--json"])
    return result.exit_code, json.loads(result.stdout)


@pytest.mark.slow
def test_console_report_verifies_and_tampering_is_named(image: Path, tmp_path: Path) -> None:
    report = _synthetic_report(tmp_path, image)
    code, result = _verify(report, image)
    assert code == 0 and result["ok"], result
    assert {p["name"]: p["status"] for p in result["parts"]} == {
        "efi": "match", "efi_manifest": "match", "weights": "match", "weights_partition": "match",
        "persona": "match", "pcr12": "match", "digest": "match"}

    weights_tampered = tmp_path / "weights.img"
    shutil.copyfile(image, weights_tampered)
    data = json.loads(_esp(image, "DTE/MANIFEST.JSN"))
    with open(weights_tampered, "r+b") as f:
        f.seek(data["weights"]["lba"] * data["weights"]["sector_size"] + 5000)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))
    code, result = _verify(report, weights_tampered)
    assert code != 0 and result["differ"] == ["weights_partition"]

    efi_tampered = tmp_path / "efi.img"
    raw = bytearray(image.read_bytes())
    efi = _esp(image, "EFI/BOOT/BOOTX64.EFI")
    at = raw.find(efi[:4096])
    assert at > 0
    raw[at + 3000] ^= 0x01
    efi_tampered.write_bytes(bytes(raw))
    code, result = _verify(report, efi_tampered)
    assert code != 0 and result["differ"] == ["efi", "efi_manifest", "digest"]


@pytest.mark.slow
def test_report_without_attestation_is_refused(image: Path, tmp_path: Path) -> None:
    report = tmp_path / "empty.log"
    report.write_text("dte: banner build=1\n")
    result = CliRunner().invoke(main, ["attest", "verify", str(report), "--image", str(image)])
    assert result.exit_code != 0 and "no `dte: attest` line" in result.output


@pytest.mark.qemu
@pytest.mark.skipif(not HAVE_SWTPM, reason="swtpm not installed")
def test_boot_attestation_and_tpm_pcr_match_the_image(image: Path, tmp_path: Path) -> None:
    result = run_image(image, tpm=True, timeout=240)
    assert result.ok, result.console[-3000:]
    att = result.status["attest"]
    want = _reference(image, att["platform"])
    for key in ("efi_sha256", "weights_sha256", "persona_sha256", "digest", "pcr12"):
        assert att[key] == want[key], key
    assert result.status["tpm"]["sha256"] == want["pcr12"]
    assert result.status["attest_weights"] == {"sha256": want["weights_sha256"], "match": "1"}
    assert result.status["persona"]["sha256"] == want["persona_sha256"]
    report = tmp_path / "run.json"
    report.write_text(json.dumps(result.to_dict()))
    code, verified = _verify(report, image)
    assert code == 0 and verified["ok"], verified


@pytest.mark.qemu
def test_boot_without_tpm_says_so_and_carries_on(image: Path) -> None:
    result = run_image(image, timeout=240)
    assert result.ok, result.console[-3000:]
    assert result.status["tpm"]["present"] == "0"
    assert result.status["attest"]["pcr12"] == "none"


@pytest.mark.skipif(not HAVE_SWTPM, reason="swtpm not installed")
def test_swtpm_is_stopped_when_the_run_ends_even_on_an_error(tmp_path: Path) -> None:
    import socket

    from dte_build.tpm_sim import swtpm_socket

    def connect(path: Path) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(str(path))

    (tmp_path / "a").mkdir()
    with swtpm_socket(tmp_path / "a") as sock:
        assert sock is not None
        connect(sock)                       # swtpm is listening
    with pytest.raises((ConnectionRefusedError, FileNotFoundError)):
        connect(sock)
    (tmp_path / "b").mkdir()
    with pytest.raises(RuntimeError, match="boom"):
        with swtpm_socket(tmp_path / "b") as sock_b:
            raise RuntimeError("boom")
    with pytest.raises((ConnectionRefusedError, FileNotFoundError)):
        connect(sock_b)
