#!/usr/bin/env python3
"""Micro-benchmark of the vec_dot kernels: scalar reference (clang -O2) vs llvmlite-generated (JIT, this host: 256
with intrinsics, 512 generic IR, and epyc9654's 512-bit VNNI kernels where the host has AVX-512 VNNI)
vs llama.cpp's own ggml_vec_dot_* (libggml from llama-cpp-python, when installed) vs numpy's float32 dot of the
same element count, as GB/s of weight bytes read. One thread, one long row of 4096 x 11008 elements (a
llama-7B FFN matrix), so the weights do not fit in cache.

    python scripts/bench_kernels.py [--elements N] [--repeat R] [--json]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # numpy's dot: one thread, like the kernels
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import ctypes  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from gguf import GGMLQuantizationType as T  # noqa: E402

from dte_build.board import load_board  # noqa: E402
from dte_build.kernels import (KERNEL_SYMBOLS, Isa, Jit, Target, board_isa, board_target,  # noqa: E402
                               host_has_avx512_vnni, kernel_ir)
from dte_build.paths import FIRMWARE_DIR, REPO_ROOT  # noqa: E402

sys.path.insert(0, str(REPO_ROOT / "tests"))
from _quantlib import load_ggml  # noqa: E402  (llama.cpp's libggml, shared with the tests)

# kind: (ggml type id, block elements, weight block bytes, activation block bytes, fp16 scale offsets)
# (ggml-common.h); the float types are timed with 256-element "blocks" of their own type.
TYPES = {"q8_0": (8, 32, 34, 34, (0,)), "q4_0": (2, 32, 18, 34, (0,)), "q4_1": (3, 32, 20, 36, (0, 2)),
         "q5_0": (6, 32, 22, 34, (0,)), "q5_1": (7, 32, 24, 36, (0, 2)), "q2_K": (10, 256, 84, 292, (80, 82)),
         "q3_K": (11, 256, 110, 292, (108,)), "q4_K": (12, 256, 144, 292, (0, 2)),
         "q5_K": (13, 256, 176, 292, (0, 2)), "q6_K": (14, 256, 210, 292, (208,)),
         "f16": (1, 256, 512, 512, ())}


def reference_library(out_dir: Path) -> ctypes.CDLL:
    sources = [FIRMWARE_DIR / "engine" / f
               for f in ("quants.c", "quants_dot.c", "quants_matmul.c", "kernels.c", "layout.c")]
    lib = out_dir / "quants_ref.so"
    subprocess.run(["clang-19", "-std=c11", "-O2", "-march=native", "-shared", "-fPIC", "-o", str(lib),
                    *map(str, sources)], check=True, timeout=300)
    cdll = ctypes.CDLL(str(lib))
    cdll.dte_vec_dot_ref.restype = ctypes.c_float
    cdll.dte_vec_dot_ref.argtypes = [ctypes.c_uint32, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p]
    return cdll


def best_times(fns: dict[str, object], repeat: int) -> dict[str, float]:
    """Best wall time of each callable, runs interleaved so that load from other processes hits all alike."""
    best = {name: float("inf") for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def random_blocks(rng: np.random.Generator, count: int, size: int, scale_offsets: tuple[int, ...]) -> np.ndarray:
    """Random quants with finite fp16 scales (the timing does not depend on the values)."""
    blocks = rng.integers(0, 256, size=(count, size), dtype=np.uint8)
    for off in scale_offsets:
        blocks[:, off:off + 2] = np.array([0.01], dtype=np.float16).view(np.uint8)
    return blocks.ravel()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--elements", type=int, default=4096 * 11008, help="row length (multiple of 256)")
    ap.add_argument("--repeat", type=int, default=5, help="runs per measurement; the best is reported")
    ap.add_argument("--json", action="store_true", help="print results as JSON on stdout")
    args = ap.parse_args()
    n = args.elements // 256 * 256
    rng = np.random.default_rng(0)
    host = Target.host()
    widths = [Isa(256), Isa(512, intrinsics=False)] if "+avx2" in host.features.split(",") else []
    jits = {isa.tag: Jit(kernel_ir(isa, host.triple), host) for isa in widths}
    if host_has_avx512_vnni():  # the epyc9654 board's own kernels (vpdpbusd on zmm, znver4 + its features)
        board = load_board("epyc9654")
        target = board_target(board, host.triple)
        jits[board_isa(board).tag] = Jit(kernel_ir(board_isa(board), host.triple), target)
    x32 = rng.standard_normal(n).astype(np.float32)
    t_np = best_times({"np": lambda: float(np.dot(x32, x32))}, args.repeat)["np"]
    results = []
    ggml = load_ggml()
    with tempfile.TemporaryDirectory() as tmp:
        ref = reference_library(Path(tmp))
        for name, (tid, be, wb, ab, scales) in TYPES.items():
            sym = next(s for s in KERNEL_SYMBOLS if s.startswith(f"dte_k_vec_dot_{name}_"))
            nb = n // be
            w = random_blocks(rng, nb, wb, scales)
            if name == "f16":
                a = random_blocks(rng, nb, ab, ())
                w.view(np.uint16)[:] &= 0x3BFF  # finite halves below 1
                a.view(np.uint16)[:] = w.view(np.uint16)
            else:
                a = random_blocks(rng, nb, ab, (0, 2) if be == 32 else ())
                a[:] = np.clip(a.view(np.int8), -127, 127).view(np.uint8)
                if be == 256:  # Q8_K: float d
                    a.reshape(nb, ab)[:, :4] = np.array([0.01], dtype=np.float32).view(np.uint8)
            row = {"type": name, "weight_mib": round(w.nbytes / 2**20, 1)}
            fns = {}
            for tag, jit in jits.items():
                fns[f"gen{tag}"] = functools.partial(jit.function(sym), n, w.ctypes.data, a.ctypes.data)
            if ggml is not None and name != "f16":
                fns["llamacpp"] = functools.partial(ggml.vec_dot, T[name.upper()], n, w, a, False)
            times = {"ref": best_times({"ref": lambda: ref.dte_vec_dot_ref(tid, n, w.ctypes.data, a.ctypes.data)},
                                       1)["ref"], **best_times(fns, args.repeat)}
            row.update({f"{k}_gbs": round(w.nbytes / v / 1e9, 2) for k, v in times.items()})
            row["numpy_f32_gbs"] = round(x32.nbytes / t_np / 1e9, 2)
            results.append(row)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        keys = list(results[0])
        print(" ".join(f"{k:>18}" for k in keys), file=sys.stderr)
        for r in results:
            print(" ".join(f"{str(r.get(k, '-')):>18}" for k in keys), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
