"""Issue 15 items 5-6: corrupted images are refused or reported as corrupt (never a traceback, never "fine"),
a drive larger than its image inspects clean, and `dte verify` names another image as another image.

Corruptions are made with valid CRCs where the field has one (the GPT header and entry CRC-32s are recomputed
with zlib), so only the field checks can catch them. The images are made by `dte build`'s library, checked clean
by sgdisk (an independent GPT reader) first.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner
from model_factory import sized_model

from dte_build.board import load_board
from dte_build.cli import main
from dte_build.errors import DteError
from dte_build.flash import image_source, verify
from dte_build.image.builder import build_image
from dte_build.inspect import inspect_image

MIB = 1 << 20
SS = 512
ESP = MIB  # the ESP's first byte
MTOOLS_ENV = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("corrupt")
    efi = d / "BOOTX64.EFI"
    efi.write_bytes(b"MZ" + bytes(range(256)) * 300)
    model = sized_model(d / "m.gguf", 1_200_000)
    image = build_image(load_board("qemu-q35"), efi, d / "good.img", model_path=model,
                        build_id="0123456789abcdef").path
    out = subprocess.run(["sgdisk", "-v", str(image)], capture_output=True, text=True, check=True).stdout
    assert "No problems found" in out
    assert inspect_image(image)["problems"] == []
    return image


def _headers(raw: bytearray) -> tuple[int, int]:
    """Byte offsets of the primary and backup GPT headers."""
    backup = struct.unpack_from("<Q", raw, SS + 32)[0]
    return SS, backup * SS


def _reseal(raw: bytearray) -> None:
    """Recompute both entry-array CRCs and both header CRCs, so only field checks can object."""
    for at in _headers(raw):
        array = struct.unpack_from("<Q", raw, at + 72)[0] * SS
        if array + 128 * 128 <= len(raw):
            struct.pack_into("<I", raw, at + 88, zlib.crc32(raw[array:array + 128 * 128]))
        struct.pack_into("<I", raw, at + 16, 0)
        struct.pack_into("<I", raw, at + 16, zlib.crc32(raw[at:at + 92]))


def _header_field(offset: int, fmt: str, value: int):  # type: ignore[no-untyped-def]
    def mutate(raw: bytearray) -> None:
        for at in _headers(raw):
            struct.pack_into(fmt, raw, at + offset, value)
        _reseal(raw)
    return mutate


def _entry(index: int, offset: int, value: int):  # type: ignore[no-untyped-def]
    """Set a u64 field of GPT entry `index` in both arrays."""
    def mutate(raw: bytearray) -> None:
        for at in _headers(raw):
            array = struct.unpack_from("<Q", raw, at + 72)[0] * SS
            struct.pack_into("<Q", raw, array + index * 128 + offset, value)
        _reseal(raw)
    return mutate


def _duplicate_entry(raw: bytearray) -> None:
    for at in _headers(raw):
        array = struct.unpack_from("<Q", raw, at + 72)[0] * SS
        raw[array + 2 * 128:array + 3 * 128] = raw[array:array + 128]
    _reseal(raw)


GPT_CASES = {
    "entry first LBA 2^63": _entry(1, 32, 1 << 63),
    "entry last LBA 2^64-1": _entry(1, 40, (1 << 64) - 1),
    "entry last LBA past the disk": _entry(1, 40, 10 * 1024 * 1024),
    "entry last LBA before its first": _entry(0, 40, 2047),
    "duplicated entry": _duplicate_entry,
    "entry array LBA 2^63": _header_field(72, "<Q", 1 << 63),
    "first usable LBA 0": _header_field(40, "<Q", 0),
    "last usable LBA 2^64-1": _header_field(48, "<Q", (1 << 64) - 1),
    "usable range reversed": _header_field(40, "<Q", 1 << 40),
}


@pytest.mark.parametrize("case", sorted(GPT_CASES))
def test_corrupt_gpt_refused_in_one_line(good: Path, tmp_path: Path, case: str) -> None:
    raw = bytearray(good.read_bytes())
    GPT_CASES[case](raw)
    bad = tmp_path / "bad.img"
    bad.write_bytes(bytes(raw))
    with pytest.raises(DteError, match="corrupt|past the disk|not a range|disagree") as exc:
        inspect_image(bad)
    assert "\n" not in str(exc.value)
    result = CliRunner().invoke(main, ["inspect", str(bad)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    with pytest.raises(DteError):  # `dte flash` / `dte verify` read the same GPT
        image_source(bad)


def _boot_field(offset: int, fmt: str, value: int):  # type: ignore[no-untyped-def]
    def mutate(raw: bytearray) -> None:
        struct.pack_into(fmt, raw, ESP + offset, value)
    return mutate


FAT_CASES = {
    "total sectors 0": _boot_field(32, "<I", 0),
    "total sectors 1": _boot_field(32, "<I", 1),
    "total sectors 2^32-1": _boot_field(32, "<I", 0xFFFFFFFF),
    "FAT size 2^31": _boot_field(36, "<I", 1 << 31),
    "root cluster 2^28": _boot_field(44, "<I", 1 << 28),
    "sectors per cluster 3": _boot_field(13, "<B", 3),
}


@pytest.mark.parametrize("case", sorted(FAT_CASES))
def test_corrupt_fat_reported(good: Path, tmp_path: Path, case: str) -> None:
    raw = bytearray(good.read_bytes())
    FAT_CASES[case](raw)
    bad = tmp_path / "bad.img"
    bad.write_bytes(bytes(raw))
    report = inspect_image(bad)
    assert "error" in report["esp"] and report["problems"], report["esp"]
    result = CliRunner().invoke(main, ["inspect", str(bad)])
    assert result.exit_code == 1 and "Traceback" not in result.output


def _replace_in_esp(image: Path, name: str, data: bytes, tmp_path: Path) -> None:
    src = tmp_path / "file"
    src.write_bytes(data)
    subprocess.run(["mcopy", "-o", "-i", f"{image}@@{ESP}", str(src), f"::/{name}"], env=MTOOLS_ENV, check=True)


def _manifest(image: Path, tmp_path: Path) -> dict:  # type: ignore[type-arg]
    out = tmp_path / "m.json"
    subprocess.run(["mcopy", "-o", "-i", f"{image}@@{ESP}", "::/DTE/MANIFEST.JSN", str(out)], env=MTOOLS_ENV,
                   check=True)
    return json.loads(out.read_text())


MANIFEST_CASES = {
    "model size a string": lambda m: m["model"].update(size="1234"),
    "crc32c list a dict": lambda m: m["model"].update(crc32c={"a": 1}),
    "weights lba negative": lambda m: m["weights"].update(lba=-5),
    "firmware a list": lambda m: m.update(firmware=[1, 2]),
    "board missing": lambda m: m.pop("board"),
    "model a number": lambda m: m.update(model=7),
    "chunk size zero": lambda m: m["model"].update(chunk_size=0),
    "persona strength a string": lambda m: m.update(persona={"name": "x", "sha256": "0" * 64, "strength": "x"}),
}


@pytest.mark.parametrize("case", sorted(MANIFEST_CASES))
def test_manifest_of_wrong_types_reported(good: Path, tmp_path: Path, case: str) -> None:
    image = tmp_path / "img"
    image.write_bytes(good.read_bytes())
    manifest = _manifest(image, tmp_path)
    MANIFEST_CASES[case](manifest)
    _replace_in_esp(image, "DTE/MANIFEST.JSN", json.dumps(manifest).encode(), tmp_path)
    report = inspect_image(image)
    assert "error" in report["manifest"] and "MANIFEST.JSN" in report["manifest"]["error"]
    assert "no readable manifest" in report["problems"]
    result = CliRunner().invoke(main, ["inspect", str(image)])
    assert result.exit_code == 1 and "Traceback" not in result.output


def test_damaged_weights_man_crc_reported(good: Path, tmp_path: Path) -> None:
    image = tmp_path / "img"
    image.write_bytes(good.read_bytes())
    out = tmp_path / "w"
    subprocess.run(["mcopy", "-o", "-i", f"{image}@@{ESP}", "::/DTE/WEIGHTS.MAN", str(out)], env=MTOOLS_ENV,
                   check=True)
    wman = bytearray(out.read_bytes())
    wman[-1] ^= 0x40  # the last chunk's CRC32C
    _replace_in_esp(image, "DTE/WEIGHTS.MAN", bytes(wman), tmp_path)
    problems = inspect_image(image)["problems"]
    assert any("CRC32C of chunk 1" in p for p in problems), problems


def test_larger_drive_inspects_clean(good: Path, tmp_path: Path) -> None:
    """docs/flash.md: a drive larger than the image keeps the backup GPT at the image's end; that is fine."""
    drive = tmp_path / "drive.img"
    with open(drive, "wb") as f:
        f.write(good.read_bytes())
        f.truncate(good.stat().st_size + 64 * MIB)
    report = inspect_image(drive)
    assert report["problems"] == [] and report["image"]["image_size"] == good.stat().st_size
    assert "larger than the image" in report["image"]["note"]
    assert verify(image_source(good), drive).ok


