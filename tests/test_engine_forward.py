"""The hosted C engine's logits against the independent numpy reference (tests/numpy_llama.py).

Tolerance: max |engine - reference| <= 2e-3 * max(1, max |reference|). Typical differences are ~1e-7 relative
(float32 vs float64 accumulation); now and then an activation lands on an F16/Q8 rounding boundary and the two
round it differently (seen: 4e-4 relative). A wrong RoPE layout, mask, GQA mapping or rounding point gives >= 1e-2.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType as T

from dte_build.engine import Engine
from model_factory import ALL_WEIGHT_TYPES, K_TYPES, ModelSpec, make_model
from numpy_llama import NumpyLlama

TOKENS = [1, 5, 7, 9, 11, 3]


def assert_close(engine: np.ndarray, ref: np.ndarray) -> None:
    tol = 2e-3 * max(1.0, float(np.abs(ref).max()))
    diff = float(np.abs(engine - ref).max())
    assert diff <= tol, f"max |diff| {diff:.3g} > tolerance {tol:.3g}"


def run_both(path: Path, tokens: list[int], threads: int = 2) -> tuple[np.ndarray, np.ndarray]:
    ref = NumpyLlama(path).forward(tokens)
    with Engine(path, threads=threads) as e:
        got = np.stack([e.eval_numpy([t]) for t in tokens])
    return got, ref


@pytest.mark.parametrize("wtype", ALL_WEIGHT_TYPES, ids=lambda t: t.name)
def test_every_weight_type_matches_numpy(tmp_path: Path, wtype: T) -> None:
    spec = ModelSpec(wtype=wtype, seed=int(wtype))
    if wtype in K_TYPES:  # 256-element super-blocks
        spec = ModelSpec(wtype=wtype, n_embd=256, n_ff=512, n_head=4, n_head_kv=2, n_layer=1, seed=int(wtype))
    got, ref = run_both(make_model(tmp_path / "m.gguf", spec), TOKENS[:4])
    assert_close(got, ref)


@pytest.mark.parametrize("spec", [
    ModelSpec(n_head=4, n_head_kv=1),                          # GQA, one KV head
    ModelSpec(n_head=8, n_head_kv=8, n_embd=64),               # plain multi-head
    ModelSpec(tied=True, n_vocab=61),                          # no output.weight, odd vocab
    ModelSpec(n_vocab=257, wtype=T.Q8_0, embd_type=T.F16),     # mixed types, odd vocab
    ModelSpec(n_rot=8, rope_base=500000.0),                    # partial rotary dims, Llama-3 base
    ModelSpec(alignment=64, eps=1e-6, n_layer=3),
], ids=["gqa1", "mha", "tied", "mixed", "partial_rope", "align64"])
def test_architecture_variants_match_numpy(tmp_path: Path, spec: ModelSpec) -> None:
    got, ref = run_both(make_model(tmp_path / "m.gguf", spec), TOKENS)
    assert_close(got, ref)


def test_batched_prompt_equals_token_by_token(tmp_path: Path) -> None:
    path = make_model(tmp_path / "m.gguf", ModelSpec(wtype=T.Q4_0, n_ctx=32))
    with Engine(path, threads=2) as e:
        single = [e.eval_numpy([t]) for t in TOKENS]
        e.reset()
        batched = e.eval_numpy(TOKENS)
        assert e.pos == len(TOKENS)
        e.reset()
        split = e.eval_numpy(TOKENS[:2])
        split = e.eval_numpy(TOKENS[2:])
    assert np.array_equal(batched, single[-1])
    assert np.array_equal(split, single[-1])


def test_thread_count_does_not_change_logits(tmp_path: Path) -> None:
    path = make_model(tmp_path / "m.gguf", ModelSpec(wtype=T.Q8_0))
    results = []
    for threads in (1, 2, 3):
        with Engine(path, threads=threads) as e:
            results.append(e.eval_numpy(TOKENS))
    assert np.array_equal(results[0], results[1]) and np.array_equal(results[0], results[2])


def test_context_limit(tmp_path: Path) -> None:
    path = make_model(tmp_path / "m.gguf", ModelSpec(n_ctx=64))
    with Engine(path, n_ctx=8, threads=1) as e:
        assert e.n_ctx == 8
        e.eval([1] * 8)
        with pytest.raises(Exception, match="context"):
            e.eval([1])


def test_two_engines_with_different_thread_counts(tmp_path: Path) -> None:
    path = make_model(tmp_path / "m.gguf", ModelSpec(wtype=T.Q8_0))
    with Engine(path, threads=1) as one, Engine(path, threads=3) as three:
        a = three.eval_numpy(TOKENS)
        b = one.eval_numpy(TOKENS)      # the pool goes back to 1 worker
        three.reset()
        c = three.eval_numpy(TOKENS)
    assert np.array_equal(a, b) and np.array_equal(a, c)
