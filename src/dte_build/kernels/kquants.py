"""Kernels for the K-quants against Q8_K (256-element super-blocks; ggml-common.h block_q*_K; arithmetic as
ggml-cpu/quants.c ggml_vec_dot_q*_K_q8_K_generic). Q8_K block: float d @0, int8 qs[256] @4, int16 bsums[16] @260."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .ir import TILE_ROWS, TOKENS, WIDE_TOKENS, Fn, Isa, counted_loop, new_fn, splat_const, vec

QK_K = 256
Q8_K_BYTES = 292


def lo_hi_nibbles(fn: Fn, v: str, n: int) -> tuple[str, str]:
    t = vec(n, "i8")
    return (fn.emit(f"and {t} {v}, {splat_const(n, 'i8', 15)}"),
            fn.emit(f"lshr {t} {v}, {splat_const(n, 'i8', 4)}"))


def scale_lanes(fn: Fn, scales: str, ty: str, elems: int, first: int, group: int, per_lane: int) -> str:
    """<elems/per_lane x ty> whose lane l is the scale of element first + per_lane*l (one per `group` elements);
    scales: <16 x ty>."""
    return fn.shuffle(vec(16, ty), scales, None, [(first + per_lane * lane) // group for lane in range(elems // per_lane)])


def k_weights(fn: Fn, isa: Isa, pieces: list[str], scales16: str, group: int,
              unsigned: bool) -> list[tuple[str, str | None, str]]:
    """Per vector of the super-block: (|w|, w < 0 or None, scales); pieces: 8 x <32 x i8>, scales16 <16 x i32>.

    Scales are per i16 lane of the vpmaddubsw result: vpmaddwd multiplies by them while adding pairs."""
    n = isa.bytes
    per = n // 32
    lane_ty, per_lane = "i16", 2
    source = fn.emit(f"trunc {vec(16, 'i32')} {scales16} to {vec(16, 'i16')}")
    out = []
    for v in range(QK_K // n):
        parts = pieces[v * per:(v + 1) * per]
        w = parts[0] if per == 1 else fn.concat(vec(32, "i8"), parts[0], parts[1], 32)
        u, neg = fn.weight_sign(n, w, unsigned)
        out.append((u, neg, scale_lanes(fn, source, lane_ty, n, v * n, group, per_lane)))
    return out


def k_dot(fn: Fn, isa: Isa, weights: list[tuple[str, str | None, str]], base: str, aoff: str,
          fused: bool = False) -> str:
    """Sum over the super-block of scale * dot(weights, activations at base+aoff) per i32 lane.

    fused: add each vector's scaled pair sums with vpdpwssd (AVX-512 VNNI; the same exact integers as vpmaddwd +
    vpaddd, one instruction instead of two)."""
    n = isa.bytes
    lanes = vec(n // 4, "i32")
    sumi = None
    for v, (u, neg, scales) in enumerate(weights):
        x = fn.load(vec(n, "i8"), base, fn.emit(f"add i64 {aoff}, {4 + v * n}"))
        sx = fn.signed_by(n, neg, x)
        pairs = fn.maddubs(isa, n, u, sx)  # vpmaddubsw
        if fused and sumi is not None:
            t16 = vec(n // 2, "i16")
            name = f"@llvm.x86.avx512.vpdpwssd.{n * 8}"
            fn.declare(f"declare {lanes} {name}({lanes}, {t16}, {t16})")
            sumi = fn.emit(f"call {lanes} {name}({lanes} {sumi}, {t16} {pairs}, {t16} {scales})")
            continue
        scaled = fn.madd_i16(isa, n // 2, pairs, scales)  # vpmaddwd by the scales
        sumi = scaled if sumi is None else fn.op("add nsw", lanes, sumi, scaled)
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


def min_sum(fn: Fn, mins16: str, base: str, aoff: str) -> str:
    """sum_j bsums[j] * mins16[j] (one min per 16 activations) as float."""
    bsums = fn.load(vec(16, "i16"), base, fn.emit(f"add i64 {aoff}, 260"))
    b32 = fn.emit(f"sext {vec(16, 'i16')} {bsums} to {vec(16, 'i32')}")
    m32 = fn.emit(f"zext {vec(16, 'i8')} {mins16} to {vec(16, 'i32')}")
    prod = fn.emit(f"mul nsw {vec(16, 'i32')} {b32}, {m32}")
    return fn.emit(f"sitofp i32 {fn.reduce_add_i32(16, prod)} to float")


def two_bit_pieces(fn: Fn, woff: str, qs_at: int) -> list[str]:
    """Q2_K/Q3_K low bits: element e is bits 2*((e%128)/32) of qs[32*(e/128) + e%32]; 8 x <32 x i8> in 0..3."""
    pieces = []
    for c in range(2):
        q = fn.load(vec(32, "i8"), "%w", fn.emit(f"add i64 {woff}, {qs_at + 32 * c}"))
        pieces.extend(fn.vop("and", 32, fn.vop("lshr", 32, q, 2 * j), 3) for j in range(4))
    return pieces


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


def q3_K_pieces(fn: Fn, woff: str) -> list[str]:
    """Q3_K: 2 low bits as Q2_K, hmask bit e/32 of hmask[e%32] clear means minus 4: values -4..3."""
    hm = fn.load(vec(32, "i8"), "%w", woff)
    out = []
    for k, low in enumerate(two_bit_pieces(fn, woff, 32)):
        high = fn.vop("shl", 32, fn.vop("and", 32, fn.vop("lshr", 32, hm, k), 1), 2)
        out.append(fn.vop("sub", 32, fn.op("or", vec(32, "i8"), low, high), 4))
    return out


def q3_K_scales(fn: Fn, woff: str) -> str:
    """Q3_K: sixteen 6-bit scales in 12 bytes @96 (low nibbles in bytes 0..7, high 2 bits in 8..11), minus 32."""
    a0, a1, tmp = (fn.load("i32", "%w", fn.emit(f"add i64 {woff}, {96 + 4 * j}")) for j in range(3))
    m4, m2 = "252645135", "50529027"   # 0x0f0f0f0f, 0x03030303

    def word(low: str, low_shift: int, tmp_shift: int) -> str:
        lo = fn.op("and", "i32", fn.op("lshr", "i32", low, low_shift) if low_shift else low, m4)
        hi = fn.op("shl", "i32", fn.op("and", "i32", fn.op("lshr", "i32", tmp, tmp_shift) if tmp_shift else tmp,
                                       m2), 4)
        return fn.op("or", "i32", lo, hi)

    words = [word(a0, 0, 0), word(a1, 0, 2), word(a0, 4, 4), word(a1, 4, 6)]
    b = fn.emit(f"bitcast {vec(4, 'i32')} {fn.from_scalars(words, 'i32')} to {vec(16, 'i8')}")
    return fn.emit(f"sext {vec(16, 'i8')} {fn.vop('sub', 16, b, 32)} to {vec(16, 'i32')}")


@dataclass(frozen=True)
class KType:
    symbol: str
    w_bytes: int
    group: int          # elements per scale
    unsigned: bool      # weight quants >= 0 (no sign trick needed)
    d_at: int           # offset of the fp16 super-block scale; dmin follows at +2 when has_min
    has_min: bool


K_TYPES = {
    "q2_K": KType("dte_k_vec_dot_q2_K_q8_K", 84, 16, True, 80, True),
    "q3_K": KType("dte_k_vec_dot_q3_K_q8_K", 110, 16, False, 108, False),
    "q4_K": KType("dte_k_vec_dot_q4_K_q8_K", 144, 32, True, 0, True),
    "q5_K": KType("dte_k_vec_dot_q5_K_q8_K", 176, 32, True, 0, True),
    "q6_K": KType("dte_k_vec_dot_q6_K_q8_K", 210, 16, False, 208, False),
}


def unpack(fn: Fn, kind: str, woff: str) -> tuple[list[str], str, str | None]:
    """(8 x <32 x i8> quants, <16 x i32> scales, <16 x i8> mins per 16 elements or None) of one super-block."""
    i8x16 = vec(16, "i8")
    if kind == "q2_K":  # scales[16] @0: low nibble scale, high nibble min
        packed = fn.load(i8x16, "%w", woff)
        scales = fn.emit(f"zext {i8x16} {fn.vop('and', 16, packed, 15)} to {vec(16, 'i32')}")
        return two_bit_pieces(fn, woff, 16), scales, fn.vop("lshr", 16, packed, 4)
    if kind == "q3_K":
        return q3_K_pieces(fn, woff), q3_K_scales(fn, woff), None
    if kind == "q6_K":
        scales = fn.emit(f"sext {i8x16} {fn.load(i8x16, '%w', fn.emit(f'add i64 {woff}, 192'))} to {vec(16, 'i32')}")
        return q6_K_pieces(fn, woff), scales, None
    scales, bytes16 = q45_scales_mins(fn, woff)
    mins = fn.shuffle(i8x16, bytes16, None, [8 + j // 2 for j in range(16)])
    return (q4_K_pieces(fn, woff, 16) if kind == "q4_K" else q5_K_pieces(fn, woff)), scales, mins


def load_scale(fn: Fn, woff: str, at: int, block_bytes: int) -> str:
    """fp16 at woff+at through an 8-byte load that stays inside the block."""
    lane = max(0, (at + 8 - block_bytes + 1) // 2)
    assert lane <= 3, "scale too far from the block start for a 4-half load"
    return fn.load_half_as_float("%w", fn.emit(f"add i64 {woff}, {at}") if at else woff, lane=lane)


def token_sums(fn: Fn, parts: list[str], n: int, per: int) -> str:
    """<T x i32> whose lane t is the sum of token t's `per` partials: parts are <n x i32> vectors, each holding
    n / per tokens' partials token-major (T = len(parts) * n / per, powers of two). Adjacent vectors are merged by
    adding their even and odd lanes, halving the partials per token each step (exact integers, any order)."""
    assert len(parts) & (len(parts) - 1) == 0
    vecs = list(parts)
    while per > 1:
        t = vec(n, "i32")
        if len(vecs) >= 2:
            merged = []
            for a, b in zip(vecs[0::2], vecs[1::2]):
                even = fn.shuffle(t, a, b, list(range(0, 2 * n, 2)))
                odd = fn.shuffle(t, a, b, list(range(1, 2 * n, 2)))
                merged.append(fn.op("add nsw", t, even, odd))
            vecs = merged
        else:
            even = fn.shuffle(t, vecs[0], None, list(range(0, n, 2)))
            odd = fn.shuffle(t, vecs[0], None, list(range(1, n, 2)))
            n //= 2
            vecs = [fn.op("add nsw", vec(n, "i32"), even, odd)]
        per //= 2
    while len(vecs) > 1:
        vecs = [fn.concat(vec(n, "i32"), a, b, n) for a, b in zip(vecs[0::2], vecs[1::2])]
        n *= 2
    return vecs[0]


def lane_sums(fn: Fn, isa: Isa, weights: list[tuple[str, str | None, str]], base: str, aoff: str,
              fused: bool) -> str:
    """<8 x i32>: lane j = the super-block's scaled integer sum for lane j (docs/kernels.md "One reduction order").
    Integer sums use the full vector; at 512 bits its two 256-bit halves are added (exact), so lane j holds the same
    sum as the 256-bit kernel's lane j and every float operation after it is the same at both widths."""
    sumi = k_dot(fn, isa, weights, base, aoff, fused)
    int_lanes = isa.bytes // 4
    if int_lanes == 8:
        return sumi
    ty = vec(int_lanes, "i32")
    return fn.op("add nsw", vec(8, "i32"), fn.shuffle(ty, sumi, None, list(range(8))),
                 fn.shuffle(ty, sumi, None, list(range(8, int_lanes))))


