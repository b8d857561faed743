"""Generated SIMD kernels (dte_build.kernels) against the scalar reference dte_vec_dot_ref -- bit for bit: dte's one
reduction order (docs/kernels.md) makes every kernel at every width return the reference's exact float -- at every
vector width a board uses: 256-bit with x86 intrinsics (qemu-q35), the generic twins at 256 and 512 bits (legalised by llvmlite's JIT
on any AVX2 host), and -- on a host with AVX-512 VNNI -- the exact epyc9654 kernels (vpdpbusd on zmm, cpu znver4
and the board's features); plus the firmware objects' instruction sets as seen by the disassembler."""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as T

from _quantlib import Quants, load_quants, random_weight_bytes
from dte_build import layout
from dte_build.board import load_board
from dte_build.kernels import (FLOAT_ROW_SYMBOLS, GEMM_SYMBOLS, KERNEL_SYMBOLS, MULTI_SYMBOLS, ROW_SYMBOLS, TILE_ROWS, TOKENS,
                               VEC_DOT_SYMBOLS, WIDE_SYMBOLS, WIDE_TOKENS, Isa, Jit, Target, board_isa, board_target, emit_kernel_object, host_has_avx512_vnni, kernel_ir)
from dte_build.paths import FIRMWARE_DIR

KERNEL_TYPES = {"q8_0": T.Q8_0, "q4_0": T.Q4_0, "q4_1": T.Q4_1, "q5_0": T.Q5_0, "q5_1": T.Q5_1, "q2_K": T.Q2_K,
                "q3_K": T.Q3_K, "q4_K": T.Q4_K, "q5_K": T.Q5_K, "q6_K": T.Q6_K, "f32": T.F32, "f16": T.F16,
                "bf16": T.BF16}
ACTIVATION = {T.Q8_0: T.Q8_0, T.Q4_0: T.Q8_0, T.Q5_0: T.Q8_0, T.Q4_1: T.Q8_1, T.Q5_1: T.Q8_1,
              **{t: T.Q8_K for t in (T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K)}, T.F32: T.F32, T.F16: T.F16,
              T.BF16: T.BF16}
FLOATS = (T.F32, T.F16, T.BF16)
# 256: qemu-q35 with x86 intrinsics and its generic twin; 512: epyc9654's width, generic twin; "epyc9654": the
# board's own kernels (Isa(512, vnni=True), its march and features), run only where the host CPU has AVX-512 VNNI.
# "512-avx512": 512-bit x86 intrinsics without VNNI (vpmaddubsw/vpmaddwd on zmm), where the host has AVX-512 BW.
ISAS = [Isa(256), Isa(256, intrinsics=False), Isa(512, intrinsics=False), Isa(512), "epyc9654"]
OBJDUMP = shutil.which("llvm-objdump-19") or shutil.which("objdump")


def isa_id(isa: Isa | str) -> str:
    return isa if isinstance(isa, str) else isa.tag


@pytest.fixture(scope="module")
def q() -> Quants:
    return load_quants()


def board_jit(name: str) -> Jit:
    """The board's exact kernels (its Isa, march and features), JIT-compiled for this host's triple."""
    if not host_has_avx512_vnni():
        pytest.skip("host CPU lacks AVX-512 VNNI (avx512f/bw/vl/vnni): the epyc9654 kernels cannot run here")
    board = load_board(name)
    isa = board_isa(board)
    assert isa == Isa(512, intrinsics=True, vnni=True)
    target = board_target(board, Target.host().triple)
    return Jit(kernel_ir(isa, target.triple), target)


@pytest.fixture(scope="module", params=ISAS, ids=isa_id)
def jit(request: pytest.FixtureRequest) -> Jit:
    host = Target.host()
    if "+avx2" not in host.features.split(","):
        pytest.skip("this host has no AVX2: the kernels cannot run here")
    if isinstance(request.param, str):
        return board_jit(request.param)
    if request.param == Isa(512) and "+avx512bw" not in host.features.split(","):
        pytest.skip("this host has no AVX-512 BW: the 512-bit intrinsic kernels cannot run here")
    return Jit(kernel_ir(request.param, host.triple), host)


