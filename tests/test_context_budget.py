"""The firmware's context is a build option (-c/--ctx-size → DTE_N_CTX) bounded by the board's memory: the build
refuses, with one line, a model whose KV cache and scratch at that context do not fit beside its weights; the
engine's own count of those bytes (dte_host_context_bytes) is what the check uses, and it follows the shapes
(a sliding-window layer keeps only its window)."""

from __future__ import annotations

from pathlib import Path

import pytest

from arch_factory import ArchSpec, make_arch_model
from dte_build.board import load_board
from dte_build.errors import DteError
from dte_build.image.model_check import check_model, context_bytes
from dte_build.toolchain import FirmwareOptions, config_header, firmware_context
from model_factory import ModelSpec, make_model

pytestmark = pytest.mark.slow   # the edit-test loop's fast tier leaves it out: `pytest -m "not slow"`

MIB = 1 << 20


def test_kv_bytes_follow_the_shapes(tmp_path: Path) -> None:
    """2 layers x 4 KV heads x 64 dims x (K + V) x F16 = 2 KiB per position (plus scratch that does not grow with
    the layer count)."""
    path = make_model(tmp_path / "m.gguf", ModelSpec(n_embd=256, n_head=4, n_head_kv=4, n_ctx=1 << 16))
    small, n_small = context_bytes(path, 1024)
    big, n_big = context_bytes(path, 8192)
    assert (n_small, n_big) == (1024, 8192)
    per_position = (big - small) / (8192 - 1024)
    kv = 2 * 4 * 64 * 2 * 2
    assert kv <= per_position < kv * 1.5   # KV plus per-worker attention scratch (a few bytes per position)
    assert context_bytes(path, 10 ** 7)[1] == 1 << 16   # capped at the training context


def test_sliding_window_layers_keep_only_their_window(tmp_path: Path, llama_cpp_tree: Path) -> None:
    vocab = llama_cpp_tree / "models" / "ggml-vocab-phi-3.gguf"
    spec = dict(n_layer=6, n_head_kv=1, head_dim=32, n_ctx=1 << 15)
    slide = make_arch_model(tmp_path / "s.gguf", ArchSpec("gemma3", sliding_window=64, **spec), vocab)
    full = make_arch_model(tmp_path / "f.gguf", ArchSpec("gemma3", **spec), vocab)
    a, _ = context_bytes(slide, 1 << 15)
    b, _ = context_bytes(full, 1 << 15)
    kv_layer = (1 << 15) * 32 * 2 * 2
    assert b - a >= 5 * kv_layer * 0.9   # 5 of 6 layers hold 64 + 511 positions instead of 32768


def test_context_larger_than_the_board_is_refused_at_build(tmp_path: Path) -> None:
    path = make_model(tmp_path / "m.gguf", ModelSpec(n_embd=256, n_head=4, n_head_kv=4, n_ctx=1 << 20))
    board = load_board("qemu-q35")
    check_model(path, board, n_ctx=4096)
    with pytest.raises(DteError, match=r"1048576-position context needs .* MiB .* board qemu-q35 has") as exc:
        check_model(path, board, n_ctx=1 << 20)
    assert "\n" not in str(exc.value) and "--ctx-size" in (exc.value.hint or "")


def test_ctx_size_reaches_the_firmware_config() -> None:
    board = load_board("qemu-q35")
    assert "#define DTE_N_CTX 2048u" in config_header(board, FirmwareOptions(n_ctx=2048), "0" * 16)
    assert f"#define DTE_N_CTX {firmware_context(0)}u" in config_header(board, FirmwareOptions(), "0" * 16)
    with pytest.raises(DteError):
        FirmwareOptions(n_ctx=-1)
