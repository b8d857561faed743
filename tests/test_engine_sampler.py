"""Sampler (firmware/engine/sampler.c): greedy, seeded determinism, top-k/top-p support, and the sampled
distribution against softmax(logits / temp) computed with numpy."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from dte_build.engine import load_library

STAGE = ctypes.CFUNCTYPE(ctypes.c_float, ctypes.c_void_p, ctypes.c_int32, ctypes.c_float)


class Sampler:
    def __init__(self, lib: ctypes.CDLL, n_vocab: int, temp: float, top_k: int, top_p: float, seed: int) -> None:
        self.lib, self.n = lib, n_vocab
        self.state = ctypes.create_string_buffer(512)  # >= sizeof(dte_sampler)
        lib.dte_sampler_init.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_float, ctypes.c_int32,
                                         ctypes.c_float, ctypes.c_uint64]
        lib.dte_sample.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_float)]
        lib.dte_sample.restype = ctypes.c_int32
        lib.dte_sampler_set_stage.argtypes = [ctypes.c_void_p, STAGE, ctypes.c_void_p]
        assert lib.dte_sampler_init(self.state, n_vocab, temp, top_k, top_p, seed) == 0

    def sample(self, logits: np.ndarray) -> int:
        buf = (ctypes.c_float * self.n)(*logits.astype(np.float32))
        return int(self.lib.dte_sample(self.state, buf))


@pytest.fixture(scope="module")
def lib() -> ctypes.CDLL:
    return load_library()


LOGITS = np.array([0.5, 2.0, -1.0, 1.5, 0.0, 1.9, -3.0, 0.7], dtype=np.float32)


def test_greedy_is_argmax(lib: ctypes.CDLL) -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        logits = rng.standard_normal(1000).astype(np.float32)
        assert Sampler(lib, 1000, 0.0, 40, 0.95, 1).sample(logits) == int(np.argmax(logits))


def test_same_seed_same_tokens(lib: ctypes.CDLL) -> None:
    def run(seed: int) -> list[int]:
        s = Sampler(lib, len(LOGITS), 1.0, 0, 1.0, seed)
        return [s.sample(LOGITS) for _ in range(200)]

    assert run(42) == run(42)
    assert run(42) != run(43)


def test_distribution_matches_softmax(lib: ctypes.CDLL) -> None:
    temp, n = 0.7, 20000
    s = Sampler(lib, len(LOGITS), temp, 0, 1.0, 5)
    counts = np.bincount([s.sample(LOGITS) for _ in range(n)], minlength=len(LOGITS))
    p = np.exp((LOGITS - LOGITS.max()) / temp)
    p /= p.sum()
    expected = p * n
    chi2 = float((((counts - expected) ** 2) / np.maximum(expected, 1e-9))[expected > 5].sum())
    assert chi2 < 30.0  # 7 degrees of freedom: p < 1e-4 under the right distribution


def test_top_k_and_top_p_restrict_support(lib: ctypes.CDLL) -> None:
    order = np.argsort(-LOGITS)
    s = Sampler(lib, len(LOGITS), 5.0, 3, 1.0, 9)
    assert {s.sample(LOGITS) for _ in range(500)} == set(order[:3].tolist())
    p = np.exp(LOGITS - LOGITS.max())
    p /= p.sum()
    need = int(np.searchsorted(np.cumsum(p[order]), 0.6) + 1)   # smallest prefix with mass >= 0.6
    for temp in (1.0, 3.0):  # the cut uses the untempered distribution (llama.cpp's order), whatever temp is
        s = Sampler(lib, len(LOGITS), temp, 0, 0.6, 9)
        assert {s.sample(LOGITS) for _ in range(500)} == set(order[:need].tolist())


def test_stage_hook_sees_and_changes_logits(lib: ctypes.CDLL) -> None:
    seen: list[int] = []

    def stage(_user: object, token: int, logit: float) -> float:
        seen.append(token)
        return 10.0 if token == 6 else logit

    cb = STAGE(stage)
    s = Sampler(lib, len(LOGITS), 0.0, 0, 1.0, 1)
    lib.dte_sampler_set_stage(s.state, cb, None)
    assert s.sample(LOGITS) == 6
    assert seen == list(range(len(LOGITS)))
