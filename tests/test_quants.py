"""firmware/engine/quants*.c against gguf-py (ggml's numerics in numpy) and numpy reimplementations of ggml's formulas."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as T
from gguf import quants as gq

from _quantlib import (
    K_TYPES,
    LEGACY,
    Quants,
    load_quants,
    np_quantize_q8_0_x86,
    np_quantize_q8_K,
    random_weight_bytes,
)

WEIGHT_TYPES = [T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K]
VEC_DOT_TYPE = {T.Q4_0: T.Q8_0, T.Q5_0: T.Q8_0, T.Q8_0: T.Q8_0, T.Q4_1: T.Q8_1, T.Q5_1: T.Q8_1,
                **{t: T.Q8_K for t in K_TYPES}, T.F32: T.F32, T.F16: T.F16, T.BF16: T.BF16}


@pytest.fixture(scope="module")
def q() -> Quants:
    return load_quants()


# ---- independent (numpy) views of ggml block layouts, from ggml-common.h ----

def np_dequantize_activation(t: int, data: np.ndarray, n: int) -> np.ndarray:
    if t in (T.F32, T.F16, T.BF16):
        return gq.dequantize(data, t).astype(np.float64).ravel()
    if t == T.Q8_0:
        return gq.dequantize(data, T.Q8_0).astype(np.float64).ravel()
    if t == T.Q8_1:
        b = data.reshape(-1, 36)
        return (b[:, :2].copy().view(np.float16).astype(np.float64) * b[:, 4:].view(np.int8)).ravel()
    b = data.reshape(-1, 292)
    return (b[:, :4].copy().view(np.float32).astype(np.float64) * b[:, 4:260].view(np.int8)).ravel()


# ---- tests ----

@pytest.mark.parametrize("t", WEIGHT_TYPES + [T.Q8_1, T.Q8_K])
def test_block_sizes_match_ggml(q: Quants, t: T) -> None:
    elems, size = GGML_QUANT_SIZES[t]
    if t == T.Q8_1:
        size = 36  # gguf-py's table still has the old float d/s layout; ggml-common.h: 2 halves + 32 int8
    assert q.lib.dte_type_block_elems(int(t)) == elems
    assert q.lib.dte_type_block_bytes(int(t)) == size
    assert q.row_bytes(t, elems * 3) == size * 3
    assert q.lib.dte_type_is_weight(int(t)) == (t in WEIGHT_TYPES)
    assert q.lib.dte_vec_dot_type(int(t)) == (VEC_DOT_TYPE.get(t, t))


def test_unknown_types_and_bad_sizes(q: Quants) -> None:
    assert q.lib.dte_type_block_bytes(4) == 0 and q.lib.dte_type_block_bytes(999) == 0
    assert q.row_bytes(T.Q4_0, 33) == -1
    assert q.row_bytes(T.Q4_K, 2**62) == -1 or q.row_bytes(T.Q4_K, 2**62) == 2**62 // 256 * 144
    assert q.row_bytes(999, 32) == -1


def test_f16_conversions_exhaustive(q: Quants) -> None:
    halves = np.arange(65536, dtype=np.uint32).astype(np.uint16)
    expected = halves.view(np.float16).astype(np.float32)
    got = np.array([q.lib.dte_f16_to_f32(int(h)) for h in halves], dtype=np.float32)
    finite = np.isfinite(expected)
    assert np.array_equal(got[finite].view(np.uint32), expected[finite].view(np.uint32))
    assert np.isnan(got[np.isnan(expected)]).all()


def test_f32_to_f16_rounding(q: Quants) -> None:
    rng = np.random.default_rng(1)
    # every range: subnormal halves, normals, ties (exact midpoints), overflow to inf
    halves = np.arange(0, 0x7C00, dtype=np.uint16).view(np.float16).astype(np.float32)
    mids = ((halves[:-1] + halves[1:]) / np.float32(2))[::37]  # exact ties between neighbouring halves
    xs = np.concatenate([
        rng.standard_normal(3000).astype(np.float32) * 10.0 ** rng.integers(-9, 6, 3000),
        np.float32([0.0, -0.0, 65504.0, 65519.0, 65520.0, 1e9, -1e9, 2.0**-24, 2.0**-25, 2.0**-25 * 1.0001,
                    2.0**-24 * 1.5, 2.0**-24 * 2.5, 5.9604645e-08, 6.1035156e-05, 6.097555e-05, np.inf, -np.inf]),
        mids, -mids, mids * np.float32(1 + 2.0**-20),
    ]).astype(np.float32)
    with np.errstate(over="ignore"):
        expected = xs.astype(np.float16).view(np.uint16)
    got = np.array([q.lib.dte_f32_to_f16(float(x)) for x in xs], dtype=np.uint16)
    assert np.array_equal(got, expected), xs[got != expected][:5]
    assert q.lib.dte_f32_to_f16(float("nan")) & 0x7E00 == 0x7E00


def test_f32_to_bf16_matches_gguf(q: Quants) -> None:
    rng = np.random.default_rng(2)
    xs = np.concatenate([rng.standard_normal(2000).astype(np.float32) * 1e3,
                         np.float32([0.0, -0.0, np.inf, -np.inf, np.nan, 3.3895314e38])]).astype(np.float32)
    with np.errstate(over="ignore"):
        expected = gq.quantize(xs, T.BF16).view(np.uint16)
    got = np.array([q.lib.dte_f32_to_bf16(float(x)) for x in xs], dtype=np.uint16)
    assert np.array_equal(got[:-1], expected[:-1])
    assert got[-2] & 0x7FC0 == 0x7FC0  # NaN kept, quiet


@pytest.mark.parametrize("t", WEIGHT_TYPES)
def test_dequantize_matches_gguf(q: Quants, t: T) -> None:
    rng = np.random.default_rng(int(t) + 10)
    n = GGML_QUANT_SIZES[t][0] * 16 if t not in (T.F32, T.F16, T.BF16) else 512
    data = random_weight_bytes(t, n, rng)
    expected = gq.dequantize(data.view(np.float32) if t == T.F32 else
                             data.view(np.float16) if t == T.F16 else data, t).astype(np.float32).ravel()
    got = q.dequantize(t, data, n)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


def test_quantize_ref_q8_0_byte_equal_gguf(q: Quants) -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal(32 * 64).astype(np.float32)
    x[:32] = 0.0                                           # an all-zero block
    x[32:64] = np.arange(32, dtype=np.float32) - 15.5       # ties after scaling
    expected = gq.quantize(x, T.Q8_0).ravel()
    assert np.array_equal(q.quantize(T.Q8_0, x, ref=True), expected)


def test_quantize_x86_q8_0_matches_llamacpp_formula(q: Quants) -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_normal(32 * 64).astype(np.float32)
    x[:32] = 0.0
    x[64:96] = np.float32(127.0 / 254.0) * (np.arange(32) - 16)  # exact .5 ties: even vs away differ
    assert np.array_equal(q.quantize(T.Q8_0, x), np_quantize_q8_0_x86(x))


@pytest.mark.parametrize("ref", [True, False])
def test_quantize_q8_1_sum_field(q: Quants, ref: bool) -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal(32 * 16).astype(np.float32)
    blocks = q.quantize(T.Q8_1, x, ref=ref).reshape(-1, 36)
    as_q8_0 = q.quantize(T.Q8_0, x, ref=ref).reshape(-1, 34)
    assert np.array_equal(blocks[:, :2], as_q8_0[:, :2]) and np.array_equal(blocks[:, 4:], as_q8_0[:, 2:])
    d32 = np.abs(x.reshape(-1, 32)).max(axis=1) / np.float32(127)
    sums = blocks[:, 4:].view(np.int8).sum(axis=1).astype(np.float32)
    assert np.array_equal(blocks[:, 2:4].copy().view(np.float16).ravel(), (sums * d32).astype(np.float16))


def test_quantize_q8_K_matches_reference_formula(q: Quants) -> None:
    rng = np.random.default_rng(6)
    x = rng.standard_normal(256 * 8).astype(np.float32)
    x[:256] = 0.0
    x[256:512] = np.where(np.arange(256) % 2 == 0, 1.0, -1.0)  # ±amax in one block: no -128
    got = q.quantize(T.Q8_K, x).reshape(-1, 292)
    d, qs, bsums = np_quantize_q8_K(x)
    assert np.array_equal(got[:, :4].copy().view(np.float32).ravel(), d)
    assert np.array_equal(got[:, 4:260].view(np.int8), qs)
    assert np.array_equal(got[:, 260:].copy().view(np.int16), bsums)
    assert got[:, 4:260].view(np.int8).min() >= -127


@pytest.mark.parametrize("t", [T.F16, T.BF16, T.F32])
def test_quantize_float_activations(q: Quants, t: T) -> None:
    x = np.random.default_rng(7).standard_normal(256).astype(np.float32)
    expected = x.view(np.uint8) if t == T.F32 else gq.quantize(x, t).view(np.uint8).ravel()
    assert np.array_equal(q.quantize(t, x), expected)


@pytest.mark.parametrize("t", WEIGHT_TYPES)
@pytest.mark.parametrize("blocks", [1, 7])
def test_vec_dot_ref_matches_numpy(q: Quants, t: T, blocks: int) -> None:
    rng = np.random.default_rng(int(t) * 31 + blocks)
    n = (GGML_QUANT_SIZES[t][0] if t not in (T.F32, T.F16, T.BF16) else 256) * blocks
    w = random_weight_bytes(t, n, rng)
    at = VEC_DOT_TYPE[t]
    a = q.quantize(at, rng.standard_normal(n).astype(np.float32))
    wd = gq.dequantize(w.view(np.float32) if t == T.F32 else w.view(np.float16) if t == T.F16 else w, t)
    wd = wd.astype(np.float64).ravel()
    ad = np_dequantize_activation(at, a.view(np.float32) if at == T.F32 else
                                  a.view(np.float16) if at == T.F16 else a, n)
    expected = float(wd @ ad)
    scale = float(np.abs(wd) @ np.abs(ad))
    # Q4_1/Q5_1 use the fp16-rounded s = d*sum of the activation block for the min term
    rel = 2e-3 if t in (T.Q4_1, T.Q5_1) else 1e-5
    got = q.vec_dot(t, n, w, a)
    assert abs(got - expected) <= rel * scale + 1e-6, (got, expected)
    assert q.vec_dot(t, n, w, a, ref=False) == pytest.approx(got, rel=1e-4, abs=1e-4 * scale)


def test_vec_dot_zero_activations(q: Quants) -> None:
    rng = np.random.default_rng(8)
    for t in LEGACY + K_TYPES:
        n = GGML_QUANT_SIZES[t][0] * 2
        a = q.quantize(VEC_DOT_TYPE[t], np.zeros(n, dtype=np.float32))
        assert not a.any()
        assert q.vec_dot(t, n, random_weight_bytes(t, n, rng), a) == 0.0


# RMS error of each K quantizer on unit-variance data, as llama.cpp's quantize_row_q*_K_ref measured it
# (tests/test_quants_llamacpp.py prints the same quantity): ours must be within 1.35x of it.
LLAMACPP_K_RMSE = {T.Q2_K: 0.297, T.Q3_K: 0.151, T.Q4_K: 0.069, T.Q5_K: 0.037, T.Q6_K: 0.0167}


@pytest.mark.parametrize("t", K_TYPES)
def test_k_quantizer_round_trips_through_gguf(q: Quants, t: T) -> None:
    rng = np.random.default_rng(int(t) + 7)
    x = rng.standard_normal(256 * 8).astype(np.float32)
    x[:256] *= 1e-3            # a block of tiny values
    x[256:512] = np.abs(x[256:512])  # an all-positive block (min 0)
    w = q.quantize_k(t, x)
    back = gq.dequantize(w, t).astype(np.float32).ravel()
    np.testing.assert_allclose(q.dequantize(t, w, x.size), back, rtol=1e-6, atol=1e-9)
    rmse = np.sqrt(np.mean((back[512:] - x[512:]) ** 2))
    assert rmse < 1.35 * LLAMACPP_K_RMSE[t], rmse
    assert np.sqrt(np.mean((back[:256] - x[:256]) ** 2)) < 1.35 * LLAMACPP_K_RMSE[t] * 1e-3 * 2


def test_k_quantizer_rejects_other_types(q: Quants) -> None:
    with pytest.raises(ValueError):
        q.quantize_k(T.Q4_0, np.zeros(256, dtype=np.float32))
    x, out = np.zeros(300, dtype=np.float32), np.zeros(1024, dtype=np.uint8)
    assert q.lib.dte_quantize_row_k(int(T.Q4_K), x.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                                    out.ctypes.data, 300) == -1  # not a whole super-block
    assert not out.any()
