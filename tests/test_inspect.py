"""`dte inspect` against independent readers: sgdisk, mtools, llvm-objdump/hashlib for the EFI, gguf-py."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import gguf
import pytest
from click.testing import CliRunner
from model_factory import sized_model

from dte_build.board import load_board
from dte_build.cli import main
from dte_build.image.builder import build_image
from dte_build.inspect import describe_efi, inspect_image

pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in ("sgdisk", "mdir", "clang-19", "lld-link-19", "llvm-objdump-19")),
    reason="needs gdisk, mtools, clang-19/lld-19/llvm-19 (scripts/setup installs them)")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """An image holding a real (tiny) PE32+ EFI application from clang/lld and a GGUF from gguf-py."""
    d = tmp_path_factory.mktemp("inspect")
    (d / "m.c").write_text("unsigned long long efi_main(void *h, void *t) { (void)h; (void)t; return 0; }\n"
                           "const char dte_note[] = \"dte inspect test\";\n")
    subprocess.run(["clang-19", "-target", "x86_64-unknown-windows", "-ffreestanding", "-fno-stack-protector",
                    "-mno-red-zone", "-O2", "-c", str(d / "m.c"), "-o", str(d / "m.obj")], check=True)
    subprocess.run(["lld-link-19", "/subsystem:efi_application", "/entry:efi_main", "/nodefaultlib",
                    f"/out:{d / 'BOOTX64.EFI'}", str(d / "m.obj")], check=True, capture_output=True)
    model = sized_model(d / "tiny.gguf")
    image = build_image(load_board("qemu-q35"), d / "BOOTX64.EFI", d / "dte.img", model_path=model,
                        build_id="00000000deadbeef").path
    return image, d / "BOOTX64.EFI", model


def test_partitions_match_sgdisk(built: tuple[Path, Path, Path]) -> None:
    image, _, _ = built
    report = inspect_image(image)
    listing = subprocess.run(["sgdisk", "-p", str(image)], capture_output=True, text=True, check=True).stdout
    rows = re.findall(r"^\s+(\d+)\s+(\d+)\s+(\d+)\s+\S+ \S+\s+[0-9A-F]{4}\s+(\S.*)$", listing, re.M)
    assert [(str(p["number"]), str(p["first_lba"]), str(p["last_lba"]), p["name"])
            for p in report["partitions"]] == [tuple(r) for r in rows]
    assert report["problems"] == []


def test_esp_files_match_mtools(built: tuple[Path, Path, Path]) -> None:
    image, _, _ = built
    report = inspect_image(image)
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    mdir = subprocess.run(["mdir", "-/", "-b", "-i", f"{image}@@1M", "::/"], env=env, capture_output=True,
                          text=True, check=True).stdout.split()
    assert sorted("::/" + f["path"] + ("/" if f["dir"] else "") for f in report["esp"]["files"]) == sorted(mdir)


def test_efi_description(built: tuple[Path, Path, Path]) -> None:
    image, efi, _ = built
    data = efi.read_bytes()
    report = inspect_image(image)["efi"]
    assert report["sha256"] == hashlib.sha256(data).hexdigest() and report["size"] == len(data)
    assert (report["format"], report["machine"], report["subsystem"]) == ("PE32+", "AMD64", "EFI_APPLICATION")
    assert report["signed"] is False
    headers = subprocess.run(["llvm-objdump-19", "-h", str(efi)], capture_output=True, text=True,
                             check=True).stdout
    names = re.findall(r"^\s*\d+\s+(\.\S+)\s+[0-9a-f]+", headers, re.M)
    assert [s["name"] for s in report["sections"]] == names
    assert describe_efi(b"not a pe")["error"] == "not a PE/COFF image"


def test_model_summary_matches_gguf_reader(built: tuple[Path, Path, Path]) -> None:
    image, _, model = built
    summary = inspect_image(image)["model"]
    ref = gguf.GGUFReader(model)
    assert summary["architecture"] == "llama" and summary["offset"] == 131072 * 512
    assert summary["tensor_count"] == len(ref.tensors)
    ref_types: dict[str, int] = {}
    for t in ref.tensors:
        ref_types[t.tensor_type.name] = ref_types.get(t.tensor_type.name, 0) + 1
    assert summary["types"] == ref_types
    assert summary["tokenizer"] == ref.fields["tokenizer.ggml.model"].contents() == "llama"
    assert summary["n_vocab"] == len(ref.fields["tokenizer.ggml.tokens"].data)
    assert summary["chat_template"] is ("tokenizer.chat_template" in ref.fields) is False
    assert summary["runs_on_dte"] == "yes"


def test_cli_json_and_problem_exit(built: tuple[Path, Path, Path], tmp_path: Path) -> None:
    image, efi, _ = built
    runner = CliRunner()
    ok = runner.invoke(main, ["inspect", str(image), "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["manifest"]["build_id"] == "00000000deadbeef"
    assert runner.invoke(main, ["inspect", str(image)]).exit_code == 0
    # Damage the firmware inside the ESP: its hash no longer matches the manifest's.
    raw = bytearray(image.read_bytes())
    data = efi.read_bytes()
    at = raw.find(b"dte inspect test")
    assert at > 0 and raw.find(data) > 0
    raw[at] ^= 0x20
    bad = tmp_path / "bad.img"
    bad.write_bytes(bytes(raw))
    assert "BOOTX64.EFI's SHA-256 differs" in " ".join(inspect_image(bad)["problems"])
    result = runner.invoke(main, ["inspect", str(bad)])
    assert result.exit_code != 0
    junk = tmp_path / "junk.img"
    junk.write_bytes(bytes(1 << 20))
    result = runner.invoke(main, ["inspect", str(junk)])
    assert result.exit_code != 0 and "protective MBR" in result.output


def test_image_without_model(built: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, efi, _ = built
    image = build_image(load_board("qemu-q35"), efi, tmp_path / "bare.img", no_model=True,
                        build_id="00000000deadbeef").path
    report = inspect_image(image)
    assert report["model"] is None and report["manifest"]["model"] is None
    assert [p["number"] for p in report["partitions"]] == [1]
    assert report["weights_manifest"]["model_size"] == 0 and report["problems"] == []
