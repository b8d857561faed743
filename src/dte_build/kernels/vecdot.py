"""The quantized vec_dot kernels: one IR function per weight type, same C ABI as dte_vec_dot_ref
(firmware/engine/kernels.h): `float dte_k_vec_dot_<w>_<a>(int64_t n, const void *w, const void *a)`.

Block layouts: ggml-common.h (see firmware/engine/quants_blocks.h). Integer sums are exact; the float combination
(one fma per block into vector accumulators, one reduction at the end) differs from the scalar reference only
by rounding order.
"""

from __future__ import annotations

from collections.abc import Callable

from .ir import FUNCTION_ATTRIBUTES, Fn, Isa
from .floats import KERNELS as FLOAT_KERNELS
from .floats import MULTI_KERNELS as FLOAT_MULTI_KERNELS
from .floats import ROWS_KERNELS as FLOAT_ROWS_KERNELS
from .kquants import KERNELS as K_KERNELS
from .kquants import MULTI_KERNELS as K_MULTI_KERNELS
from .kquants import ROW_KERNELS as K_ROW_KERNELS
from .kquants import WIDE_KERNELS as K_WIDE_KERNELS
from .legacy import KERNELS as LEGACY_KERNELS
from .legacy import MULTI_KERNELS as LEGACY_MULTI_KERNELS
from .legacy import ROW_KERNELS as LEGACY_ROW_KERNELS
from .legacy import TILE_KERNELS


# Every kernel, in firmware/engine/kernels.h order: weight type -> (symbol, builder).
KERNELS: dict[str, tuple[str, Callable[[Isa], Fn]]] = {
    **LEGACY_KERNELS,
    **K_KERNELS,
    **FLOAT_KERNELS,
}
# One weight row against TOKENS activation rows, for every type: weight type -> (symbol, builder).
MULTI_KERNELS: dict[str, tuple[str, Callable[[Isa], Fn]]] = {**LEGACY_MULTI_KERNELS, **K_MULTI_KERNELS,
                                                             **FLOAT_MULTI_KERNELS}
# TILE_ROWS weight rows against TOKENS activation rows (legacy types; prompt processing).
GEMM_KERNELS: dict[str, tuple[str, Callable[[Isa], Fn]]] = dict(TILE_KERNELS)
# TILE_ROWS weight rows against one activation row (generation): the legacy types read one ROWS4 group, the
# K-quants TILE_ROWS plain rows w_row_bytes apart.
ROW_KERNELS: dict[str, tuple[str, Callable[[Isa], Fn]]] = {**LEGACY_ROW_KERNELS, **K_ROW_KERNELS}
# One weight row against WIDE_TOKENS activation rows (K-quants; prompt processing).
WIDE_KERNELS: dict[str, tuple[str, Callable[[Isa], Fn]]] = dict(K_WIDE_KERNELS)
# FLOAT_ROWS weight rows against one activation row (F16; attention's V rows).
FLOAT_ROW_KERNELS: dict[str, tuple[str, Callable[[Isa], Fn]]] = dict(FLOAT_ROWS_KERNELS)


def module_ir(isa: Isa, triple: str) -> str:
    """The whole kernel module as LLVM IR text."""
    fns = [build(isa) for _, build in [*KERNELS.values(), *MULTI_KERNELS.values(), *GEMM_KERNELS.values(),
                                       *ROW_KERNELS.values(), *WIDE_KERNELS.values(),
                                       *FLOAT_ROW_KERNELS.values()]]
    declares = sorted({d for fn in fns for d in fn.declares})
    return "\n".join([f'target triple = "{triple}"', "", *declares, "", *(fn.text() for fn in fns),
                      FUNCTION_ATTRIBUTES, ""])
