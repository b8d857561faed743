"""quants.c and the generated kernels against llama.cpp's own ggml functions (the libggml shipped with
llama-cpp-python): dequantization must agree bit for bit, the activation quantizers
byte for byte with the x86 CPU path llama.cpp runs here, the dot products within rounding."""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
import pytest
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as T

from _quantlib import Quants, load_quants, random_weight_bytes
from dte_build.kernels import Isa, Jit, Target, kernel_ir

QUANT_TYPES = [T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K]
ACTIVATION = {T.Q4_0: T.Q8_0, T.Q5_0: T.Q8_0, T.Q8_0: T.Q8_0, T.Q4_1: T.Q8_1, T.Q5_1: T.Q8_1,
              **{t: T.Q8_K for t in (T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K)}}
F32P = ctypes.POINTER(ctypes.c_float)


class Ggml:
    """The ggml CPU functions llama.cpp itself calls (ggml-cpu/quants.c, ggml-quants.c)."""

    def __init__(self, lib_dir: Path) -> None:
        self.base = ctypes.CDLL(str(lib_dir / "libggml-base.so"), mode=ctypes.RTLD_GLOBAL)
        self.cpu = ctypes.CDLL(str(lib_dir / "libggml-cpu.so"))
        self.cpu.ggml_cpu_init()

    def dequantize(self, t: T, data: np.ndarray, n: int) -> np.ndarray:
        fn = getattr(self.base, f"dequantize_row_{t.name.lower().replace('_k', '_K')}")
        fn.argtypes, fn.restype = [ctypes.c_void_p, F32P, ctypes.c_int64], None
        out = np.zeros(n, dtype=np.float32)
        fn(np.ascontiguousarray(data).ctypes.data, out.ctypes.data_as(F32P), n)
        return out

    def quantize(self, t: T, x: np.ndarray, suffix: str = "") -> np.ndarray:
        fn = getattr(self.cpu, f"quantize_row_{t.name.lower().replace('_k', '_K')}{suffix}")
        fn.argtypes, fn.restype = [F32P, ctypes.c_void_p, ctypes.c_int64], None
        elems, size = GGML_QUANT_SIZES[t]
        size = 36 if t == T.Q8_1 else size  # gguf-py's Q8_1 size is stale (ggml-common.h: 2 halves + 32)
        out = np.zeros(x.size // elems * size, dtype=np.uint8)
        fn(np.ascontiguousarray(x, dtype=np.float32).ctypes.data_as(F32P), out.ctypes.data, x.size)
        return out

    def vec_dot(self, t: T, n: int, w: np.ndarray, a: np.ndarray, generic: bool) -> float:
        act = ACTIVATION[t].name.lower().replace("_k", "_K")
        fn = getattr(self.cpu, f"ggml_vec_dot_{t.name.lower().replace('_k', '_K')}_{act}{'_generic' if generic else ''}")
        fn.argtypes = [ctypes.c_int, F32P, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p,
                       ctypes.c_size_t, ctypes.c_int]
        fn.restype = None
        s = ctypes.c_float()
        fn(n, ctypes.byref(s), 0, w.ctypes.data, 0, a.ctypes.data, 0, 1)
        return s.value


@pytest.fixture(scope="module")
def ggml() -> Ggml:
    llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python (ships libggml) is not installed")
    lib_dir = Path(llama_cpp.__file__).parent / "lib"
    if not (lib_dir / "libggml-cpu.so").is_file():
        pytest.skip(f"no libggml-cpu.so under {lib_dir}")
    return Ggml(lib_dir)


@pytest.fixture(scope="module")
def q() -> Quants:
    return load_quants()


@pytest.mark.parametrize("t", QUANT_TYPES)
def test_dequantize_bit_exact(q: Quants, ggml: Ggml, t: T) -> None:
    n = GGML_QUANT_SIZES[t][0] * 12
    w = random_weight_bytes(t, n, np.random.default_rng(int(t)))
    assert np.array_equal(q.dequantize(t, w, n).view(np.uint32), ggml.dequantize(t, w, n).view(np.uint32))


@pytest.mark.parametrize("t", [T.Q8_0, T.Q8_1, T.Q8_K])
def test_activation_quantizers_byte_equal_llamacpp(q: Quants, ggml: Ggml, t: T) -> None:
    rng = np.random.default_rng(int(t))
    x = rng.standard_normal(256 * 16).astype(np.float32) * np.repeat(rng.uniform(0.01, 50, 16), 256)
    x[:256] = 0.0
    x[256:512] = np.round(x[256:512])  # integers: exact ties after scaling are likely
    assert np.array_equal(q.quantize(t, x), ggml.quantize(t, x)), "x86 CPU path"
    assert np.array_equal(q.quantize(t, x, ref=True), ggml.quantize(t, x, "_generic")), "reference"


@pytest.mark.parametrize("t", QUANT_TYPES)
def test_vec_dot_ref_matches_llamacpp(q: Quants, ggml: Ggml, t: T) -> None:
    """Against the ggml_vec_dot_* llama.cpp runs on this CPU: same integer sums, float order may differ.
    (The exported *_generic twins are not used: GCC contracts some of them to FMAs, and this build's
    q5_0 generic disagrees with its own SIMD version and with gguf-py.)"""
    rng = np.random.default_rng(int(t) + 1)
    for blocks in (1, 3, 16):
        n = GGML_QUANT_SIZES[t][0] * blocks
        w = random_weight_bytes(t, n, rng)
        a = q.quantize(ACTIVATION[t], rng.standard_normal(n).astype(np.float32))
        scale = float(np.abs(q.dequantize(t, w, n)) @ np.abs(q.dequantize(ACTIVATION[t], a, n)))
        assert abs(q.vec_dot(t, n, w, a) - ggml.vec_dot(t, n, w, a, generic=False)) <= 2e-6 * scale, (t.name, n)


@pytest.mark.parametrize("width", [256, 512])
def test_generated_kernels_close_to_llamacpp_simd(q: Quants, ggml: Ggml, width: int) -> None:
    host = Target.host()
    if "+avx2" not in host.features.split(","):
        pytest.skip("this host has no AVX2")
    jit = Jit(kernel_ir(Isa(width, intrinsics=width == 256), host.triple), host)
    rng = np.random.default_rng(width)
    for t in QUANT_TYPES:
        act = ACTIVATION[t].name.lower().replace("_k", "_K")
        fn = jit.function(f"dte_k_vec_dot_{t.name.lower().replace('_k', '_K')}_{act}")
        n = GGML_QUANT_SIZES[t][0] * 32
        w = random_weight_bytes(t, n, rng)
        a = q.quantize(ACTIVATION[t], rng.standard_normal(n).astype(np.float32))
        scale = float(np.abs(q.dequantize(t, w, n)) @ np.abs(q.dequantize(ACTIVATION[t], a, n)))
        assert abs(fn(n, w.ctypes.data, a.ctypes.data) - ggml.vec_dot(t, n, w, a, generic=False)) <= 1e-5 * scale
