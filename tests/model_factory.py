"""Small random llama-architecture GGUF models for tests, written with gguf-py (an independent implementation).

`make_model(path, spec)` writes token_embd, per-layer attn/ffn weights, norms (F32, as llama.cpp's converter
stores them), output_norm and output (unless tied) in any weight type: gguf-py quantizes the float and legacy
types; K-quant tensors are random valid blocks (gguf-py cannot quantize K types but dequantizes them, which is
what the numpy reference uses).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import gguf
import numpy as np
from gguf import GGMLQuantizationType as T

from _quantlib import random_weight_bytes

K_TYPES = (T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K)
ALL_WEIGHT_TYPES = (T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, *K_TYPES)


@dataclass
class ModelSpec:
    n_vocab: int = 67
    n_embd: int = 64
    n_layer: int = 2
    n_head: int = 4
    n_head_kv: int = 2
    n_ff: int = 96
    n_ctx: int = 64
    rope_base: float = 10000.0
    n_rot: int | None = None          # rope.dimension_count (default: head dim)
    eps: float = 1e-5
    tied: bool = False                # no output.weight: the head reuses token_embd
    wtype: T = T.F32                  # 2-D weights
    embd_type: T | None = None        # token_embd (default: wtype)
    output_type: T | None = None      # output.weight (default: wtype)
    alignment: int | None = None      # general.alignment (default: gguf-py's 32)
    seed: int = 0
    add_bos: bool = True
    # (piece, score, token type) — default: a synthetic vocabulary of n_vocab pieces
    vocab: list[tuple[str, float, int]] | None = None
    add_space_prefix: bool | None = None
    extra_kv: dict[str, int] = field(default_factory=dict)
    chat_template: str | None = None  # tokenizer.chat_template (Jinja)

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head


def synthetic_vocab(n: int) -> list[tuple[str, float, int]]:
    """<unk>, <s>, </s>, the 256 byte pieces when n >= 300, then distinct normal pieces with decreasing scores."""
    out = [("<unk>", 0.0, gguf.TokenType.UNKNOWN), ("<s>", 0.0, gguf.TokenType.CONTROL),
           ("</s>", 0.0, gguf.TokenType.CONTROL)]
    if n >= 300:  # byte-fallback pieces like a SentencePiece export (llama.cpp needs <0x0A>)
        out += [(f"<0x{b:02X}>", 0.0, gguf.TokenType.BYTE) for b in range(256)]
    letters = "abcdefghijklmnopqrstuvwxyz"
    i = 0
    while len(out) < n:
        piece = ("\u2581" if i % 2 else "") + letters[i % 26] + (str(i) if i >= 26 else "")
        out.append((piece, -float(i), gguf.TokenType.NORMAL))
        i += 1
    return out


def _tensor_bytes(t: T, data: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    rows, cols = data.shape
    if t == T.F32:
        return data.astype(np.float32)
    if t == T.F16:
        return data.astype(np.float16)
    if t in K_TYPES:
        return np.stack([random_weight_bytes(t, cols, rng) for _ in range(rows)])
    return gguf.quants.quantize(data.astype(np.float32), t)


def _add_weight(w: gguf.GGUFWriter, name: str, t: T, rows: int, cols: int, rng: np.random.Generator) -> None:
    data = rng.standard_normal((rows, cols)).astype(np.float32) / np.sqrt(cols)
    arr = _tensor_bytes(t, data, rng)
    if t in (T.F32, T.F16):
        w.add_tensor(name, arr)
    else:
        w.add_tensor(name, arr, raw_dtype=t)


def make_model(path: Path, spec: ModelSpec | None = None) -> Path:
    s = spec or ModelSpec()
    rng = np.random.default_rng(s.seed)
    vocab = s.vocab or synthetic_vocab(s.n_vocab)
    n_vocab = len(vocab)
    w = gguf.GGUFWriter(str(path), "llama")
    if s.alignment is not None:
        w.add_custom_alignment(s.alignment)
    w.add_context_length(s.n_ctx)
    w.add_embedding_length(s.n_embd)
    w.add_block_count(s.n_layer)
    w.add_feed_forward_length(s.n_ff)
    w.add_head_count(s.n_head)
    w.add_head_count_kv(s.n_head_kv)
    w.add_layer_norm_rms_eps(s.eps)
    w.add_rope_freq_base(s.rope_base)
    w.add_rope_dimension_count(s.n_rot or s.head_dim)
    w.add_vocab_size(n_vocab)
    w.add_tokenizer_model("llama")
    w.add_token_list([p for p, _, _ in vocab])
    w.add_token_scores([sc for _, sc, _ in vocab])
    w.add_token_types([int(tt) for _, _, tt in vocab])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(s.add_bos)
    if s.add_space_prefix is not None:
        w.add_add_space_prefix(s.add_space_prefix)
    if s.chat_template is not None:
        w.add_chat_template(s.chat_template)
    for key, value in s.extra_kv.items():
        w.add_uint32(key, value)
    kv = s.n_head_kv * s.head_dim
    _add_weight(w, "token_embd.weight", s.embd_type or s.wtype, n_vocab, s.n_embd, rng)
    for il in range(s.n_layer):
        w.add_tensor(f"blk.{il}.attn_norm.weight", (1 + 0.1 * rng.standard_normal(s.n_embd)).astype(np.float32))
        for name, rows, cols in (("attn_q", s.n_embd, s.n_embd), ("attn_k", kv, s.n_embd), ("attn_v", kv, s.n_embd),
                                 ("attn_output", s.n_embd, s.n_embd), ("ffn_gate", s.n_ff, s.n_embd),
                                 ("ffn_up", s.n_ff, s.n_embd), ("ffn_down", s.n_embd, s.n_ff)):
            _add_weight(w, f"blk.{il}.{name}.weight", s.wtype, rows, cols, rng)
        w.add_tensor(f"blk.{il}.ffn_norm.weight", (1 + 0.1 * rng.standard_normal(s.n_embd)).astype(np.float32))
    w.add_tensor("output_norm.weight", (1 + 0.1 * rng.standard_normal(s.n_embd)).astype(np.float32))
    if not s.tied:
        _add_weight(w, "output.weight", s.output_type or s.wtype, n_vocab, s.n_embd, rng)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def sized_model(path: Path, approx_bytes: int = 0, *, seed: int = 0) -> Path:
    """A model the engine runs (what `dte build` packs), about `approx_bytes` long: two F32 layers of width 128
    (~0.69 MB), the rest in the F32 embedding and output rows (1 KiB per token; at least 67 tokens)."""
    n_vocab = max(67, (approx_bytes - 700_000) // (2 * 128 * 4))
    return make_model(path, ModelSpec(n_vocab=n_vocab, n_embd=128, seed=seed))
