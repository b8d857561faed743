"""build_image end to end, checked with sgdisk, fsck.fat, mtools, crc32c/hashlib and the source GGUF."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import crc32c
import pytest
from gguf_factory import write_gguf
from model_factory import sized_model

from dte_build.board import load_board
from dte_build.errors import DteError
from dte_build.image import builder
from dte_build.flash import flash, plan_source
from dte_build.image.builder import build_image
from dte_build.image.plan import plan_image

pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None and not Path(f"/usr/sbin/{t}").exists()
        for t in ("sgdisk", "mkfs.fat", "mcopy", "fsck.fat")),
    reason="needs gdisk, dosfstools and mtools (apt-get install gdisk dosfstools mtools)")
MIB = 1024 * 1024
BUILD_ID = "0123456789abcdef"
MTOOLS_ENV = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}


@pytest.fixture()
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    efi = tmp_path / "BOOTX64.EFI"
    efi.write_bytes(b"MZ" + bytes(range(256)) * 300)
    model = sized_model(tmp_path / "tiny.gguf", 1_600_000)  # ~1.6 MB: two 1 MiB chunks
    return efi, model


def _build(tmp_path: Path, inputs: tuple[Path, Path], name: str = "dte.img", **kw):  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    kw.setdefault("model_path", inputs[1])
    return build_image(load_board("qemu-q35"), inputs[0], out / name, build_id=BUILD_ID, **kw)


def _mcopy(image: Path, name: str, dest: Path) -> bytes:
    subprocess.run(["mcopy", "-n", "-i", f"{image}@@{MIB}", f"::/{name}", str(dest)], env=MTOOLS_ENV, check=True)
    return dest.read_bytes()


def test_image_structure(tmp_path: Path, inputs: tuple[Path, Path]) -> None:
    efi, model = inputs
    result = _build(tmp_path, inputs)
    img = result.path
    assert sorted(p.name for p in img.parent.iterdir()) == ["dte.img"]
    sg = subprocess.run(["sgdisk", "-v", "-p", str(img)], capture_output=True, text=True, check=True).stdout
    assert "No problems found" in sg
    assert "1            2048          131071   63.0 MiB    EF00  EFI System Partition" in sg
    assert "2          131072          135167   2.0 MiB     FFFF  dte-weights" in sg

    data = model.read_bytes()
    with open(img, "rb") as f:
        f.seek(131072 * 512)
        assert f.read(len(data)) == data
        assert f.read(2 * MIB - len(data)) == bytes(2 * MIB - len(data))
    assert img.stat().st_size == 131072 * 512 + 2 * MIB + MIB
    assert img.stat().st_blocks * 512 < 12 * MIB  # sparse: holes are not written

    esp = tmp_path / "esp.img"
    with open(img, "rb") as f, open(esp, "wb") as g:
        f.seek(MIB)
        g.write(f.read(63 * MIB))
    fsck = subprocess.run(["fsck.fat", "-n", str(esp)], capture_output=True, text=True, check=False)
    assert fsck.returncode == 0, fsck.stdout
    assert _mcopy(img, "EFI/BOOT/BOOTX64.EFI", tmp_path / "e") == efi.read_bytes()

    manifest = json.loads(_mcopy(img, "DTE/MANIFEST.JSN", tmp_path / "m"))
    assert manifest == result.manifest
    assert manifest["board"] == "qemu-q35" and manifest["build_id"] == BUILD_ID
    assert manifest["firmware"]["sha256"] == hashlib.sha256(efi.read_bytes()).hexdigest()
    assert manifest["weights"] == {"lba": 131072, "sector_size": 512, "partition": 2}
    m = manifest["model"]
    assert (m["name"], m["size"], m["architecture"]) == ("tiny.gguf", len(data), "llama")
    assert m["sha256"] == hashlib.sha256(data).hexdigest()
    assert m["crc32c"] == [crc32c.crc32c(data[:MIB]), crc32c.crc32c(data[MIB:])]
    wman = _mcopy(img, "DTE/WEIGHTS.MAN", tmp_path / "w")
    assert wman[:8] == b"DTEWMAN2" and wman[32:64] == hashlib.sha256(data).digest()


def test_reproducible(tmp_path: Path, inputs: tuple[Path, Path]) -> None:
    a = _build(tmp_path, inputs, "a.img").path.read_bytes()
    b = _build(tmp_path, inputs, "b.img").path.read_bytes()
    assert a == b
    c = _build(tmp_path, inputs, "c.img", source_date_epoch=1_700_000_000).path.read_bytes()
    assert c != a
    other = sized_model(tmp_path / "tiny.gguf", 1_600_000, seed=1)
    d = _build(tmp_path, (inputs[0], other), "d.img").path.read_bytes()
    assert len(d) == len(a) and d != a


def test_no_model(tmp_path: Path, inputs: tuple[Path, Path]) -> None:
    result = _build(tmp_path, inputs, model_path=None, no_model=True)
    assert result.manifest["model"] is None
    sg = subprocess.run(["sgdisk", "-v", "-p", str(result.path)], capture_output=True, text=True, check=True).stdout
    assert "No problems found" in sg and "dte-weights" not in sg
    assert result.size == 65 * MIB


@pytest.mark.parametrize("damage", ["empty", "magic", "truncated", "arch"])
def test_bad_model_leaves_nothing(tmp_path: Path, inputs: tuple[Path, Path], damage: str) -> None:
    bad = tmp_path / "bad.gguf"
    data = inputs[1].read_bytes()
    if damage == "arch":
        write_gguf(bad, arch="falcon")
    else:
        bad.write_bytes({"empty": b"", "magic": b"GGJT" + data[4:], "truncated": data[: len(data) // 2]}[damage])
    with pytest.raises(DteError):
        _build(tmp_path, inputs, model_path=bad)
    assert list((tmp_path / "out").iterdir()) == []


def test_model_too_big_for_board(tmp_path: Path, inputs: tuple[Path, Path]) -> None:
    board = load_board("qemu-q35")
    weights = next(r for r in board.regions if r.name == "weights")
    tight = board.__class__(**{**board.__dict__, "regions": tuple(
        type(weights)("weights", 1, 1) if r is weights else r for r in board.regions)})
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(DteError, match=r"tiny.gguf is 1\.\d MiB but board qemu-q35's weights region holds 1 MiB"):
        build_image(tight, inputs[0], out / "x.img", model_path=inputs[1], build_id=BUILD_ID)
    assert list(out.iterdir()) == []


def test_failure_mid_write_removes_temp_file(tmp_path: Path, inputs: tuple[Path, Path],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kw: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(builder, "write_fresh_file", boom)
    with pytest.raises(OSError):
        _build(tmp_path, inputs)
    assert list((tmp_path / "out").iterdir()) == []


def test_plan_onto_a_dirty_bigger_target(tmp_path: Path, inputs: tuple[Path, Path]) -> None:
    """What `dte flash --board` does: the same plan, through the same writer, on a used drive (all 0xFF) of its
    own size."""
    size = 80 * MIB
    target = tmp_path / "drive.bin"
    with open(target, "wb") as f:
        for _ in range(size // MIB):
            f.write(b"\xff" * MIB)
    with plan_image(load_board("qemu-q35"), inputs[0], model_path=inputs[1], build_id=BUILD_ID,
                    disk_size=size) as plan:
        assert [e.kind for e in plan.extents][-5:] == ["gpt"] * 5
        assert flash(plan_source(plan), target).verified
    sg = subprocess.run(["sgdisk", "-v", str(target)], capture_output=True, text=True, check=True).stdout
    assert "No problems found" in sg
    esp = tmp_path / "esp.img"
    esp.write_bytes(target.read_bytes()[MIB:64 * MIB])
    assert subprocess.run(["fsck.fat", "-n", str(esp)], capture_output=True, check=False).returncode == 0
    data = inputs[1].read_bytes()
    raw = target.read_bytes()[131072 * 512: 131072 * 512 + 2 * MIB]
    assert raw == data + bytes(2 * MIB - len(data))


def test_extra_esp_files(tmp_path: Path, inputs: tuple[Path, Path]) -> None:
    persona = tmp_path / "persona.txt"
    persona.write_bytes(b"Deep Tree Echo persona\n" * 100)
    result = _build(tmp_path, inputs, extra_esp_files={"DTE/PERSONA.TXT": persona, "dte/Board-Notes.txt": b"hi"})
    assert _mcopy(result.path, "DTE/PERSONA.TXT", tmp_path / "p") == persona.read_bytes()
    assert _mcopy(result.path, "dte/Board-Notes.txt", tmp_path / "n") == b"hi"
    with pytest.raises(DteError, match="would replace one dte writes itself"):
        _build(tmp_path, inputs, "x.img", extra_esp_files={"dte/manifest.jsn": b"{}"})
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["dte.img"]
