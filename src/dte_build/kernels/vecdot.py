"""The quantized vec_dot kernels: one IR function per weight type, same C ABI as dte_vec_dot_ref
(firmware/engine/kernels.h): `float dte_k_vec_dot_<w>_<a>(int64_t n, const void *w, const void *a)`.

Block layouts: ggml-common.h (see firmware/engine/quants_blocks.h). Integer sums are exact; the float combination
(one fma per block into vector accumulators, one reduction at the end) differs from the scalar reference only
by rounding order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .ir import FUNCTION_ATTRIBUTES, Fn, Isa, splat_const, vec

QK_K = 256


def counted_loop(fn: Fn, count: str, accs: list[tuple[str, str]],
                 body: Callable[[str, list[str]], list[str]]) -> list[str]:
    """for (i = 0; i < count; i++) accs = body(i, accs); returns the accumulators after the loop."""
    label = fn.fresh("L")[1:]
    i, i_next = fn.fresh("i"), fn.fresh("inext")
    phis = [fn.fresh("acc") for _ in accs]
    prev = fn.block
    fn.raw(f"br label %{label}.head")
    outer, fn.lines = fn.lines, []
    fn.block = f"{label}.body"
    results = body(i, phis)
    body_lines, fn.lines = fn.lines, outer
    fn.raw(f"{label}.head:")
    fn.raw(f"{i} = phi i64 [ 0, %{prev} ], [ {i_next}, %{fn.block} ]")
    for (ty, init), phi, res in zip(accs, phis, results):
        fn.raw(f"{phi} = phi {ty} [ {init}, %{prev} ], [ {res}, %{fn.block} ]")
    cond = fn.emit(f"icmp slt i64 {i}, {count}")
    fn.raw(f"br i1 {cond}, label %{label}.body, label %{label}.exit")
    fn.raw(f"{label}.body:")
    fn.lines.extend(body_lines)
    fn.raw(f"{i_next} = add nuw nsw i64 {i}, 1")
    fn.raw(f"br label %{label}.head")
    fn.raw(f"{label}.exit:")
    fn.block = f"{label}.exit"
    return phis


def new_fn(name: str) -> Fn:
    fn = Fn(name)
    fn.block = "entry"
    fn.raw("entry:")
    return fn


# ---- 32-element block types: Q8_0 . Q8_0, Q4_0 . Q8_0, Q4_1 . Q8_1 ----

@dataclass(frozen=True)
class Legacy:
    name: str
    w_bytes: int             # weight block size
    a_bytes: int             # activation block size (Q8_0: 34, Q8_1: 36)
    w_qs: int                # offset of the quants in the weight block
    nibbles: bool            # 4-bit packed weights
    offset: int              # subtracted from each weight quant (Q4_0: 8)
    has_min: bool            # Q4_1: + m * s per block


LEGACY = {
    "q8_0": Legacy("dte_k_vec_dot_q8_0_q8_0", 34, 34, 2, False, 0, False),
    "q4_0": Legacy("dte_k_vec_dot_q4_0_q8_0", 18, 34, 2, True, 8, False),
    "q4_1": Legacy("dte_k_vec_dot_q4_1_q8_1", 20, 36, 4, True, 0, True),
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


# ---- K-quants against Q8_K (256-element super-blocks) ----
# Q8_K block: float d @0, int8 qs[256] @4, int16 bsums[16] @260; 292 bytes.

def lo_hi_nibbles(fn: Fn, v: str, n: int) -> tuple[str, str]:
    t = vec(n, "i8")
    return (fn.emit(f"and {t} {v}, {splat_const(n, 'i8', 15)}"),
            fn.emit(f"lshr {t} {v}, {splat_const(n, 'i8', 4)}"))


def scale_lanes(fn: Fn, scales16: str, elems: int, first: int, group: int) -> str:
    """<elems/4 x i32> whose lane l is the scale of element first+4l (one scale per `group` elements)."""
    return fn.shuffle(vec(16, "i32"), scales16, None, [(first + 4 * lane) // group for lane in range(elems // 4)])


def k_dot(fn: Fn, isa: Isa, pieces: list[str], scales16: str, group: int, unsigned: bool, aoff: str) -> str:
    """Sum over the super-block of scale * dot(weights, activations) per i32 lane; pieces: 8 x <32 x i8>."""
    n = isa.bytes
    per = n // 32
    lanes = vec(n // 4, "i32")
    sumi = "zeroinitializer"
    for v in range(QK_K // n):
        parts = pieces[v * per:(v + 1) * per]
        w = parts[0] if per == 1 else fn.concat(vec(32, "i8"), parts[0], parts[1], 32)
        x = fn.load(vec(n, "i8"), "%a", fn.emit(f"add i64 {aoff}, {4 + v * n}"))
        dot = fn.dot4(isa, n, w, x, w_unsigned=unsigned)
        scaled = fn.emit(f"mul nsw {lanes} {dot}, {scale_lanes(fn, scales16, n, v * n, group)}")
        sumi = scaled if sumi == "zeroinitializer" else fn.emit(f"add nsw {lanes} {sumi}, {scaled}")
    return sumi


def q45_scales_mins(fn: Fn, woff: str) -> tuple[str, str]:
    """Q4_K/Q5_K 12-byte 6-bit scales and mins -> (<16 x i32> scales in lanes 0..7, <16 x i8> all 16 bytes)."""
    s = [fn.load("i32", "%w", fn.emit(f"add i64 {woff}, {4 + 4 * j}")) for j in range(3)]
    m6, m4, m2 = "1061109567", "252645135", "50529027"   # 0x3f3f3f3f, 0x0f0f0f0f, 0x03030303
    u0 = fn.op("and", "i32", s[0], m6)
    u2 = fn.op("and", "i32", s[1], m6)
    hi1 = fn.op("shl", "i32", fn.op("and", "i32", fn.op("lshr", "i32", s[0], 6), m2), 4)
    u1 = fn.op("or", "i32", fn.op("and", "i32", s[2], m4), hi1)
    hi3 = fn.op("shl", "i32", fn.op("and", "i32", fn.op("lshr", "i32", s[1], 6), m2), 4)
    u3 = fn.op("or", "i32", fn.op("and", "i32", fn.op("lshr", "i32", s[2], 4), m4), hi3)
    bytes16 = fn.emit(f"bitcast {vec(4, 'i32')} {fn.from_scalars([u0, u1, u2, u3], 'i32')} to {vec(16, 'i8')}")
    return fn.emit(f"zext {vec(16, 'i8')} {bytes16} to {vec(16, 'i32')}"), bytes16


def q45_min_sum(fn: Fn, bytes16: str, aoff: str) -> str:
    """sum_j bsums[j] * mins[j/2] as float."""
    bsums = fn.load(vec(16, "i16"), "%a", fn.emit(f"add i64 {aoff}, 260"))
    b32 = fn.emit(f"sext {vec(16, 'i16')} {bsums} to {vec(16, 'i32')}")
    mins = fn.shuffle(vec(16, "i8"), bytes16, None, [8 + j // 2 for j in range(16)])
    m32 = fn.emit(f"zext {vec(16, 'i8')} {mins} to {vec(16, 'i32')}")
    prod = fn.emit(f"mul nsw {vec(16, 'i32')} {b32}, {m32}")
    return fn.emit(f"sitofp i32 {fn.reduce_add_i32(16, prod)} to float")


def q4_K_pieces(fn: Fn, woff: str, qs_at: int) -> list[str]:
    pieces = []
    for g in range(4):
        packed = fn.load(vec(32, "i8"), "%w", fn.emit(f"add i64 {woff}, {qs_at + 32 * g}"))
        pieces.extend(lo_hi_nibbles(fn, packed, 32))
    return pieces


def q5_K_pieces(fn: Fn, woff: str) -> list[str]:
    pieces = q4_K_pieces(fn, woff, 48)
    qh = fn.load(vec(32, "i8"), "%w", fn.emit(f"add i64 {woff}, 16"))
    out = []
    for k, p in enumerate(pieces):
        bit = fn.vop("and", 32, fn.vop("lshr", 32, qh, k), 1)
        out.append(fn.op("or", vec(32, "i8"), p, fn.vop("shl", 32, bit, 4)))
    return out


def q6_K_pieces(fn: Fn, woff: str) -> list[str]:
    t = vec(32, "i8")
    pieces = []
    for c in range(2):
        ql = [fn.load(t, "%w", fn.emit(f"add i64 {woff}, {64 * c + 32 * h}")) for h in range(2)]
        qh = fn.load(t, "%w", fn.emit(f"add i64 {woff}, {128 + 32 * c}"))
        for quarter in range(4):
            lo, hi = lo_hi_nibbles(fn, ql[quarter & 1], 32)
            low = hi if quarter & 2 else lo
            high = fn.vop("and", 32, fn.vop("lshr", 32, qh, 2 * quarter), 3)
            q = fn.op("or", t, low, fn.vop("shl", 32, high, 4))
            pieces.append(fn.vop("sub", 32, q, 32))
    return pieces


K_TYPES = {"q4_K": ("dte_k_vec_dot_q4_K_q8_K", 144), "q5_K": ("dte_k_vec_dot_q5_K_q8_K", 176),
           "q6_K": ("dte_k_vec_dot_q6_K_q8_K", 210)}


def k_kernel(isa: Isa, kind: str) -> Fn:
    name, w_bytes = K_TYPES[kind]
    fn = new_fn(name)
    nb = fn.emit(f"sdiv i64 %n, {QK_K}")
    lanes = isa.bytes // 4

    def body(i: str, accs: list[str]) -> list[str]:
        woff = fn.emit(f"mul nuw nsw i64 {i}, {w_bytes}")
        aoff = fn.emit(f"mul nuw nsw i64 {i}, 292")
        ad = fn.load("float", "%a", aoff)
        if kind == "q6_K":
            scales = fn.emit(f"sext {vec(16, 'i8')} {fn.load(vec(16, 'i8'), '%w', fn.emit(f'add i64 {woff}, 192'))} "
                             f"to {vec(16, 'i32')}")
            sumi = k_dot(fn, isa, q6_K_pieces(fn, woff), scales, 16, False, aoff)
            d = fn.emit(f"fmul float {fn.load_half_as_float('%w', fn.emit(f'add i64 {woff}, 208'), lane=2)}, {ad}")
            macc = accs[1]
        else:
            scales, bytes16 = q45_scales_mins(fn, woff)
            pieces = q4_K_pieces(fn, woff, 16) if kind == "q4_K" else q5_K_pieces(fn, woff)
            sumi = k_dot(fn, isa, pieces, scales, 32, True, aoff)
            d = fn.emit(f"fmul float {fn.load_half_as_float('%w', woff)}, {ad}")
            dmin = fn.emit(f"fmul float {fn.load_half_as_float('%w', fn.emit(f'add i64 {woff}, 2'))}, {ad}")
            macc = fn.op("fadd", "float", accs[1], fn.op("fmul", "float", dmin, q45_min_sum(fn, bytes16, aoff)))
        fsum = fn.emit(f"sitofp {vec(lanes, 'i32')} {sumi} to {vec(lanes, 'float')}")
        return [fn.fma(lanes, fn.splat(d, "float", lanes), fsum, accs[0]), macc]

    acc, macc = counted_loop(fn, nb, [(vec(lanes, "float"), "zeroinitializer"), ("float", "0.0")], body)
    total = fn.emit(f"fsub float {fn.reduce_fadd(lanes, acc)}, {macc}")
    fn.raw(f"ret float {total}")
    return fn


# Every kernel, in firmware/engine/kernels.h order: weight type -> (symbol, builder).
KERNELS: dict[str, tuple[str, Callable[[Isa], Fn]]] = {
    **{t: (k.name, (lambda isa, k=k: legacy_kernel(isa, k))) for t, k in LEGACY.items()},
    **{t: (sym, (lambda isa, t=t: k_kernel(isa, t))) for t, (sym, _) in K_TYPES.items()},
}


def module_ir(isa: Isa, triple: str) -> str:
    """The whole kernel module as LLVM IR text."""
    fns = [build(isa) for _, build in KERNELS.values()]
    declares = sorted({d for fn in fns for d in fn.declares})
    return "\n".join([f'target triple = "{triple}"', "", *declares, "", *(fn.text() for fn in fns),
                      FUNCTION_ATTRIBUTES, ""])
