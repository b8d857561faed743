"""Shared by the quants and kernel tests: a ctypes view of the hosted quants library and random weight rows."""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as T
from gguf import quants as gq

from _hostc import build, firmware

QUANTS_SOURCES = ("engine/quants.c", "engine/quants_dot.c", "engine/quants_matmul.c", "engine/kernels.c",
                  "engine/quants_k_quantize.c", "engine/layout.c")
LEGACY = [T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0]
K_TYPES = [T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K]
ACTIVATION = {T.Q4_0: T.Q8_0, T.Q5_0: T.Q8_0, T.Q8_0: T.Q8_0, T.Q4_1: T.Q8_1, T.Q5_1: T.Q8_1,
              **{t: T.Q8_K for t in K_TYPES}}
F32P = ctypes.POINTER(ctypes.c_float)


def ggml_name(t: T) -> str:
    return t.name.lower().replace("_k", "_K")


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
            "dte_quantize_row_k": (ctypes.c_int, [u32, f32p, vp, i64]),
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

    def quantize_k(self, t: int, x: np.ndarray) -> np.ndarray:
        """Weights to a K-quant type with quants_k_quantize.c."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        out = np.zeros(self.row_bytes(t, x.size), dtype=np.uint8)
        rc = self.lib.dte_quantize_row_k(int(t), x.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), out.ctypes.data,
                                         x.size)
        if rc != 0:
            raise ValueError(f"dte_quantize_row_k({t}, n={x.size}) failed")
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


class Ggml:
    """The ggml CPU functions llama.cpp itself calls (ggml-cpu/quants.c, ggml-quants.c)."""

    def __init__(self, lib_dir: Path) -> None:
        self.base = ctypes.CDLL(str(lib_dir / "libggml-base.so"), mode=ctypes.RTLD_GLOBAL)
        self.cpu = ctypes.CDLL(str(lib_dir / "libggml-cpu.so"))
        self.cpu.ggml_cpu_init()

    def dequantize(self, t: T, data: np.ndarray, n: int) -> np.ndarray:
        fn = getattr(self.base, f"dequantize_row_{ggml_name(t)}")
        fn.argtypes, fn.restype = [ctypes.c_void_p, F32P, ctypes.c_int64], None
        out = np.zeros(n, dtype=np.float32)
        fn(np.ascontiguousarray(data).ctypes.data, out.ctypes.data_as(F32P), n)
        return out

    def quantize(self, t: T, x: np.ndarray, suffix: str = "") -> np.ndarray:
        """ggml's quantize_row_<t><suffix>: suffix "" is the CPU path llama.cpp runs, "_generic" the reference,
        "_ref" (libggml-base: every weight type, K-quants included) what llama-quantize writes to files."""
        lib = self.base if suffix == "_ref" else self.cpu
        fn = getattr(lib, f"quantize_row_{ggml_name(t)}{suffix}")
        fn.argtypes, fn.restype = [F32P, ctypes.c_void_p, ctypes.c_int64], None
        elems, size = GGML_QUANT_SIZES[t]
        size = 36 if t == T.Q8_1 else size  # gguf-py's Q8_1 size is stale (ggml-common.h: 2 halves + 32)
        out = np.zeros(x.size // elems * size, dtype=np.uint8)
        fn(np.ascontiguousarray(x, dtype=np.float32).ctypes.data_as(F32P), out.ctypes.data, x.size)
        return out

    def vec_dot(self, t: T, n: int, w: np.ndarray, a: np.ndarray, generic: bool) -> float:
        act = ggml_name(ACTIVATION[t])
        fn = getattr(self.cpu, f"ggml_vec_dot_{ggml_name(t)}_{act}{'_generic' if generic else ''}")
        fn.argtypes = [ctypes.c_int, F32P, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p,
                       ctypes.c_size_t, ctypes.c_int]
        fn.restype = None
        s = ctypes.c_float()
        fn(n, ctypes.byref(s), 0, w.ctypes.data, 0, a.ctypes.data, 0, 1)
        return s.value


def load_ggml() -> Ggml | None:
    """llama.cpp's libggml from llama-cpp-python, or None when that is not installed."""
    try:
        import llama_cpp
    except ImportError:
        return None
    lib_dir = Path(llama_cpp.__file__).parent / "lib"
    return Ggml(lib_dir) if (lib_dir / "libggml-cpu.so").is_file() else None


# ---- independent (numpy) views of ggml's activation quantizers, from ggml-common.h / ggml-quants.c ----

def np_quantize_q8_0_x86(x: np.ndarray) -> np.ndarray:
    """llama.cpp's x86 quantize_row_q8_0: d = amax/127, id = 127/amax, round half to even."""
    b = x.reshape(-1, 32).astype(np.float32)
    amax = np.abs(b).max(axis=1, keepdims=True)
    d = amax / np.float32(127)
    with np.errstate(divide="ignore"):
        idv = np.where(amax == 0, np.float32(0), np.float32(127) / amax).astype(np.float32)
    qs = np.rint(b * idv).astype(np.int8)
    return np.concatenate([d.astype(np.float16).view(np.uint8), qs.view(np.uint8)], axis=1).ravel()


def np_quantize_q8_K(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ggml quantize_row_q8_K_ref: iscale = -127/(value of largest magnitude), nearest (ties even), min 127."""
    b = x.reshape(-1, 256).astype(np.float32)
    idx = np.abs(b).argmax(axis=1)
    mx = b[np.arange(b.shape[0]), idx][:, None]
    with np.errstate(divide="ignore"):
        iscale = np.where(mx == 0, np.float32(0), np.float32(-127) / mx).astype(np.float32)
    qs = np.minimum(np.rint(iscale * b), 127).astype(np.int8)
    with np.errstate(divide="ignore"):
        d = np.where(mx == 0, np.float32(0), np.float32(1) / iscale).astype(np.float32)
    return d.ravel(), qs, qs.reshape(-1, 16, 16).sum(axis=2, dtype=np.int32)