def unpack_block(fn: Fn, isa: Isa, kind: str, woff: str) -> tuple[list[tuple[str, str | None, str]], str | None, str,
                                                                   str | None]:
    """(weights for k_dot, mins or None, d, dmin or None) of the super-block at %w + woff."""
    k = K_TYPES[kind]
    pieces, scales, mins = unpack(fn, kind, woff)
    weights = k_weights(fn, isa, pieces, scales, k.group, k.unsigned)
    dw = load_scale(fn, woff, k.d_at, k.w_bytes)
    dminw = load_scale(fn, woff, k.d_at + 2, k.w_bytes) if mins is not None else None
    return weights, mins, dw, dminw


def row_step(fn: Fn, isa: Isa, kind: str, woff: str, aoff: str, acc: str, macc: str, fused: bool) -> tuple[str, str]:
    """One super-block of one weight row (%w + woff) against one activation row (%a + aoff): the float operations
    every one-token result gets, `acc = fma(splat(dw * da), float(sums), acc)` and, with mins,
    `macc = macc + (dmin * da) * float(sum bsums * mins)`. The one-row and the 4-row kernels both run exactly this
    (the 4-row kernel once per row, its activation loads shared by LLVM's CSE)."""
    weights, mins, dw, dminw = unpack_block(fn, isa, kind, woff)
    ad = fn.load("float", "%a", aoff)
    sumi = lane_sums(fn, isa, weights, "%a", aoff, fused)
    if dminw is not None:
        dmin = fn.op("fmul", "float", dminw, ad)
        macc = fn.op("fadd", "float", macc, fn.op("fmul", "float", dmin, min_sum(fn, mins, "%a", aoff)))
    fsum = fn.emit(f"sitofp {vec(8, 'i32')} {sumi} to {vec(8, 'float')}")
    d = fn.op("fmul", "float", dw, ad)
    return fn.fma(8, fn.splat(d, "float", 8), fsum, acc), macc


