"""The whole identity chain under QEMU: an image signed with the snakeoil key boots under Secure Boot with a TPM,
its identity stage steers the firmware's tokens exactly as the hosted engine's (`dte generate --persona
--identity-strength`), its attestation verifies against the image, and the token protocol's ATTEST answer carries
the same report bound to the client's nonce. Oracles: the hosted engine, hashlib, `dte attest verify`."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from dte_build import protocol as p
from dte_build.cli import main
from dte_build.client import Client
from dte_build.netboot import NetAppliance
from dte_build.paths import MODELS_DIR
from dte_build.persona import DEFAULT_PERSONA
from dte_build.qemu import OVMF_SECURE_PAIRS, run_image

MODEL = MODELS_DIR / "dte-tiny-q8_0.gguf"
SNAKEOIL = Path("/usr/share/ovmf/PkKek-1-snakeoil")
PROMPT = "Hello. I am Deep Tree Echo,"
STRENGTH = "6"
KEY = bytes(range(32))
HAVE_ALL = (shutil.which("qemu-system-x86_64") is not None and shutil.which("sbsign") is not None
            and shutil.which("swtpm") is not None and all(f.is_file() for pair in OVMF_SECURE_PAIRS for f in pair)
            and SNAKEOIL.with_suffix(".key").is_file() and MODEL.is_file())
pytestmark = [pytest.mark.qemu, pytest.mark.skipif(not HAVE_ALL, reason="needs qemu, ovmf secure-boot files, "
                                                                       "sbsigntool, swtpm and the dte-tiny model")]


def _hosted(*extra: str) -> list[int]:
    result = CliRunner().invoke(main, ["generate", "-m", str(MODEL), "-p", PROMPT, "-n", "6", "--temp", "0", "--json",
                                       *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["ids"]


def _build(tmp: Path, *extra: str) -> Path:
    out = tmp / "boot.img"
    env = {"DTE_BUILD_DIR": str(tmp / "build"), "DTE_SIGN_KEY_PASS": "snakeoil"}
    result = CliRunner(env=env).invoke(main, ["build", "--board", "qemu-q35", "--model", str(MODEL), "-n", "6",
                                              "--temp", "0", "--prompt", PROMPT, "--identity-strength", STRENGTH,
                                              "-o", str(out), *extra])
    assert result.exit_code == 0, result.output
    return out


def test_signed_image_under_secure_boot_and_tpm_generates_with_identity_and_attests(tmp_path: Path) -> None:
    image = _build(tmp_path, "--sign-key", str(SNAKEOIL.with_suffix(".key")),
                   "--sign-cert", str(SNAKEOIL.with_suffix(".pem")))
    result = run_image(image, secure_boot=True, tpm=True, timeout=300)
    assert result.ok, result.console[-3000:]
    with_identity = _hosted("--persona", str(DEFAULT_PERSONA), "--identity-strength", STRENGTH)
    assert _ids(result) == with_identity
    assert with_identity != _hosted()        # the stage changes the greedy tokens for this prompt
    assert result.status["persona"]["strength"] == f"{float(STRENGTH):.3f}"
    report = tmp_path / "run.json"
    report.write_text(json.dumps(result.to_dict()))
    verified = CliRunner().invoke(main, ["attest", "verify", str(report), "--image", str(image), "--json"])
    assert verified.exit_code == 0, verified.output
    parts = {part["name"]: part["status"] for part in json.loads(verified.stdout)["parts"]}
    assert parts["pcr12"] == "match" and parts["digest"] == "match" and parts["efi"] == "match"


def _ids(result: object) -> list[int]:
    return [int(i) for i in result.status["tokens"]["ids"].split(",") if i]   # type: ignore[attr-defined]


def test_protocol_attest_answer_is_the_boot_report_bound_to_the_nonce(tmp_path: Path) -> None:
    key_file = p.write_key(tmp_path / "appliance.key", KEY)
    image = _build(tmp_path, "--net", "--key", str(key_file))
    nonce = os.urandom(32)
    with NetAppliance(image, timeout=400) as app:
        app.wait_ready(240)
        with Client(app.host, app.port, KEY) as client:
            blob = client.attest(nonce)
        console = app.console
    fields = dict(line.split("=", 1) for line in blob.decode().splitlines()[1:])
    assert blob.decode().startswith("dte-attest/1\n")
    line = next(text for text in console.splitlines() if text.startswith("dte: attest "))
    for key in ("efi_sha256", "weights_sha256", "persona_sha256", "platform", "digest", "pcr12"):
        assert f" {key}={fields[key]}" in line, key
    canonical = blob[:blob.index(b"digest=")]
    assert hashlib.sha256(canonical).hexdigest() == fields["digest"]
    assert fields["nonce_sha256"] == hashlib.sha256(bytes.fromhex(fields["digest"]) + nonce).hexdigest()
