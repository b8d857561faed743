"""Thin wrapper over llama-cpp-python's low-level API: llama.cpp itself as the reference implementation.

Used by scripts/export_gguf.py (verify), scripts/record_llamacpp.py, scripts/bench_engine.py and the tests that
compare with llama.cpp. Only the C API is used (llama_tokenize, llama_decode, llama_get_logits_ith, ...), with
settings spelled out in SETTINGS so the recorded data says exactly how it was made; `high_level` opens
llama-cpp-python's Llama (its chat formatter, logits of every position) with the same model parameters.

Model parameters: llama.cpp's extra weight buffer types are off (`use_extra_bufts`: the repacked and AMX weight
layouts). On a CPU with AMX-INT8 this build crashes in ggml_backend_amx_mul_mat on SmolLM2's Q4_1 weights (SIGSEGV,
seen with gdb on the 2026-12-07 dev host) and its F16 logits move enough to flip a random test model's argmax; off,
llama.cpp runs its plain CPU kernels, the ones every x86 machine without AMX runs.
"""
from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

import numpy as np

# The llama.cpp tree vendored in llama-cpp-python 0.3.36 (from its sdist: .git/modules/vendor/llama.cpp/HEAD).
LLAMA_CPP_COMMIT = {"0.3.36": "0c1e57098bba43ac29e6e3b677cdceebdd22334f"}

SETTINGS: dict[str, Any] = {
    "n_threads": 1,
    "n_threads_batch": 1,
    "n_ctx": "model context_length",
    "n_batch": "n_ctx",
    "n_ubatch": "n_ctx",
    "type_k": "F16",
    "type_v": "F16",
    "flash_attn_type": "DISABLED",
    "use_extra_bufts": False,
    "add_special": True,
    "parse_special": False,
    "sampling": "greedy: argmax of llama_get_logits_ith(ctx, -1), lowest id on ties; stop after EOS",
    "prompt": "one llama_decode of llama_batch_get_one(prompt ids); then one token per llama_decode",
    "detokenize": "llama_token_to_piece(lstrip=0, special=False) per id, bytes concatenated, UTF-8 with replacement",
}

_LOG_CALLBACK = None


def quiet() -> None:
    """Route llama.cpp's log to nowhere (keeps the callback object alive for the process)."""
    global _LOG_CALLBACK
    import llama_cpp

    if _LOG_CALLBACK is None:
        _LOG_CALLBACK = llama_cpp.llama_log_callback(lambda level, text, data: None)
        llama_cpp.llama_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))
        llama_cpp.llama_backend_init()


def model_params() -> Any:
    """llama_model_default_params() with the extra buffer types off (see the module docstring)."""
    import llama_cpp

    params = llama_cpp.llama_model_default_params()
    params.use_extra_bufts = False
    return params


def high_level(path: str | Path, **kwargs: Any) -> Any:
    """llama_cpp.Llama on `path` with model_params() and the logits of every position kept (`scores[i]` is
    position i's); kwargs as Llama's (n_ctx, n_threads, ...)."""
    import llama_cpp
    import llama_cpp.llama_cpp as capi

    default = capi.llama_model_default_params
    capi.llama_model_default_params = model_params   # read once, inside Llama.__init__
    try:
        return llama_cpp.Llama(model_path=str(path), logits_all=True, verbose=False, **kwargs)
    finally:
        capi.llama_model_default_params = default


def version() -> dict[str, str]:
    import llama_cpp

    return {
        "llama_cpp_python": llama_cpp.__version__,
        "llama_cpp_commit": LLAMA_CPP_COMMIT.get(llama_cpp.__version__, "unknown"),
        "system_info": llama_cpp.llama_print_system_info().decode().strip(),
    }


