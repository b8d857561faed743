"""Kernels for the 32-element block types: Q8_0 . Q8_0, Q4_0 . Q8_0, Q4_1 . Q8_1, Q5_0 . Q8_0, Q5_1 . Q8_1
(ggml-common.h block layouts; ggml-cpu/quants.c ggml_vec_dot_*_generic for the arithmetic)."""

from __future__ import annotations

from dataclasses import dataclass

from .ir import Fn, Isa, counted_loop, new_fn, splat_const, vec


@dataclass(frozen=True)
class Legacy:
    name: str
    w_bytes: int             # weight block size
    a_bytes: int             # activation block size (Q8_0: 34, Q8_1: 36)
    w_qs: int                # offset of the quants in the weight block
    nibbles: bool            # 4-bit packed weights
    offset: int              # subtracted from each weight quant (Q4_0: 8)
    has_min: bool            # Q4_1/Q5_1: + m * s per block
    qh: int = -1             # Q5_0/Q5_1: offset of the 32 fifth bits (bit e belongs to element e)


LEGACY = {
    "q8_0": Legacy("dte_k_vec_dot_q8_0_q8_0", 34, 34, 2, False, 0, False),
    "q4_0": Legacy("dte_k_vec_dot_q4_0_q8_0", 18, 34, 2, True, 8, False),
    "q4_1": Legacy("dte_k_vec_dot_q4_1_q8_1", 20, 36, 4, True, 0, True),
    "q5_0": Legacy("dte_k_vec_dot_q5_0_q8_0", 22, 34, 6, True, 16, False, qh=2),
    "q5_1": Legacy("dte_k_vec_dot_q5_1_q8_1", 24, 36, 8, True, 0, True, qh=4),
}


def legacy_step(fn: Fn, isa: Isa, k: Legacy, first: str, blocks: int, acc: str, macc: str) -> tuple[str, str]:
    """Multiply-accumulate `blocks` consecutive 32-element blocks (1 per 256 bits of vector)."""
    ws, xs, ds = [], [], []
    for b in range(blocks):
        idx = fn.emit(f"add nuw nsw i64 {first}, {b}")
        woff = fn.emit(f"mul nuw nsw i64 {idx}, {k.w_bytes}")
        aoff = fn.emit(f"mul nuw nsw i64 {idx}, {k.a_bytes}")
        if k.nibbles:
            w = fn.nibbles(fn.load(vec(16, "i8"), "%w", fn.emit(f"add i64 {woff}, {k.w_qs}")))
            if k.qh >= 0:
                bits = fn.emit(f"bitcast i32 {fn.load('i32', '%w', fn.emit(f'add i64 {woff}, {k.qh}'))} "
                               f"to {vec(32, 'i1')}")
                high = fn.emit(f"select {vec(32, 'i1')} {bits}, {vec(32, 'i8')} {splat_const(32, 'i8', 16)}, "
                               f"{vec(32, 'i8')} zeroinitializer")
                w = fn.op("or", vec(32, "i8"), w, high)
        else:
            w = fn.load(vec(32, "i8"), "%w", fn.emit(f"add i64 {woff}, {k.w_qs}"))
        if k.offset:
            w = fn.emit(f"sub {vec(32, 'i8')} {w}, {splat_const(32, 'i8', k.offset)}")
        x = fn.load(vec(32, "i8"), "%a", fn.emit(f"add i64 {aoff}, {k.a_bytes - 32}"))
        dw, da = fn.load_half_as_float("%w", woff), fn.load_half_as_float("%a", aoff)
        ds.append(fn.emit(f"fmul float {dw}, {da}"))
        if k.has_min:
            m = fn.load_half_as_float("%w", fn.emit(f"add i64 {woff}, 2"))
            s = fn.load_half_as_float("%a", fn.emit(f"add i64 {aoff}, 2"))
            macc = fn.emit(f"call float @llvm.fma.f32(float {m}, float {s}, float {macc})")
            fn.declare("declare float @llvm.fma.f32(float, float, float)")
        ws.append(w)
        xs.append(x)
    n = 32 * blocks
    w, x = (ws[0], xs[0]) if blocks == 1 else (fn.concat(vec(32, "i8"), ws[0], ws[1], 32),
                                             fn.concat(vec(32, "i8"), xs[0], xs[1], 32))
    sums = fn.emit(f"sitofp {vec(n // 4, 'i32')} {fn.dot4(isa, n, w, x, w_unsigned=k.offset == 0 and k.nibbles)} "
                   f"to {vec(n // 4, 'float')}")
    if blocks == 1:
        dd = fn.splat(ds[0], "float", 8)
    else:
        dd = fn.shuffle(vec(2, "float"), fn.from_scalars(ds, "float"), None, [0] * 8 + [1] * 8)
    return fn.fma(n // 4, dd, sums, acc), macc


def legacy_kernel(isa: Isa, k: Legacy) -> Fn:
    fn = new_fn(k.name)
    per_step = isa.width // 256
    nb = fn.emit("sdiv i64 %n, 32")
    steps = fn.emit(f"sdiv i64 {nb}, {per_step}")
    lanes = 8 * per_step
    zero = "zeroinitializer"

    def main(i: str, accs: list[str]) -> list[str]:
        first = fn.emit(f"mul nuw nsw i64 {i}, {per_step}")
        return list(legacy_step(fn, isa, k, first, per_step, accs[0], accs[1]))

    acc, macc = counted_loop(fn, steps, [(vec(lanes, "float"), zero), ("float", "0.0")], main)
    total = fn.reduce_fadd(lanes, acc)
    if per_step > 1:  # leftover blocks, one at a time, at 256 bits
        done = fn.emit(f"mul nuw nsw i64 {steps}, {per_step}")
        left = fn.emit(f"sub nsw i64 {nb}, {done}")
        tail_isa = Isa(256, isa.intrinsics, isa.vnni)

        def tail(i: str, accs: list[str]) -> list[str]:
            first = fn.emit(f"add nuw nsw i64 {done}, {i}")
            return list(legacy_step(fn, tail_isa, k, first, 1, accs[0], accs[1]))

        tacc, macc = counted_loop(fn, left, [(vec(8, "float"), zero), ("float", macc)], tail)
        total = fn.emit(f"fadd reassoc float {total}, {fn.reduce_fadd(8, tacc)}")
    total = fn.emit(f"fadd float {total}, {macc}")
    fn.raw(f"ret float {total}")
    return fn


KERNELS = {kind: (k.name, (lambda isa, k=k: legacy_kernel(isa, k))) for kind, k in LEGACY.items()}
