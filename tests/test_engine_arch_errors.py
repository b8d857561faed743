"""Broken models are refused with one line naming the tensor or key (the engine's own check: `dte build` runs it
through dte_host_model_check, the firmware through dte_engine_open): missing or mis-shaped tensors of each
architecture, absent hyper-parameters, absurd float hyper-parameters (issue 15 item 7: rms_eps <= 0/NaN/Inf,
rope.freq_base <= 0/NaN/Inf/denormal, garbage rope_freqs, general.alignment 1), refused architectures."""

from __future__ import annotations

import struct
from pathlib import Path

import gguf
import numpy as np
import pytest

from arch_factory import ArchSpec, make_arch_model
from dte_build.engine import gguf_check
from model_factory import ModelSpec, make_model

pytestmark = pytest.mark.slow   # the edit-test loop's fast tier leaves it out: `pytest -m "not slow"`


@pytest.fixture(scope="module")
def phi3_vocab(llama_cpp_tree: Path) -> Path:
    return llama_cpp_tree / "models" / "ggml-vocab-phi-3.gguf"


def check(path: Path) -> tuple[int, str]:
    return gguf_check(path.read_bytes())


def one_line(msg: str) -> None:
    assert msg and "\n" not in msg


# Small models: the phi-3 vocabulary (32k) keeps them quick; the architecture is what the table reads.
ARCHS = ["llama", "qwen2", "qwen3", "phi3", "gemma2", "gemma3"]


@pytest.mark.parametrize("arch", ARCHS)
def test_each_architecture_loads(tmp_path: Path, phi3_vocab: Path, arch: str) -> None:
    rc, msg = check(make_arch_model(tmp_path / "m.gguf", ArchSpec(arch, head_dim=32 if "gemma" in arch else None,
                                                                  embd_type=gguf.GGMLQuantizationType.Q8_0), phi3_vocab))
    assert rc == 0, msg


MISSING = {
    "llama": "blk.1.ffn_gate.weight", "qwen2": "blk.0.attn_k.weight", "qwen3": "blk.1.attn_q_norm.weight",
    "phi3": "blk.0.attn_qkv.weight", "gemma2": "blk.1.post_ffw_norm.weight", "gemma3": "blk.0.attn_k_norm.weight",
}


@pytest.mark.parametrize("arch", ARCHS)
def test_missing_tensor_is_named(tmp_path: Path, phi3_vocab: Path, arch: str) -> None:
    name = MISSING[arch]
    spec = ArchSpec(arch, drop={name}, embd_type=gguf.GGMLQuantizationType.Q8_0)
    rc, msg = check(make_arch_model(tmp_path / "m.gguf", spec, phi3_vocab))
    # phi3 without attn_qkv: the separate attn_q is what is then missing, and the message names both
    assert rc == -22 and (name in msg or (name.replace("_qkv", "_q") in msg and "attn_qkv" in msg)), msg
    one_line(msg)


MISSHAPEN = {
    "llama": ("blk.0.attn_output.weight", (64, 48)), "qwen2": ("blk.1.attn_v.bias", (1, 48)),
    "qwen3": ("blk.0.attn_k_norm.weight", (1, 8)), "phi3": ("blk.1.ffn_up.weight", (96, 64)),
    "gemma2": ("blk.0.post_attention_norm.weight", (1, 63)), "gemma3": ("blk.1.attn_q.weight", (60, 64)),
}


@pytest.mark.parametrize("arch", ARCHS)
def test_misshapen_tensor_is_named(tmp_path: Path, phi3_vocab: Path, arch: str) -> None:
    name, shape = MISSHAPEN[arch]
    spec = ArchSpec(arch, reshape={name: shape}, embd_type=gguf.GGMLQuantizationType.Q8_0)
    rc, msg = check(make_arch_model(tmp_path / "m.gguf", spec, phi3_vocab))
    assert rc == -22 and name in msg and "shape" in msg, msg
    one_line(msg)


