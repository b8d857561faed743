"""llama.cpp (llama-cpp-python 0.3.36) as the tests' reference engine.

`load` opens a model with llama.cpp's extra weight buffer types off (`use_extra_bufts`: the repacked and AMX
weight layouts). On a CPU with AMX-INT8 this build crashes in ggml_backend_amx_mul_mat on SmolLM2's Q4_1 weights
(SIGSEGV, seen with gdb on the 2026-12-07 dev host) and its F16 logits move enough to flip a random test model's
argmax; with them off, llama.cpp runs its plain CPU kernels, the ones every other x86 machine runs. Logits of every
position are kept (`logits_all`), so `scores[i]` is position i's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is the reference")
import llama_cpp.llama_cpp as _capi  # noqa: E402

_default_params = _capi.llama_model_default_params


def _model_params() -> Any:
    params = _default_params()
    params.use_extra_bufts = False
    return params


def load(path: str | Path, **kwargs: Any) -> Any:
    """llama_cpp.Llama on `path` without the extra buffer types; kwargs as Llama's (n_ctx, n_threads, ...)."""
    _capi.llama_model_default_params = _model_params   # read once, inside Llama.__init__
    try:
        return llama_cpp.Llama(model_path=str(path), logits_all=True, verbose=False, **kwargs)
    finally:
        _capi.llama_model_default_params = _default_params


def greedy(llm: Any, prompt_ids: list[int], n: int) -> tuple[list[int], list[float], np.ndarray]:
    """llama.cpp's greedy continuation (the prompt in one batch, then one token at a time, as dte generates),
    stopping before EOS; the top-2 logit gap at each step; the logits after the prompt."""
    llm.reset()
    llm.eval(prompt_ids)
    first = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float64)
    ids: list[int] = []
    gaps: list[float] = []
    for _ in range(n):
        logits = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float64)
        top2 = np.sort(logits)[-2:]
        token = int(np.argmax(logits))
        gaps.append(float(top2[1] - top2[0]))
        if token == llm.token_eos():
            break
        ids.append(token)
        llm.eval([token])
    return ids, gaps, first
