"""Manifest: CRC32C/SHA-256 against crc32c/hashlib on slices cut here, WEIGHTS.MAN against the design's layout."""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

import crc32c
import pytest

from dte_build.errors import DteError
from dte_build.image import manifest as mf

MIB = 1024 * 1024


@pytest.mark.parametrize("size", [0, 1, MIB, 3 * MIB + 17, 17 * MIB])
def test_digest_matches_independent_hashes(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "m.bin"
    path.write_bytes(data)
    seen: list[int] = []
    d = mf.digest_model(path, on_bytes=seen.append)
    assert d.size == size == sum(seen)
    assert d.sha256 == hashlib.sha256(data).hexdigest()
    assert list(d.crc32c) == [crc32c.crc32c(data[i:i + MIB]) for i in range(0, size, MIB)]


def test_crc32c_check_value() -> None:
    # CRC-32C (Castagnoli) check value from the catalogue of parametrised CRC algorithms.
    assert crc32c.crc32c(b"123456789") == 0xE3069283


def test_weights_man_layout(tmp_path: Path) -> None:
    data = os.urandom(2 * MIB + 5)
    path = tmp_path / "m.bin"
    path.write_bytes(data)
    raw = mf.weights_man(131072, mf.digest_model(path), 1)
    # design.md: char magic[8]; u64 model_size; u64 weights_lba; u32 chunk_size; u32 chunk_count; u8 sha256[32];
    # u32 layout; u32 reserved; u32 crc32c[chunk_count]  (little-endian)
    magic, size, lba, chunk, count = struct.unpack_from("<8sQQII", raw)
    assert (magic, size, lba, chunk, count) == (b"DTEWMAN2", len(data), 131072, MIB, 3)
    assert raw[32:64] == hashlib.sha256(data).digest()
    assert struct.unpack_from("<II", raw, 64) == (1, 0)
    assert list(struct.unpack_from("<3I", raw, 72)) == [crc32c.crc32c(data[i:i + MIB]) for i in (0, MIB, 2 * MIB)]
    assert len(raw) == 72 + 12
    parsed = mf.parse_weights_man(raw)
    assert parsed.model_size == len(data) and parsed.chunk_count == 3 and parsed.weights_lba == 131072
    assert parsed.layout_name == "rows4"
    with pytest.raises(DteError, match="layout"):
        mf.parse_weights_man(raw[:64] + struct.pack("<I", 7) + raw[68:])
    with pytest.raises(DteError, match="reserved"):
        mf.parse_weights_man(raw[:68] + struct.pack("<I", 1) + raw[72:])
    with pytest.raises(DteError, match="magic"):
        mf.parse_weights_man(b"XXXXXXXX" + raw[8:])
    with pytest.raises(DteError, match="bytes"):
        mf.parse_weights_man(raw[:-4])


def test_weights_man_without_model() -> None:
    raw = mf.weights_man(2097152, None)
    assert raw == b"DTEWMAN2" + struct.pack("<QQII", 0, 2097152, MIB, 0) + bytes(32) + bytes(8)
    assert mf.parse_weights_man(raw).chunk_count == 0


def test_manifest_json_fields(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(b"x" * (MIB + 1))
    d = mf.digest_model(path)
    m = mf.make_manifest(board="qemu-q35", build_id="00112233aabbccdd", source_date_epoch=0, efi=b"EFI",
                         weights_lba=131072, sector_size=512, model_name="m.gguf", architecture="llama",
                         tensor_count=3, digest=d)
    parsed = json.loads(mf.manifest_json(m))
    assert list(parsed) == ["format", "board", "build_id", "source_date_epoch", "firmware", "weights", "model"]
    assert parsed["firmware"] == {"path": "EFI/BOOT/BOOTX64.EFI", "size": 3,
                                  "sha256": hashlib.sha256(b"EFI").hexdigest()}
    assert parsed["weights"] == {"lba": 131072, "sector_size": 512, "partition": 2}
    assert parsed["model"]["crc32c"] == [crc32c.crc32c(b"x" * MIB), crc32c.crc32c(b"x")]
    assert mf.parse_manifest_json(mf.manifest_json(m)) == parsed
    with pytest.raises(DteError, match="build id"):
        mf.make_manifest(board="b", build_id="xyz", source_date_epoch=0, efi=b"", weights_lba=1, sector_size=512)
    with pytest.raises(DteError, match="not valid JSON"):
        mf.parse_manifest_json(b"{")