class LlamaCpp:
    """One model + one context with SETTINGS; use as a context manager."""

    def __init__(self, path: Path, n_ctx: int | None = None) -> None:
        """n_ctx (also n_batch and n_ubatch): the model's context_length unless given (a smaller one for a model
        with a long context: the batch's attention buffers grow with its square)."""
        import llama_cpp

        quiet()
        self.L = llama_cpp
        mp = model_params()
        self.model = llama_cpp.llama_model_load_from_file(str(path).encode(), mp)
        if not self.model:
            raise RuntimeError(f"llama.cpp could not load {path}")
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)
        self.n_ctx = n_ctx or llama_cpp.llama_model_n_ctx_train(self.model)
        self.eos = llama_cpp.llama_vocab_eos(self.vocab)
        cp = llama_cpp.llama_context_default_params()
        cp.n_ctx = cp.n_batch = cp.n_ubatch = self.n_ctx
        cp.n_threads = cp.n_threads_batch = 1
        cp.type_k = cp.type_v = 1  # GGML_TYPE_F16
        cp.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        self.ctx = llama_cpp.llama_init_from_model(self.model, cp)
        if not self.ctx:
            raise RuntimeError(f"llama.cpp could not create a context for {path}")

    def __enter__(self) -> "LlamaCpp":
        return self

    def __exit__(self, *exc: object) -> None:
        self.L.llama_free(self.ctx)
        self.L.llama_model_free(self.model)

    def tokenize(self, text: str, add_special: bool = True, parse_special: bool = False) -> list[int]:
        """llama_tokenize: add_special adds BOS when the vocabulary asks for it; parse_special reads special
        tokens' texts (`<|im_start|>`) as those tokens (a chat prompt: add_special False, parse_special True)."""
        raw = text.encode("utf-8")
        cap = len(raw) + 16
        buf = (self.L.llama_token * cap)()
        n = self.L.llama_tokenize(self.vocab, raw, len(raw), buf, cap, add_special, parse_special)
        if n < 0:
            raise RuntimeError(f"llama_tokenize needs {-n} slots")
        return list(buf[:n])

    def piece(self, tok: int) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = self.L.llama_token_to_piece(self.vocab, tok, buf, len(buf), 0, False)
        if n < 0:
            raise RuntimeError(f"llama_token_to_piece needs {-n} bytes")
        return buf.raw[:n]

    def detokenize(self, ids: list[int]) -> str:
        return b"".join(self.piece(t) for t in ids).decode("utf-8", errors="replace")

    def _decode(self, ids: list[int]) -> np.ndarray:
        arr = (self.L.llama_token * len(ids))(*ids)
        rc = self.L.llama_decode(self.ctx, self.L.llama_batch_get_one(arr, len(ids)))
        if rc != 0:
            raise RuntimeError(f"llama_decode failed: {rc}")
        ptr = self.L.llama_get_logits_ith(self.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).copy()

    def _reset(self) -> None:
        self.L.llama_memory_clear(self.L.llama_get_memory(self.ctx), True)

    def prompt_logits(self, ids: list[int]) -> np.ndarray:
        """Logits after the last prompt token (float32, n_vocab)."""
        self._reset()
        return self._decode(ids)

    def one_token_logits(self, ids: list[int]) -> np.ndarray:
        """Logits after the last prompt token with the prompt fed one token per llama_decode (llama.cpp's other
        evaluation path: its own batched-vs-one-token spread is how far its numbers move by themselves)."""
        self._reset()
        for tok in ids:
            logits = self._decode([tok])
        return logits

    def greedy(self, ids: list[int], n: int) -> tuple[list[int], np.ndarray, list[float]]:
        """Greedy continuation: (new ids, first-position logits, top-1 minus top-2 logit at each step)."""
        steps, first = self.greedy_steps(ids, n)
        return [s[0] for s in steps], first, [s[2] for s in steps]

    def greedy_steps(self, ids: list[int], n: int) -> tuple[list[tuple[int, int, float]], np.ndarray]:
        """Greedy continuation as (chosen id, runner-up id, top-1 minus top-2 logit) per step (the last step
        chooses EOS when it stopped there), and the first-position logits."""
        self._reset()
        logits = self._decode(ids)
        first = logits
        steps: list[tuple[int, int, float]] = []
        while len(steps) < n and len(ids) + len(steps) < self.n_ctx:
            tok, second = (int(i) for i in np.argsort(-logits, kind="stable")[:2])   # ties: the lowest id first
            steps.append((tok, second, float(logits[tok] - logits[second])))
            if tok == self.eos:
                break
            logits = self._decode([tok])
        return steps, first
