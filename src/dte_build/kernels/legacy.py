"""Kernels for the 32-element block types: Q8_0 . Q8_0, Q4_0 . Q8_0, Q4_1 . Q8_1, Q5_0 . Q8_0, Q5_1 . Q8_1
(ggml-common.h block layouts; ggml-cpu/quants.c ggml_vec_dot_*_generic for the arithmetic)."""

from __future__ import annotations

from dataclasses import dataclass

from .ir import TILE_ROWS, TOKENS, Fn, Isa, counted_loop, new_fn, splat_const, vec


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


def field(k: Legacy, offset: int, size: int, row: int | None) -> int:
    """Where a block field (at `offset`, `size` bytes in the ggml block) of weight row `row` lies from the block's
    start: plain rows (row None) as in the GGUF; a ROWS4 group-block (docs/kernels.md "Weight layouts") holds
    each field of its 4 rows together, row r's at 4 * offset + r * size."""
    return offset if row is None else 4 * offset + row * size


def group_nibbles(fn: Fn, k: Legacy, woff: str, rows: int) -> list[str]:
    """The nibbles of the `rows` rows of a ROWS4 group-block at woff, each row's 32 values (low nibbles, then high)
    as <32 x i8>: one 64-byte load for the 4 rows' qs, one mask and one shift for all, then a byte shuffle per row
    (vpermt2b) instead of a load, mask, shift and insert per row."""
    t64 = vec(64, "i8")
    packed = fn.load(t64, "%w", fn.emit(f"add i64 {woff}, {field(k, k.w_qs, 16, 0)}"))
    lo = fn.op("and", t64, packed, splat_const(64, "i8", 15))
    hi = fn.op("lshr", t64, packed, splat_const(64, "i8", 4))
    return [fn.shuffle(t64, lo, hi, list(range(16 * r, 16 * r + 16)) + list(range(64 + 16 * r, 64 + 16 * r + 16)))
            for r in range(rows)]


def load_weight_block(fn: Fn, k: Legacy, woff: str, wbase: str = "%w", unsigned_form: bool = False,
                      row: int | None = None, nibbles: str | None = None) -> str:
    """The 32 weight quants of one block as <32 x i8> (Q4/Q5: nibbles plus fifth bits, minus the offset).
    unsigned_form: the quants plus `biased(k)` instead, as unsigned bytes (Q4_0/Q5_0: the raw nibbles; Q8_0:
    w + 128). row: the block is row `row`'s in the ROWS4 group-block at woff (None: a plain row's block).
    nibbles: the block's nibble values already unpacked (group_nibbles)."""
    qs = fn.emit(f"add i64 {woff}, {field(k, k.w_qs, 16 if k.nibbles else 32, row)}")
    if unsigned_form and not k.nibbles:
        return fn.vop("xor", 32, fn.load(vec(32, "i8"), wbase, qs), -128)
    if not k.nibbles:
        return fn.load(vec(32, "i8"), wbase, qs)
    w = nibbles if nibbles is not None else fn.nibbles(fn.load(vec(16, "i8"), wbase, qs))
    if k.qh >= 0:
        qh = fn.emit(f"add i64 {woff}, {field(k, k.qh, 4, row)}")
        bits = fn.emit(f"bitcast i32 {fn.load('i32', wbase, qh)} to {vec(32, 'i1')}")
        high = fn.emit(f"select {vec(32, 'i1')} {bits}, {vec(32, 'i8')} {splat_const(32, 'i8', 16)}, "
                       f"{vec(32, 'i8')} zeroinitializer")
        w = fn.op("or", vec(32, "i8"), w, high)
    if k.offset and not unsigned_form:
        w = fn.vop("sub", 32, w, k.offset)
    return w


def biased(k: Legacy) -> int:
    """What the unsigned form adds to each signed weight quant: Q4_0 8, Q5_0 16, Q8_0 128 (0: already unsigned)."""
    return 128 if not k.nibbles else k.offset


