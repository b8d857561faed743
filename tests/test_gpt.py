"""GPT writer/reader checked against sgdisk (gdisk) and the UEFI 2.10 §5.2.3/§5.3 layout facts."""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from dte_build.errors import DteError
from dte_build.image import gpt

needs_sgdisk = pytest.mark.skipif(shutil.which("sgdisk") is None, reason="sgdisk (apt-get install gdisk) missing")
MIB = 1024 * 1024


def _write(path: Path, size: int, parts: list[gpt.Partition]) -> gpt.GptTable:
    table = gpt.make_table(gpt.derive_guid("test-disk"), size, 512, parts)
    with open(path, "wb") as f:
        f.truncate(size)
        for blob in gpt.render(table):
            f.seek(blob.offset)
            f.write(blob.data)
    return table


def _parts() -> list[gpt.Partition]:
    return [
        gpt.Partition(1, gpt.ESP_TYPE, gpt.derive_guid("esp"), 2048, 2048 + 63 * 2048 - 1, "EFI System Partition"),
        gpt.Partition(2, gpt.WEIGHTS_TYPE, gpt.derive_guid("w"), 131072, 131072 + 3 * 2048 - 1, "dte-weights"),
    ]


def _sgdisk(*args: str) -> str:
    proc = subprocess.run(["sgdisk", *args], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@needs_sgdisk
def test_sgdisk_finds_no_problems_and_sees_our_partitions(tmp_path: Path) -> None:
    img = tmp_path / "d.img"
    _write(img, 70 * MIB, _parts())
    assert "No problems found" in _sgdisk("-v", str(img))
    listing = _sgdisk("-p", str(img))
    rows = re.findall(r"^\s+(\d+)\s+(\d+)\s+(\d+)\s+\S+ \S+\s+(\S+)\s+(.+)$", listing, re.M)
    assert rows == [("1", "2048", "131071", "EF00", "EFI System Partition"),
                    ("2", "131072", "137215", "FFFF", "dte-weights")]
    assert "First usable sector is 34, last usable sector is 143326" in listing
    info = _sgdisk("-i", "2", str(img))
    assert "37EC13C1-6A25-4592-B112-756BC636B8BC" in info
    assert str(gpt.derive_guid("w")).upper() in info
    assert str(gpt.derive_guid("test-disk")).upper() in listing


@needs_sgdisk
def test_reader_agrees_with_a_table_sgdisk_wrote(tmp_path: Path) -> None:
    img = tmp_path / "s.img"
    with open(img, "wb") as f:
        f.truncate(40 * MIB)
    _sgdisk("-o", "-n", "1:2048:20479", "-t", "1:ef00", "-c", "1:ESP", "-n", "2:20480:40959", "-c", "2:MODEL",
            "-u", "2:11111111-2222-3333-4444-555555555555", str(img))
    with open(img, "rb") as f:
        table = gpt.read_gpt(f, 40 * MIB)
    assert [(p.number, p.first_lba, p.last_lba, p.name) for p in table.partitions] == [
        (1, 2048, 20479, "ESP"), (2, 20480, 40959, "MODEL")]
    assert table.partitions[0].type_guid == uuid.UUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
    assert table.partitions[1].unique_guid == uuid.UUID("11111111-2222-3333-4444-555555555555")
    assert (table.first_usable_lba, table.last_usable_lba) == (34, 40 * 2048 - 34)


def test_reader_round_trip_and_corruption(tmp_path: Path) -> None:
    img = tmp_path / "d.img"
    _write(img, 70 * MIB, _parts())
    with open(img, "rb") as f:
        table = gpt.read_gpt(f, 70 * MIB)
    assert [p.name for p in table.partitions] == ["EFI System Partition", "dte-weights"]
    assert table.partition(2).first_lba == 131072
    for offset, what in ((512 + 30, "primary GPT header: CRC"), (1024 + 5, "primary GPT entry array"),
                         (70 * MIB - 512 + 40, "backup GPT header")):
        data = bytearray(img.read_bytes())
        data[offset] ^= 0xFF
        bad = tmp_path / "bad.img"
        bad.write_bytes(bytes(data))
        with open(bad, "rb") as f, pytest.raises(DteError, match=what):
            gpt.read_gpt(f, 70 * MIB)


def test_protective_mbr_layout_and_clamp() -> None:
    # UEFI 2.10 §5.2.3: record at 446, type 0xEE at +4, StartingLBA 1 at +8, SizeInLBA at +12, 0x55AA at 510.
    small = gpt.protective_mbr(1000, 512)
    assert small[446 + 4] == 0xEE and small[510:512] == b"\x55\xaa"
    assert int.from_bytes(small[454:458], "little") == 1
    assert int.from_bytes(small[458:462], "little") == 999
    huge = gpt.protective_mbr(5 * 2**32, 512)
    assert huge[458:462] == b"\xff\xff\xff\xff"


def test_overlap_and_out_of_range_rejected() -> None:
    p = _parts()
    with pytest.raises(DteError, match="overlap"):
        gpt.make_table(uuid.uuid4(), 70 * MIB, 512, [p[0], gpt.Partition(2, gpt.WEIGHTS_TYPE, uuid.uuid4(),
                                                                            131071, 140000, "x")])
    with pytest.raises(DteError, match="does not fit"):
        gpt.make_table(uuid.uuid4(), 64 * MIB, 512, p)
