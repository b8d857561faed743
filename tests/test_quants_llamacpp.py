"""quants.c and the generated kernels against llama.cpp's own ggml functions (the libggml shipped with
llama-cpp-python): dequantization must agree bit for bit, the activation quantizers
byte for byte with the x86 CPU path llama.cpp runs here, the dot products within rounding."""

from __future__ import annotations

import numpy as np
import pytest
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as T

from _quantlib import ACTIVATION, Ggml, Quants, load_ggml, load_quants, random_weight_bytes
from dte_build.kernels import Isa, Jit, Target, kernel_ir

pytestmark = pytest.mark.slow   # the edit-test loop's fast tier leaves it out: `pytest -m "not slow"`

QUANT_TYPES = [T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K]


@pytest.fixture(scope="module")
def ggml() -> Ggml:
    ggml = load_ggml()
    if ggml is None:
        pytest.skip("llama-cpp-python (which ships libggml) is not installed")
    return ggml


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


@pytest.mark.parametrize("t", QUANT_TYPES)
def test_llamacpp_quantized_rows_round_trip(q: Quants, ggml: Ggml, t: T) -> None:
    """Rows written by llama.cpp's own quantizer (as llama-quantize does) dequantize here as in ggml."""
    n = GGML_QUANT_SIZES[t][0] * 8
    x = np.random.default_rng(int(t) + 7).standard_normal(n).astype(np.float32)
    w = ggml.quantize(t, x, "_ref")
    got = q.dequantize(t, w, n)
    assert np.array_equal(got.view(np.uint32), ggml.dequantize(t, w, n).view(np.uint32))
    # a real quantization of unit-variance x: RMS error of the right order for the bit width
    bound = {T.Q8_0: 0.01, T.Q6_K: 0.03, T.Q5_0: 0.07, T.Q5_1: 0.07, T.Q5_K: 0.07, T.Q3_K: 0.25, T.Q2_K: 0.45}
    assert np.sqrt(np.mean((got - x) ** 2)) < bound.get(t, 0.12)