@pytest.mark.parametrize("key", ["embedding_length", "block_count", "feed_forward_length", "attention.head_count",
                                 "context_length", "attention.layer_norm_rms_epsilon"])
def test_absent_hyper_parameter_is_named(tmp_path: Path, phi3_vocab: Path, key: str) -> None:
    spec = ArchSpec("qwen3", skip_keys={key}, embd_type=gguf.GGMLQuantizationType.Q8_0)
    rc, msg = check(make_arch_model(tmp_path / "m.gguf", spec, phi3_vocab))
    assert rc == -21 and f"qwen3.{key}" in msg, msg  # DTE_E_HPARAM
    one_line(msg)


@pytest.mark.parametrize("key, value", [
    ("attention.layer_norm_rms_epsilon", 0.0), ("attention.layer_norm_rms_epsilon", -1e-5),
    ("attention.layer_norm_rms_epsilon", float("nan")), ("attention.layer_norm_rms_epsilon", float("inf")),
    ("rope.freq_base", 0.0), ("rope.freq_base", -10000.0), ("rope.freq_base", float("nan")),
    ("rope.freq_base", float("inf")), ("rope.freq_base", 1e-45), ("rope.freq_base", 0.5),
    ("final_logit_softcapping", float("nan")),
])
def test_absurd_float_hyper_parameter_is_refused(tmp_path: Path, phi3_vocab: Path, key: str, value: float) -> None:
    spec = ArchSpec("gemma3", extra_f32={key: value}, head_dim=32, embd_type=gguf.GGMLQuantizationType.Q8_0)
    rc, msg = check(make_arch_model(tmp_path / "m.gguf", spec, phi3_vocab))
    assert rc == -21 and f"gemma3.{key}" in msg, msg
    one_line(msg)


def _with_rope_freqs(tmp_path: Path, values: np.ndarray) -> Path:
    """A llama model (synthetic vocabulary) with a rope_freqs.weight tensor of the given factors."""
    base = make_model(tmp_path / "base.gguf", ModelSpec())
    r = gguf.GGUFReader(str(base))
    w = gguf.GGUFWriter(str(tmp_path / "m.gguf"), "llama")
    for key, f in r.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        if f.types[0] == gguf.GGUFValueType.ARRAY:
            w.add_key_value(key, f.contents(), f.types[0], sub_type=f.types[1])
        else:
            w.add_key_value(key, f.contents(), f.types[0])
    for t in r.tensors:
        w.add_tensor(t.name, np.array(t.data).reshape([int(x) for x in reversed(t.shape)]))
    w.add_tensor("rope_freqs.weight", values.astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return tmp_path / "m.gguf"


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), 1e-30, 1e30])
def test_garbage_rope_freqs_are_refused(tmp_path: Path, bad: float) -> None:
    values = np.ones(8)  # head_dim 16: 8 pairs
    values[3] = bad
    rc, msg = check(_with_rope_freqs(tmp_path, values))
    assert rc == -22 and "rope_freqs.weight" in msg, msg


def test_sane_rope_freqs_load(tmp_path: Path) -> None:
    rc, msg = check(_with_rope_freqs(tmp_path, np.linspace(1.0, 8.0, 8)))
    assert rc == 0, msg


def test_alignment_one_misaligned_tensor_is_refused(tmp_path: Path) -> None:
    """general.alignment = 1 lets a tensor start at an odd offset: its floats would be loaded misaligned."""
    path = make_model(tmp_path / "m.gguf", ModelSpec(alignment=1, n_vocab=67))
    r = gguf.GGUFReader(str(path))
    if all((t.data_offset % 4) == 0 for t in r.tensors):
        pytest.fail("gguf-py aligned every tensor anyway: the fixture does not make the case")
    rc, msg = check(path)
    assert rc == -22 and "aligned" in msg, msg


@pytest.mark.parametrize("arch, reason", [("qwen2moe", "mixture-of-experts"), ("qwen3moe", "mixture-of-experts"),
                                          ("mamba", "unsupported general.architecture")])
