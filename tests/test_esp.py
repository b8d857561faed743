"""ESP (FAT32) checked with fsck.fat and mtools, and our reader against them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from dte_build.errors import DteError
from dte_build.image.esp import FatReader, build_esp

pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None and not Path(f"/usr/sbin/{t}").exists() for t in ("mkfs.fat", "mcopy", "fsck.fat")),
    reason="dosfstools/mtools missing (apt-get install dosfstools mtools)")
MTOOLS_ENV = {**os.environ, "MTOOLS_SKIP_CHECK": "1", "TZ": "UTC"}


def _files() -> dict[str, bytes]:
    return {"EFI/BOOT/BOOTX64.EFI": bytes(range(256)) * 700 + b"tail", "DTE/MANIFEST.JSN": b'{"a": 1}\n',
            "DTE/WEIGHTS.MAN": b"DTEWMAN2" + bytes(40), "dte-persona.txt": b"a long name\n"}


def _build(path: Path, epoch: int = 0, files: dict[str, bytes] | None = None) -> Path:
    build_esp(path, files or _files(), size_mib=40, hidden_sectors=2048, volume_id=0xDEC0DE01,
              source_date_epoch=epoch)
    return path


def test_fsck_clean_and_mtools_reads_files_back(tmp_path: Path) -> None:
    esp = _build(tmp_path / "esp.img")
    fsck = subprocess.run(["fsck.fat", "-n", str(esp)], capture_output=True, text=True, check=False)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    for name, data in _files().items():
        out = tmp_path / "out"
        subprocess.run(["mcopy", "-n", "-i", str(esp), f"::/{name}", str(out)], env=MTOOLS_ENV, check=True)
        assert out.read_bytes() == data
        out.unlink()
    listing = subprocess.run(["mdir", "-i", str(esp), "::/DTE"], env=MTOOLS_ENV, capture_output=True, text=True,
                             check=True).stdout
    assert "Serial Number is DEC0-DE01" in listing
    assert re.search(r"MANIFEST JSN\s+9 1980-01-01\s+0:00", listing)


def test_reader_lists_what_mtools_lists(tmp_path: Path) -> None:
    esp = _build(tmp_path / "esp.img")
    mdir = subprocess.run(["mdir", "-/", "-b", "-i", str(esp), "::/"], env=MTOOLS_ENV, capture_output=True,
                          text=True, check=True).stdout.split()
    with open(esp, "rb") as f:
        reader = FatReader(f)
        entries = reader.list()
        assert sorted(e.path for e in entries if not e.is_dir) == sorted(_files())
        assert sorted("::/" + e.path + ("/" if e.is_dir else "") for e in entries) == sorted(mdir)
        for name, data in _files().items():
            assert reader.read(name.lower()) == data
        assert reader.label == "DTEESP" and reader.volume_id == 0xDEC0DE01
        with pytest.raises(DteError, match="no file"):
            reader.read("EFI/BOOT/MISSING.EFI")


def test_reproducible_and_epoch_sensitive(tmp_path: Path) -> None:
    a = _build(tmp_path / "a.img").read_bytes()
    b = _build(tmp_path / "b.img").read_bytes()
    c = _build(tmp_path / "c.img", epoch=1_700_000_000).read_bytes()
    assert a == b
    assert a != c


def test_reader_rejects_non_fat(tmp_path: Path) -> None:
    junk = tmp_path / "junk.img"
    junk.write_bytes(bytes(4096))
    with open(junk, "rb") as f, pytest.raises(DteError, match="no FAT boot sector"):
        FatReader(f)
