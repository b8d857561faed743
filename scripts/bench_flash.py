#!/usr/bin/env python3
"""Benchmark `dte flash` against `dd bs=4M oflag=direct conv=fsync` and `bmaptool copy`, same image, same run.

Two 2 GiB GPT images (sgdisk + random payload): "dense" (every byte data) and "sparse" (25 % data, the rest
holes). Each is written to a regular file and, as root with loop devices, to a loop device, by:
  dte flash --no-verify | dte flash (read-back on) | dd bs=4M oflag=direct conv=fsync | bmaptool copy (+ .bmap)
Every tool runs as a separate process (start-up included). The image is read once first so every tool starts
with it in the page cache; the target's cache is dropped before each run where /proc/sys/vm/drop_caches allows.

    python scripts/bench_flash.py [--size-mib 2048] [--dir /tmp] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

MIB = 1 << 20
DTE = [sys.executable, "-c", "from dte_build.cli import main; main()"]


def make_image(path: Path, size_mib: int, data_fraction: float) -> int:
    """A GPT disk (sgdisk) whose one partition holds random bytes over `data_fraction` of the disk."""
    with open(path, "wb") as f:
        f.truncate(size_mib * MIB)
    data_mib = max(1, int(size_mib * data_fraction) - 2)
    subprocess.run(["sgdisk", "-n", f"1:2048:+{data_mib}M", str(path)], check=True, capture_output=True)
    with open(path, "r+b") as f:
        f.seek(MIB)
        for _ in range(data_mib // 16):
            f.write(os.urandom(16 * MIB))
        f.write(os.urandom((data_mib % 16) * MIB))
    return data_mib * MIB


def drop_caches() -> None:
    try:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        pass


def warm(path: Path) -> None:
    with open(path, "rb") as f:
        while f.read(16 * MIB):
            pass


def timed(cmd: list[str]) -> tuple[float, dict | None]:
    """Wall seconds of the whole process (start-up included) and its --json report when it printed one."""
    start = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.monotonic() - start
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])}... failed ({out.returncode}): {out.stderr.strip()[-500:]}")
    return seconds, json.loads(out.stdout) if out.stdout.strip().startswith("{") else None


class FileTarget:
    def __init__(self, path: Path) -> None:
        self.path, self.kind = path, "file"

    def reset(self) -> None:
        self.path.unlink(missing_ok=True)

    def close(self) -> None:
        self.path.unlink(missing_ok=True)


class LoopTarget:
    def __init__(self, backing: Path, size: int) -> None:
        with open(backing, "wb") as f:
            f.truncate(size)
        self.backing, self.kind = backing, "loop device"
        # --direct-io=on: the loop driver writes its backing file with O_DIRECT, so the "disk" is not just
        # the page cache; falls back to a buffered loop where the kernel refuses it.
        for extra in (["--direct-io=on"], []):
            out = subprocess.run(["losetup", "-f", "--show", *extra, str(backing)], capture_output=True, text=True)
            if out.returncode == 0:
                break
        out.check_returncode()
        self.path = Path(out.stdout.strip())
        self.kind = "loop device" + (" (direct-io)" if extra else "")

    def reset(self) -> None:
        pass  # a disk is never "fresh": every tool overwrites what the previous one wrote

    def close(self) -> None:
        subprocess.run(["losetup", "-d", str(self.path)], check=False)
        self.backing.unlink(missing_ok=True)


def loop_available() -> bool:
    return os.geteuid() == 0 and shutil.which("losetup") is not None and \
        subprocess.run(["losetup", "-f"], capture_output=True).returncode == 0


def bench(image: Path, bmap: Path, target: FileTarget | LoopTarget, repeat: int) -> dict[str, dict]:
    """Each tool `repeat` times, interleaved (so load from other processes hits all alike); keep the fastest."""
    runs = {
        "dte flash --no-verify": DTE + ["flash", "-y", "--to-file", "--json", "--no-verify", str(image), str(target.path)],
        "dte flash (verify)": DTE + ["flash", "-y", "--to-file", "--json", str(image), str(target.path)],
        "dd bs=4M oflag=direct conv=fsync": ["dd", f"if={image}", f"of={target.path}", "bs=4M", "oflag=direct",
                                             "conv=fsync,notrunc", "status=none"],
        "bmaptool copy": ["bmaptool", "-q", "copy", "--bmap", str(bmap), str(image), str(target.path)],
    }
    out: dict[str, dict] = {}
    for _ in range(repeat):
        for name, cmd in runs.items():
            target.reset()
            drop_caches()
            warm(image)
            seconds, report = timed(cmd)
            if name not in out or seconds < out[name]["wall"]:
                out[name] = {"wall": seconds, "report": report}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mib", type=int, default=2048)
    ap.add_argument("--dir", type=Path, default=Path("/tmp"))
    ap.add_argument("--repeat", type=int, default=3, help="runs per tool; the fastest counts (default 3)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    for tool in ("sgdisk", "dd", "bmaptool"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is not installed")
    load_before = f"{os.getloadavg()[0]:.1f}"
    work = args.dir / f"dte-bench-flash-{os.getpid()}"
    work.mkdir(parents=True)
    results = []
    try:
        for kind, fraction in (("dense", 1.0), ("sparse", 0.25)):
            image = work / f"{kind}.img"
            data = make_image(image, args.size_mib, fraction)
            bmap = work / f"{kind}.bmap"
            subprocess.run(["bmaptool", "-q", "create", "-o", str(bmap), str(image)], check=True)
            targets: list[FileTarget | LoopTarget] = [FileTarget(work / "target.img")]
            if loop_available():
                targets.append(LoopTarget(work / "loop-backing", args.size_mib * MIB))
            for target in targets:
                try:
                    times = bench(image, bmap, target, args.repeat)
                finally:
                    target.close()
                results.append({"image": kind, "data_mib": data // MIB, "target": target.kind, "seconds": times})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"load average before/after: {load_before} / {os.getloadavg()[0]:.1f} "
          f"({os.cpu_count()} CPUs; other work on the machine adds noise)")
    print(table(results, args.size_mib), flush=True)
    try:
        startup = min(timed(DTE + ["--version"])[0] for _ in range(3))
        print(f"\n`dte --version` (CLI start-up alone, fastest of 3): {startup:.2f} s")
    except SystemExit as exc:
        print(f"\n(CLI start-up not measured: {exc})")


def table(results: list[dict], size_mib: int) -> str:
    lines = [f"Image {size_mib} MiB; fastest of the runs. Wall seconds of each tool's whole process (MiB/s of the "
             "image size); for dte also its own write [+ verify] time from --json (no CLI start-up). "
             "Ratios > 1: dte faster.", "",
             "| image | target | dte --no-verify | dte (verify on) | dd 4M direct | bmaptool copy "
             "| dd / dte (process) | dd / dte (write) | bmaptool / dte | verify cost: (write+verify) / write |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        t = r["seconds"]
        nv, v = t["dte flash --no-verify"], t["dte flash (verify)"]
        dd, bm = t["dd bs=4M oflag=direct conv=fsync"]["wall"], t["bmaptool copy"]["wall"]
        w = nv["report"]["write_seconds"]
        vw, vv = v["report"]["write_seconds"], v["report"]["verify_seconds"]
        cells = [f"{nv['wall']:.2f} s ({size_mib / nv['wall']:.0f}) [{w:.2f}]",
                 f"{v['wall']:.2f} s ({size_mib / v['wall']:.0f}) [{vw:.2f} + {vv:.2f}]",
                 f"{dd:.2f} s ({size_mib / dd:.0f})", f"{bm:.2f} s ({size_mib / bm:.0f})"]
        lines.append(f"| {r['image']} ({r['data_mib']} MiB data) | {r['target']} | " + " | ".join(cells)
                     + f" | {dd / nv['wall']:.2f}x | {dd / w:.2f}x | {bm / nv['wall']:.2f}x "
                     f"| {(vw + vv) / vw:.2f}x |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