def test_refused_architectures_say_why(tmp_path: Path, arch: str, reason: str) -> None:
    w = gguf.GGUFWriter(str(tmp_path / "m.gguf"), arch)
    w.add_tokenizer_model("llama")
    w.add_token_list(["<unk>", "<s>", "</s>", "a"])
    w.add_token_scores([0.0] * 4)
    w.add_token_types([2, 3, 3, 1])
    w.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    rc, msg = check(tmp_path / "m.gguf")
    assert rc == -20 and reason in msg and arch in msg, msg  # DTE_E_ARCH


def test_overlapping_tensors_are_refused(tmp_path: Path) -> None:
    """Two tensors whose data ranges overlap (a crafted file): refused by the parser, naming one of them."""
    data = bytearray(make_model(tmp_path / "m.gguf", ModelSpec()).read_bytes())
    r = gguf.GGUFReader(str(tmp_path / "m.gguf"))
    a, b = r.tensors[1], r.tensors[2]
    # the tensor info's offset field follows its name, n_dims, dims and type: point b's data at a's
    name = b.name.encode()
    at = bytes(data).index(struct.pack("<Q", len(name)) + name) + 8 + len(name)
    n_dims = struct.unpack_from("<I", data, at)[0]
    off_at = at + 4 + 8 * n_dims + 4
    rel_a = a.data_offset - r.data_offset if hasattr(r, "data_offset") else None
    assert rel_a is not None
    struct.pack_into("<Q", data, off_at, rel_a)
    rc, msg = gguf_check(bytes(data), model=False)
    assert rc == -5 and "overlap" in msg, msg  # DTE_E_RANGE


EVAL_DRIVER = r'''
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
lib.dte_host_load.argtypes = [ctypes.c_char_p, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32,
                              ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p, ctypes.c_size_t]
lib.dte_host_eval.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_char_p,
                              ctypes.c_size_t]
lib.dte_host_free.argtypes = [ctypes.c_void_p]
err = ctypes.create_string_buffer(256)
for path in sys.argv[2:]:
    h = ctypes.c_void_p()
    rc = lib.dte_host_load(path.encode(), 64, 8, 2, ctypes.byref(h), err, 256)
    assert rc == 0, (path, err.value)
    ids = (ctypes.c_int32 * 40)(*[(7 * i + 3) % 60 for i in range(40)])
    assert lib.dte_host_eval(h, ids, 40, None, err, 256) == 0, err.value
    for i in range(4):
        assert lib.dte_host_eval(h, ctypes.byref(ids, 4 * i), 1, None, err, 256) == 0, err.value
    lib.dte_host_free(h)
print("ok")
'''


@pytest.mark.slow
def test_extreme_accepted_hyper_parameters_evaluate_clean_under_ubsan(tmp_path: Path) -> None:
    """The edges of what the checks accept run a forward pass with no ASan/UBSan report (float->int overflow in the
    sine/cosine reduction, misaligned loads, NaN-producing norms)."""
    import os
    import subprocess
    import sys

    from dte_build import engine
    from dte_build.errors import DteError

    try:
        lib = engine.build_host_library(sanitize=True)
        runtime = engine.asan_runtime()
    except DteError as exc:
        pytest.fail(f"sanitizer build unavailable: {exc}")
    paths = []
    for i, (eps, base) in enumerate([(1e-12, 1.0), (1e-1, 1e12), (1e-5, 1.0001)]):
        paths.append(make_model(tmp_path / f"e{i}.gguf", ModelSpec(eps=eps, rope_base=base, seed=i)))
    paths.append(_with_rope_freqs(tmp_path, np.array([1e-2, 1e4, 1e-2, 1e4, 1.0, 2.0, 3.0, 4.0])))
    env = dict(os.environ, LD_PRELOAD=str(runtime),
               ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allocator_may_return_null=1",
               UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")
    proc = subprocess.run([sys.executable, "-c", EVAL_DRIVER, str(lib), *map(str, paths)], capture_output=True,
                          text=True, env=env, timeout=600)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-4000:]
