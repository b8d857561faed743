#!/usr/bin/env python3
"""Engine benchmark: dte's hosted engine vs llama.cpp (llama-cpp-python's C API) on the same ~1 GiB llama GGUFs.

Makes (once, cached under build/bench/) a random-weight llama model with ~0.5-1B-parameter shapes as F16 with
gguf-py (tests/model_factory.py), then Q8_0, Q4_0 and Q4_K_M with llama.cpp's own quantizer (llama_model_quantize:
its presets, so `output.weight` is Q6_K in Q4_0/Q4_K_M as in real files). Each (type, threads, engine) runs in its
own subprocess, interleaved, `--repeat` times; the table shows medians:

- pp128: one batch of 128 tokens from an empty context (one llama_decode / one dte eval), tokens/s;
- tg128: 128 single-token evaluations from an empty context, tokens/s (as llama-bench);
- bound: tg's memory-bandwidth limit = read bandwidth with as many threads as the row (numpy, one array per
  thread, all reading at once) / bytes of weights read
  per token (every tensor but token_embd, which is read one row at a time);
- per CPU-second: tokens per second of the worker's CPU time (all its threads), the
  fairer figure when other work shares the cores (a spin-waiting thread counts against its engine);
- RSS: the worker's peak resident set (VmHWM, Python included), against file size + KV cache + 64 MiB.

Same settings on both sides: n_ctx 512, n_batch = n_ubatch = 128, F16 K/V, no flash attention, mmap'd weights.

    python scripts/bench_engine.py [--types q8_0 q4_0 q4_k_m] [--threads 1 2] [--repeat 3] [--json]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # numpy's bandwidth probe: one thread
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import ctypes  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from dte_build.paths import REPO_ROOT, build_root  # noqa: E402

sys.path.insert(0, str(REPO_ROOT / "tests"))
sys.path.insert(0, str(REPO_ROOT / "scripts"))  # first: scripts/llamacpp_ref.py, not tests/llamacpp_ref.py

FTYPES = {"q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0", "q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0", "q4_1": "LLAMA_FTYPE_MOSTLY_Q4_1",
          "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M", "q6_k": "LLAMA_FTYPE_MOSTLY_Q6_K"}
SOURCE = "f16"
"""The F16 model the quantized ones are made from, benchmarked as it is when asked for (not by default: 2 GiB)."""
REAL = {"smollm2": "smollm2-135m", "gemma3": "gemma3-270m"}
"""Real third-party models (dte_build.fetch names), benchmarked as they are when the engine loads them."""
N_CTX, N_BATCH, N_PP, N_TG = 512, 128, 128, 128
MEASURES = ("pp_tps", "tg_tps", "pp_cpu_tps", "tg_cpu_tps", "rss_base_mib", "rss_peak_mib")  # a worker's report
SHAPE = {"n_vocab": 32000, "n_embd": 2048, "n_layer": 20, "n_head": 16, "n_head_kv": 4, "n_ff": 5632}


def make_models(out_dir: Path, types: list[str]) -> dict[str, Path]:
    """The benchmark GGUFs (made once): F16 by gguf-py, the quantized types by llama.cpp's quantizer."""
    out_dir.mkdir(parents=True, exist_ok=True)
    f16 = out_dir / "bench-f16.gguf"
    if not f16.is_file() and set(types) - set(REAL):
        from gguf import GGMLQuantizationType as T
        from model_factory import ModelSpec, make_model

        print(f"writing {f16} (random weights, {SHAPE})", file=sys.stderr)
        tmp = f16.with_suffix(".tmp")
        make_model(tmp, ModelSpec(**SHAPE, n_ctx=N_CTX, wtype=T.F16, seed=1))
        tmp.replace(f16)
    paths = {}
    for name in types:
        if name in REAL:
            from dte_build import fetch

            paths[name] = fetch.fetch(REAL[name])
            continue
        dst = out_dir / f"bench-{name}.gguf"
        if not dst.is_file() and name != SOURCE:
            import llama_cpp
            import llamacpp_ref

            llamacpp_ref.quiet()
            print(f"quantizing {dst.name} with llama.cpp", file=sys.stderr)
            params = llama_cpp.llama_model_quantize_default_params()
            params.ftype = getattr(llama_cpp, FTYPES[name])
            params.nthread = 2
            tmp = dst.with_suffix(".tmp")
            if llama_cpp.llama_model_quantize(str(f16).encode(), str(tmp).encode(), params) != 0:
                sys.exit(f"llama_model_quantize {name} failed")
            tmp.replace(dst)
        paths[name] = dst
    return paths