def symbol(kind: str) -> str:
    t = KERNEL_TYPES[kind]
    act = ACTIVATION[t].name.lower().replace("q8_k", "q8_K")
    return f"dte_k_vec_dot_{kind}_{act}"


def test_symbols_match_kernels_header() -> None:
    header = (FIRMWARE_DIR / "engine/kernels.h").read_text()
    declared = re.findall(r"^(?:float|void) (dte_k_(?:vec_dot|gemm)\w+)\(", header, re.M)
    assert declared == list(KERNEL_SYMBOLS)
    quantized = ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1"]
    assert sorted(GEMM_SYMBOLS) == sorted(symbol(k).replace("vec_dot", f"gemm{TILE_ROWS}x{TOKENS}") for k in quantized)
    assert sorted(ROW_SYMBOLS) == sorted(symbol(k).replace("vec_dot", f"gemm{TILE_ROWS}x1") for k in KERNEL_TYPES
                                         if KERNEL_TYPES[k] not in FLOATS)
    assert sorted(symbol(k) for k in KERNEL_TYPES) == sorted(VEC_DOT_SYMBOLS)
    assert sorted(MULTI_SYMBOLS) == sorted(symbol(k).replace("vec_dot", "vec_dot4") for k in KERNEL_TYPES)
    assert sorted(WIDE_SYMBOLS) == sorted(symbol(k).replace("vec_dot", f"vec_dot{WIDE_TOKENS}") for k in KERNEL_TYPES
                                          if k.endswith("_K"))


def bits(v: float) -> int:
    """The binary32 encoding of a kernel's result (so that -0.0 and 0.0 differ)."""
    return int(np.float32(v).view(np.uint32))


SCALE_AT = {T.Q8_0: 0, T.Q4_0: 0, T.Q4_1: 0, T.Q5_0: 0, T.Q5_1: 0, T.Q2_K: 80, T.Q3_K: 108, T.Q4_K: 0, T.Q5_K: 0,
            T.Q6_K: 208}
"""Byte offset of the fp16 block scale d (ggml-common.h), followed by m / dmin where the type has one."""
EXTREME_F16 = np.array([65504.0, -65504.0, 6.1035e-5, 5.96e-8, -5.96e-8, 0.0, 1024.0, -0.5], dtype=np.float16)


