#!/usr/bin/env python3
"""Benchmark one QEMU boot to the first token: UEFI Block I/O vs dte's NVMe driver on the same weights, and the
parts of boot-to-first-token (docs/benchmarks.md, "Boot to tokens").

Builds the firmware with DTE_BENCH_BLOCKIO (the firmware reads the weights through EFI_BLOCK_IO_PROTOCOL before
ExitBootServices, then with its own driver after), boots the image once under QEMU q35 + OVMF and prints the
firmware's numbers. By default the model is a random llama GGUF of about --size-mib MiB (Q8_0, written by gguf-py
through tests/model_factory.py), so the read is long enough to time; --model uses a file instead.

    python scripts/bench_boot.py [--size-mib 128] [--model PATH] [--memory 2048] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from dte_build import qemu
from dte_build.board import load_board
from dte_build.image.builder import build_image
from dte_build.toolchain import FirmwareOptions, build_firmware

REPO = Path(__file__).resolve().parent.parent


def make_bench_model(path: Path, size_mib: int) -> Path:
    """A Q8_0 llama model of roughly size_mib MiB (8 layers; n_embd scaled to the size)."""
    sys.path.insert(0, str(REPO / "tests"))
    from gguf import GGMLQuantizationType as T  # noqa: PLC0415
    from model_factory import ModelSpec, make_model  # noqa: PLC0415

    # Per layer 4 E^2 (attention, n_head_kv = n_head) + 3 E * 2.75 E (FFN) = 12.25 E^2 weights, 1.0625 bytes each.
    embd = 256
    while 8 * 12.25 * (embd + 256) ** 2 * 1.0625 < size_mib * (1 << 20):
        embd += 256
    spec = ModelSpec(n_vocab=512, n_embd=embd, n_layer=8, n_head=embd // 64, n_head_kv=embd // 64,
                     n_ff=embd * 11 // 4 // 32 * 32, n_ctx=64, wtype=T.Q8_0)
    return make_model(path, spec)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=128)
    ap.add_argument("--model", type=Path)
    ap.add_argument("--memory", type=int, default=2048, help="guest RAM, MiB")
    ap.add_argument("--timeout", type=float, default=900.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    board = load_board("qemu-q35")
    with tempfile.TemporaryDirectory(prefix="dte-bench-boot-") as tmp_dir:
        tmp = Path(tmp_dir)
        model = args.model or make_bench_model(tmp / "bench.gguf", args.size_mib)
        options = FirmwareOptions(prompt="Hi", n_predict=1, temperature=0.0,
                                  extra_defines={"DTE_BENCH_BLOCKIO": "1"})
        fw = build_firmware(board, options=options, build_dir=tmp / "build")
        build_image(board, fw.efi_path, tmp / "bench.img", model_path=model, build_id=fw.build_id)
        config = qemu.make_config(board, memory_mib=args.memory)
        result = qemu.run_config(tmp / "bench.img", config, timeout=args.timeout)
        model_bytes = model.stat().st_size
    if not result.ok:
        print(result.console[-3000:], file=sys.stderr)
        return 1
    summary = qemu.generation_summary(result)
    report = {"model_bytes": model_bytes, "accel": result.accel,
              "bench": summary.get("bench"), "boot_ms": summary.get("boot_ms"),
              "first_token_ms": summary.get("first_token_ms"), "load_mib_per_s": summary.get("load_mib_per_s"),
              "prompt_tok_per_s": summary.get("prompt_tok_per_s"), "nvme": result.status.get("nvme"),
              "load": result.status.get("load")}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    bench = report["bench"] or {}
    print(f"UEFI Block I/O : {bench.get('blockio_mib_per_s')} MiB/s ({bench.get('blockio_bytes')} bytes, "
          f"{bench.get('blockio_ms')} ms)")
    print(f"dte NVMe driver: {bench.get('dte_mib_per_s')} MiB/s ({bench.get('dte_bytes')} bytes, "
          f"{bench.get('dte_ms')} ms)  ratio {bench.get('ratio')}x")
    print(f"boot to first token: {report['first_token_ms']} ms after the firmware clock started; parts (ms): "
          f"{report['boot_ms']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
