#!/usr/bin/env python3
"""Benchmark the image build against `cp` of the same GGUF, in one run, and print the ratio.

Makes a ~1 GiB llama GGUF the engine accepts (gguf-py writes the header and vocabulary; the tensor data is random
bytes streamed in 16 MiB pieces),
reads it once so every contender starts with it in the page cache, then times, in the same directory:
  cp --reflink=never SRC DST + fsync(DST)        (the floor: one copy, durable)
  dte build --board qemu-q35 --model SRC -o DST  (the whole process, issue 13's target: CLI start, the engine's
                                                 model check, the firmware step (incremental: compiled once by a
                                                 warm-up run), SHA-256 + layout + CRC32C while copying, ESP, GPT,
                                                 fsync)
  build_image(qemu-q35, ..., model_path=SRC)     (the image step alone, in this process)
  check_model(SRC)                               (the engine's model check alone)
Each is run --repeat times, interleaved; the best time counts.

    python scripts/bench_build.py [--size-mib 1023] [--dir /tmp] [--repeat 2] [--json] [--cli-arg ARG]
                                  [--baseline-src OLD_CHECKOUT/src]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import gguf
import numpy as np

from dte_build.board import load_board
from dte_build.image.builder import build_image
from dte_build.image.model_check import check_model

MIB = 1 << 20


def make_gguf(path: Path, size_mib: int) -> int:
    """A Q8_0 llama GGUF of about `size_mib` MiB that the engine's model check accepts (so `dte build` packs it): the
    header, hyper-parameters and a SentencePiece vocabulary from gguf-py; F32 norms of ones; Q8_0 matrices of random
    quants with a finite scale (0.01) in every block, streamed in ~17 MiB pieces. Width 2048, 32000 tokens, as many
    layers as fit. Q8_0 is a type the ROWS4 layout transforms, so the build's layout pass is measured too."""
    n_embd, n_vocab, n_ff, n_head = 2048, 32000, 5632, 16
    q8 = gguf.GGMLQuantizationType.Q8_0
    block, block_bytes = gguf.GGML_QUANT_SIZES[q8]

    def q8_bytes(rows: int, cols: int) -> int:
        return rows * cols // block * block_bytes

    per_layer = q8_bytes(4 * n_embd, n_embd) + q8_bytes(3 * n_ff, n_embd) + 2 * n_embd * 4
    n_layer = max(1, (size_mib * MIB - 2 * q8_bytes(n_vocab, n_embd)) // per_layer)
    w = gguf.GGUFWriter(str(path), "llama")
    for add, value in ((w.add_context_length, 2048), (w.add_embedding_length, n_embd), (w.add_block_count, n_layer),
                       (w.add_feed_forward_length, n_ff), (w.add_head_count, n_head), (w.add_head_count_kv, n_head),
                       (w.add_layer_norm_rms_eps, 1e-5), (w.add_rope_freq_base, 10000.0),
                       (w.add_rope_dimension_count, n_embd // n_head), (w.add_vocab_size, n_vocab)):
        add(value)
    w.add_tokenizer_model("llama")
    w.add_token_list(["<unk>", "<s>", "</s>"] + [f"t{i}" for i in range(3, n_vocab)])
    w.add_token_scores([0.0] * 3 + [-float(i) for i in range(3, n_vocab)])
    w.add_token_types([2, 3, 3] + [1] * (n_vocab - 3))
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    mats = [("token_embd.weight", n_vocab, n_embd)]
    norms = []
    for il in range(n_layer):
        norms += [f"blk.{il}.attn_norm.weight", f"blk.{il}.ffn_norm.weight"]
        mats += [(f"blk.{il}.{t}.weight", n_embd, n_embd) for t in ("attn_q", "attn_k", "attn_v", "attn_output")]
        mats += [(f"blk.{il}.ffn_gate.weight", n_ff, n_embd), (f"blk.{il}.ffn_up.weight", n_ff, n_embd),
                 (f"blk.{il}.ffn_down.weight", n_embd, n_ff)]
    norms.append("output_norm.weight")
    mats.append(("output.weight", n_vocab, n_embd))
    order: list[tuple[str, int, int]] = [(n, 0, 0) for n in norms] + mats  # norms first: rows ≠ 0 means Q8_0
    for name, rows, cols in order:
        if rows:
            n = q8_bytes(rows, cols)
            w.add_tensor_info(name, (rows, n // rows), np.dtype(np.uint8), n, raw_dtype=q8)
        else:
            w.add_tensor_info(name, (n_embd,), np.dtype(np.float32), n_embd * 4)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    rng = np.random.default_rng(0)
    scale = np.array([0.01], np.float16).view(np.uint8)
    with open(path, "ab") as f:
        f.write(bytes(-f.tell() % 32))  # default GGUF alignment; every tensor's size is a multiple of 32 here
        for name, rows, cols in order:
            if not rows:
                f.write(np.ones(n_embd, np.float32).tobytes())
                continue
            left = q8_bytes(rows, cols) // block_bytes
            while left:
                n = min(1 << 19, left)
                blocks = rng.integers(0, 256, (n, block_bytes), dtype=np.uint8)
                blocks[:, :2] = scale
                f.write(blocks.tobytes())
                left -= n
    return path.stat().st_size


def warm(path: Path) -> None:
    with open(path, "rb") as f:
        while f.read(16 * MIB):
            pass


def time_cp(src: Path, dst: Path) -> float:
    start = time.monotonic()
    subprocess.run(["cp", "--reflink=never", str(src), str(dst)], check=True)
    fd = os.open(dst, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    seconds = time.monotonic() - start
    dst.unlink()
    return seconds


def time_cli(src: Path, dst: Path, extra: list[str], quiet: bool = True, code: Path | None = None) -> float:
    """`dte build` as a whole process; `code`: another checkout's src/ (PYTHONPATH), e.g. the commit before."""
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = str(code)
        env["DTE_BUILD_DIR"] = str(code.parent / "build")
    cmd = [sys.executable, "-c", "from dte_build.cli import main; main()"]
    start = time.monotonic()
    subprocess.run([*cmd, "build", "--board", "qemu-q35", "--model", str(src), "-o", str(dst), *extra],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL if quiet else None, env=env)
    seconds = time.monotonic() - start
    dst.unlink()
    return seconds


def time_build(src: Path, efi: Path, dst: Path) -> float:
    start = time.monotonic()
    build_image(load_board("qemu-q35"), efi, dst, model_path=src, build_id="0000000000000000", n_ctx=256)
    seconds = time.monotonic() - start
    dst.unlink()
    return seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=1023, help="model size (qemu-q35's weights region is 1024 MiB)")
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--baseline-src", type=Path, default=None,
                    help="also time `dte build` from another checkout's src/ (e.g. the commit before a change), "
                         "in the same run")
    ap.add_argument("--cli-arg", action="append", default=None,
                    help="argument for `dte build` (repeatable; default: -c 256, so the KV cache fits qemu-q35 beside "
                         "a 1 GiB model)")
    args = ap.parse_args()
    if args.cli_arg is None:
        args.cli_arg = ["-c", "256"]
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="dte-bench-") as tmp:
        d = Path(tmp)
        src, efi = d / "model.gguf", d / "BOOTX64.EFI"
        efi.write_bytes(b"MZ" + bytes(64 * 1024))
        size = make_gguf(src, args.size_mib)
        warm(src)
        time_cli(src, d / "cli.img", args.cli_arg, quiet=False)  # warm-up: compiles the firmware once (not timed)
        if args.baseline_src:
            time_cli(src, d / "base.img", args.cli_arg, quiet=False, code=args.baseline_src)
        cp_s, cli_s, build_s, check_s, base_s = [], [], [], [], []
        for _ in range(args.repeat):  # interleaved, so load changes hit all alike
            cp_s.append(time_cp(src, d / "copy.gguf"))
            cli_s.append(time_cli(src, d / "cli.img", args.cli_arg))
            if args.baseline_src:
                base_s.append(time_cli(src, d / "base.img", args.cli_arg, code=args.baseline_src))
            build_s.append(time_build(src, efi, d / "dte.img"))
            start = time.monotonic()
            check_model(src)
            check_s.append(time.monotonic() - start)
        cp_s, cli_s, build_s, check = min(cp_s), min(cli_s), min(build_s), min(check_s)
    result = {"model_bytes": size, "cp_seconds": round(cp_s, 3), "cli_seconds": round(cli_s, 3),
              "build_seconds": round(build_s, 3), "check_seconds": round(check, 4),
              "load_average": round(os.getloadavg()[0], 1), "ratio": round(cli_s / cp_s, 2),
              "image_ratio": round(build_s / cp_s, 2), "cp_mib_s": round(size / MIB / cp_s, 1),
              "cli_mib_s": round(size / MIB / cli_s, 1), "build_mib_s": round(size / MIB / build_s, 1)}
    if base_s:
        result["baseline_seconds"] = round(min(base_s), 3)
        result["baseline_ratio"] = round(min(base_s) / cp_s, 2)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{size / MIB:.0f} MiB Q8_0 GGUF: cp+sync {cp_s:.2f} s ({result['cp_mib_s']} MiB/s), "
              f"dte build {cli_s:.2f} s ({result['cli_mib_s']} MiB/s), ratio {result['ratio']:.2f}x; "
              f"build_image alone {build_s:.2f} s, ratio {result['image_ratio']:.2f}x; "
              f"model check {check * 1000:.1f} ms; load average {result['load_average']}"
              + (f"; baseline dte build {result['baseline_seconds']:.2f} s, ratio {result['baseline_ratio']:.2f}x"
                 if base_s else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
