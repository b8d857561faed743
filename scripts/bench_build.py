#!/usr/bin/env python3
"""Benchmark the image build against `cp` of the same GGUF, in one run, and print the ratio.

Makes a ~1 GiB llama GGUF (gguf-py writes the header; the tensor data is random bytes streamed in 16 MiB pieces),
reads it once so every contender starts with it in the page cache, then times, in the same directory:
  cp --reflink=never SRC DST + fsync(DST)        (the floor: one copy, durable)
  build_image(qemu-q35, ..., model_path=SRC)     (validate, hash SHA-256 + CRC32C, build ESP, copy, GPT, fsync)
Each is run --repeat times; the best time counts.

    python scripts/bench_build.py [--size-mib 1023] [--dir /tmp] [--repeat 2] [--json]
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

MIB = 1 << 20


def make_gguf(path: Path, size_mib: int) -> int:
    """A llama GGUF of about `size_mib` MiB: one F32 tensor of random bytes (the header comes from gguf-py)."""
    n_floats = (size_mib * MIB - 64 * 1024) // 4 // 256 * 256
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(1)
    w.add_tensor_info("filler", (n_floats,), np.dtype(np.float32), n_floats * 4)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    rng = np.random.default_rng(0)
    with open(path, "ab") as f:
        f.write(bytes(-f.tell() % 32))  # default GGUF alignment
        left = n_floats * 4
        while left:
            n = min(16 * MIB, left)
            f.write(rng.bytes(n))
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


def time_build(src: Path, efi: Path, dst: Path) -> float:
    start = time.monotonic()
    build_image(load_board("qemu-q35"), efi, dst, model_path=src, build_id="0000000000000000")
    seconds = time.monotonic() - start
    dst.unlink()
    return seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=1023, help="model size (qemu-q35's weights region is 1024 MiB)")
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="dte-bench-") as tmp:
        d = Path(tmp)
        src, efi = d / "model.gguf", d / "BOOTX64.EFI"
        efi.write_bytes(b"MZ" + bytes(64 * 1024))
        size = make_gguf(src, args.size_mib)
        warm(src)
        cp_s = min(time_cp(src, d / "copy.gguf") for _ in range(args.repeat))
        build_s = min(time_build(src, efi, d / "dte.img") for _ in range(args.repeat))
    result = {"model_bytes": size, "cp_seconds": round(cp_s, 3), "build_seconds": round(build_s, 3),
              "ratio": round(build_s / cp_s, 2), "cp_mib_s": round(size / MIB / cp_s, 1),
              "build_mib_s": round(size / MIB / build_s, 1)}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{size / MIB:.0f} MiB GGUF: cp+fsync {cp_s:.2f} s ({result['cp_mib_s']} MiB/s), "
              f"build_image {build_s:.2f} s ({result['build_mib_s']} MiB/s), ratio {result['ratio']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
