"""Persona files, the persona hash compiled into the firmware and written to the manifest, and Secure Boot
signing (sbsign/sbverify from sbsigntool are the independent checkers; hashlib is the reference SHA-256)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from _efiprobe import build_tiny_efi
from click.testing import CliRunner

from dte_build.board import load_board
from dte_build.cli import main
from dte_build.errors import DteError
from dte_build.image.esp import FatReader
from dte_build.persona import DEFAULT_PERSONA, load_persona, parse_persona

SNAKEOIL = Path("/usr/share/ovmf/PkKek-1-snakeoil")
HAVE_SBSIGN = shutil.which("sbsign") is not None and shutil.which("sbverify") is not None
HAVE_SNAKEOIL = SNAKEOIL.with_suffix(".key").is_file() and SNAKEOIL.with_suffix(".pem").is_file()
needs_sbsign = pytest.mark.skipif(not (HAVE_SBSIGN and HAVE_SNAKEOIL),
                                  reason="sbsigntool or ovmf's snakeoil key (/usr/share/ovmf) not installed")
ESP_OFFSET = 1024 * 1024


def test_default_persona_parses_and_hashes_its_bytes() -> None:
    persona = load_persona(DEFAULT_PERSONA)
    assert persona.name == "Deep Tree Echo"
    assert persona.sha256 == hashlib.sha256(DEFAULT_PERSONA.read_bytes()).hexdigest()
    assert 0 < persona.strength <= 16
    assert "echo" in persona.description.lower()


def test_persona_header_system_prompt_and_errors(tmp_path: Path) -> None:
    text = b"# comment\nname: Echo Test\nstrength: 1.25\nsystem: You are Echo.\nsystem: Be brief.\n\nBody text.\n"
    persona = parse_persona(text, tmp_path / "p.txt")
    assert (persona.name, persona.strength, persona.system) == ("Echo Test", 1.25, "You are Echo.\nBe brief.")
    assert persona.description == "Body text."
    with pytest.raises(DteError, match="no 'name:'"):
        parse_persona(b"strength: 1\n\nbody\n", tmp_path / "p.txt")
    with pytest.raises(DteError, match="line 2"):
        parse_persona(b"name: x\nvoice: loud\n\nbody\n", tmp_path / "p.txt")
    with pytest.raises(DteError, match="between 0 and"):
        parse_persona(b"name: x\nstrength: -1\n", tmp_path / "p.txt")


def test_boards_name_a_persona_file() -> None:
    for name in ("qemu-q35", "epyc9654"):
        board = load_board(name)
        assert board.persona_file is not None and board.persona_file.is_file()


def _build(tmp: Path, out: str, *extra: str) -> dict:
    result = CliRunner().invoke(main, ["build", "--board", "qemu-q35", "--no-model", "-o", str(tmp / out), "--json",
                                       *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _esp_file(image: Path, name: str) -> bytes:
    with open(image, "rb") as f:
        return FatReader(f, ESP_OFFSET).read(name)


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    tmp = tmp_path_factory.mktemp("persona")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DTE_BUILD_DIR", str(tmp / "build"))
        first = _build(tmp, "a.img")
        header_a = (tmp / "build" / "qemu-q35" / "dte_config.h").read_text()
        other = tmp / "persona.txt"
        data = bytearray(DEFAULT_PERSONA.read_bytes())
        data[-2] ^= 0x01                                   # one byte of the description changes
        other.write_bytes(bytes(data))
        second = _build(tmp, "b.img", "--persona", str(other), "--identity-strength", "0")
    first["header"] = header_a
    return tmp, first, second


@pytest.mark.slow
def test_persona_hash_is_compiled_in_and_in_the_manifest(builds: tuple[Path, dict, dict]) -> None:
    tmp, first, _ = builds
    want = hashlib.sha256(DEFAULT_PERSONA.read_bytes()).hexdigest()
    assert f'#define DTE_PERSONA_SHA256 "{want}"' in first["header"]
    array = re.search(r"#define DTE_PERSONA_SHA256_BYTES \{(.*)\}", first["header"]).group(1)
    assert bytes(int(b, 16) for b in array.split(",")).hex() == want
    assert first["persona"]["sha256"] == want
    manifest = json.loads(_esp_file(tmp / "a.img", "DTE/MANIFEST.JSN"))
    assert manifest["persona"] == {"name": "Deep Tree Echo", "sha256": want,
                                   "strength": load_persona(DEFAULT_PERSONA).strength}


@pytest.mark.slow
def test_one_persona_byte_changes_the_image(builds: tuple[Path, dict, dict]) -> None:
    tmp, first, second = builds
    assert second["persona"]["sha256"] == hashlib.sha256((tmp / "persona.txt").read_bytes()).hexdigest()
    assert second["persona"]["sha256"] != first["persona"]["sha256"]
    assert second["persona"]["strength"] == 0.0
    assert second["build_id"] != first["build_id"]
    assert _esp_file(tmp / "a.img", "EFI/BOOT/BOOTX64.EFI") != _esp_file(tmp / "b.img", "EFI/BOOT/BOOTX64.EFI")
    assert (tmp / "a.img").read_bytes() != (tmp / "b.img").read_bytes()


def test_system_prompt_is_for_chat_turns_only(tmp_path: Path) -> None:
    from dte_build.toolchain import FirmwareOptions, config_header

    options = FirmwareOptions(prompt="Hello", system_prompt="You are Echo.", persona_sha256="ab" * 32)
    header = config_header(load_board("qemu-q35"), options, "0" * 16)
    assert '#define DTE_PROMPT "Hello"' in header   # a plain completion prompt goes as it is
    assert '#define DTE_SYSTEM_PROMPT "You are Echo."' in header


def _other_key(tmp: Path) -> tuple[Path, Path]:
    key, cert = tmp / "other.key", tmp / "other.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=dte test other key",
                    "-days", "2", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return key, cert


@needs_sbsign
@pytest.mark.slow
def test_signed_build_verifies_with_sbverify_and_only_with_its_cert(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DTE_BUILD_DIR", str(tmp_path / "build"))
    monkeypatch.setenv("DTE_SIGN_KEY_PASS", "snakeoil")
    out = _build(tmp_path, "s.img", "--sign-key", str(SNAKEOIL.with_suffix(".key")),
                 "--sign-cert", str(SNAKEOIL.with_suffix(".pem")))
    efi = tmp_path / "esp.efi"
    efi.write_bytes(_esp_file(tmp_path / "s.img", "EFI/BOOT/BOOTX64.EFI"))
    ok = subprocess.run(["sbverify", "--cert", str(SNAKEOIL.with_suffix(".pem")), str(efi)], capture_output=True)
    assert ok.returncode == 0, ok.stderr
    _, other_cert = _other_key(tmp_path)
    bad = subprocess.run(["sbverify", "--cert", str(other_cert), str(efi)], capture_output=True)
    assert bad.returncode != 0
    assert out["signature"]["signer_serial"] == subprocess.run(
        ["openssl", "x509", "-in", str(SNAKEOIL.with_suffix(".pem")), "-noout", "-serial"], capture_output=True,
        text=True, check=True).stdout.strip().split("=")[1].lower()
    manifest = json.loads(_esp_file(tmp_path / "s.img", "DTE/MANIFEST.JSN"))
    assert manifest["firmware"]["sha256"] == hashlib.sha256(efi.read_bytes()).hexdigest()
    shown = CliRunner().invoke(main, ["inspect", str(tmp_path / "s.img"), "--json"])
    assert json.loads(shown.stdout)["efi"]["signature"]["verification"] == "OK"


@needs_sbsign
@pytest.mark.skipif(shutil.which("faketime") is None, reason="faketime not installed (signing is then not "
                                                              "reproducible, by design of sbsign)")
def test_signing_is_reproducible_with_faketime(tmp_path: Path) -> None:
    from dte_build.signing import sign_efi

    key, cert = _other_key(tmp_path)
    efi = build_tiny_efi(tmp_path)
    a = sign_efi(efi, key, cert, tmp_path / "a.efi").read_bytes()
    b = sign_efi(efi, key, cert, tmp_path / "b.efi").read_bytes()
    assert a == b and a != efi.read_bytes()
