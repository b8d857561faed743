"""llama.cpp (llama-cpp-python) as the reference implementation, loaded the way the engine tests need it.

Weight repacking (llama.cpp's CPU "extra buffer types") is turned off: on AVX-512 hosts the repacked Q8_0 path of
llama-cpp-python 0.3.36 crashes in llama_decode (segfault, seen on this project's build machines), and the plain
ggml-cpu dot products are the ones whose numerics the engine follows (ggml_vec_dot_* per row).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed (pip install llama-cpp-python)")


def load(path: Path, n_ctx: int, threads: int = 2, **kwargs: Any) -> Any:
    """A llama_cpp.Llama with logits for every position and no weight repacking."""
    import llama_cpp.llama as module

    original = module.llama_cpp.llama_model_default_params

    def params() -> Any:
        p = original()
        p.use_extra_bufts = False
        return p

    module.llama_cpp.llama_model_default_params = params
    try:
        return llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_threads=threads, logits_all=True, verbose=False,
                               **kwargs)
    finally:
        module.llama_cpp.llama_model_default_params = original