def k_rows_kernel(isa: Isa, kind: str, rows: int = TILE_ROWS) -> Fn:
    """`rows` weight rows in the plain GGUF layout (%wstride bytes apart) against one activation row (generation):
    out[r] = the one-token kernel's result on row r, bit for bit (each row runs `row_step`, the same IR). One
    activation load, scale and bsums per super-block serve all rows, and one call replaces `rows` calls. Each row's
    super-block i is prefetched one group (rows x w_row_bytes) ahead, the same super-block of the next 4 rows:
    out of cache, the hardware prefetchers alone left a single core at 6-10 GB/s (docs/kernels.md)."""
    k = K_TYPES[kind]
    vnni = isa.vnni
    isa = Isa(isa.width, isa.intrinsics, vnni=False)  # as k_kernel: vpmaddubsw + vpmaddwd (vpdpwssd with VNNI)
    fn = new_fn(k.symbol.replace("vec_dot", f"gemm{rows}x1"), 1, rows)
    row_offs = [fn.op("mul nsw", "i64", "%wstride", r) for r in range(1, rows)]
    nb = fn.emit(f"sdiv i64 %n, {QK_K}")
    group_bytes = fn.op("mul nsw", "i64", "%wstride", rows)  # the same super-block of the next 4 rows

    def body(i: str, accs: list[str]) -> list[str]:
        woff0 = fn.emit(f"mul nuw nsw i64 {i}, {k.w_bytes}")
        aoff = fn.emit(f"mul nuw nsw i64 {i}, {Q8_K_BYTES}")
        out = []
        for r in range(rows):
            woff = woff0 if r == 0 else fn.op("add nsw", "i64", woff0, row_offs[r - 1])
            fn.prefetch("%w", fn.op("add nsw", "i64", woff, group_bytes), k.w_bytes)
            out.extend(row_step(fn, isa, kind, woff, aoff, accs[2 * r], accs[2 * r + 1], vnni))
        return out

    accs = counted_loop(fn, nb, [(vec(8, "float"), "zeroinitializer"), ("float", "0.0")] * rows, body)
    fn.store_results([fn.op("fsub", "float", fn.tree_sum(8, accs[2 * r]), accs[2 * r + 1]) for r in range(rows)])
    fn.raw("ret void")
    return fn


