#!/usr/bin/env python3
"""Record llama.cpp's tokenizer ids and greedy continuations for the committed models.

For every models/dte-tiny-*.gguf and every prompt in PROMPTS this stores, computed by llama.cpp (llama-cpp-python's
low-level API, settings in llamacpp_ref.SETTINGS):
  prompt_ids      llama_tokenize(add_special=True, parse_special=False)
  ids             greedy continuation, up to N_PREDICT tokens (stops after EOS or at the context end)
  text            the continuation detokenized (llama_token_to_piece per id)
  top5            the 5 largest logits after the prompt: [[id, logit], ...]
  margins         top-1 minus top-2 logit at each generated step (how close each greedy choice was)
into tests/data/llamacpp/reference.json. CI compares the dte engine with this file; it does not need llama.cpp.

Usage:  python3 scripts/record_llamacpp.py [--out tests/data/llamacpp/reference.json]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import llamacpp_ref  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "models"
DEFAULT_OUT = REPO / "tests" / "data" / "llamacpp" / "reference.json"
N_PREDICT = 32

PROMPTS = [
    "Hello, I am",
    "The quick brown fox jumps over the lazy dog.",
    "Deep Tree Echo",
    "A man is",
    "What is the meaning of life?",
    "  Leading spaces,   runs of   spaces\tand a tab",
    "Line one\nLine two\n\nLine four",
    "Caf\u00e9, na\u00efve, \u65e5\u672c\u8a9e, and a tree \U0001F333.",
    "12345 + 678 = ",
    "",
    " ",
]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def record_model(path: Path) -> dict:
    with llamacpp_ref.LlamaCpp(path) as lc:
        cases = []
        for prompt in PROMPTS:
            ids = lc.tokenize(prompt)
            out, first, margins = lc.greedy(ids, N_PREDICT)
            top = sorted(range(len(first)), key=lambda i: (-first[i], i))[:5]
            cases.append(
                {
                    "prompt": prompt,
                    "prompt_ids": ids,
                    "ids": out,
                    "text": lc.detokenize(out),
                    "top5": [[i, round(float(first[i]), 5)] for i in top],
                    "margins": [round(m, 5) for m in margins],
                }
            )
        return {"file": path.name, "size": path.stat().st_size, "sha256": sha256(path), "n_vocab": lc.n_vocab,
                "n_ctx": lc.n_ctx, "eos": lc.eos, "cases": cases}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    files = sorted(MODELS.glob("dte-tiny-*.gguf"))
    if not files:
        sys.exit("no models/dte-tiny-*.gguf: run scripts/export_gguf.py export and quantize first")
    data = {
        "format": "dte-llamacpp-reference/1",
        "llama_cpp": llamacpp_ref.version(),
        "settings": {**llamacpp_ref.SETTINGS, "n_predict": N_PREDICT},
        "prompts": PROMPTS,
        "models": [],
    }
    for f in files:
        print(f"recording {f.name}", file=sys.stderr)
        data["models"].append(record_model(f))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{args.out}: {len(files)} models x {len(PROMPTS)} prompts", file=sys.stderr)


if __name__ == "__main__":
    main()