@pytest.mark.parametrize("model_bytes", [1_200_000, 2_500_000])  # the same disk size as `good`, and larger
def test_verify_names_another_image(good: Path, tmp_path: Path, model_bytes: int) -> None:
    """`dte verify` of a drive holding a complete, different image: "holds another image", not "interrupted"."""
    efi = tmp_path / "BOOTX64.EFI"
    efi.write_bytes(b"MZ" + bytes(range(256)) * 301)
    model = sized_model(tmp_path / "other.gguf", model_bytes, seed=3)
    other = build_image(load_board("qemu-q35"), efi, tmp_path / "other.img", model_path=model,
                        build_id="fedcba9876543210").path
    assert (other.stat().st_size == good.stat().st_size) is (model_bytes == 1_200_000)
    result = verify(image_source(good), other)
    assert result.status == "other", result.line()
    assert "holds another image" in result.line() and "fedcba9876543210" in result.line()
    cli = CliRunner().invoke(main, ["verify", str(good), str(other)])
    assert cli.exit_code == 1 and "holds another image" in cli.output


def test_found_by_the_campaign(good: Path, tmp_path: Path) -> None:
    """Two findings of scripts/fuzz_images.py (seed 202): a WEIGHTS.MAN chunk size that still covers the model
    passed as clean; ESP bytes that make BOOTX64.EFI unreadable gave the CLI a KeyError."""
    raw = bytearray(good.read_bytes())
    at = raw.find(b"DTEWMAN2")
    raw[at + 25] = 2  # chunk_size 1 MiB -> 1 MiB + 512: the chunk count still fits the model size
    chunk = tmp_path / "chunk.img"
    chunk.write_bytes(bytes(raw))
    assert any("chunk size" in p for p in inspect_image(chunk)["problems"])
    raw = bytearray(good.read_bytes())
    for offset, byte in ((1166861, b"/"), (1106124, b"\t"), (1262562, b"\x96"), (1136453, b"\x1e"),
                         (1065273, b"\x1e"), (1120619, b"\x89"), (1112640, b"\x83"), (1250324, b"\x11"),
                         (1307814, b"V")):
        raw[offset:offset + 1] = byte
    esp = tmp_path / "esp.img"
    esp.write_bytes(bytes(raw))
    result = CliRunner().invoke(main, ["inspect", str(esp)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