def adversarial_weights(t: T, n: int, rng: np.random.Generator) -> np.ndarray:
    """Valid blocks whose scales are fp16 extremes (largest, smallest normal, subnormal, zero, negative) and, for
    the floats, values spanning 2^-40 .. 2^40: NaN-free, no overflow in any sum."""
    w = random_weight_bytes(t, n, rng)
    if t in FLOATS:
        span = (-20, 12) if t == T.F16 else (-40, 40)  # F16: down into its subnormals, up to 2^12
        x = rng.standard_normal(n) * 2.0 ** rng.integers(*span, n)
        return (x.astype(np.float32) if t == T.F32 else x.astype(np.float16) if t == T.F16
                else (x.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)).view(np.uint8).ravel()
    block_elems, block_bytes = GGML_QUANT_SIZES[t]
    blocks = w.reshape(n // block_elems, block_bytes)
    at = SCALE_AT[t]
    words = 2 if t in (T.Q4_1, T.Q5_1, T.Q2_K, T.Q4_K, T.Q5_K) else 1
    scales = rng.choice(EXTREME_F16, size=(blocks.shape[0], words)).astype(np.float16)
    blocks[:, at:at + 2 * words] = scales.view(np.uint8)
    return blocks.ravel()


def activations(q: Quants, t: T, x: np.ndarray) -> np.ndarray:
    return q.quantize(ACTIVATION[t], x.astype(np.float32))


@pytest.mark.parametrize("kind", list(KERNEL_TYPES))
def test_kernel_equals_reference_bit_for_bit(q: Quants, jit: Jit, kind: str) -> None:
    t = KERNEL_TYPES[kind]
    fn = jit.function(symbol(kind))
    block = GGML_QUANT_SIZES[t][0]
    rng = np.random.default_rng(int(t))
    sizes = [1, 7, 31, 32, 64, 100, 257, 1000, 4099] if t in FLOATS else [block * b for b in (1, 2, 3, 5, 8, 17, 64)]
    for n in sizes:
        for trial in range(6):
            w = (adversarial_weights if trial >= 3 else random_weight_bytes)(t, n, rng)
            x = rng.standard_normal(n) * rng.uniform(0.1, 10)
            if trial == 2:
                x[: n // 2] = 0.0  # zero activation blocks
            if trial == 4:  # scales near fp16's largest (Q8_0 d; Q8_1 keeps its s finite), float32 extremes
                x *= {T.Q8_0: 2.0e3, T.Q8_1: 50.0, T.F16: 2.0 ** 8}.get(ACTIVATION[t], 2.0 ** 30)
            if trial == 5:
                x *= {T.Q8_0: 1e-6, T.Q8_1: 1e-6, T.F16: 2.0 ** -20}.get(ACTIVATION[t], 2.0 ** -60)
            a = activations(q, t, x)
            ref = q.vec_dot(t, n, w, a, ref=True)
            got = fn(n, w.ctypes.data, a.ctypes.data)
            assert np.isfinite(ref), (kind, n, trial)
            assert bits(got) == bits(ref), (kind, n, trial, got, ref)


MULTI_SIGNATURE = ctypes.CFUNCTYPE(None, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                   ctypes.POINTER(ctypes.c_float))


@pytest.mark.parametrize("kind,tokens", [(k, TOKENS) for k in KERNEL_TYPES]
                         + [(k, WIDE_TOKENS) for k in KERNEL_TYPES if k.endswith("_K")])
def test_multi_token_kernel_matches_reference(q: Quants, jit: Jit, kind: str, tokens: int) -> None:
    """One weight row against TOKENS (every type) or WIDE_TOKENS (K-quants) activation rows: each result equal, bit
    for bit, to dte_vec_dot_ref's, on random and adversarial weights and on activations whose scales span from tiny
    to large across the tokens of one call. Float rows: lengths below, at and past the 64 lanes, with tails."""
    t = KERNEL_TYPES[kind]
    fn = MULTI_SIGNATURE(jit.engine.get_function_address(symbol(kind).replace("vec_dot", f"vec_dot{tokens}")))
    rng = np.random.default_rng(int(t) + 100 + tokens)
    lengths = (7, 64, 257, 1000) if t in FLOATS else tuple(GGML_QUANT_SIZES[t][0] * b for b in (1, 2, 3, 8))
    for blocks, n in zip((1, 2, 3, 8), lengths):
        w = (adversarial_weights if blocks == 2 else random_weight_bytes)(t, n, rng)
        top = 8 if t == T.F16 else 20  # F16 activations stay finite (largest 65504)
        span = 2.0 ** rng.integers(-20, top, tokens) if blocks == 3 else np.ones(tokens)
        rows = [q.quantize(ACTIVATION[t], (rng.standard_normal(n) * span[i]).astype(np.float32))
                for i in range(tokens)]
        if blocks == 8:
            rows[1][:] = q.quantize(ACTIVATION[t], np.zeros(n, dtype=np.float32))  # an all-zero token
        stride = rows[0].size + 40  # rows need not be adjacent
        acts = np.zeros(stride * tokens, dtype=np.uint8)
        for i, r in enumerate(rows):
            acts[i * stride:i * stride + r.size] = r
        out = (ctypes.c_float * tokens)()
        fn(n, w.ctypes.data, acts.ctypes.data, stride, out)
        for i, r in enumerate(rows):
            assert bits(out[i]) == bits(q.vec_dot(t, n, w, r)), (kind, n, i)


@pytest.mark.parametrize("kind", ["f16"])
def test_float_rows_kernel_matches_one_row_kernel(q: Quants, jit: Jit, kind: str) -> None:
    """16 F16 rows (strided, as attention's V rows) against one row: each result equal, bit for bit, to the one-row
    kernel's and dte_vec_dot_ref's, for lengths below, at and above the 64 lanes (all-tail, no tail, both) and on
    values spanning F16's range."""
    assert FLOAT_ROW_SYMBOLS == ("dte_k_gemm16x1_f16_f16",)
    t = KERNEL_TYPES[kind]
    rows_fn = GEMM_SIGNATURE(jit.engine.get_function_address(f"dte_k_gemm16x1_{kind}_{kind}"))
    one = jit.function(symbol(kind))
    rng = np.random.default_rng(16)
    for n in (1, 7, 40, 63, 64, 65, 127, 128, 200):
        stride = n + 5  # elements between rows (a ring of V positions is longer than the rows read)
        w = np.concatenate([adversarial_weights(t, stride, rng) if r % 3 == 0
                            else rng.standard_normal(stride).astype(np.float16).view(np.uint8)
                            for r in range(16)])
        a = np.abs(rng.standard_normal(n)).astype(np.float16).view(np.uint8)  # probabilities are >= 0
        out = (ctypes.c_float * 16)()
        rows_fn(n, w.ctypes.data, stride * 2, a.ctypes.data, 0, out)
        for r in range(16):
            row = w[r * stride * 2:(r * stride + n) * 2]
            ref = q.vec_dot(t, n, row, a, ref=True)
            assert bits(out[r]) == bits(one(n, row.ctypes.data, a.ctypes.data)) == bits(ref), (kind, n, r)


GEMM_SIGNATURE = ctypes.CFUNCTYPE(None, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p,
                                  ctypes.c_int64, ctypes.POINTER(ctypes.c_float))


@pytest.mark.parametrize("kind", ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1"])
def test_tile_kernel_matches_reference_and_four_token_kernel(q: Quants, jit: Jit, kind: str) -> None:
    """TILE_ROWS weight rows x TOKENS activation rows: each result equal, bit for bit, to dte_vec_dot_ref's, to the
    4-token kernel's and to the TILE_ROWS x 1 kernel's (same per-pair operations), so batching never changes the
    logits."""
    t = KERNEL_TYPES[kind]
    sym = symbol(kind).replace("vec_dot", f"gemm{TILE_ROWS}x{TOKENS}")
    tile = GEMM_SIGNATURE(jit.engine.get_function_address(sym))
    four = MULTI_SIGNATURE(jit.engine.get_function_address(symbol(kind).replace("vec_dot", "vec_dot4")))
    rows_kernel = GEMM_SIGNATURE(jit.engine.get_function_address(symbol(kind).replace("vec_dot", f"gemm{TILE_ROWS}x1")))
    rng = np.random.default_rng(int(t) + 200)
    for blocks in (1, 2, 3, 8, 17):
        n = 32 * blocks
        wrows = [random_weight_bytes(t, n, rng) for _ in range(TILE_ROWS)]
        if blocks == 3:
            wrows = [adversarial_weights(t, n, rng) for _ in range(TILE_ROWS)]
        wstride = wrows[0].size
        # the 4-row kernels read one ROWS4 group (docs/kernels.md "Weight layouts"), packed by the engine's own
        # transform (tests/test_layout.py checks it against numpy); the reference reads the plain rows
        w = np.frombuffer(layout.pack(int(t), n, TILE_ROWS, np.concatenate(wrows).tobytes()), dtype=np.uint8)
        rows = [q.quantize(ACTIVATION[t], rng.standard_normal(n).astype(np.float32)) for _ in range(TOKENS)]
        stride = rows[0].size + 40
        acts = np.zeros(stride * TOKENS, dtype=np.uint8)
        for i, r in enumerate(rows):
            acts[i * stride:i * stride + r.size] = r
        out = (ctypes.c_float * (TILE_ROWS * TOKENS))()
        tile(n, w.ctypes.data, wstride, acts.ctypes.data, stride, out)
        one = (ctypes.c_float * TILE_ROWS)()
        for i in range(TOKENS):  # the TILE_ROWS x 1 kernel (generation) on each token alone
            rows_kernel(n, w.ctypes.data, wstride, acts[i * stride:].ctypes.data, 0, one)
            assert [bits(v) for v in one] == [bits(out[i * TILE_ROWS + r]) for r in range(TILE_ROWS)], (kind, n, i)
        by_row = (ctypes.c_float * TOKENS)()
        for r, row in enumerate(wrows):
            four(n, row.ctypes.data, acts.ctypes.data, stride, by_row)
            assert [out[i * TILE_ROWS + r] for i in range(TOKENS)] == list(by_row), (kind, n, r)
            for i, a in enumerate(rows):
                assert bits(out[i * TILE_ROWS + r]) == bits(q.vec_dot(t, n, row, a, ref=True)), (kind, n, r, i)


@pytest.mark.parametrize("kind", [k for k in KERNEL_TYPES if k.endswith("_K")])
def test_k_quant_rows_kernel_matches_one_row_kernel(q: Quants, jit: Jit, kind: str) -> None:
    """TILE_ROWS K-quant weight rows in the plain GGUF layout (w_row_bytes apart, as in the file) against one
    activation row (generation): each result equal, bit for bit, to the one-row kernel's and to dte_vec_dot_ref's,
    on random rows, rows with fp16-extreme super-block scales mixed with random ones, and activations whose scale
    is tiny, large or zero."""
    t = KERNEL_TYPES[kind]
    rows_kernel = GEMM_SIGNATURE(jit.engine.get_function_address(symbol(kind).replace("vec_dot", f"gemm{TILE_ROWS}x1")))
    one = jit.function(symbol(kind))
    rng = np.random.default_rng(int(t) + 300)
    for blocks in (1, 2, 3, 8, 17):
        n = 256 * blocks
        for trial in range(4):
            wrows = [(adversarial_weights if (trial + r) % 2 else random_weight_bytes)(t, n, rng)
                     for r in range(TILE_ROWS)]
            gap = 0 if trial == 0 else 8 * trial + 3   # rows adjacent (as in a GGUF) or further apart
            wstride = wrows[0].size + gap
            w = np.zeros(wstride * TILE_ROWS, dtype=np.uint8)
            for r, row in enumerate(wrows):
                w[r * wstride:r * wstride + row.size] = row
            x = rng.standard_normal(n) * {0: 1.0, 1: 2.0 ** 30, 2: 2.0 ** -60, 3: 0.0}[trial]
            a = q.quantize(ACTIVATION[t], x.astype(np.float32))
            out = (ctypes.c_float * TILE_ROWS)()
            rows_kernel(n, w.ctypes.data, wstride, a.ctypes.data, 0, out)
            for r, row in enumerate(wrows):
                ref = q.vec_dot(t, n, row, a, ref=True)
                assert np.isfinite(ref), (kind, n, trial, r)
                assert bits(out[r]) == bits(one(n, row.ctypes.data, a.ctypes.data)) == bits(ref), (kind, n, trial, r)


def test_extreme_values_are_exact(q: Quants, jit: Jit) -> None:
    """Largest-magnitude quants (|w| = 127, |x| = 127) hit no 16-bit saturation: integer sums stay exact."""
    n = 32 * 6
    w = np.zeros((6, 34), dtype=np.uint8)
    w[:, :2] = np.array([1.0], dtype=np.float16).view(np.uint8)
    w[:, 2:] = np.where(np.arange(32) % 2 == 0, -127, 127).astype(np.int8).view(np.uint8)
    a = q.quantize(T.Q8_0, np.where(np.arange(n) % 2 == 0, -1.0, 1.0).astype(np.float32) * 3.0)
    ref = q.vec_dot(T.Q8_0, n, w.ravel(), a, ref=True)
    got = jit.function(symbol("q8_0"))(n, w.ctypes.data, a.ctypes.data)
    assert ref == pytest.approx(n * 127 * 127 * float(np.float16(3.0 / 127)), rel=1e-3)
    assert bits(got) == bits(ref)


def objdump(path: Path) -> str:
    if OBJDUMP is None:
        pytest.skip("no llvm-objdump-19 or objdump to disassemble with")
    return subprocess.run([OBJDUMP, "-d", str(path)], capture_output=True, text=True, check=True, timeout=60).stdout


def test_epyc9654_object_uses_zmm_and_vnni(tmp_path: Path) -> None:
    out = tmp_path / "kernels-epyc.obj"
    symbols = emit_kernel_object(load_board("epyc9654"), "coff", out)
    assert out.read_bytes()[:2] == b"\x64\x86"  # IMAGE_FILE_MACHINE_AMD64 (PE/COFF spec 3.3.1)
    text = objdump(out)
    assert re.search(r"%zmm\d+|\bzmm\d+", text)
    assert "vpdpbusd" in text
    for s in symbols:
        assert f"<{s}>:" in text


def test_qemu_q35_object_uses_ymm_only(tmp_path: Path) -> None:
    out = tmp_path / "kernels-q35.obj"
    emit_kernel_object(load_board("qemu-q35"), "coff", out)
    text = objdump(out)
    assert re.search(r"ymm\d+", text)
    assert not re.search(r"zmm\d+", text)
    assert "vpmaddubsw" in text and "vpmaddwd" in text


@pytest.mark.parametrize("width", [256, 512])
@pytest.mark.slow
def test_elf_object_links_into_hosted_library(tmp_path: Path, width: int) -> None:
    """The hosted ELF object + quants.c built with DTE_HAVE_GENERATED_KERNELS: dte_vec_dot dispatches to it."""
    from _quantlib import QUANTS_SOURCES
    from dte_build.toolchain import compile_hosted_library

    from dte_build.kernels import hosted_link_inputs

    if width == 512 and not host_has_avx512_vnni():
        pytest.skip("host CPU lacks AVX-512 VNNI: the hosted library uses the 256-bit kernels")
    objects, defines = hosted_link_inputs(tmp_path, width)
    if not objects:
        pytest.skip("this host has no AVX2: the hosted library uses the scalar reference")
    assert defines == ["-DDTE_HAVE_GENERATED_KERNELS"]
    text = objdump(objects[0])
    if width == 512:  # the host's VNNI kernels, as on epyc9654
        assert "vpdpbusd" in text and re.search(r"zmm\d+", text)
    else:  # (LLVM may still pick zmm for the float loops on an AVX-512 host: znver4 prefers 512-bit vectors)
        assert "vpdpbusd" not in text and "vpmaddubsw" in text
    so = compile_hosted_library([FIRMWARE_DIR / s for s in QUANTS_SOURCES] + objects, tmp_path / "quants-kernels.so",
                                defines)
    lib = Quants(str(so))
    rng = np.random.default_rng(9)
    n = 256 * 4
    for t in KERNEL_TYPES.values():
        w = random_weight_bytes(t, n, rng)
        a = lib.quantize(ACTIVATION[t], rng.standard_normal(n).astype(np.float32))
        ref, fast = lib.vec_dot(t, n, w, a, ref=True), lib.vec_dot(t, n, w, a, ref=False)
        assert bits(fast) == bits(ref), t.name
    tokens_fn = lib.lib.dte_vec_dot_tokens
    tokens_fn.argtypes = [ctypes.c_uint32, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                          ctypes.c_int64, ctypes.POINTER(ctypes.c_float), ctypes.c_int64]
    for t in (T.Q4_0, T.Q4_K, T.F16):
        w = random_weight_bytes(t, n, rng)
        rows = [lib.quantize(ACTIVATION[t], rng.standard_normal(n).astype(np.float32)) for _ in range(7)]
        acts = np.concatenate(rows)
        out = np.full(7 * 3, np.nan, dtype=np.float32)
        tokens_fn(int(t), n, w.ctypes.data, acts.ctypes.data, rows[0].size, 7,
                  out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), 3)
        expected = [lib.vec_dot(t, n, w, r) for r in rows]
        np.testing.assert_array_equal(out[::3], np.array(expected, dtype=np.float32))
        assert np.isnan(out[1::3]).all()
    rows_tokens = lib.lib.dte_vec_dot_rows_tokens
    rows_tokens.argtypes = [ctypes.c_uint32, ctypes.c_uint32, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64,
                            ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                            ctypes.POINTER(ctypes.c_float), ctypes.c_int64]
    # tile kernels on ROWS4 groups (legacy types); K-quants (plain rows): the 4-token kernels, the 3 leftover tokens
    # (and one token alone: generation) through the 4-row kernels, the 9th row through the one-row kernel
    for t, lay, tokens in ((T.Q8_0, layout.ROWS4, 7), (T.Q4_1, layout.ROWS4, 7), (T.Q4_K, layout.GGUF, 7),
                           (T.Q5_0, layout.GGUF, 7), (T.Q4_K, layout.GGUF, 1), (T.Q6_K, layout.GGUF, 1)):
        wrows = [random_weight_bytes(t, n, rng) for _ in range(9)]  # 2 groups + a leftover row
        rows = [lib.quantize(ACTIVATION[t], rng.standard_normal(n).astype(np.float32)) for _ in range(tokens)]
        out = np.full((tokens, 11), np.nan, dtype=np.float32)  # [token][row], stride 11
        w_all = np.frombuffer(layout.pack(int(t), n, 9, np.concatenate(wrows).tobytes(), layout=lay), np.uint8)
        a_all = np.concatenate(rows)
        rows_tokens(int(t), lay, n, w_all.ctypes.data, wrows[0].size, 9, a_all.ctypes.data, rows[0].size, tokens,
                    out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), 11)
        expected = [[lib.vec_dot(t, n, w_, a_) for w_ in wrows] for a_ in rows]
        np.testing.assert_array_equal(out[:, :9], np.array(expected, dtype=np.float32))
        assert np.isnan(out[:, 9:]).all()
    table = lib.lib.dte_kernel_vec_dot
    table.restype, table.argtypes = ctypes.c_void_p, [ctypes.c_uint32]
    assert all(table(int(t)) for t in KERNEL_TYPES.values())
    assert table(int(T.Q8_K)) is None  # activation-only type: no kernel


def test_epyc9654_jit_code_is_vnni() -> None:
    """What the "epyc9654" jit fixture runs is the VNNI form (same IR and target as board_jit)."""
    from dte_build.kernels import assembly

    if not host_has_avx512_vnni():
        pytest.skip("host CPU lacks AVX-512 VNNI: the epyc9654 kernels cannot run here")
    board = load_board("epyc9654")
    text = assembly(board_isa(board), board_target(board, Target.host().triple))
    assert "vpdpbusd" in text and re.search(r"zmm\d+", text)


def test_avx512_without_vnni_uses_zmm_maddubs() -> None:
    """An AVX-512 board without VNNI gets the vpmaddubsw/vpmaddwd form at 512 bits (assembly only: no such CPU here)."""
    from dte_build.kernels import assembly

    target = Target("x86_64-unknown-windows", "skylake-avx512", "+avx2,+fma,+f16c,+avx512f,+avx512bw,+avx512vl")
    text = assembly(Isa(512), target)
    assert re.search(r"zmm\d+", text) and "vpmaddubsw" in text and "vpdpbusd" not in text


@pytest.mark.slow
def test_kernel_object_is_reproducible_and_cached(tmp_path: Path) -> None:
    from dte_build.kernels import kernel_object

    board = load_board("qemu-q35")
    first = kernel_object(board, "coff", tmp_path / "a")
    second = kernel_object(board, "coff", tmp_path / "b")
    assert first.name == second.name and first.read_bytes() == second.read_bytes()
    stamp = first.stat().st_mtime_ns
    assert kernel_object(board, "coff", tmp_path / "a") == first and first.stat().st_mtime_ns == stamp
    assert int.from_bytes(first.read_bytes()[4:8], "little") == 0  # COFF TimeDateStamp (PE/COFF spec 3.3)


@pytest.mark.slow
def test_epyc9654_firmware_contains_vnni_kernels(tmp_path: Path) -> None:
    """build_firmware links the board's kernel object and compiles the dispatch table with it."""
    from dte_build.toolchain import build_firmware

    fw = build_firmware(load_board("epyc9654"), build_dir=tmp_path)
    text = objdump(fw.efi_path)
    assert "vpdpbusd" in text and re.search(r"zmm\d+", text)


@pytest.mark.slow
def test_cli_lists_and_disassembles_kernels() -> None:
    import json as _json

    from click.testing import CliRunner

    from dte_build.cli import main

    runner = CliRunner()
    listed = runner.invoke(main, ["kernels", "list", "--board", "epyc9654", "--json"])
    assert listed.exit_code == 0, listed.output
    data = _json.loads(listed.stdout)
    assert data["width"] == 512 and data["vnni"] is True and data["symbols"] == list(KERNEL_SYMBOLS)
    asm = runner.invoke(main, ["kernels", "asm", "--board", "epyc9654", "--symbol", "dte_k_vec_dot_q4_0_q8_0"])
    assert asm.exit_code == 0 and "vpdpbusd" in asm.stdout and "dte_k_vec_dot_q4_1_q8_1:" not in asm.stdout
    bad = runner.invoke(main, ["kernels", "asm", "--symbol", "dte_k_nope"])
    assert bad.exit_code != 0 and "no kernel named dte_k_nope" in bad.output
