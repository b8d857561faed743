"""The build-time model check is the engine's own: descriptions agree with gguf-py (an independent reader),
the verdict agrees with dte_host_model_check (the code the firmware runs at boot), refusals are one line."""

from __future__ import annotations

import struct
from pathlib import Path

import gguf
import pytest
from gguf_factory import write_gguf
from model_factory import ModelSpec, make_model, sized_model

from dte_build.board import load_board
from dte_build.engine import gguf_check
from dte_build.errors import DteError
from dte_build.image.model_check import check_model, describe_model, supported_architectures, supported_types


def _ref_types(ref: gguf.GGUFReader) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in ref.tensors:
        out[t.tensor_type.name] = out.get(t.tensor_type.name, 0) + 1
    return out


def test_description_matches_gguf_reader(tmp_path: Path) -> None:
    path = make_model(tmp_path / "m.gguf", ModelSpec(wtype=gguf.GGMLQuantizationType.Q8_0))
    info = check_model(path, load_board("qemu-q35"))
    ref = gguf.GGUFReader(path)
    assert info.size == path.stat().st_size and info.runs and info.verdict == "yes"
    assert info.architecture == ref.fields["general.architecture"].contents() == "llama"
    assert info.tokenizer == ref.fields["tokenizer.ggml.model"].contents()
    assert info.n_vocab == len(ref.fields["tokenizer.ggml.tokens"].data)
    assert info.tensor_count == len(ref.tensors) and info.types == _ref_types(ref)
    assert (info.n_layer, info.n_embd, info.context_length) == tuple(
        ref.fields[f"llama.{k}"].contents() for k in ("block_count", "embedding_length", "context_length"))
    assert info.chat_template is False and info.chat == "none (plain completion)"


@pytest.mark.slow
def test_real_model_keys_match_gguf_reader(smollm2_path: Path) -> None:
    """SmolLM2 (gpt2 tokenizer, smollm pre-tokenizer, ChatML template): the keys as gguf-py reads them, and the
    verdict exactly the engine's."""
    info = describe_model(smollm2_path)
    ref = gguf.GGUFReader(smollm2_path)
    assert (info.tokenizer, info.pre_tokenizer) == (ref.fields["tokenizer.ggml.model"].contents(),
                                                    ref.fields["tokenizer.ggml.pre"].contents())
    assert info.n_vocab == len(ref.fields["tokenizer.ggml.tokens"].data)
    assert info.chat_template is ("tokenizer.chat_template" in ref.fields) is True
    rc, reason = gguf_check(smollm2_path.read_bytes())
    assert info.runs is (rc == 0) and info.reason == reason


def test_description_at_an_offset_inside_a_bigger_file(tmp_path: Path) -> None:
    model = sized_model(tmp_path / "m.gguf").read_bytes()
    disk = tmp_path / "disk.bin"
    disk.write_bytes(b"\xaa" * 12345 + model + b"\x55" * 999)  # not page aligned
    inner = describe_model(disk, start=12345, length=len(model), name="m")
    whole = describe_model(tmp_path / "m.gguf", name="m")
    assert inner == whole and inner.runs
    with pytest.raises(DteError, match="outside the"):
        describe_model(disk, start=12345, length=len(model) * 2)


def _bad(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "bad.gguf"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("mutate, message", [
    (lambda d: b"", "is empty"),
    (lambda d: b"GGML" + d[4:], "not a GGUF file"),
    (lambda d: d[:4] + struct.pack("<I", 7) + d[8:], "would not run on dte: gguf"),
    (lambda d: d[:60], "would not run on dte: gguf"),
    (lambda d: d[:-300], "tensor data runs past the end"),
    (lambda d: d[:8] + struct.pack("<Q", 1 << 40) + d[16:], "would not run on dte: gguf"),
])
def test_bad_files_rejected(tmp_path: Path, mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    good = sized_model(tmp_path / "m.gguf").read_bytes()
    with pytest.raises(DteError, match=message) as exc:
        check_model(_bad(tmp_path, mutate(good)))
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("make", [
    lambda p: write_gguf(p, arch="no-such-arch"),                                        # unknown architecture
    lambda p: write_gguf(p, cols=256, qtype=gguf.GGMLQuantizationType.TQ1_0),            # a type the engine lacks
    lambda p: make_model(p, ModelSpec(extra_kv={"llama.attention.head_count": 0})),     # absurd hyper-parameter
])
def test_refused_with_the_engines_reason(tmp_path: Path, make) -> None:  # type: ignore[no-untyped-def]
    """Issue 15 item 4: a file the firmware refuses is refused at build with the engine's reason, and the hint
    lists the tensor types the engine takes."""
    path = make(tmp_path / "x.gguf")
    rc, reason = gguf_check(path.read_bytes())
    assert rc != 0, "the engine accepts this file; the case tests nothing"
    with pytest.raises(DteError) as exc:
        check_model(path)
    assert reason in exc.value.message and "would not run on dte" in exc.value.message
    assert supported_types() in (exc.value.hint or "") and "Q4_0".lower() in supported_types()
    assert supported_architectures() in (exc.value.hint or "") and "llama" in supported_architectures().split(", ")


def test_model_too_big_for_board_names_both_sizes(tmp_path: Path) -> None:
    board = load_board("qemu-q35")
    small = type(board.regions[0])("weights", 1, 1)
    tight = board.__class__(**{**board.__dict__, "regions": tuple(
        small if r.name == "weights" else r for r in board.regions)})
    path = sized_model(tmp_path / "big.gguf", 1_300_000)
    with pytest.raises(DteError, match=r"big.gguf is 1\.\d MiB but board qemu-q35's weights region holds 1 MiB"):
        check_model(path, tight)


def test_dte_build_refuses_before_compiling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 11's "refuse early": `dte build` with a model the engine refuses stops before the firmware compiles."""
    from click.testing import CliRunner

    from dte_build.cli import main

    monkeypatch.setenv("DTE_BUILD_DIR", str(tmp_path / "build"))
    bad = write_gguf(tmp_path / "bad.gguf", arch="no-such-arch")
    result = CliRunner().invoke(main, ["build", "--board", "qemu-q35", "-m", str(bad), "-o", str(tmp_path / "x.img")])
    assert result.exit_code == 1 and "would not run on dte" in result.stderr
    assert not (tmp_path / "build" / "qemu-q35").exists() and not (tmp_path / "x.img").exists()
