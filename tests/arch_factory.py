"""Small random-weight GGUF models of every architecture the engine's table knows (qwen2, qwen3, phi3, gemma2,
gemma3, llama), written with gguf-py (an independent implementation) around a real vocabulary: the tokenizer.*
keys are copied from a GGUF holding that vocabulary (llama.cpp's models/ggml-vocab-*.gguf, or the real Gemma 3
file), so llama.cpp loads them exactly as it would the real model.

Tensor names and shapes follow llama.cpp's src/models/<arch>.cpp load_arch_tensors; `drop` and `reshape` make
the broken variants the error tests need.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf
import numpy as np
from gguf import GGMLQuantizationType as T


@dataclass
class ArchSpec:
    arch: str
    n_embd: int = 64
    n_layer: int = 2
    n_head: int = 4
    n_head_kv: int = 2
    head_dim: int | None = None      # attention.key_length (default n_embd / n_head)
    n_ff: int = 96
    n_ctx: int = 128
    n_rot: int | None = None         # rope.dimension_count (default head_dim)
    rope_base: float = 10000.0
    eps: float = 1e-6
    sliding_window: int | None = None
    attn_softcap: float | None = None
    final_softcap: float | None = None
    tied: bool = True
    embd_type: T = T.F16
    wtype: T = T.F32
    seed: int = 0
    drop: set[str] = field(default_factory=set)          # tensor names (blk.N.x.weight) left out
    reshape: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (rows, cols) instead
    skip_keys: set[str] = field(default_factory=set)     # hyper-parameter suffixes left out ("embedding_length")
    extra_f32: dict[str, float] = field(default_factory=dict)  # "<arch>.<suffix>" float keys (overrides)

    @property
    def hd(self) -> int:
        return self.head_dim or self.n_embd // self.n_head


def copy_tokenizer(w: gguf.GGUFWriter, vocab_gguf: Path) -> int:
    """Copy every tokenizer.* key of vocab_gguf; returns the vocabulary size."""
    r = gguf.GGUFReader(str(vocab_gguf))
    n_vocab = 0
    for key, f in r.fields.items():
        if not key.startswith("tokenizer."):
            continue
        vtype = f.types[0]
        value: Any = f.contents()
        if vtype == gguf.GGUFValueType.ARRAY:
            w.add_key_value(key, value, vtype, sub_type=f.types[1])
            if key == "tokenizer.ggml.tokens":
                n_vocab = len(value)
        else:
            w.add_key_value(key, value, vtype)
    return n_vocab


def _matrix(w: gguf.GGUFWriter, spec: ArchSpec, name: str, rows: int, cols: int, t: T,
            rng: np.random.Generator) -> None:
    if name in spec.drop:
        return
    rows, cols = spec.reshape.get(name, (rows, cols))
    data = (rng.standard_normal((rows, cols)) / np.sqrt(cols)).astype(np.float32)
    if t == T.F32:
        w.add_tensor(name, data)
    elif t == T.F16:
        w.add_tensor(name, data.astype(np.float16))
    else:
        w.add_tensor(name, gguf.quants.quantize(data, t), raw_dtype=t)


def _vector(w: gguf.GGUFWriter, spec: ArchSpec, name: str, n: int, rng: np.random.Generator,
            center: float = 1.0) -> None:
    if name in spec.drop:
        return
    if name in spec.reshape:
        n = spec.reshape[name][1]
    w.add_tensor(name, (center + 0.1 * rng.standard_normal(n)).astype(np.float32))


def make_arch_model(path: Path, spec: ArchSpec, vocab_gguf: Path) -> Path:
    s, a = spec, spec.arch
    rng = np.random.default_rng(s.seed)
    w = gguf.GGUFWriter(str(path), a)
    n_vocab = copy_tokenizer(w, vocab_gguf)
    keys: dict[str, tuple[Any, gguf.GGUFValueType]] = {
        "context_length": (s.n_ctx, gguf.GGUFValueType.UINT32),
        "embedding_length": (s.n_embd, gguf.GGUFValueType.UINT32),
        "block_count": (s.n_layer, gguf.GGUFValueType.UINT32),
        "feed_forward_length": (s.n_ff, gguf.GGUFValueType.UINT32),
        "attention.head_count": (s.n_head, gguf.GGUFValueType.UINT32),
        "attention.head_count_kv": (s.n_head_kv, gguf.GGUFValueType.UINT32),
        "attention.layer_norm_rms_epsilon": (s.eps, gguf.GGUFValueType.FLOAT32),
        "rope.freq_base": (s.rope_base, gguf.GGUFValueType.FLOAT32),
        "rope.dimension_count": (s.n_rot or s.hd, gguf.GGUFValueType.UINT32),
    }
    if s.head_dim:
        keys["attention.key_length"] = (s.hd, gguf.GGUFValueType.UINT32)
        keys["attention.value_length"] = (s.hd, gguf.GGUFValueType.UINT32)
    if s.sliding_window:
        keys["attention.sliding_window"] = (s.sliding_window, gguf.GGUFValueType.UINT32)
    if s.attn_softcap:
        keys["attn_logit_softcapping"] = (s.attn_softcap, gguf.GGUFValueType.FLOAT32)
    if s.final_softcap:
        keys["final_logit_softcapping"] = (s.final_softcap, gguf.GGUFValueType.FLOAT32)
    for suffix, value in s.extra_f32.items():
        keys[suffix] = (value, gguf.GGUFValueType.FLOAT32)
    for suffix, (value, vtype) in keys.items():
        if suffix not in s.skip_keys:
            w.add_key_value(f"{a}.{suffix}", value, vtype)

    E, F, hd = s.n_embd, s.n_ff, s.hd
    Q, KV = s.n_head * hd, s.n_head_kv * hd
    _matrix(w, s, "token_embd.weight", n_vocab, E, s.embd_type, rng)
    for il in range(s.n_layer):
        p = f"blk.{il}."
        _vector(w, s, p + "attn_norm.weight", E, rng)
        if a == "phi3":
            _matrix(w, s, p + "attn_qkv.weight", Q + 2 * KV, E, s.wtype, rng)
        else:
            _matrix(w, s, p + "attn_q.weight", Q, E, s.wtype, rng)
            _matrix(w, s, p + "attn_k.weight", KV, E, s.wtype, rng)
            _matrix(w, s, p + "attn_v.weight", KV, E, s.wtype, rng)
        if a == "qwen2":
            for name, n in (("attn_q", Q), ("attn_k", KV), ("attn_v", KV)):
                _vector(w, s, p + name + ".bias", n, rng, center=0.0)
        if a in ("qwen3", "gemma3"):
            _vector(w, s, p + "attn_q_norm.weight", hd, rng)
            _vector(w, s, p + "attn_k_norm.weight", hd, rng)
        _matrix(w, s, p + "attn_output.weight", E, Q, s.wtype, rng)
        _vector(w, s, p + "ffn_norm.weight", E, rng)
        if a == "phi3":
            _matrix(w, s, p + "ffn_up.weight", 2 * F, E, s.wtype, rng)
        else:
            _matrix(w, s, p + "ffn_gate.weight", F, E, s.wtype, rng)
            _matrix(w, s, p + "ffn_up.weight", F, E, s.wtype, rng)
        _matrix(w, s, p + "ffn_down.weight", E, F, s.wtype, rng)
        if a in ("gemma2", "gemma3"):
            _vector(w, s, p + "post_attention_norm.weight", E, rng)
            _vector(w, s, p + "post_ffw_norm.weight", E, rng)
    _vector(w, s, "output_norm.weight", E, rng)
    if not s.tied:
        _matrix(w, s, "output.weight", n_vocab, E, s.wtype, rng)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
