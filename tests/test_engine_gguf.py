"""GGUF parser verdicts on hand-made files: valid v2/v3 files from gguf-py parse; each malformation is refused
with its own error (codes from firmware/engine/gguf.h)."""

from __future__ import annotations

import struct
from pathlib import Path

import gguf
import numpy as np
import pytest

from dte_build.engine import Engine, gguf_check
from dte_build.errors import DteError
from model_factory import ModelSpec, make_model

E_TRUNCATED, E_MAGIC, E_VERSION, E_TYPE, E_RANGE, E_DUPLICATE = -1, -2, -3, -4, -5, -6


def small_gguf(path: Path, tensors: dict[str, np.ndarray], alignment: int | None = None) -> bytes:
    w = gguf.GGUFWriter(str(path), "llama")
    if alignment:
        w.add_custom_alignment(alignment)
    for name, arr in tensors.items():
        w.add_tensor(name, arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path.read_bytes()


@pytest.fixture()
def valid(tmp_path: Path) -> bytes:
    return small_gguf(tmp_path / "v.gguf", {"a": np.ones((2, 32), np.float32), "b": np.zeros(64, np.float16)})


def test_valid_file_parses(valid: bytes) -> None:
    assert gguf_check(valid, model=False) == (0, "")


def test_version_2_parses(valid: bytes) -> None:
    v2 = valid[:4] + struct.pack("<I", 2) + valid[8:]
    assert gguf_check(v2, model=False)[0] == 0


@pytest.mark.parametrize("mutate, code, words", [
    (lambda b: b"GGUX" + b[4:], E_MAGIC, "magic"),
    (lambda b: b[:4] + struct.pack("<I", 1) + b[8:], E_VERSION, "version"),
    (lambda b: b[:4] + struct.pack(">I", 3) + b[8:], E_VERSION, "version"),          # big-endian GGUF
    (lambda b: b[:8] + struct.pack("<Q", 2**40) + b[16:], E_RANGE, "tensor count"),
    (lambda b: b[:16] + struct.pack("<Q", 2**62) + b[24:], E_RANGE, "key/value count"),
    (lambda b: b[:20], E_TRUNCATED, "shorter than the GGUF header"),
    (lambda b: b[:b.index(b"\x01\x00\x00\x00\x00\x00\x00\x00b") + 9], E_TRUNCATED, "past the end"),
    (lambda b: b[:-1], E_TRUNCATED, "tensor data"),
])
def test_malformed_headers_are_refused(valid: bytes, mutate: object, code: int, words: str) -> None:
    rc, msg = gguf_check(mutate(valid), model=False)
    assert rc == code and words in msg


def test_alignment_must_be_power_of_two(tmp_path: Path) -> None:
    data = small_gguf(tmp_path / "a.gguf", {"a": np.ones(32, np.float32)}, alignment=64)
    assert gguf_check(data, model=False)[0] == 0
    reader = gguf.GGUFReader(str(tmp_path / "a.gguf"))
    field = reader.fields["general.alignment"]
    at = int(field.offset + sum(p.nbytes for p in field.parts) - 4)   # the u32 value ends the field
    assert struct.unpack_from("<I", data, at)[0] == 64
    bad = data[:at] + struct.pack("<I", 48) + data[at + 4:]
    rc, msg = gguf_check(bad, model=False)
    assert rc == E_RANGE and "alignment" in msg


def test_duplicate_tensor_names_are_refused(tmp_path: Path) -> None:
    data = small_gguf(tmp_path / "d.gguf", {"aa": np.ones(32, np.float32), "bb": np.ones(32, np.float32)})
    i = data.index(b"bb")
    rc, msg = gguf_check(data[:i] + b"aa" + data[i + 2:], model=False)
    assert rc == E_DUPLICATE and "twice" in msg


def test_row_not_multiple_of_block_is_refused(tmp_path: Path) -> None:
    w = gguf.GGUFWriter(str(tmp_path / "q.gguf"), "llama")
    q8 = gguf.GGMLQuantizationType.Q8_0
    w.add_tensor("q", gguf.quants.quantize(np.ones((1, 32), np.float32), q8), raw_dtype=q8)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    data = (tmp_path / "q.gguf").read_bytes()
    # patch ne[0] from 32 to 31 (tensor info: name, n_dims, dims...)
    i = data.index(b"q", 24) + 1 + 4
    assert struct.unpack_from("<Q", data, i)[0] == 32
    rc, msg = gguf_check(data[:i] + struct.pack("<Q", 31) + data[i + 8:], model=False)
    assert rc == E_RANGE and "block" in msg


def test_missing_model_tensor_gives_one_line_error(tmp_path: Path) -> None:
    path = make_model(tmp_path / "m.gguf", ModelSpec())
    data = path.read_bytes()
    i = data.index(b"blk.0.ffn_up.weight")
    broken = data[:i] + b"blk.0.ffn_XX.weight" + data[i + 19:]
    rc, msg = gguf_check(broken, model=True)
    assert rc != 0 and "blk.0.ffn_up.weight" in msg
    (tmp_path / "broken.gguf").write_bytes(broken)
    with pytest.raises(DteError, match="missing tensor blk.0.ffn_up.weight"):
        Engine(tmp_path / "broken.gguf", threads=1)