def joined(fn: Fn, parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else fn.concat(vec(32, "i8"), parts[0], parts[1], 32)


def legacy_step(fn: Fn, isa: Isa, k: Legacy, first: str, blocks: int, bases: list[str],
                accs: list[str], maccs: list[str], group: int = 0) -> tuple[list[str], list[str]]:
    """Multiply-accumulate `blocks` (1 or 2) consecutive 32-element blocks of each weight row against each
    activation row in `bases`; one <8*blocks x float> and one scalar (min term) accumulator per
    (activation row, weight row) pair, activation-row-major. The weights: one plain row at %w (group 0), or the
    `group` (4) rows of a ROWS4 group at %w (docs/kernels.md "Weight layouts"): block i of the 4 rows is the
    group-block at 4 * i * w_bytes, whose 4 scales (and 4 mins) are one 8-byte load each.

    Block j's eight 4-element integer sums land in float lanes 8j..8j+7 whatever the vector width: a 512-bit
    vector computes both blocks' sums at once, a 256-bit one each block alone and the two are concatenated; the
    float operations are then the same IR at every width (docs/kernels.md "One reduction order"). Every pair
    gets the same operations whatever the number of rows, so the tile kernels equal the one-row kernels bit for
    bit."""
    per_vec = min(blocks, isa.width // 256)            # blocks per integer vector
    # VNNI: signed weights as unsigned bytes (w + bias) times the activations, the bias times each 4-element sum
    # of the activations subtracted by starting vpdpbusd from -bias * sum: one instruction per (row, token) instead
    # of the abs/sign fix-up, and the same exact integer sums.
    bias = biased(k) if isa.vnni else 0
    groups = [list(range(g, g + per_vec)) for g in range(0, blocks, per_vec)]
    lanes_f = 8 * blocks
    idxs = [fn.emit(f"add nuw nsw i64 {first}, {b}") for b in range(blocks)]
    woffs = [fn.emit(f"mul nuw nsw i64 {i}, {k.w_bytes * max(group, 1)}") for i in idxs]
    aoffs = [fn.emit(f"mul nuw nsw i64 {i}, {k.a_bytes}") for i in idxs]

    def lanes(scales: list[str]) -> str:  # block b's scale in lanes 8b..8b+7 (the lanes of its i32 sums)
        if blocks == 1:
            return fn.splat(scales[0], "float", 8)
        return fn.shuffle(vec(2, "float"), fn.from_scalars(scales, "float"), None, [0] * 8 + [1] * 8)

    rows: list[int | None] = list(range(group)) if group else [None]
    dvecs: list[str] = []
    mvecs: list[str] = []
    if group:  # the group-block's scales (and mins): one load for the 4 rows
        dvecs = [fn.load_halves("%w", o) for o in woffs]
        mvecs = [fn.load_halves("%w", fn.emit(f"add i64 {o}, {field(k, 2, 2, 0)}")) for o in woffs] \
            if k.has_min else []
    # the 4 rows' nibbles of a group-block unpacked at once (each row's 16-byte halves are whole 128-bit lanes:
    # vperm2i128 / vshufi64x2; x86-64-v3 gemm4x1_q4_0: 172 instead of 194 instructions per 2 blocks)
    unpacked = [group_nibbles(fn, k, o, group) for o in woffs] if group and k.nibbles \
        else [[None] * max(group, 1) for _ in woffs]
    weights = []  # per weight row: ([(|w|, w < 0) per group], block scales by lane, block mins)
    for ri, row in enumerate(rows):
        signs = [fn.weight_sign(32 * len(g), joined(fn, [load_weight_block(fn, k, woffs[b], "%w", bias > 0, row,
                                                                           unpacked[b][ri])
                                                         for b in g]),
                                unsigned=bias > 0 or (k.offset == 0 and k.nibbles)) for g in groups]
        if row is None:
            dw = lanes([fn.load_half_as_float("%w", o) for o in woffs])
            mins = [fn.load_half_as_float("%w", fn.emit(f"add i64 {o}, 2")) for o in woffs] if k.has_min else []
        else:
            dw = lanes([fn.lane(v, row) for v in dvecs])
            mins = [fn.lane(v, row) for v in mvecs]
        weights.append((signs, dw, mins))
    new_accs, new_maccs = [], []
    pairs = iter(zip(accs, maccs))
    for base in bases:
        xs = [joined(fn, [fn.load(vec(32, "i8"), base, fn.emit(f"add i64 {aoffs[b]}, {k.a_bytes - 32}"))
                          for b in g]) for g in groups]
        inits = ["zeroinitializer"] * len(groups)
        if bias:
            t32 = [vec(8 * len(g), "i32") for g in groups]
            sums = [fn.dot4(isa, 32 * len(g), splat_const(32 * len(g), "i8", 1), x) for g, x in zip(groups, xs)]
            inits = [fn.op("mul nsw", t, s_, splat_const(8 * len(g), "i32", -bias))
                     for t, s_, g in zip(t32, sums, groups)]
        dx = lanes([fn.load_half_as_float(base, o) for o in aoffs])
        sxs = [fn.load_half_as_float(base, fn.emit(f"add i64 {o}, 2")) for o in aoffs] if k.has_min else []
        for signs, dw, mins in weights:
            acc, macc = next(pairs)
            parts = [fn.dot4(isa, 32 * len(g), u, fn.signed_by(32 * len(g), neg, x), init)
                     for g, (u, neg), x, init in zip(groups, signs, xs, inits)]
            isums = parts[0] if len(parts) == 1 else fn.concat(vec(8, "i32"), parts[0], parts[1], 8)
            sums = fn.emit(f"sitofp {vec(lanes_f, 'i32')} {isums} to {vec(lanes_f, 'float')}")
            dd = fn.op("fmul", vec(lanes_f, "float"), dw, dx)  # per lane dw_b * dx_b: the scalar product, exactly
            new_accs.append(fn.fma(lanes_f, dd, sums, acc))
            for m, sx in zip(mins, sxs):
                fn.declare("declare float @llvm.fma.f32(float, float, float)")
                macc = fn.emit(f"call float @llvm.fma.f32(float {m}, float {sx}, float {macc})")
            new_maccs.append(macc)
    return new_accs, new_maccs


PREFETCH_AHEAD = 2048
"""Bytes ahead of each step that the 4 x 1 kernels prefetch in their ROWS4 stream (the groups of a tensor follow each
other, so the stream runs on into the next group). Generation, bench-*.gguf, 1 and 2 threads: Q4_0 +40 %, Q4_1
+19-26 %, Q8_0 +5 %; 512 and 4096 bytes ahead gained less (docs/kernels.md)."""


def kernel_name(k: Legacy, tokens: int, rows: int) -> str:
    if rows > 1:
        return k.name.replace("vec_dot", f"gemm{rows}x{tokens}")
    return k.name if tokens == 1 else k.name.replace("vec_dot", f"vec_dot{tokens}")


def legacy_kernel(isa: Isa, k: Legacy, tokens: int = 1, rows: int = 1) -> Fn:
    """vec_dot (tokens == 1), one weight row against `tokens` activation rows, or (rows > 1) a tile of `rows`
    weight rows (one ROWS4 group at %w; the row stride argument is unused) by `tokens` activation rows
    (out[t * rows + r])."""
    fn = new_fn(kernel_name(k, tokens, rows), tokens, rows)
    bases = fn.activation_bases()
    group = rows if rows > 1 else 0
    pairs = tokens * rows
    nb = fn.emit("sdiv i64 %n, 32")
    steps = fn.emit("sdiv i64 %n, 64")  # two blocks per step: 16 float lanes, block 2i in 0..7, 2i+1 in 8..15
    v16, v8 = vec(16, "float"), vec(8, "float")
    zero = "zeroinitializer"

    def main(i: str, accs: list[str]) -> list[str]:
        first = fn.emit(f"mul nuw nsw i64 {i}, 2")
        if rows > 1 and tokens == 1:  # generation's 4 x 1 kernels: see PREFETCH_AHEAD
            step_bytes = 2 * rows * k.w_bytes
            fn.prefetch("%w", fn.emit(f"add nuw nsw i64 {fn.emit(f'mul nuw nsw i64 {i}, {step_bytes}')}, "
                                      f"{PREFETCH_AHEAD}"), step_bytes)
        vaccs, maccs = legacy_step(fn, isa, k, first, 2, bases, accs[:pairs], accs[pairs:], group)
        return vaccs + maccs

    accs = counted_loop(fn, steps, [(v16, zero)] * pairs + [("float", "0.0")] * pairs, main)
    # an odd last block goes to lanes 0..7
    done = fn.emit(f"mul nuw nsw i64 {steps}, 2")
    left = fn.emit(f"sub nsw i64 {nb}, {done}")
    lows = [fn.shuffle(v16, a, None, list(range(8))) for a in accs[:pairs]]
    highs = [fn.shuffle(v16, a, None, list(range(8, 16))) for a in accs[:pairs]]

    def tail(i: str, accs: list[str]) -> list[str]:
        first = fn.emit(f"add nuw nsw i64 {done}, {i}")
        vaccs, maccs = legacy_step(fn, isa, k, first, 1, bases, accs[:pairs], accs[pairs:], group)
        return vaccs + maccs

    taccs = counted_loop(fn, left, [(v8, lo) for lo in lows] + [("float", m) for m in accs[pairs:]], tail)
    totals = [fn.tree_sum(16, fn.concat(v8, lo, hi, 8)) for lo, hi in zip(taccs[:pairs], highs)]
    results = [fn.op("fadd", "float", t, m) for t, m in zip(totals, taccs[pairs:])]
    if tokens == 1 and rows == 1:
        fn.raw(f"ret float {results[0]}")
    else:
        fn.store_results(results)
        fn.raw("ret void")
    return fn


KERNELS = {kind: (k.name, (lambda isa, k=k: legacy_kernel(isa, k))) for kind, k in LEGACY.items()}
MULTI_KERNELS = {kind: (k.name.replace("vec_dot", f"vec_dot{TOKENS}"), (lambda isa, k=k: legacy_kernel(isa, k, TOKENS)))
                 for kind, k in LEGACY.items()}
ROW_KERNELS = {kind: (kernel_name(k, 1, TILE_ROWS), (lambda isa, k=k: legacy_kernel(isa, k, 1, TILE_ROWS)))
               for kind, k in LEGACY.items()}
"""TILE_ROWS weight rows against one activation row (generation: one activation load serves four rows)."""
TILE_KERNELS = {kind: (kernel_name(k, TOKENS, TILE_ROWS), (lambda isa, k=k: legacy_kernel(isa, k, TOKENS, TILE_ROWS)))
                for kind, k in LEGACY.items()}
