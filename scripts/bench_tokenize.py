#!/usr/bin/env python3
"""Benchmark the engine's tokenizers against llama.cpp (llama-cpp-python 0.3.36) on the same text, same run.

Text: the licence corpus dte-tiny is trained on (every file of /usr/share/common-licenses, see
scripts/train_model.py), repeated to at least --min-mib MiB. Vocabularies: llama.cpp's ggml-vocab-llama-bpe.gguf
(Llama 3 BPE, llama3 pre-tokenizer), ggml-vocab-llama-spm.gguf (Llama 2 SentencePiece) and SmolLM2's (gpt2 BPE,
smollm pre-tokenizer). Both sides load the vocabulary only and tokenize the whole text in one call (add_special
false, parse_special false), best of --repeat; the ids are checked equal. Prints MB/s and the ratio
(dte / llama.cpp: above 1 means dte is faster).

    python scripts/bench_tokenize.py [--min-mib 1] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

LICENSES = Path("/usr/share/common-licenses")


def corpus(min_bytes: int) -> bytes:
    text = b"\n\n".join(p.read_bytes() for p in sorted(LICENSES.iterdir()) if p.is_file())
    return text * (min_bytes // len(text) + 1)


def best_time(fn, repeat: int) -> tuple[float, list[int]]:
    best, result = float("inf"), []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--min-mib", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import llama_cpp

    from dte_build.engine import Engine
    from dte_build.fetch import fetch

    tree = fetch("llama.cpp")
    vocabs = {"llama-bpe": tree / "models" / "ggml-vocab-llama-bpe.gguf",
              "llama-spm": tree / "models" / "ggml-vocab-llama-spm.gguf",
              "smollm2": fetch("smollm2-135m")}
    text = corpus(int(args.min_mib * (1 << 20)))
    rows = []
    for name, path in vocabs.items():
        ref = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
        with Engine(path, vocab_only=True) as engine:
            t_dte, ids_dte = best_time(lambda: engine.tokenize(text, add_bos=False), args.repeat)
        t_ref, ids_ref = best_time(lambda: ref.tokenize(text, add_bos=False), args.repeat)
        if ids_dte != ids_ref:
            print(f"{name}: ids differ from llama.cpp", file=sys.stderr)
            return 1
        mb = len(text) / 1e6
        rows.append({"vocab": name, "bytes": len(text), "tokens": len(ids_dte), "dte_mb_s": mb / t_dte,
                     "llama_cpp_mb_s": mb / t_ref, "ratio": t_ref / t_dte})
    load = os.getloadavg()[0]
    if args.json:
        print(json.dumps({"rows": rows, "load1": load}))
        return 0
    print(f"text: {len(text)} bytes; load average {load:.2f}")
    print(f"{'vocab':<10} {'tokens':>8} {'dte MB/s':>9} {'llama.cpp MB/s':>15} {'ratio':>6}")
    for r in rows:
        print(f"{r['vocab']:<10} {r['tokens']:>8} {r['dte_mb_s']:>9.2f} {r['llama_cpp_mb_s']:>15.2f} {r['ratio']:>6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
