"""Shared by the quants and kernel tests: a ctypes view of the hosted quants library and random weight rows."""

from __future__ import annotations

import ctypes

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as T
from gguf import quants as gq

from _hostc import build, firmware

QUANTS_SOURCES = ("engine/quants.c", "engine/quants_dot.c", "engine/kernels.c")
LEGACY = [T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0]
K_TYPES = [T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K]


class Quants:
    """ctypes view of the hosted quants library."""

    def __init__(self, path: str) -> None:
        lib = ctypes.CDLL(path)
        vp, i64, u32, f32p = ctypes.c_void_p, ctypes.c_int64, ctypes.c_uint32, ctypes.POINTER(ctypes.c_float)
        sigs = {
            "dte_type_is_weight": (ctypes.c_bool, [u32]),
            "dte_type_block_elems": (i64, [u32]),
            "dte_type_block_bytes": (i64, [u32]),
            "dte_type_row_bytes": (i64, [u32, i64]),
            "dte_vec_dot_type": (u32, [u32]),
            "dte_dequantize_row": (None, [u32, vp, f32p, i64]),
            "dte_quantize_row": (None, [u32, f32p, vp, i64]),
            "dte_quantize_row_ref": (None, [u32, f32p, vp, i64]),
            "dte_vec_dot": (ctypes.c_float, [u32, i64, vp, vp]),
            "dte_vec_dot_ref": (ctypes.c_float, [u32, i64, vp, vp]),
            "dte_f16_to_f32": (ctypes.c_float, [ctypes.c_uint16]),
            "dte_f32_to_f16": (ctypes.c_uint16, [ctypes.c_float]),
            "dte_f32_to_bf16": (ctypes.c_uint16, [ctypes.c_float]),
        }
        for name, (res, args) in sigs.items():
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = res, args
        self.lib = lib

    def row_bytes(self, t: int, n: int) -> int:
        return int(self.lib.dte_type_row_bytes(int(t), n))

    def dequantize(self, t: int, data: np.ndarray, n: int) -> np.ndarray:
        data = np.ascontiguousarray(data)
        out = np.zeros(n, dtype=np.float32)
        self.lib.dte_dequantize_row(int(t), data.ctypes.data, out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), n)
        return out

    def quantize(self, t: int, x: np.ndarray, ref: bool = False) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        out = np.zeros(self.row_bytes(t, x.size), dtype=np.uint8)
        fn = self.lib.dte_quantize_row_ref if ref else self.lib.dte_quantize_row
        fn(int(t), x.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), out.ctypes.data, x.size)
        return out

    def vec_dot(self, t: int, n: int, w: np.ndarray, a: np.ndarray, ref: bool = True) -> float:
        w, a = np.ascontiguousarray(w), np.ascontiguousarray(a)
        fn = self.lib.dte_vec_dot_ref if ref else self.lib.dte_vec_dot
        return float(fn(int(t), n, w.ctypes.data, a.ctypes.data))


def load_quants() -> Quants:
    return Quants(str(build("quants", firmware(*QUANTS_SOURCES), shared=True)))


def random_weight_bytes(t: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """A row of n elements in type t: gguf-py quantization for the legacy types, random valid blocks for K types."""
    if t in (T.F32, T.F16):
        return gq.quantize(rng.standard_normal(n).astype(np.float32), t).view(np.uint8).ravel()
    if t in LEGACY or t == T.BF16:
        return gq.quantize(rng.standard_normal(n).astype(np.float32), t).ravel()
    block_elems, block_bytes = GGML_QUANT_SIZES[t]
    blocks = rng.integers(0, 256, size=(n // block_elems, block_bytes), dtype=np.uint8)
    scales = rng.uniform(1e-3, 2e-2, size=(blocks.shape[0], 2)).astype(np.float16).view(np.uint8)
    at = {T.Q2_K: 80, T.Q3_K: 108, T.Q4_K: 0, T.Q5_K: 0, T.Q6_K: 208}[t]   # offset of d (and dmin)
    width = 2 if t in (T.Q3_K, T.Q6_K) else 4
    blocks[:, at:at + width] = scales[:, :width]
    return blocks.ravel()
