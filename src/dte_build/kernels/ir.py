"""Textual LLVM IR for the quantized dot-product kernels: a small function builder and the integer/float building
blocks every kernel shares.

The instruction shapes (measured when the kernels were written; docs/kernels.md): `abs`/`select` sign
trick plus a saturating 16-bit truncation that LLVM selects as `vpmaddubsw`, `pmadd.wd` (or its 4-instruction
generic form) for pair sums, `vpdpbusd` on VNNI boards, `fma` accumulators and dte's fixed
summation tree (`tree_sum`) instead of a reassociating reduction: the float side is the same at every width.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Isa:
    """What the generated code may use.

    width: vector register bits (256 or 512). intrinsics: use x86 `pmadd.wd`-family intrinsics (False gives the
    generic twin that any x86-64 LLVM target legalises, e.g. 512-bit IR JIT-run on an AVX2 host). vnni: use
    `vpdpbusd` (requires avx512vnni + avx512vl).
    """

    width: int
    intrinsics: bool = True
    vnni: bool = False

    @property
    def bytes(self) -> int:
        return self.width // 8

    @property
    def tag(self) -> str:
        return f"{self.width}{'-vnni' if self.vnni else ''}{'' if self.intrinsics else '-generic'}"


def vec(n: int, ty: str) -> str:
    return f"<{n} x {ty}>"


def mask(indices: list[int]) -> str:
    return f"<{len(indices)} x i32> <" + ", ".join(f"i32 {i}" for i in indices) + ">"


def splat_const(n: int, ty: str, value: int | str) -> str:
    return "<" + ", ".join(f"{ty} {value}" for _ in range(n)) + ">"


class Fn:
    """Builds one function as text: `emit` appends an instruction and returns its fresh SSA name."""

    def __init__(self, name: str, tokens: int = 1, rows: int = 1) -> None:
        self.name = name
        self.tokens = tokens  # activation rows per call: 1 = vec_dot ABI, >1 = multi-token ABI (see text())
        self.rows = rows      # weight rows per call: > 1 = tile ABI (see text())
        self.lines: list[str] = []
        self.counter = 0
        self.declares: set[str] = set()
        self.block = "entry"  # label of the basic block being filled

    def fresh(self, hint: str = "t") -> str:
        self.counter += 1
        return f"%{hint}{self.counter}"

    def emit(self, text: str, hint: str = "t") -> str:
        name = self.fresh(hint)
        self.lines.append(f"  {name} = {text}")
        return name

    def op(self, opcode: str, ty: str, a: str, b: str | int) -> str:
        """A two-operand instruction: `opcode ty a, b`."""
        return self.emit(f"{opcode} {ty} {a}, {b}")

    def vop(self, opcode: str, n: int, a: str, constant: int) -> str:
        """`opcode <n x i8> a, splat(constant)`."""
        return self.op(opcode, vec(n, "i8"), a, splat_const(n, "i8", constant))

    def raw(self, text: str) -> None:
        self.lines.append(text if text.endswith(":") else f"  {text}")

    def declare(self, decl: str) -> None:
        self.declares.add(decl)

    # ---- memory ----

    def gep(self, base: str, offset: str | int) -> str:
        return self.emit(f"getelementptr inbounds i8, ptr {base}, i64 {offset}", "p")

    def load(self, ty: str, base: str, offset: str | int) -> str:
        return self.emit(f"load {ty}, ptr {self.gep(base, offset)}, align 1", "v")

    def load_half_as_float(self, base: str, offset: str | int, lane: int = 0) -> str:
        """The fp16 at base+offset as float, via a 4-half (8-byte) vcvtph2ps load starting `lane` halves earlier
        (all 8 bytes must lie inside the block). A scalar `fpext half` becomes vpinsrw into a free register,
        often the accumulator, which chains each block's scale to the previous block's fma."""
        start = offset if lane == 0 else self.emit(f"sub i64 {offset}, {2 * lane}")
        return self.lane(self.load_halves(base, start), lane)

    def load_halves(self, base: str, offset: str | int) -> str:
        """The four fp16 at base+offset as <4 x float>: one 8-byte vcvtph2ps load (the grouped scales of the 4 rows
        of a ROWS4 group-block, or one scale and its neighbours)."""
        # volatile: otherwise LLVM narrows the load back to the one half it needs and emits vpinsrw again
        loaded = self.emit(f"load volatile {vec(4, 'half')}, ptr {self.gep(base, offset)}, align 1", "v")
        return self.emit(f"fpext {vec(4, 'half')} {loaded} to {vec(4, 'float')}")

    def lane(self, v4: str, lane: int) -> str:
        return self.emit(f"extractelement {vec(4, 'float')} {v4}, i32 {lane}", "f")

    def prefetch(self, base: str, offset: str, size: int) -> None:
        """Prefetch (into all cache levels) the cache lines of the `size` bytes at base + offset. The address may lie
        past the buffer (prefetches never fault), hence a plain, not inbounds, getelementptr."""
        self.declare("declare void @llvm.prefetch.p0(ptr, i32, i32, i32)")
        for line in range(0, size, 64):
            at = self.op("add nsw", "i64", offset, line) if line else offset
            ptr = self.emit(f"getelementptr i8, ptr {base}, i64 {at}", "p")
            self.raw(f"call void @llvm.prefetch.p0(ptr {ptr}, i32 0, i32 3, i32 1)")

    # ---- vectors ----

    def shuffle(self, ty: str, a: str, b: str | None, indices: list[int]) -> str:
        return self.emit(f"shufflevector {ty} {a}, {ty} {b or 'poison'}, {mask(indices)}", "s")

    def concat(self, ty: str, a: str, b: str, n: int) -> str:
        """Concatenate two n-lane vectors of type ty."""
        return self.shuffle(ty, a, b, list(range(2 * n)))

    def splat(self, scalar: str, ty: str, n: int) -> str:
        one = self.emit(f"insertelement {vec(1, ty)} poison, {ty} {scalar}, i32 0", "s")
        return self.shuffle(vec(1, ty), one, None, [0] * n)

    def from_scalars(self, scalars: list[str], ty: str) -> str:
        """A vector whose lane k is scalars[k]."""
        acc = "poison"
        for k, s in enumerate(scalars):
            acc = self.emit(f"insertelement {vec(len(scalars), ty)} {acc}, {ty} {s}, i32 {k}", "s")
        return acc

    def nibbles(self, packed16: str) -> str:
        """16 packed bytes -> 32 values 0..15: low nibbles then high nibbles (ggml's Q4 element order)."""
        t = vec(16, "i8")
        lo = self.emit(f"and {t} {packed16}, {splat_const(16, 'i8', 15)}")
        hi = self.emit(f"lshr {t} {packed16}, {splat_const(16, 'i8', 4)}")
        return self.concat(t, lo, hi, 16)

    # ---- integer dot products ----

    def weight_sign(self, n: int, w: str, unsigned: bool) -> tuple[str, str | None]:
        """(|w|, w < 0) of <n x i8> weights; (w, None) when they are known to be >= 0."""
        if unsigned:
            return w, None
        t8 = vec(n, "i8")
        self.declare(f"declare {t8} @llvm.abs.v{n}i8({t8}, i1)")
        return (self.emit(f"call {t8} @llvm.abs.v{n}i8({t8} {w}, i1 false)"),
                self.emit(f"icmp slt {t8} {w}, zeroinitializer"))

    def signed_by(self, n: int, neg: str | None, x: str) -> str:
        """x * sign(w): activations negated where the weight is negative."""
        if neg is None:
            return x
        t8 = vec(n, "i8")
        minus_x = self.emit(f"sub {t8} zeroinitializer, {x}")
        return self.emit(f"select {vec(n, 'i1')} {neg}, {t8} {minus_x}, {t8} {x}")

    def dot4(self, isa: Isa, n: int, u: str, sx: str, init: str = "zeroinitializer") -> str:
        """|w| (<n x i8>, unsigned) . x*sign(w) (<n x i8>) -> <n/4 x i32>, lane l = sum of products 4l..4l+3
        (plus lane l of `init`, VNNI only).

        Exact for |w| * |x| * 2 < 32768 (all ggml types against Q8 activations clamped to [-127, 127]).
        """
        t8 = vec(n, "i8")
        if isa.vnni:
            t32 = vec(n // 4, "i32")
            name = f"@llvm.x86.avx512.vpdpbusd.{n * 8}"
            self.declare(f"declare {t32} {name}({t32}, {t8}, {t8})")
            return self.emit(f"call {t32} {name}({t32} {init}, {t8} {u}, {t8} {sx})")
        assert init == "zeroinitializer", "an initial sum needs VNNI"
        return self.pair_sum_i16(isa, n // 2, self.maddubs(isa, n, u, sx))

    def maddubs(self, isa: Isa, n: int, u: str, sx: str) -> str:
        """zext(u) * sext(sx), adjacent pairs added with signed 16-bit saturation (vpmaddubsw).

        With intrinsics the instruction is asked for by name: LLVM 22 turns the generic shape below into
        vpmovzx/vpmaddwd/vpackssdw instead, which is slower.
        """
        if isa.intrinsics and n in (32, 64):
            t8, t16 = vec(n, "i8"), vec(n // 2, "i16")
            name = "@llvm.x86.avx2.pmadd.ub.sw" if n == 32 else "@llvm.x86.avx512.pmaddubs.w.512"
            self.declare(f"declare {t16} {name}({t8}, {t8})")
            return self.emit(f"call {t16} {name}({t8} {u}, {t8} {sx})")
        t32 = vec(n, "i32")
        uw = self.emit(f"zext {vec(n, 'i8')} {u} to {t32}")
        xw = self.emit(f"sext {vec(n, 'i8')} {sx} to {t32}")
        p = self.emit(f"mul nsw {t32} {uw}, {xw}")
        even = self.shuffle(t32, p, None, list(range(0, n, 2)))
        odd = self.shuffle(t32, p, None, list(range(1, n, 2)))
        h = vec(n // 2, "i32")
        s = self.emit(f"add nsw {h} {even}, {odd}")
        self.declare(f"declare {h} @llvm.smax.v{n // 2}i32({h}, {h})")
        self.declare(f"declare {h} @llvm.smin.v{n // 2}i32({h}, {h})")
        lo = self.emit(f"call {h} @llvm.smax.v{n // 2}i32({h} {s}, {h} {splat_const(n // 2, 'i32', -32768)})")
        hi = self.emit(f"call {h} @llvm.smin.v{n // 2}i32({h} {lo}, {h} {splat_const(n // 2, 'i32', 32767)})")
        return self.emit(f"trunc {h} {hi} to {vec(n // 2, 'i16')}")

    def madd_i16(self, isa: Isa, m: int, v: str, factors: str) -> str:
        """<m x i16> * <m x i16> factors, adjacent pairs added -> <m/2 x i32> (vpmaddwd)."""
        t16, t32 = vec(m, "i16"), vec(m // 2, "i32")
        if isa.intrinsics and m in (16, 32):
            name = "@llvm.x86.avx2.pmadd.wd" if m == 16 else "@llvm.x86.avx512.pmaddw.d.512"
            self.declare(f"declare {t32} {name}({t16}, {t16})")
            return self.emit(f"call {t32} {name}({t16} {v}, {t16} {factors})")
        wide = vec(m, "i32")
        p = self.op("mul nsw", wide, self.emit(f"sext {t16} {v} to {wide}"), self.emit(f"sext {t16} {factors} to {wide}"))
        even = self.shuffle(wide, p, None, list(range(0, m, 2)))
        odd = self.shuffle(wide, p, None, list(range(1, m, 2)))
        return self.op("add nsw", t32, even, odd)

    def pair_sum_i16(self, isa: Isa, m: int, v: str) -> str:
        """<m x i16> -> <m/2 x i32>, adjacent pairs added (vpmaddwd with ones)."""
        t16, t32 = vec(m, "i16"), vec(m // 2, "i32")
        if isa.intrinsics and m in (16, 32):
            name = "@llvm.x86.avx2.pmadd.wd" if m == 16 else "@llvm.x86.avx512.pmaddw.d.512"
            self.declare(f"declare {t32} {name}({t16}, {t16})")
            return self.emit(f"call {t32} {name}({t16} {v}, {t16} {splat_const(m, 'i16', 1)})")
        words = self.emit(f"bitcast {t16} {v} to {t32}")
        low = self.emit(f"shl {t32} {words}, {splat_const(m // 2, 'i32', 16)}")
        low = self.emit(f"ashr {t32} {low}, {splat_const(m // 2, 'i32', 16)}")
        high = self.emit(f"ashr {t32} {words}, {splat_const(m // 2, 'i32', 16)}")
        return self.emit(f"add nsw {t32} {low}, {high}")

    # ---- float ----

    def fma(self, n: int, a: str, b: str, c: str) -> str:
        t = vec(n, "float")
        self.declare(f"declare {t} @llvm.fma.v{n}f32({t}, {t}, {t})")
        return self.emit(f"call {t} @llvm.fma.v{n}f32({t} {a}, {t} {b}, {t} {c})", "acc")

    def tree_sum(self, n: int, v: str) -> str:
        """The sum of the n (a power of two) float lanes of v by dte's fixed tree: lane l += lane l + n/2, halving
        until one lane is left (docs/kernels.md "One reduction order"). No fast-math flag: every add rounds as
        written, so the result is the same whatever registers LLVM splits the vector into."""
        while n > 1:
            h = n // 2
            t = vec(n, "float")
            lo = self.shuffle(t, v, None, list(range(h)))
            hi = self.shuffle(t, v, None, list(range(h, n)))
            v, n = self.op("fadd", vec(h, "float"), lo, hi), h
        return self.emit(f"extractelement {vec(1, 'float')} {v}, i32 0", "f")

    def reduce_add_i32(self, n: int, v: str) -> str:
        t = vec(n, "i32")
        self.declare(f"declare i32 @llvm.vector.reduce.add.v{n}i32({t})")
        return self.emit(f"call i32 @llvm.vector.reduce.add.v{n}i32({t} {v})")

    def activation_bases(self) -> list[str]:
        """Pointers to the activation rows: %a, then %a + t * %astride (emitted in the entry block)."""
        if self.tokens == 1:
            return ["%a"]
        return ["%a"] + [self.gep("%a", self.op("mul", "i64", "%astride", t)) for t in range(1, self.tokens)]

    def store_results(self, values: list[str]) -> None:
        """Multi-token ABI: out[t] = values[t]."""
        for t, v in enumerate(values):
            self.raw(f"store float {v}, ptr {self.emit(f'getelementptr inbounds float, ptr %out, i64 {t}', 'p')}, "
                     "align 4")

    def text(self) -> str:
        """vec_dot ABI: float f(int64_t n, const void *w, const void *a).
        multi-token ABI: void f(int64_t n, const void *w, const void *a, int64_t astride, float *out).
        tile ABI: void f(int64_t n, const void *w, int64_t wstride, const void *a, int64_t astride, float *out)."""
        body = "\n".join(self.lines)
        w = "ptr noalias nocapture readonly %w"
        a = "ptr noalias nocapture readonly %a"
        if self.rows > 1:
            return (f"define void @{self.name}(i64 %n, {w}, i64 %wstride, {a}, i64 %astride, "
                    f"ptr noalias nocapture writeonly %out) #0 {{\n{body}\n}}\n")
        if self.tokens == 1:
            return f"define float @{self.name}(i64 %n, {w}, {a}) #0 {{\n{body}\n}}\n"
        return (f"define void @{self.name}(i64 %n, {w}, {a}, i64 %astride, ptr noalias nocapture writeonly %out) "
                f"#0 {{\n{body}\n}}\n")


TOKENS = 4
"""Activation rows of the multi-token kernels (dte_k_vec_dot4_*): one pass over a weight row serves four tokens."""
WIDE_TOKENS = 16
"""Activation rows of the wide multi-token kernels (dte_k_vec_dot16_*, K-quants): one unpacked weight super-block
serves sixteen tokens."""
TILE_ROWS = 4
"""Weight rows of the tile kernels (dte_k_gemm4x4_*, legacy types): TILE_ROWS x TOKENS dot products per pass, each
loaded weight block and activation block used four times (llama.cpp's tinyBLAS gemm4xN does the same)."""

FUNCTION_ATTRIBUTES = ('attributes #0 = { nounwind noredzone "no-builtins" "no-stack-arg-probe" '
                       '"no-trapping-math"="true" }')


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


def new_fn(name: str, tokens: int = 1, rows: int = 1) -> Fn:
    fn = Fn(name, tokens, rows)
    fn.block = "entry"
    fn.raw("entry:")
    return fn
