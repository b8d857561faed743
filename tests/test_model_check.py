"""GGUF validation: good files summarized as gguf-py sees them, bad ones refused with one-line DteErrors."""

from __future__ import annotations

import struct
from pathlib import Path

import gguf
import pytest
from gguf_factory import write_gguf

from dte_build.board import load_board
from dte_build.errors import DteError
from dte_build.image.model_check import check_model, open_gguf


def test_good_model_summary_matches_gguf_reader(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "m.gguf", n_tensors=5)
    info = check_model(path, load_board("qemu-q35"))
    ref = gguf.GGUFReader(path)
    assert info.size == path.stat().st_size
    assert info.architecture == "llama" and info.version == 3
    assert info.tensor_count == len(ref.tensors) == 5
    assert info.types == {"F32": 3, "Q8_0": 2}
    assert (info.n_layer, info.n_embd, info.context_length, info.n_vocab) == (2, 64, 128, 32)
    assert info.data_offset == ref.data_offset


def test_reader_at_an_offset_inside_a_bigger_file(tmp_path: Path) -> None:
    model = write_gguf(tmp_path / "m.gguf").read_bytes()
    disk = tmp_path / "disk.bin"
    disk.write_bytes(b"\xaa" * 12345 + model + b"\x55" * 999)
    reader = open_gguf(disk, start=12345, length=len(model))
    ref = gguf.GGUFReader(tmp_path / "m.gguf")
    assert [t.name for t in reader.tensors] == [t.name for t in ref.tensors]
    assert all((a.data == b.data).all() for a, b in zip(reader.tensors, ref.tensors))


def _bad(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "bad.gguf"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("mutate, message", [
    (lambda d: b"", "is empty"),
    (lambda d: b"GGML" + d[4:], "not a GGUF file"),
    (lambda d: d[:4] + struct.pack("<I", 7) + d[8:], "GGUF version 7"),
    (lambda d: d[:60], "header runs past the end"),
    (lambda d: d[:-300], "data ends at byte"),
    (lambda d: d[:8] + struct.pack("<Q", 1 << 40) + d[16:], "past the end"),
])
def test_bad_files_rejected(tmp_path: Path, mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    good = write_gguf(tmp_path / "m.gguf").read_bytes()
    with pytest.raises(DteError, match=message) as exc:
        check_model(_bad(tmp_path, mutate(good)))
    assert "\n" not in str(exc.value)


def test_wrong_architecture_and_type(tmp_path: Path) -> None:
    with pytest.raises(DteError, match="architecture 'gpt2'"):
        check_model(write_gguf(tmp_path / "g.gguf", arch="gpt2"))
    with pytest.raises(DteError, match="type TQ1_0, which the dte engine does not support"):
        check_model(write_gguf(tmp_path / "t.gguf", cols=256, qtype=gguf.GGMLQuantizationType.TQ1_0))


def test_model_too_big_for_board_names_both_sizes(tmp_path: Path) -> None:
    board = load_board("qemu-q35")
    small = type(board.regions[0])("weights", 1, 1)
    tight = board.__class__(**{**board.__dict__, "regions": tuple(
        small if r.name == "weights" else r for r in board.regions)})
    path = write_gguf(tmp_path / "big.gguf", filler_floats=300_000)  # 1.2 MB > 1 MiB
    with pytest.raises(DteError, match=r"big.gguf is 1\.\d MiB but board qemu-q35's weights region holds 1 MiB"):
        check_model(path, tight)
