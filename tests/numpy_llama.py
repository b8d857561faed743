"""Independent numpy reference of llama.cpp's llama forward pass, for testing the C engine.

Weights are dequantized with gguf-py (gguf.quants.dequantize). The points where ggml rounds are emulated,
because they move logits more than float accumulation order does: activations are quantized to each weight's
vec_dot type before a product (Q8_0/Q8_1 the x86 way, Q8_K, F16, BF16), K and V are stored as F16, q is rounded
to F16 for K.q and the softmax probabilities to F16 for V.p. Everything else runs in float64 with the textbook
formulas (RoPE angle pos * base^(-2i/n_rot), adjacent-pair rotation as GGML_ROPE_TYPE_NORM).
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
from gguf import GGMLQuantizationType as T

from _quantlib import np_quantize_q8_0_x86, np_quantize_q8_K

VEC_DOT_TYPE = {T.F32: T.F32, T.F16: T.F16, T.BF16: T.BF16, T.Q4_0: T.Q8_0, T.Q5_0: T.Q8_0, T.Q8_0: T.Q8_0,
                T.Q4_1: T.Q8_1, T.Q5_1: T.Q8_1, T.Q2_K: T.Q8_K, T.Q3_K: T.Q8_K, T.Q4_K: T.Q8_K, T.Q5_K: T.Q8_K,
                T.Q6_K: T.Q8_K}


def round_activation(act_type: T, x: np.ndarray) -> np.ndarray:
    """The values x takes after ggml quantizes it to act_type (float64 out)."""
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    if act_type == T.F32:
        return x32.astype(np.float64)
    if act_type == T.F16:
        return x32.astype(np.float16).astype(np.float64)
    if act_type == T.BF16:
        return gguf.quants.dequantize(gguf.quants.quantize(x32, T.BF16), T.BF16).astype(np.float64).reshape(x.shape)
    if act_type in (T.Q8_0, T.Q8_1):  # same scale and rounding on x86; Q8_1 only adds a sum field
        q = np_quantize_q8_0_x86(x32.ravel())
        return gguf.quants.dequantize(q, T.Q8_0).astype(np.float64).reshape(x.shape)
    d, qs, _ = np_quantize_q8_K(x32.ravel())
    return (d[:, None].astype(np.float64) * qs.astype(np.float64)).reshape(x.shape)


class NumpyLlama:
    def __init__(self, path: Path | str) -> None:
        r = gguf.GGUFReader(str(path))
        self.kv = {name: f.contents() for name, f in r.fields.items()}
        self.w: dict[str, tuple[T, np.ndarray]] = {}
        self.raw: dict[str, np.ndarray] = {}
        for t in r.tensors:
            self.raw[t.name] = np.asarray(t.data)
            arr = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64)
            self.w[t.name] = (T(t.tensor_type), arr.reshape([int(d) for d in reversed(t.shape)]))
        kv = self.kv
        self.n_embd = int(kv["llama.embedding_length"])
        self.n_layer = int(kv["llama.block_count"])
        self.n_head = int(kv["llama.attention.head_count"])
        self.n_head_kv = int(kv.get("llama.attention.head_count_kv", self.n_head))
        self.eps = float(kv["llama.attention.layer_norm_rms_epsilon"])
        self.base = float(kv.get("llama.rope.freq_base", 10000.0))
        self.head_dim = self.n_embd // self.n_head
        self.n_rot = int(kv.get("llama.rope.dimension_count", self.head_dim))
        self.reset()

    def reset(self) -> None:
        self.k_cache: list[list[np.ndarray]] = [[] for _ in range(self.n_layer)]
        self.v_cache: list[list[np.ndarray]] = [[] for _ in range(self.n_layer)]

    def matmul(self, name: str, x: np.ndarray) -> np.ndarray:
        wtype, w = self.w[name]
        a = round_activation(VEC_DOT_TYPE[wtype], x)
        y = a @ w.T
        if wtype in (T.Q4_1, T.Q5_1):
            y += self.q8_1_sum_correction(name, x, a)
        return y

    def q8_1_sum_correction(self, name: str, x: np.ndarray, a: np.ndarray) -> np.ndarray:
        """Q4_1/Q5_1 . Q8_1 adds m * s per block, where ggml stores s = d * sum(q) as F16 (block_q8_1.s), with d
        the float scale before its rounding to F16, so m * s differs slightly from m * sum(dequantized a)."""
        block_bytes = gguf.GGML_QUANT_SIZES[self.w[name][0]][1]
        blocks = self.raw[name].reshape(-1, block_bytes)
        m = blocks[:, 2:4].copy().view(np.float16).astype(np.float64)          # block_q4_1/q5_1: d, m, ...
        m = m.reshape(self.w[name][1].shape[0], -1)                               # [rows, blocks]
        xb = np.asarray(x, dtype=np.float32).reshape(-1, 32)
        d32 = np.abs(xb).max(axis=1) / np.float32(127)                           # d before rounding to F16
        d16 = d32.astype(np.float16).astype(np.float64)
        exact = a.reshape(-1, 32).sum(axis=1)                                     # d16 * sum(q)
        with np.errstate(invalid="ignore", divide="ignore"):
            qsum = np.where(d16 == 0, 0.0, exact / d16)
        s16 = (qsum.astype(np.float32) * d32).astype(np.float16).astype(np.float64)
        return m @ (s16 - exact)

    def rms_norm(self, x: np.ndarray, name: str) -> np.ndarray:
        x32 = x.astype(np.float32).astype(np.float64)
        return x32 / np.sqrt(np.mean(x32 * x32) + self.eps) * self.w[name][1]

    def rope(self, v: np.ndarray, pos: int) -> np.ndarray:
        out = v.copy()
        i = np.arange(self.n_rot // 2)
        theta = pos * self.base ** (-2.0 * i / self.n_rot)
        c, s = np.cos(theta), np.sin(theta)
        x0, x1 = v[:, 0:self.n_rot:2], v[:, 1:self.n_rot:2]
        out[:, 0:self.n_rot:2] = x0 * c - x1 * s
        out[:, 1:self.n_rot:2] = x0 * s + x1 * c
        return out

    def step(self, token: int) -> np.ndarray:
        """One token at the next position; returns its logits (float64)."""
        hd, pos = self.head_dim, len(self.k_cache[0])
        x = self.w["token_embd.weight"][1][token].copy()
        for il in range(self.n_layer):
            p = f"blk.{il}."
            h = self.rms_norm(x, p + "attn_norm.weight")
            q = self.rope(self.matmul(p + "attn_q.weight", h).reshape(self.n_head, hd), pos)
            k = self.rope(self.matmul(p + "attn_k.weight", h).reshape(self.n_head_kv, hd), pos)
            v = self.matmul(p + "attn_v.weight", h).reshape(self.n_head_kv, hd)
            self.k_cache[il].append(k.astype(np.float16).astype(np.float64))
            self.v_cache[il].append(v.astype(np.float16).astype(np.float64))
            K, V = np.stack(self.k_cache[il], axis=1), np.stack(self.v_cache[il], axis=1)  # [kv_head, pos, hd]
            out = np.empty((self.n_head, hd))
            group = self.n_head // self.n_head_kv
            for head in range(self.n_head):
                q16 = q[head].astype(np.float16).astype(np.float64)
                scores = K[head // group] @ q16 / np.sqrt(hd)
                prob = np.exp(scores - scores.max())
                prob /= prob.sum()
                out[head] = prob.astype(np.float16).astype(np.float64) @ V[head // group]
            x = x + self.matmul(p + "attn_output.weight", out.ravel())
            h = self.rms_norm(x, p + "ffn_norm.weight")
            gate, up = self.matmul(p + "ffn_gate.weight", h), self.matmul(p + "ffn_up.weight", h)
            x = x + self.matmul(p + "ffn_down.weight", gate / (1.0 + np.exp(-gate)) * up)
        h = self.rms_norm(x, "output_norm.weight")
        head = "output.weight" if "output.weight" in self.w else "token_embd.weight"
        return self.matmul(head, h)

    def forward(self, tokens: list[int]) -> np.ndarray:
        """Logits after each token, [len(tokens), n_vocab]."""
        return np.stack([self.step(t) for t in tokens])