def k_kernel(isa: Isa, kind: str, tokens: int = 1) -> Fn:
    """vec_dot (tokens == 1) or one weight row against `tokens` (even) activation rows.

    Every (row, token) pair gets the float operations of the one-token kernel (docs/kernels.md "One reduction
    order"); the multi-token form unpacks each weight super-block once for all its tokens, adds the min sums of all
    tokens in one transposed reduction and runs the float side two tokens per 16-lane vector."""
    k = K_TYPES[kind]
    # No VNNI here, on any board: vpdpbusd would need a 32-bit multiply by the sub-block scales per vector
    # (vpmulld: two µops, ten cycles on Intel); vpmaddubsw + vpmaddwd apply them in 16 bits. Measured on an Intel
    # AVX-512 VNNI host: prompt processing +18 % (Q4_K_M, Q6_K; docs/kernels.md). Same exact integer sums.
    # Where the board has VNNI, vpdpwssd adds each vector's scaled pair sums (multi-token kernels).
    vnni = isa.vnni
    isa = Isa(isa.width, isa.intrinsics, vnni=False)
    fn = new_fn(k.symbol if tokens == 1 else k.symbol.replace("vec_dot", f"vec_dot{tokens}"), tokens)
    bases = fn.activation_bases()
    nb = fn.emit(f"sdiv i64 %n, {QK_K}")
    # Integer sums use the full vector; the float side always has 8 lanes (lane_sums: at 512 bits the two 256-bit
    # halves are added first, exact). firmware/engine/quants_dot.c is the scalar statement of the order.
    int_lanes = isa.bytes // 4
    lanes = min(int_lanes, 8)

    fused = vnni

    def block(i: str) -> tuple[list[tuple[str, str | None, str]], str | None, str, str | None, str, str]:
        woff = fn.emit(f"mul nuw nsw i64 {i}, {k.w_bytes}")
        aoff = fn.emit(f"mul nuw nsw i64 {i}, {Q8_K_BYTES}")
        weights, mins, dw, dminw = unpack_block(fn, isa, kind, woff)
        return weights, mins, dw, dminw, woff, aoff

    def body_one(i: str, accs: list[str]) -> list[str]:
        woff = fn.emit(f"mul nuw nsw i64 {i}, {k.w_bytes}")
        aoff = fn.emit(f"mul nuw nsw i64 {i}, {Q8_K_BYTES}")
        return list(row_step(fn, isa, kind, woff, aoff, accs[0], accs[1], fused))

    if tokens == 1:
        acc, macc = counted_loop(fn, nb, [(vec(lanes, "float"), "zeroinitializer"), ("float", "0.0")], body_one)
        fn.raw(f"ret float {fn.op('fsub', 'float', fn.tree_sum(lanes, acc), macc)}")
        return fn

    assert tokens % 2 == 0
    pairs, pair_ty, tok_ty = tokens // 2, vec(2 * lanes, "float"), vec(tokens, "float")

    def body_many(i: str, accs: list[str]) -> list[str]:
        weights, mins, dw, dminw, _, aoff = block(i)
        ad = fn.from_scalars([fn.load("float", base, aoff) for base in bases], "float")   # lane t: token t's d
        d = fn.op("fmul", tok_ty, fn.splat(dw, "float", tokens), ad)                        # dw * d_t, per lane
        out = []
        for p in range(pairs):  # tokens 2p and 2p+1 in lanes 0..7 and 8..15 of one vector
            one, two = (k_dot(fn, isa, weights, bases[2 * p + h], aoff, fused) for h in range(2))
            if int_lanes == lanes:
                sumi = fn.concat(vec(lanes, "i32"), one, two, lanes)
            else:  # both tokens' 256-bit halves added in one step: lane j + lane j + 8 of each (exact)
                ty = vec(int_lanes, "i32")
                low = fn.shuffle(ty, one, two, [*range(lanes), *range(int_lanes, int_lanes + lanes)])
                high = fn.shuffle(ty, one, two, [*range(lanes, int_lanes), *range(int_lanes + lanes, 2 * int_lanes)])
                sumi = fn.op("add nsw", vec(2 * lanes, "i32"), low, high)
            fsum = fn.emit(f"sitofp {vec(2 * lanes, 'i32')} {sumi} to {pair_ty}")
            dpair = fn.shuffle(tok_ty, d, None, [2 * p] * lanes + [2 * p + 1] * lanes)
            out.append(fn.fma(2 * lanes, dpair, fsum, accs[p]))
        macc = accs[pairs]
        if dminw is not None:  # lane t: sum over the 16 groups of bsums * mins, exact in i32
            m16 = fn.emit(f"zext {vec(16, 'i8')} {mins} to {vec(16, 'i16')}")
            bsums = [fn.load(vec(16, "i16"), base, fn.emit(f"add i64 {aoff}, 260")) for base in bases]
            if isa.width == 512:  # two tokens per vpmaddwd: <16 x i32> = 8 partials of token 2p, 8 of 2p+1
                m32 = fn.concat(vec(16, "i16"), m16, m16, 16)
                parts = [fn.madd_i16(isa, 32, fn.concat(vec(16, "i16"), a, b, 16), m32)
                         for a, b in zip(bsums[0::2], bsums[1::2])]
                total = token_sums(fn, parts, 16, 8)
            else:
                total = token_sums(fn, [fn.madd_i16(isa, 16, b, m16) for b in bsums], 8, 8)
            msum = fn.emit(f"sitofp {vec(tokens, 'i32')} {total} to {tok_ty}")
            dmin = fn.op("fmul", tok_ty, fn.splat(dminw, "float", tokens), ad)
            macc = fn.op("fadd", tok_ty, macc, fn.op("fmul", tok_ty, dmin, msum))
        return out + [macc]

    accs = counted_loop(fn, nb, [(pair_ty, "zeroinitializer")] * pairs + [(tok_ty, "zeroinitializer")], body_many)
    results = []
    for t in range(tokens):
        half = fn.shuffle(pair_ty, accs[t // 2], None, list(range(lanes * (t % 2), lanes * (t % 2 + 1))))
        m = fn.emit(f"extractelement {tok_ty} {accs[pairs]}, i32 {t}", "f")
        results.append(fn.op("fsub", "float", fn.tree_sum(lanes, half), m))
    fn.store_results(results)
    fn.raw("ret void")
    return fn


KERNELS: dict[str, tuple[str, Callable[[Isa], Fn]]] = {
    kind: (k.symbol, (lambda isa, kind=kind: k_kernel(isa, kind))) for kind, k in K_TYPES.items()}
MULTI_KERNELS: dict[str, tuple[str, Callable[[Isa], Fn]]] = {
    kind: (k.symbol.replace("vec_dot", f"vec_dot{TOKENS}"), (lambda isa, kind=kind: k_kernel(isa, kind, TOKENS)))
    for kind, k in K_TYPES.items()}
WIDE_KERNELS: dict[str, tuple[str, Callable[[Isa], Fn]]] = {
    kind: (k.symbol.replace("vec_dot", f"vec_dot{WIDE_TOKENS}"),
           (lambda isa, kind=kind: k_kernel(isa, kind, WIDE_TOKENS)))
    for kind, k in K_TYPES.items()}
"""One weight row against WIDE_TOKENS activation rows (prompt processing): each super-block's weights, scales and
mins are unpacked once for 16 tokens instead of 4."""
ROW_KERNELS: dict[str, tuple[str, Callable[[Isa], Fn]]] = {
    kind: (k.symbol.replace("vec_dot", f"gemm{TILE_ROWS}x1"), (lambda isa, kind=kind: k_rows_kernel(isa, kind)))
    for kind, k in K_TYPES.items()}
"""TILE_ROWS plain weight rows against one activation row (generation): the one-token kernel's operations per row,
the activation's loads shared."""
