#!/usr/bin/env python3
"""Benchmark multi-core scaling: the hosted engine at 1..N threads, llama.cpp at the top thread count, and the
firmware under QEMU at --smp 1 vs --smp 2.

Hosted: `dte generate --threads N --json` (tg = tok_per_s, pp = prompt_tok_per_s) on a ~1 GiB Q8_0 llama model with
random weights (tests/model_factory.py, written once into --dir) or --model; best of --repeat runs per count.
llama.cpp (llama-cpp-python) runs the same model, prompt and token count at the highest thread count.
QEMU (TCG, so only the ratio means anything): the default qemu-q35 image with the dte-tiny model, tokens/s that
the firmware reports (`dte: generate tok_per_s=...`) at each --smp.

    python scripts/bench_smp.py [--threads 1,2] [--repeat 2] [--model PATH] [--dir /tmp] [--no-qemu] [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from dte_build.board import load_board
from dte_build.image.builder import build_image
from dte_build.paths import MODELS_DIR, REPO_ROOT
from dte_build.qemu import generation_summary, run_image
from dte_build.toolchain import FirmwareOptions, build_firmware

PROMPT = "a b c d e f g h i j k l m n o p q r s t u v w x y z " * 3   # ~80 tokens of the synthetic vocabulary
TINY = MODELS_DIR / "dte-tiny-q8_0.gguf"


def make_bench_model(directory: Path) -> Path:
    """A ~1 GiB llama-architecture Q8_0 GGUF (TinyLlama-like shapes, 20 layers, random weights), made once."""
    path = directory / "dte-bench-1g-q8_0.gguf"
    if path.is_file():
        return path
    sys.path.insert(0, str(REPO_ROOT / "tests"))
    from gguf import GGMLQuantizationType as T
    from model_factory import ModelSpec, make_model
    spec = ModelSpec(n_vocab=32000, n_embd=2048, n_layer=20, n_head=32, n_head_kv=4, n_ff=5632, n_ctx=512,
                     wtype=T.Q8_0, seed=1)
    tmp = path.with_suffix(".tmp")
    make_model(tmp, spec)
    tmp.replace(path)
    return path


def hosted(model: Path, threads: int, n_predict: int) -> dict[str, float]:
    cmd = ["dte", "generate", "-m", str(model), "-p", PROMPT, "-n", str(n_predict), "--temp", "0",
           "--threads", str(threads), "--json"]
    out = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    return {"tg": out["tok_per_s"], "pp": out["prompt_tok_per_s"], "prompt_tokens": len(out["prompt_ids"])}


def llamacpp(model: Path, threads: int, n_predict: int) -> dict[str, float] | None:
    try:
        import llama_cpp
        import numpy as np
    except ImportError:
        return None
    llm = llama_cpp.Llama(str(model), n_ctx=512, n_batch=512, n_threads=threads, n_threads_batch=threads,
                          verbose=False)
    ids = llm.tokenize(PROMPT.encode())
    start = time.perf_counter()
    llm.eval(ids)
    pp = len(ids) / (time.perf_counter() - start)
    start = time.perf_counter()
    for _ in range(n_predict):
        llm.eval([int(np.argmax(llm.scores[llm.n_tokens - 1]))])
    tg = n_predict / (time.perf_counter() - start)
    return {"tg": tg, "pp": pp, "prompt_tokens": len(ids)}


def best(runs: list[dict[str, float]]) -> dict[str, float]:
    return {"tg": max(r["tg"] for r in runs), "pp": max(r["pp"] for r in runs),
            "prompt_tokens": runs[0]["prompt_tokens"]}


def qemu_ratio(smps: list[int], n_predict: int, directory: Path) -> dict[str, Any]:
    board = load_board("qemu-q35")
    options = FirmwareOptions(n_predict=n_predict, temperature=0.0)
    fw = build_firmware(board, options=options, build_dir=directory / "bench-smp-build")
    image = directory / "bench-smp.img"
    build_image(board, fw.efi_path, image, model_path=TINY, build_id=fw.build_id)
    out: dict[str, Any] = {}
    for smp in smps:
        result = run_image(image, board=board, smp=smp, timeout=600)
        if not result.ok:
            raise SystemExit(f"QEMU --smp {smp} failed: {result.console[-1500:]}")
        summary = generation_summary(result)
        out[str(smp)] = {"cpus": int(result.status["smp"]["cpus"]), "tg": summary.get("tok_per_s"),
                         "pp": summary.get("prompt_tok_per_s"), "ids": summary.get("ids")}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts (hosted)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("-n", type=int, default=16, help="tokens to generate")
    ap.add_argument("--model", type=Path, help="GGUF to use instead of the generated ~1 GiB model")
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    ap.add_argument("--no-hosted", action="store_true", help="skip the hosted engine and llama.cpp")
    ap.add_argument("--no-qemu", action="store_true")
    ap.add_argument("--no-llamacpp", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    counts = [int(t) for t in args.threads.split(",")]
    report: dict[str, Any] = {"hosted": {}}
    if not args.no_hosted:
        hosted_and_llamacpp(report, args.model or make_bench_model(args.dir), counts, args)
    if not args.no_qemu and TINY.is_file():
        report["qemu"] = qemu_ratio([1, 2], 32, args.dir)
    print_report(report, args.json)


def hosted_and_llamacpp(report: dict[str, Any], model: Path, counts: list[int], args: argparse.Namespace) -> None:
    report.update(model=model.name, model_mib=round(model.stat().st_size / 2**20))
    for threads in counts:
        report["hosted"][str(threads)] = best([hosted(model, threads, args.n) for _ in range(args.repeat)])
    base = report["hosted"][str(counts[0])]
    for threads in counts:
        r = report["hosted"][str(threads)]
        r["tg_speedup"], r["pp_speedup"] = round(r["tg"] / base["tg"], 2), round(r["pp"] / base["pp"], 2)
    if not args.no_llamacpp:
        runs = [llamacpp(model, counts[-1], args.n) for _ in range(args.repeat)]
        if runs[0] is not None:
            report["llamacpp"] = {"threads": counts[-1], **best([r for r in runs if r])}


def print_report(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(report, indent=2))
        return
    for threads, r in report["hosted"].items():
        print(f"hosted  threads={threads}: tg {r['tg']:.2f} tok/s (x{r['tg_speedup']})  "
              f"pp {r['pp']:.2f} tok/s (x{r['pp_speedup']})")
    if "llamacpp" in report:
        r = report["llamacpp"]
        print(f"llama.cpp threads={r['threads']}: tg {r['tg']:.2f} tok/s  pp {r['pp']:.2f} tok/s")
    for smp, r in report.get("qemu", {}).items():
        print(f"qemu    smp={smp} cpus={r['cpus']}: tg {r['tg']} tok/s  pp {r['pp']} tok/s")


if __name__ == "__main__":
    main()
