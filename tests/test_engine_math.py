"""Freestanding float math (firmware/engine/mathf.c) against numpy's libm, through the hosted library."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from dte_build.engine import load_library


@pytest.fixture(scope="module")
def lib() -> ctypes.CDLL:
    lib = load_library()
    for name in ("dte_expf", "dte_logf", "dte_sinf", "dte_cosf", "dte_tanhf", "dte_siluf", "dte_sqrtf"):
        getattr(lib, name).restype = ctypes.c_float
        getattr(lib, name).argtypes = [ctypes.c_float]
    lib.dte_powf.restype = ctypes.c_float
    lib.dte_powf.argtypes = [ctypes.c_float, ctypes.c_float]
    return lib


def ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance in float32 units in the last place."""
    ia = a.astype(np.float32).view(np.int32).astype(np.int64)
    ib = b.astype(np.float32).view(np.int32).astype(np.int64)
    ia = np.where(ia < 0, -(ia & 0x7FFFFFFF), ia)
    ib = np.where(ib < 0, -(ib & 0x7FFFFFFF), ib)
    return np.abs(ia - ib)


def apply(fn: object, xs: np.ndarray) -> np.ndarray:
    return np.array([fn(float(x)) for x in xs], dtype=np.float32)


RNG = np.random.default_rng(7)
CASES = {
    "dte_expf": (np.exp, np.concatenate([RNG.uniform(-87, 88, 3000), RNG.uniform(-1, 1, 1000)])),
    "dte_logf": (np.log, np.concatenate([RNG.uniform(1e-30, 1e-3, 1000), RNG.uniform(0.1, 1e6, 3000)])),
    "dte_sinf": (np.sin, np.concatenate([RNG.uniform(-10, 10, 2000), RNG.uniform(0, 70000, 2000)])),
    "dte_cosf": (np.cos, np.concatenate([RNG.uniform(-10, 10, 2000), RNG.uniform(0, 70000, 2000)])),
    "dte_tanhf": (np.tanh, RNG.uniform(-12, 12, 3000)),
    "dte_sqrtf": (np.sqrt, RNG.uniform(0, 1e9, 3000)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_within_one_ulp_of_libm(lib: ctypes.CDLL, name: str) -> None:
    ref_fn, xs = CASES[name]
    xs = xs.astype(np.float32)
    want = ref_fn(xs.astype(np.float64)).astype(np.float32)   # correctly rounded up to double rounding
    got = apply(getattr(lib, name), xs)
    assert ulps(got, want).max() <= 1


def test_silu_and_pow(lib: ctypes.CDLL) -> None:
    xs = RNG.uniform(-30, 30, 2000).astype(np.float32)
    x64 = xs.astype(np.float64)
    # ggml_silu_f32 is x / (1.0f + expf(-x)) in float: emulate it with a correctly rounded expf
    e32 = np.exp(-x64).astype(np.float32)
    ggml_silu = (xs / (np.float32(1) + e32)).astype(np.float32)
    assert ulps(apply(lib.dte_siluf, xs), ggml_silu).max() <= 1
    bases = RNG.uniform(1.0, 1e6, 500).astype(np.float32)
    exps = RNG.uniform(-1, 0, 500).astype(np.float32)
    got = np.array([lib.dte_powf(float(b), float(e)) for b, e in zip(bases, exps)], dtype=np.float32)
    assert ulps(got, np.power(bases.astype(np.float64), exps.astype(np.float64)).astype(np.float32)).max() <= 1


def test_special_values(lib: ctypes.CDLL) -> None:
    assert lib.dte_expf(-200.0) == 0.0
    assert np.isinf(lib.dte_expf(100.0))
    assert np.isnan(lib.dte_expf(float("nan")))
    assert np.isinf(lib.dte_logf(0.0)) and lib.dte_logf(0.0) < 0
    assert np.isnan(lib.dte_logf(-1.0))
    assert lib.dte_expf(0.0) == 1.0 and lib.dte_logf(1.0) == 0.0 and lib.dte_sinf(0.0) == 0.0
