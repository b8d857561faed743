#!/usr/bin/env python3
"""Hostile-input campaign for the image side (issue 15): hostile GGUFs through the build-time model check and
`dte inspect MODEL.gguf`, hostile disk images through `dte inspect` and `dte verify`. Counts what happened:

  inputs, refused (one-line DteError), reported (inspect listed problems), clean (inspect: nothing to report;
  GGUF: the engine runs it), tracebacks (any other exception), hangs (a case over its time limit), wrong
  acceptances (see below), and crashes (the GGUF part runs in a child process: a signal or a sanitizer report).

Wrong acceptance:
  GGUF   the build-time check (the file mapped at an offset) and the engine's check on the same bytes in an
         exact-size malloc buffer disagree;
  image  a flipped byte in a region an integrity check covers (GPT headers and entry arrays, BOOTX64.EFI's
         bytes: SHA-256 in the manifest; WEIGHTS.MAN: cross-checked with the manifest) and inspect calls the
         image clean, or `dte verify` of the original image says OK for a changed one.

    python scripts/fuzz_images.py --ggufs 3000 --images 1000 [--seed 1] [--asan]

Prints one JSON object per part. --asan runs the GGUF part under the ASan/UBSan build of the hosted library.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import traceback
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

MIB = 1 << 20
SS = 512
HOSTILE = (0, 1, 2, 0x7F, 0xFF, 0xFFFF, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**48, 2**63 - 1, 2**63, 2**64 - 1)


class Hang(Exception):
    pass


def _alarm(_sig: int, _frame: Any) -> None:
    raise Hang()


def _timed(seconds: int, fn: Any) -> Any:
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(seconds)
    try:
        return fn()
    finally:
        signal.alarm(0)


_MISSING = object()


def _attempt(counts: Counter[str], seconds: int, fn: Any, refused: str) -> Any:
    """fn() under a time limit; a one-line DteError counts as `refused` (and is returned), a hang or any other
    exception is counted and _MISSING returned."""
    from dte_build.errors import DteError

    try:
        return _timed(seconds, fn)
    except DteError as exc:
        counts[refused] += 1
        counts["tracebacks"] += "\n" in str(exc)  # not one line
        return exc
    except Hang:
        counts["hangs"] += 1
    except Exception:  # noqa: BLE001 - what the campaign counts
        counts["tracebacks"] += 1
        traceback.print_exc(file=sys.stderr)
    return _MISSING


# ---- GGUFs ------------------------------------------------------------------------------------------------------

def _gguf_mutations(data: bytes, meta: int, rng: random.Random, n: int) -> list[bytes]:
    """Truncations, flipped metadata bytes, hostile 32/64-bit values over the metadata, spliced duplicates."""
    out: list[bytes] = []
    for _ in range(n):
        kind = rng.randrange(5)
        b = bytearray(data)
        if kind == 0:
            b = b[:rng.randrange(len(data))]
        elif kind == 1:
            for _ in range(rng.randint(1, 8)):
                b[rng.randrange(meta)] = rng.randrange(256)
        elif kind == 2:
            pos = rng.randrange(4, meta - 8)
            b[pos:pos + 8] = struct.pack("<Q", rng.choice(HOSTILE))
        elif kind == 3:
            pos = rng.randrange(4, meta - 4)
            b[pos:pos + 4] = struct.pack("<I", rng.choice(HOSTILE) & 0xFFFFFFFF)
        else:
            a, c = sorted(rng.randrange(meta) for _ in range(2))
            b = b[:c] + b[a:c] + b[c:]  # a repeated run: duplicated keys / tensor infos, shifted offsets
        out.append(bytes(b))
    return out


def gguf_campaign(n: int, seed: int, library: Path | None = None) -> dict[str, int]:
    """Each mutation through check_model (the build), inspect_image (dte inspect MODEL.gguf) and the engine's
    check on an exact-size buffer (the reference verdict)."""
    import ctypes

    import gguf

    from dte_build.engine import gguf_check, load_library
    from dte_build.errors import DteError
    from dte_build.image import model_check
    from dte_build.inspect import inspect_image
    from model_factory import ModelSpec, make_model

    if library is not None:
        model_check._library(library)
    lib = load_library(library)
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    work = Path(tempfile.mkdtemp(prefix="dte-fuzz-gguf-"))
    counts: Counter[str] = Counter()
    try:
        model = make_model(work / "m.gguf", ModelSpec(n_vocab=300, n_embd=32, n_ff=32, n_head=2, n_head_kv=1,
                                                       n_layer=1))
        data = model.read_bytes()
        meta = gguf.GGUFReader(str(model)).data_offset
        rng = random.Random(seed)
        path = work / "x.gguf"
        err = ctypes.create_string_buffer(512)
        for case in _gguf_mutations(data, meta, rng, n):
            counts["inputs"] += 1
            path.write_bytes(case)
            p = libc.malloc(max(1, len(case)))
            ctypes.memmove(p, case, len(case))
            rc = lib.dte_host_model_check(ctypes.cast(p, ctypes.c_char_p), len(case), err, len(err)) \
                if case[:4] == b"GGUF" else -1
            libc.free(p)
            info = _attempt(counts, 20, lambda: model_check.check_model(path), "refused")
            if isinstance(info, DteError):
                counts["wrong_acceptances"] += rc == 0 and "MiB but board" not in info.message
            elif info is not _MISSING:
                counts["clean"] += 1
                counts["wrong_acceptances"] += rc != 0 or not info.runs
            report = _attempt(counts, 20, lambda: inspect_image(path), "inspect_refused")
            if isinstance(report, dict):
                counts["inspect_problems" if report["problems"] else "inspect_clean"] += 1
        counts["reference_self_check"] = int(gguf_check(data)[0] == 0)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return _with_zeros(counts)


# ---- images -----------------------------------------------------------------------------------------------------

def _reseal(raw: bytearray) -> None:
    """Recompute the GPT CRCs that still can be (headers whose LBAs lie inside the buffer)."""
    backup = struct.unpack_from("<Q", raw, SS + 32)[0]
    for at in (SS, backup * SS):
        if at + 92 > len(raw):
            continue
        array = struct.unpack_from("<Q", raw, at + 72)[0] * SS
        if array + 128 * 128 <= len(raw):
            struct.pack_into("<I", raw, at + 88, zlib.crc32(raw[array:array + 128 * 128]))
        struct.pack_into("<I", raw, at + 16, 0)
        struct.pack_into("<I", raw, at + 16, zlib.crc32(raw[at:at + 92]))


def _sensitive_regions(raw: bytes, files: dict[str, bytes]) -> list[tuple[int, int]]:
    """[lo, hi) byte ranges where any single flip must be noticed: both GPT headers (92 bytes), the used entries
    of both arrays, BOOTX64.EFI's and WEIGHTS.MAN's bytes in the ESP."""
    backup = struct.unpack_from("<Q", raw, SS + 32)[0] * SS
    backup_array = struct.unpack_from("<Q", raw, backup + 72)[0] * SS
    regions = [(SS, SS + 92), (2 * SS, 2 * SS + 256), (backup, backup + 92), (backup_array, backup_array + 256)]
    for data in files.values():
        at = raw.find(data)
        if at > 0:
            regions.append((at, at + len(data)))
    return regions


def _image_cases(raw: bytes, regions: list[tuple[int, int]], esp_area: int, rng: random.Random,
                 n: int) -> list[tuple[str, list[tuple[int, bytes]] | int]]:
    """(kind, edits) where edits are (offset, new bytes) applied in place, or an int: truncate to that size."""
    cases: list[tuple[str, list[tuple[int, bytes]] | int]] = []
    backup = struct.unpack_from("<Q", raw, SS + 32)[0] * SS
    for _ in range(n):
        kind = rng.choice(["sensitive", "sensitive", "gpt-field", "gpt-entry", "fat-field", "esp-flip",
                           "json", "truncate"])
        if kind == "sensitive":
            lo, hi = rng.choice(regions)
            at = rng.randrange(lo, hi)
            cases.append((kind, [(at, bytes([raw[at] ^ (1 << rng.randrange(8))]))]))
        elif kind in ("gpt-field", "gpt-entry"):  # hostile values with valid CRCs: only field checks see them
            array2 = struct.unpack_from("<Q", raw, backup + 72)[0] * SS
            value = rng.choice(HOSTILE + (len(raw) // SS, len(raw) // SS - 1, rng.randrange(1 << 40)))
            if kind == "gpt-field":
                off = rng.choice([24, 32, 40, 48, 72, 80, 84])
                width = 4 if off in (80, 84) else 8
                spots = [(SS + off, width), (backup + off, width)]
            else:
                entry = rng.randrange(4) * 128 + rng.choice([32, 40, 48])
                spots = [(2 * SS + entry, 8), (array2 + entry, 8)]
            full = bytearray(raw)
            for at, width in spots:
                full[at:at + width] = (value & ((1 << (8 * width)) - 1)).to_bytes(width, "little")
            _reseal(full)
            cases.append((kind, [(at, bytes(full[at:at + n])) for at, n in
                                 ((SS, 92), (backup, 92), (2 * SS, 128 * 128), (array2, 128 * 128))]))
        elif kind == "fat-field":
            off = rng.choice([11, 13, 14, 16, 17, 19, 22, 32, 36, 44])
            size = 1 if off in (13, 16) else (2 if off in (11, 14, 17, 19, 22) else 4)
            value = rng.choice(HOSTILE) & ((1 << (8 * size)) - 1)
            cases.append((kind, [(MIB + off, value.to_bytes(size, "little"))]))
        elif kind == "esp-flip":
            cases.append((kind, [(MIB + rng.randrange(esp_area), bytes([rng.randrange(256)]))
                                 for _ in range(rng.randint(1, 16))]))
        elif kind == "json":
            at = raw.find(b'"format": "dte-manifest/1"')
            end = raw.find(b"\n}\n", at)
            pos = rng.randrange(at, end)
            cases.append((kind, [(pos, bytes([rng.choice(b'"{}[]:,0123456789-.eE tfnul\\x')]))]))
        else:
            cases.append((kind, rng.randrange(SS, len(raw))))
    return cases


def image_campaign(n: int, seed: int) -> dict[str, int]:
    """Each mutation of a `dte build` image through inspect_image, `dte inspect` (every 4th, the CLI) and
    `dte verify` against the original."""
    from click.testing import CliRunner

    from dte_build.board import load_board
    from dte_build.cli import main
    from dte_build.flash import image_source, verify
    from dte_build.image.builder import build_image
    from dte_build.inspect import inspect_image
    from model_factory import sized_model

    work = Path(tempfile.mkdtemp(prefix="dte-fuzz-img-"))
    counts: Counter[str] = Counter()
    try:
        efi = work / "BOOTX64.EFI"
        efi.write_bytes(b"MZ" + bytes(range(256)) * 300)
        model = sized_model(work / "m.gguf", 1_200_000)
        good = build_image(load_board("qemu-q35"), efi, work / "good.img", model_path=model,
                           build_id="0123456789abcdef").path
        raw = good.read_bytes()
        env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
        wman = work / "w"
        subprocess.run(["mcopy", "-o", "-i", f"{good}@@{MIB}", "::/DTE/WEIGHTS.MAN", str(wman)], env=env, check=True)
        regions = _sensitive_regions(raw, {"efi": efi.read_bytes(), "wman": wman.read_bytes()})
        source = image_source(good)
        target = work / "t.img"
        shutil.copyfile(good, target)
        rng = random.Random(seed)
        for i, (kind, edit) in enumerate(_image_cases(raw, regions, 256 * 1024, rng, n)):
            counts["inputs"] += 1
            restore: list[tuple[int, bytes]] = []
            with open(target, "r+b") as f:
                if isinstance(edit, int):
                    f.truncate(edit)
                else:
                    for at, data in edit:
                        restore.append((at, raw[at:at + len(data)]))
                        f.seek(at)
                        f.write(data)
            differs = isinstance(edit, int) or any(raw[at:at + len(d)] != d for at, d in edit)
            sensitive = kind == "sensitive" and differs
            report = _attempt(counts, 30, lambda: inspect_image(target), "refused")
            if isinstance(report, dict) and report["problems"]:
                counts["reported"] += 1
            elif isinstance(report, dict):
                counts["clean"] += 1
                counts["wrong_acceptances"] += sensitive
                if sensitive:
                    print(f"wrong acceptance: {kind} {edit}", file=sys.stderr)
            if i % 4 == 0:
                result = CliRunner().invoke(main, ["inspect", str(target)])
                if result.exit_code not in (0, 1) or "Traceback" in result.output or (
                        result.exception is not None and not isinstance(result.exception, SystemExit)):
                    counts["tracebacks"] += 1
                    print(f"cli case {i} {kind}: {result.output[-500:]}", file=sys.stderr)
            checked = _attempt(counts, 60, lambda: verify(source, target), "verify_refused")
            if hasattr(checked, "status"):
                counts[f"verify_{checked.status}"] += 1
                if checked.ok and differs:
                    counts["wrong_acceptances"] += 1
                    print(f"verify accepted a changed image: {kind} {edit}", file=sys.stderr)
            with open(target, "r+b") as f:
                if isinstance(edit, int):
                    f.truncate(len(raw))
                    f.seek(edit)
                    f.write(raw[edit:])
                for at, data in reversed(restore):
                    f.seek(at)
                    f.write(data)
        source.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return _with_zeros(counts)


def _with_zeros(counts: Counter[str]) -> dict[str, int]:
    for key in ("tracebacks", "hangs", "wrong_acceptances"):
        counts.setdefault(key, 0)
    return dict(sorted(counts.items()))


def run_gguf_child(n: int, seed: int, asan: bool) -> dict[str, int]:
    """The GGUF part in a child process (a crash there is counted, not fatal); under ASan/UBSan with `asan`."""
    from dte_build import engine

    env = dict(os.environ)
    args = [sys.executable, __file__, "--ggufs", str(n), "--images", "0", "--seed", str(seed), "--child"]
    if asan:
        env.update(LD_PRELOAD=str(engine.asan_runtime()),
                   ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allocator_may_return_null=1",
                   UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")
        args += ["--library", str(engine.build_host_library(sanitize=True))]
    else:
        engine.build_host_library()
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=3600)
    if proc.returncode != 0:  # a signal or a sanitizer abort is a crash; a Python exit is a traceback
        sys.stderr.write(proc.stderr[-4000:])
        crashed = proc.returncode < 0 or "Sanitizer" in proc.stderr
        return {"inputs": n, "crashes": int(crashed), "tracebacks": int(not crashed), "hangs": 0,
                "wrong_acceptances": 0}
    counts = json.loads(proc.stdout.strip().splitlines()[-1])
    counts["crashes"] = 0
    if proc.stderr.strip():
        sys.stderr.write(proc.stderr[-4000:])
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ggufs", type=int, default=3000)
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--asan", action="store_true", help="the GGUF part under the ASan/UBSan library")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--library", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(gguf_campaign(args.ggufs, args.seed, args.library)))
        return
    if args.ggufs:
        print(json.dumps({"part": "gguf", "asan": args.asan, **run_gguf_child(args.ggufs, args.seed, args.asan)}))
    if args.images:
        print(json.dumps({"part": "image", **image_campaign(args.images, args.seed)}))


if __name__ == "__main__":
    main()
