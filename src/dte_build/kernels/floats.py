"""Kernels for the float weight types, each against activations of its own type (ggml: F32 . F32, F16 . F16,
BF16 . BF16; ggml-cpu/vec.c ggml_vec_dot_f16 etc.): widen to float, fma into 64 float lanes (element 64i + l into
lane l: eight 256-bit or four 512-bit registers, ggml's AVX-512 layout), the lanes summed by dte's fixed tree, plus a scalar fma tail in
element order (docs/kernels.md "One reduction order")."""

from __future__ import annotations

from collections.abc import Callable

from .ir import TOKENS, Fn, Isa, counted_loop, new_fn, splat_const, vec

ELEMENT_BYTES = {"f32": 4, "f16": 2, "bf16": 2}
LANES = 64


def widen(fn: Fn, kind: str, base: str, offset: str, n: int) -> str:
    """Load n elements of `kind` at base+offset as <n x float> (n == 1: a scalar float)."""
    ty = (lambda t: t) if n == 1 else (lambda t: vec(n, t))
    if kind == "f32":
        return fn.load(ty("float"), base, offset)
    if kind == "f16":
        return fn.emit(f"fpext {ty('half')} {fn.load(ty('half'), base, offset)} to {ty('float')}")
    # bf16: the top half of a binary32
    wide = fn.emit(f"zext {ty('i16')} {fn.load(ty('i16'), base, offset)} to {ty('i32')}")
    shifted = fn.op("shl", ty("i32"), wide, 16 if n == 1 else splat_const(n, "i32", 16))
    return fn.emit(f"bitcast {ty('i32')} {shifted} to {ty('float')}")


def float_kernel(isa: Isa, kind: str, tokens: int = 1) -> Fn:
    """vec_dot (tokens == 1) or one weight row against `tokens` activation rows (prompt processing): each token
    gets the one-token kernel's operations (its own 64 lanes, tree and scalar tail), bit for bit; the weights of a
    64-element step are loaded and widened once for all tokens."""
    del isa  # the IR is the same at every width
    name = f"dte_k_vec_dot_{kind}_{kind}"
    fn = new_fn(name if tokens == 1 else name.replace("vec_dot", f"vec_dot{tokens}"), tokens)
    bases = fn.activation_bases()
    size = ELEMENT_BYTES[kind]
    chunk = LANES  # the same lanes at every width: LLVM splits the vector into registers of isa.width
    steps = fn.emit(f"sdiv i64 %n, {chunk}")

    def body(i: str, accs: list[str]) -> list[str]:
        off = fn.emit(f"mul nuw nsw i64 {i}, {chunk * size}")
        w = widen(fn, kind, "%w", off, chunk)
        return [fn.fma(chunk, w, widen(fn, kind, base, off, chunk), acc) for base, acc in zip(bases, accs)]

    accs = counted_loop(fn, steps, [(vec(chunk, "float"), "zeroinitializer")] * tokens, body)
    done = fn.emit(f"mul nuw nsw i64 {steps}, {chunk}")
    left = fn.emit(f"sub nsw i64 %n, {done}")

    def tail(i: str, rests: list[str]) -> list[str]:
        off = fn.emit(f"mul nuw nsw i64 {fn.emit(f'add nuw nsw i64 {done}, {i}')}, {size}")
        fn.declare("declare float @llvm.fma.f32(float, float, float)")
        w = widen(fn, kind, "%w", off, 1)
        return [fn.emit(f"call float @llvm.fma.f32(float {w}, float {widen(fn, kind, base, off, 1)}, float {r})")
                for base, r in zip(bases, rests)]

    rests = counted_loop(fn, left, [("float", "0.0")] * tokens, tail)
    results = [fn.op("fadd", "float", fn.tree_sum(chunk, acc), rest) for acc, rest in zip(accs, rests)]
    if tokens == 1:
        fn.raw(f"ret float {results[0]}")
    else:
        fn.store_results(results)
        fn.raw("ret void")
    return fn


FLOAT_ROWS = 16
"""Weight rows of the F16 rows kernel (dte_k_gemm16x1_f16_f16): attention's V rows against one probability row."""


def float_rows_kernel(isa: Isa, kind: str, rows: int = FLOAT_ROWS) -> Fn:
    """`rows` weight rows (wstride bytes apart) against one activation row, dte_gemm_fn's ABI: out[r] = the one-row
    kernel's result for row r, bit for bit. Each row's 64 lanes and tree as in float_kernel; the scalar tails of all
    rows run in one loop, `rows` independent fma chains side by side (one row's tail is a chain of dependent fmas:
    attention over fewer than 64 positions is all tail)."""
    del isa
    fn = new_fn(f"dte_k_gemm{rows}x1_{kind}_{kind}", rows=rows)
    size = ELEMENT_BYTES[kind]
    bases = ["%w"] + [fn.gep("%w", fn.op("mul", "i64", "%wstride", r)) for r in range(1, rows)]
    steps = fn.emit(f"sdiv i64 %n, {LANES}")
    trees = []
    for base in bases:
        def body(i: str, accs: list[str], base: str = base) -> list[str]:
            off = fn.emit(f"mul nuw nsw i64 {i}, {LANES * size}")
            return [fn.fma(LANES, widen(fn, kind, base, off, LANES), widen(fn, kind, "%a", off, LANES), accs[0])]

        (acc,) = counted_loop(fn, steps, [(vec(LANES, "float"), "zeroinitializer")], body)
        trees.append(fn.tree_sum(LANES, acc))
    done = fn.emit(f"mul nuw nsw i64 {steps}, {LANES}")
    left = fn.emit(f"sub nsw i64 %n, {done}")

    def tail(i: str, accs: list[str]) -> list[str]:
        off = fn.emit(f"mul nuw nsw i64 {fn.emit(f'add nuw nsw i64 {done}, {i}')}, {size}")
        fn.declare("declare float @llvm.fma.f32(float, float, float)")
        a = widen(fn, kind, "%a", off, 1)
        return [fn.emit(f"call float @llvm.fma.f32(float {widen(fn, kind, base, off, 1)}, float {a}, float {acc})")
                for base, acc in zip(bases, accs)]

    rests = counted_loop(fn, left, [("float", "0.0")] * rows, tail)
    fn.store_results([fn.op("fadd", "float", t, r) for t, r in zip(trees, rests)])
    fn.raw("ret void")
    return fn


ROWS_KERNELS: dict[str, tuple[str, Callable[[Isa], Fn]]] = {
    "f16": ("dte_k_gemm16x1_f16_f16", lambda isa: float_rows_kernel(isa, "f16"))}

KERNELS: dict[str, tuple[str, Callable[[Isa], Fn]]] = {
    kind: (f"dte_k_vec_dot_{kind}_{kind}", (lambda isa, kind=kind: float_kernel(isa, kind))) for kind in ELEMENT_BYTES}
MULTI_KERNELS: dict[str, tuple[str, Callable[[Isa], Fn]]] = {
    kind: (f"dte_k_vec_dot{TOKENS}_{kind}_{kind}", (lambda isa, kind=kind: float_kernel(isa, kind, TOKENS)))
    for kind in ELEMENT_BYTES}
"""One float weight row against TOKENS activation rows of its type (F16/BF16/F32 models' prompt processing)."""
