"""The hosted engine's logits against llama.cpp itself (llama-cpp-python) on small random models.

Tolerance: max |dte - llama.cpp| <= 2e-3 * max(1, max |llama.cpp|), and the same argmax at every position.
Measured: Q8_0 bit-identical, F32 4e-5 relative, Q4_K 2e-7 relative (summation order of the SIMD kernels).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType as T

from dte_build.engine import Engine
from dte_build.paths import REPO_ROOT
from model_factory import ModelSpec, make_model

llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed (pip install llama-cpp-python)")
sys.path.insert(0, str(REPO_ROOT / "scripts"))
from llamacpp_ref import high_level  # noqa: E402  (llama.cpp's plain CPU path: see scripts/llamacpp_ref.py)

pytestmark = pytest.mark.slow   # the edit-test loop's fast tier leaves it out: `pytest -m "not slow"`

TOKENS = [1, 50, 60, 70, 80, 90, 300, 7]


@pytest.mark.parametrize("wtype", [T.F32, T.F16, T.Q8_0, T.Q4_0, T.Q5_1, T.Q4_K, T.Q6_K], ids=lambda t: t.name)
def test_logits_match_llama_cpp(tmp_path: Path, wtype: T) -> None:
    spec = ModelSpec(wtype=wtype, n_vocab=320, n_embd=256, n_ff=512, n_head=4, n_head_kv=2, n_ctx=64,
                     seed=int(wtype))
    path = make_model(tmp_path / "m.gguf", spec)
    with Engine(path, threads=2) as e:
        ours = np.stack([e.eval_numpy([t]) for t in TOKENS])
    model = high_level(path, n_ctx=64, n_threads=2)
    model.eval(TOKENS)
    theirs = np.array(model.scores[: len(TOKENS)], dtype=np.float64)
    model.close()
    tol = 2e-3 * max(1.0, float(np.abs(theirs).max()))
    assert float(np.abs(ours - theirs).max()) <= tol
    assert (ours.argmax(axis=1) == theirs.argmax(axis=1)).all()