def weight_bytes_per_token(path: Path) -> int:
    """Bytes of weights one token reads: every tensor except token_embd (one row of it)."""
    from gguf import GGUFReader

    total = 0
    for t in GGUFReader(str(path)).tensors:
        total += int(t.n_bytes) // int(t.shape[1]) if t.name == "token_embd.weight" else int(t.n_bytes)
    return total


def read_bandwidth(threads: int = 1, gib: float = 1.0, repeat: int = 5) -> float:
    """Read bandwidth in bytes/s with `threads` threads reading at once, each numpy's float32 dot of its own
    large array with itself (numpy releases the GIL in the dot), best run."""
    from concurrent.futures import ThreadPoolExecutor

    xs = [np.ones(int(gib * 2**30) // 4 // threads, dtype=np.float32) for _ in range(threads)]
    best = float("inf")
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for _ in range(repeat):
            t0 = time.perf_counter()
            list(pool.map(lambda x: float(np.dot(x, x)), xs))
            best = min(best, time.perf_counter() - t0)
    return sum(x.nbytes for x in xs) / best


def kv_cache_bytes(path: Path, n_ctx: int) -> int:
    """K and V in F16 for n_ctx positions, from the file's own shape."""
    from gguf import GGUFReader

    fields = GGUFReader(str(path)).fields
    arch = bytes(fields["general.architecture"].parts[-1]).decode()

    def meta(key: str) -> int:
        return int(fields[f"{arch}.{key}"].parts[-1][0])

    n_head = meta("attention.head_count")
    key_len = (meta("attention.key_length") if f"{arch}.attention.key_length" in fields
               else meta("embedding_length") // n_head)
    return 2 * meta("block_count") * n_ctx * key_len * meta("attention.head_count_kv") * 2


def max_rss_mib() -> float:
    """Peak resident set of this process in MiB: VmHWM (per address space, so unlike ru_maxrss it does not carry
    the parent's peak across fork + exec), ru_maxrss where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def token_ids(n: int, seed: int) -> list[int]:
    return [int(i) for i in np.random.default_rng(seed).integers(3, SHAPE["n_vocab"], n)]


class DteRunner:
    def __init__(self, model: Path, threads: int, library: Path | None) -> None:
        from dte_build.engine import ERRLEN, Engine

        self.engine = Engine(model, n_ctx=N_CTX, threads=threads, n_batch=N_BATCH, library=library)
        # the C call itself with a reused logits buffer (Engine.eval converts the logits to a Python list)
        self.lib, self.h = self.engine._lib, self.engine._h
        self.logits = (ctypes.c_float * self.engine.n_vocab)()
        self.err = ctypes.create_string_buffer(ERRLEN)
        self.errlen = ERRLEN

    def reset(self) -> None:
        self.engine.reset()

    def decode(self, ids: list[int]) -> None:
        arr = (ctypes.c_int32 * len(ids))(*ids)
        if self.lib.dte_host_eval(self.h, arr, len(ids), self.logits, self.err, self.errlen) != 0:
            raise RuntimeError(self.err.value.decode())


class LlamaCppRunner:
    def __init__(self, model: Path, threads: int) -> None:
        import llama_cpp
        import llamacpp_ref

        llamacpp_ref.quiet()
        self.L = llama_cpp
        # llama.cpp's extra buffer types (AMX, CPU repack) off: on the AMX-INT8 dev host they crash llama_decode
        # (llamacpp_ref's docstring); so this is llama.cpp's plain CPU kernels, what it runs without repacking.
        self.model = llama_cpp.llama_model_load_from_file(str(model).encode(), llamacpp_ref.model_params())
        cp = llama_cpp.llama_context_default_params()
        cp.n_ctx, cp.n_batch, cp.n_ubatch = N_CTX, N_BATCH, N_BATCH
        cp.n_threads = cp.n_threads_batch = threads
        cp.type_k = cp.type_v = 1  # GGML_TYPE_F16
        cp.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        self.ctx = llama_cpp.llama_init_from_model(self.model, cp)
        if not self.model or not self.ctx:
            raise RuntimeError(f"llama.cpp could not load {model}")

    def reset(self) -> None:
        self.L.llama_memory_clear(self.L.llama_get_memory(self.ctx), True)

    def decode(self, ids: list[int]) -> None:
        arr = (self.L.llama_token * len(ids))(*ids)
        if self.L.llama_decode(self.ctx, self.L.llama_batch_get_one(arr, len(ids))) != 0:
            raise RuntimeError("llama_decode failed")


def worker(engine: str, model: Path, threads: int, library: Path | None, n_pp: int = N_PP,
           n_tg: int = N_TG) -> dict[str, float]:
    """One engine on one file in this process: pp and tg tokens/s and peak RSS."""
    rss_base = max_rss_mib()
    runner = DteRunner(model, threads, library) if engine == "dte" else LlamaCppRunner(model, threads)
    prompt, gen = token_ids(n_pp, 1), token_ids(n_tg, 2)
    runner.decode(prompt[:16])  # warm-up (pages in the weights, starts the threads)
    runner.decode(gen[:1])
    runner.reset()
    t0, c0 = time.perf_counter(), time.process_time()
    runner.decode(prompt)
    pp, pp_cpu = time.perf_counter() - t0, time.process_time() - c0
    runner.reset()
    t0, c0 = time.perf_counter(), time.process_time()
    for tok in gen:
        runner.decode([tok])
    tg, tg_cpu = time.perf_counter() - t0, time.process_time() - c0
    # per CPU-second (all of the process's threads): on a loaded machine, what a core would give it uncontended
    return {"pp_tps": n_pp / pp, "tg_tps": n_tg / tg, "pp_cpu_tps": n_pp / pp_cpu, "tg_cpu_tps": n_tg / tg_cpu, "rss_base_mib": rss_base, "rss_peak_mib": max_rss_mib()}


def run_worker(engine: str, model: Path, threads: int, library: Path, n_pp: int, n_tg: int) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--worker", engine, "--model", str(model), "--threads", str(threads),
           "--library", str(library), "--n-pp", str(n_pp), "--n-tg", str(n_tg)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        sys.exit(f"{engine} worker failed on {model.name}:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def record(path: Path | None, entry: dict[str, object]) -> None:
    if path is not None:
        with path.open("a") as f:
            f.write(json.dumps(entry) + "\n")


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def print_table(rows: list[dict[str, object]], bandwidth: dict[int, float], load: tuple[str, str]) -> None:
    speeds = ", ".join(f"{t} thread(s) {b / 1e9:.1f}" for t, b in sorted(bandwidth.items()))
    print(f"read bandwidth GB/s: {speeds}; load average {load[0]} (start), {load[1]} "
          "(end); medians", file=sys.stderr)
    head = ("type", "thr", "file MiB", "tg dte", "tg llama", "tg ratio", "tg bound", "dte/bound", "pp dte",
            "pp llama", "pp ratio", "tg/CPU-s ratio", "pp/CPU-s ratio", "RSS dte", "RSS llama", "RSS budget")
    print(" | ".join(head), file=sys.stderr)
    for r in rows:
        print(" | ".join(str(r[k]) for k in ("type", "threads", "file_mib", "tg_dte", "tg_llamacpp", "tg_ratio",
                                              "tg_bound", "tg_of_bound", "pp_dte", "pp_llamacpp", "pp_ratio",
                                              "tg_cpu_ratio", "pp_cpu_ratio", "rss_dte_mib", "rss_llamacpp_mib", "rss_budget_mib")), file=sys.stderr)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--types", nargs="+", default=list(FTYPES), choices=[*FTYPES, SOURCE, *REAL],
                    help=f"random-weight ~1 GiB models ({', '.join(FTYPES)}), their {SOURCE.upper()} source (2 GiB) "
                         f"and real ones ({', '.join(REAL)})")
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--repeat", type=int, default=3, help="runs of each measurement; the median is reported")
    ap.add_argument("--dir", type=Path, default=None, help="where the models are cached (default build/bench)")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON on stdout")
    ap.add_argument("--samples", type=Path, help="append every run to this JSONL file as it finishes")
    ap.add_argument("--from-samples", type=Path, help="make the table from a --samples file instead of running")
    ap.add_argument("--n-pp", type=int, default=N_PP, help=f"prompt tokens of the pp measure (default {N_PP})")
    ap.add_argument("--n-tg", type=int, default=N_TG, help=f"generated tokens of the tg measure (default {N_TG})")
    ap.add_argument("--worker", choices=["dte", "llamacpp"], help=argparse.SUPPRESS)
    ap.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--library", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.model, args.threads[0], args.library, args.n_pp, args.n_tg)))
        return 0
    models = make_models(args.dir or build_root() / "bench", args.types)
    from dte_build.engine import build_host_library, kernel_width

    library = build_host_library()  # once: every worker runs this build, whatever changes meanwhile
    samples: dict[tuple[str, int, str], list[dict[str, float]]] = {}
    if args.from_samples:
        lines = [json.loads(x) for x in args.from_samples.read_text().splitlines() if x.strip()]
        head = next(x for x in lines if "read_bandwidth" in x)
        seen = head["read_bandwidth"]  # {threads: B/s}; older files hold one single-thread figure
        bandwidth = ({int(t): b for t, b in seen.items()} if isinstance(seen, dict)
                     else {t: seen for t in args.threads})
        runs = [x for x in lines if "engine" in x]
        for x in runs:
            samples.setdefault((x["type"], x["threads"], x["engine"]), []).append(x)
        load = (runs[0]["load"], runs[-1]["load"])
        args.repeat = min(len(v) for v in samples.values())
    else:
        load_start = load_average()
        bandwidth = {t: read_bandwidth(t) for t in args.threads}
        record(args.samples, {"read_bandwidth": bandwidth, "load": load_start, "library": library.name,
                              "kernel_width": kernel_width(), "n_pp": args.n_pp, "n_tg": args.n_tg})
        for rep in range(args.repeat):
            for name, path in models.items():
                for threads in args.threads:
                    for engine in ("dte", "llamacpp"):
                        res = run_worker(engine, path, threads, library, args.n_pp, args.n_tg)
                        samples.setdefault((name, threads, engine), []).append(res)
                        record(args.samples, {"type": name, "threads": threads, "engine": engine, "rep": rep,
                                              "load": load_average(), **res})
                        print(f"[{rep + 1}/{args.repeat}] {name} t{threads} {engine}: tg {res['tg_tps']:.2f} "
                              f"pp {res['pp_tps']:.2f} tok/s, load {load_average()}", file=sys.stderr)
        load = (load_start, load_average())
    models = {k: v for k, v in models.items() if any(key[0] == k for key in samples)}
    rows: list[dict[str, object]] = []
    for name, path in models.items():
        per_token = weight_bytes_per_token(path)
        budget = (path.stat().st_size + kv_cache_bytes(path, N_CTX)) / 2**20 + 64
        for threads in args.threads:
            med = {e: {k: statistics.median(s.get(k, float("nan")) for s in samples[(name, threads, e)])
                       for k in MEASURES}
                   for e in ("dte", "llamacpp")}
            bound = bandwidth[threads] / per_token
            rows.append({
                "type": name, "threads": threads, "file_mib": round(path.stat().st_size / 2**20),
                "tg_dte": round(med["dte"]["tg_tps"], 2), "tg_llamacpp": round(med["llamacpp"]["tg_tps"], 2),
                "tg_ratio": round(med["dte"]["tg_tps"] / med["llamacpp"]["tg_tps"], 2),
                "tg_bound": round(bound, 2), "tg_of_bound": round(med["dte"]["tg_tps"] / bound, 2),
                "pp_dte": round(med["dte"]["pp_tps"], 2), "pp_llamacpp": round(med["llamacpp"]["pp_tps"], 2),
                "pp_ratio": round(med["dte"]["pp_tps"] / med["llamacpp"]["pp_tps"], 2),
                "tg_cpu_dte": round(med["dte"]["tg_cpu_tps"], 2),
                "tg_cpu_llamacpp": round(med["llamacpp"]["tg_cpu_tps"], 2),
                "tg_cpu_ratio": round(med["dte"]["tg_cpu_tps"] / med["llamacpp"]["tg_cpu_tps"], 2),
                "pp_cpu_dte": round(med["dte"]["pp_cpu_tps"], 2),
                "pp_cpu_llamacpp": round(med["llamacpp"]["pp_cpu_tps"], 2),
                "pp_cpu_ratio": round(med["dte"]["pp_cpu_tps"] / med["llamacpp"]["pp_cpu_tps"], 2),
                "rss_dte_mib": round(med["dte"]["rss_peak_mib"]),
                "rss_llamacpp_mib": round(med["llamacpp"]["rss_peak_mib"]),
                "rss_python_base_mib": round(med["dte"]["rss_base_mib"]), "rss_budget_mib": round(budget),
                "weight_bytes_per_token": per_token})
    print_table(rows, bandwidth, load)
    if args.json:
        gbs = {t: round(b / 1e9, 2) for t, b in bandwidth.items()}
        print(json.dumps({"kernel_width": kernel_width(), "read_bandwidth_gbs": gbs,
                          "load_average": load, "repeat": args.repeat, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
