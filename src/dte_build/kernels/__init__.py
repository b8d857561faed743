"""SIMD kernels generated with llvmlite: LLVM IR at a board's vector width, compiled to a COFF object for the
firmware and to an ELF object for the hosted library (and JIT-run in tests).

Linking (firmware/engine/kernels.h): an object from `emit_kernel_object` defines every symbol in
`KERNEL_SYMBOLS`; compile firmware/engine/kernels.c with -DDTE_HAVE_GENERATED_KERNELS and link the object, and
`dte_vec_dot` uses the kernels. Without both, the scalar reference is used.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import llvmlite

from ..board import Board
from ..errors import DteError
from .ir import Isa
from .target import COFF_TRIPLE, Jit, Target, emit_assembly, emit_object
from .ir import TILE_ROWS, TOKENS, WIDE_TOKENS
from .vecdot import GEMM_KERNELS, KERNELS, MULTI_KERNELS, ROW_KERNELS, WIDE_KERNELS, FLOAT_ROW_KERNELS, module_ir

VEC_DOT_SYMBOLS: tuple[str, ...] = tuple(sym for sym, _ in KERNELS.values())
"""The vec_dot kernels (dte_vec_dot_ref's ABI), in firmware/engine/kernels.h order."""
MULTI_SYMBOLS: tuple[str, ...] = tuple(sym for sym, _ in MULTI_KERNELS.values())
"""The TOKENS-row kernels (kernels.h dte_vec_dot4_fn ABI), in kernels.h order."""
GEMM_SYMBOLS: tuple[str, ...] = tuple(sym for sym, _ in GEMM_KERNELS.values())
"""The TILE_ROWS x TOKENS tile kernels (kernels.h dte_gemm_fn ABI), in kernels.h order."""
ROW_SYMBOLS: tuple[str, ...] = tuple(sym for sym, _ in ROW_KERNELS.values())
"""The TILE_ROWS x 1 kernels (kernels.h dte_gemm_fn ABI, one activation row), in kernels.h order."""
WIDE_SYMBOLS: tuple[str, ...] = tuple(sym for sym, _ in WIDE_KERNELS.values())
"""The WIDE_TOKENS-row kernels (kernels.h dte_vec_dot4_fn ABI with 16 tokens; K-quants), in kernels.h order."""
FLOAT_ROW_SYMBOLS: tuple[str, ...] = tuple(sym for sym, _ in FLOAT_ROW_KERNELS.values())
"""The 16-row F16 kernels (kernels.h dte_gemm_fn ABI, one activation row; attention), in kernels.h order."""
KERNEL_SYMBOLS: tuple[str, ...] = (VEC_DOT_SYMBOLS + MULTI_SYMBOLS + GEMM_SYMBOLS + ROW_SYMBOLS + WIDE_SYMBOLS
                                   + FLOAT_ROW_SYMBOLS)
"""Every generated function."""

DISPATCH_SOURCE = "engine/kernels.c"
"""The firmware source (relative to firmware/) to compile with DISPATCH_DEFINE when the kernel object is linked."""
DISPATCH_DEFINE = "-DDTE_HAVE_GENERATED_KERNELS"

__all__ = ["DISPATCH_DEFINE", "DISPATCH_SOURCE", "FLOAT_ROW_SYMBOLS", "GEMM_SYMBOLS", "KERNEL_SYMBOLS", "MULTI_SYMBOLS", "ROW_SYMBOLS",
           "TILE_ROWS",
           "TOKENS", "VEC_DOT_SYMBOLS", "WIDE_SYMBOLS", "WIDE_TOKENS", "Isa", "Jit", "Target", "assembly", "board_isa", "board_target", "emit_kernel_object",
           "host_has_avx512_vnni", "host_kernel_width", "hosted_link_inputs", "kernel_ir", "kernel_object"]

AVX512_VNNI_FEATURES = ("avx512f", "avx512bw", "avx512vl", "avx512vnni")
"""What the 512-bit VNNI kernels (epyc9654's) need from a CPU."""


def _host_features() -> set[str]:
    """This host's enabled CPU features as LLVM names, without the '+' (LLVM drops AVX-512 when XCR0 lacks it)."""
    return {f[1:] for f in Target.host().features.split(",") if f.startswith("+")}


def host_has_avx512_vnni() -> bool:
    """True when this host can execute the 512-bit VNNI kernels (avx512f/bw/vl/vnni, OS-enabled)."""
    return set(AVX512_VNNI_FEATURES) <= _host_features()


def host_kernel_width() -> int | None:
    """The widest kernels this host runs natively: 512 (AVX-512 VNNI), 256 (AVX2), or None (scalar reference)."""
    if host_has_avx512_vnni():
        return 512
    return 256 if "avx2" in _host_features() else None


def board_isa(board: Board) -> Isa:
    """The instruction set a board's kernels use: its vector width, VNNI where it has it."""
    features = set(board.features)
    if board.vector_bits == 512:
        if not {"avx512f", "avx512bw"} <= features:
            raise DteError(f"board {board.name}: 512-bit kernels need avx512f and avx512bw in cpu.features")
        return Isa(512, intrinsics=True, vnni={"avx512vnni", "avx512vl"} <= features)
    if board.vector_bits == 256 and "avx2" in features:
        return Isa(256, intrinsics=True)
    raise DteError(f"board {board.name}: no SIMD kernels for vector_bits={board.vector_bits}",
                   "set cpu.vector_bits to 256 (avx2) or 512 (avx512f+avx512bw)")


def board_target(board: Board, triple: str = COFF_TRIPLE) -> Target:
    return Target(triple, board.march, ",".join(f"+{f}" for f in board.features))


def kernel_ir(isa: Isa, triple: str) -> str:
    """The LLVM IR text of every kernel for `isa`."""
    return module_ir(isa, triple)


def _isa_and_target(board_or_width: Board | int, fmt: str) -> tuple[Isa, Target]:
    if fmt not in ("coff", "elf"):
        raise DteError(f"unknown kernel object format '{fmt}'", "use 'coff' (firmware) or 'elf' (hosted)")
    if isinstance(board_or_width, Board):
        board = board_or_width
        return board_isa(board), board_target(board, COFF_TRIPLE if fmt == "coff" else Target.host().triple)
    if board_or_width not in (256, 512):
        raise DteError(f"kernel vector width must be 256 or 512, not {board_or_width}")
    host, features = Target.host(), _host_features()
    if board_or_width == 512:  # x86 intrinsics (vpdpbusd with VNNI) where this host has them, else generic IR
        isa = Isa(512, intrinsics={"avx512f", "avx512bw"} <= features, vnni=host_has_avx512_vnni())
    else:
        isa = Isa(256, intrinsics="avx2" in features)
    return isa, Target(COFF_TRIPLE if fmt == "coff" else host.triple, host.cpu, host.features)


def emit_kernel_object(board_or_width: Board | int, fmt: str, out: Path) -> list[str]:
    """Write the kernel object to `out` and return its symbol names.

    board_or_width: a Board (its march, features, width, VNNI) or a vector width (256/512: code for this host's
    CPU, with x86 intrinsics -- vpdpbusd at 512 -- where the host has them; the form the hosted library uses).
    fmt: "coff" (x86_64-unknown-windows, for the firmware's lld-link) or "elf" (this host's triple, PIC, for the
    hosted shared library).
    """
    isa, target = _isa_and_target(board_or_width, fmt)
    data = emit_object(kernel_ir(isa, target.triple), target)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(out)
    return list(KERNEL_SYMBOLS)


def assembly(isa: Isa, target: Target) -> str:
    """Assembly text of the kernels (for inspection and tests)."""
    return emit_assembly(kernel_ir(isa, target.triple), target)


def kernel_object(board_or_width: Board | int, fmt: str, out_dir: Path) -> Path:
    """The kernel object for a board (or width) in `out_dir`, named by a hash of its IR, target and llvmlite
    version, and generated only when that file is missing: `kernels-<isa>-<hash>.obj` (coff) / `.o` (elf)."""
    isa, target = _isa_and_target(board_or_width, fmt)
    digest = _ir_digest(isa, target, Path(out_dir))
    out = Path(out_dir) / f"kernels-{isa.tag}-{digest}.{'obj' if fmt == 'coff' else 'o'}"
    if not out.is_file():
        emit_kernel_object(board_or_width, fmt, out)
    return out


def _ir_digest(isa: Isa, target: Target, out_dir: Path) -> str:
    """16 hex digits of SHA-256 over the kernels' IR, target and llvmlite version. Generating the IR costs
    0.1-0.2 s of every command that loads the engine, so the digest is kept in `out_dir` under a key of what the IR
    is a function of: this package's generator sources, the ISA and the target."""
    key = hashlib.sha256(f"{isa!r}\n{target.triple}\n{target.cpu}\n{target.features}\n{llvmlite.__version__}".encode())
    for path in sorted(Path(__file__).parent.glob("*.py")):
        key.update(path.name.encode() + b"\0" + path.read_bytes())
    cached = Path(out_dir) / f"ir-{key.hexdigest()[:24]}.digest"
    try:
        digest = cached.read_text().strip()
        if len(digest) == 16:
            return digest
    except OSError:
        pass
    digest = hashlib.sha256("\n".join([kernel_ir(isa, target.triple), target.cpu, target.features,
                                        llvmlite.__version__]).encode()).hexdigest()[:16]
    try:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f"{cached.name}.tmp-{os.getpid()}")
        tmp.write_text(digest + "\n")
        tmp.replace(cached)
    except OSError:
        pass
    return digest


def hosted_link_inputs(out_dir: Path, width: int | None = None) -> tuple[list[Path], list[str]]:
    """What the hosted library adds to its clang command line for SIMD kernels: ([object], [define]), or
    ([], []) on a host without AVX2 (the scalar reference is used then). `width`: 256 or 512, default
    `host_kernel_width()` (512-bit VNNI kernels where the host has AVX-512 VNNI)."""
    width = width or host_kernel_width()
    if width is None:
        return [], []
    return [kernel_object(width, "elf", out_dir)], [DISPATCH_DEFINE]
