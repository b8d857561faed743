"""One reduction order (docs/kernels.md): the hosted engine gives the same logits, bit for bit, with the 256-bit
kernels, the 512-bit kernels (VNNI on an AVX-512 host, the generic 512-bit twin elsewhere) and no SIMD kernels at
all (the scalar reference dot products), batched or one token at a time, for every committed trained model.

Before the fixed order, widths 256 and 512 differed by up to 0.07 in these logits and 8 of 48 greedy runs took
different tokens (issue 13); the prompts below are multi-token, so every matmul, attention dot product over the
F16 cache and tail path runs.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from dte_build import layout
from dte_build.engine import Engine, build_host_library
from dte_build.paths import MODELS_DIR

pytestmark = pytest.mark.slow   # the edit-test loop's fast tier leaves it out: `pytest -m "not slow"`

MODELS = sorted(p.name for p in MODELS_DIR.glob("dte-tiny-*.gguf"))
PROMPTS = ["The GNU General Public License is", "Once upon a time, there was a little",
           "Hello. I am Deep Tree Echo, and the three primary colors are",
           # >= 37 tokens: two 16-token K-quant kernel calls, a 4-token call and single tokens in one batch
           "Once upon a time, there was a little girl named Lily. She loved to play outside in the sunshine with "
           "her dog, a big brown dog called Max. One day, Lily and Max went to the park near"]
WIDTHS = (256, 512, 0)  # 0: the scalar reference


@pytest.fixture(scope="module")
def libraries() -> dict[int, Path]:
    return {w: build_host_library(width=w) for w in WIDTHS}


def run(model: str | Path, library: Path, weights_layout: int = layout.GGUF) -> list[np.ndarray]:
    """Per prompt: the last position's logits batched, the same one token at a time, and 16 greedy ids."""
    out = []
    with Engine(MODELS_DIR / model, n_ctx=128, threads=2, library=library, weights_layout=weights_layout) as e:
        for prompt in PROMPTS:
            ids = e.tokenize(prompt)
            assert len(ids) > 4 and (len(prompt) < 100 or len(ids) >= 37), (prompt, len(ids))
            e.reset()
            out.append(e.eval_numpy(ids).view(np.uint32))
            e.reset()
            for i in ids:
                last = e.eval_numpy([i])
            out.append(last.view(np.uint32))
            e.reset()
            out.append(np.array(e.generate(ids, n_predict=16).ids))
    return out


def laid_out_copy(model: Path, out: Path) -> Path:
    """The model with its matrices in ROWS4 (what `dte build` writes), header and offsets unchanged."""
    data = bytearray(model.read_bytes())
    for r in layout.ranges(model):
        piece = bytes(data[r.offset:r.offset + r.size])
        layout.pack(r.type, r.n_cols, r.n_rows, piece, memoryview(data)[r.offset:r.offset + r.size])
    out.write_bytes(bytes(data))
    return out


@pytest.mark.parametrize("model", MODELS)
def test_logits_are_bit_identical_at_every_width(libraries: dict[int, Path], model: str, tmp_path: Path) -> None:
    """Plain GGUF files (repacked to ROWS4 at open) at every width, and the same model laid out beforehand
    (opened as ROWS4, nothing repacked) at 512 bits and with no kernels: all the same bits."""
    results = {w: run(model, lib) for w, lib in libraries.items()}
    laid = laid_out_copy(MODELS_DIR / model, tmp_path / model)
    results.update({("rows4", w): run(laid, libraries[w], layout.ROWS4) for w in (512, 0)})
    for k in range(0, len(results[512]), 3):
        np.testing.assert_array_equal(results[512][k], results[512][k + 1], err_msg=f"{model}: batched vs 1 token")
    for w, res in results.items():
        for k, (a, b) in enumerate(zip(res, results[512])):
            np.testing.assert_array_equal(a, b, err_msg=f"{model}: width {w or 'scalar'} vs 512, result {k}")


@pytest.mark.qemu
def test_qemu_ids_equal_this_hosts_on_a_prompt_that_diverged(tmp_path: Path) -> None:
    """The appliance under QEMU TCG (qemu-q35: 256-bit kernels, x86-64-v3) prints the ids `dte generate` prints on
    this host (512-bit VNNI kernels on an AVX-512 host). Before the fixed order the two took different greedy
    tokens on this model and prompt from step 8 on (widths 256 and 512 of commit 2d5bcf1)."""
    from boot_helpers import boot, build_boot_image, generated_like_host
    from dte_build.board import load_board
    from dte_build.toolchain import FirmwareOptions

    model = MODELS_DIR / "dte-tiny-q4_0.gguf"
    options = FirmwareOptions(prompt="Hello. I am Deep Tree Echo,", n_predict=12, temperature=0.0, top_k=0,
                              top_p=1.0, seed=1)
    board = load_board("qemu-q35")
    result = boot(build_boot_image(tmp_path, board, model, options), board)
    summary = generated_like_host(result, model, options)
    assert len(summary["ids"]) == 12


# ---- the scalar reference is the documented order: an independent model in numpy + exact rational arithmetic ----

def fma32(a: float, b: float, c: float) -> np.float32:
    """binary32 fused multiply-add, correctly rounded (ties to even): the exact a*b + c rounded once."""
    exact = Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c))
    r = np.float32(float(exact))  # may round twice (rational -> double -> float): fix the one case that matters
    other = np.nextafter(r, np.float32(np.inf) if Fraction(float(r)) < exact else np.float32(-np.inf))
    dr, do = abs(Fraction(float(r)) - exact), abs(Fraction(float(other)) - exact)
    if do < dr or (do == dr and int(other.view(np.uint32)) % 2 == 0):
        return other
    return r


def tree(lanes: list[np.float32]) -> np.float32:
    v = list(lanes)
    while len(v) > 1:
        h = len(v) // 2
        v = [np.float32(v[i] + v[i + h]) for i in range(h)]
    return v[0]


def model_legacy(w_vals: np.ndarray, x_vals: np.ndarray, dd: np.ndarray, mins: np.ndarray | None) -> np.float32:
    """docs/kernels.md, 32-element blocks: 16 lanes, block b's 4-element sums into lanes 8(b%2)+j."""
    acc = [np.float32(0)] * 16
    m = np.float32(0)
    for b in range(len(dd)):
        for j in range(8):
            s = int(np.dot(w_vals[b, 4 * j:4 * j + 4].astype(np.int64), x_vals[b, 4 * j:4 * j + 4].astype(np.int64)))
            acc[8 * (b % 2) + j] = fma32(dd[b], np.float32(s), acc[8 * (b % 2) + j])
        if mins is not None:
            m = fma32(mins[b, 0], mins[b, 1], m)
    return np.float32(tree(acc) + m)


def model_float(w: np.ndarray, x: np.ndarray) -> np.float32:
    """docs/kernels.md, F32/F16/BF16: 64 lanes, then the tail in order."""
    acc = [np.float32(0)] * 64
    main = len(w) - len(w) % 64
    for i in range(main):
        acc[i % 64] = fma32(w[i], x[i], acc[i % 64])
    rest = np.float32(0)
    for i in range(main, len(w)):
        rest = fma32(w[i], x[i], rest)
    return np.float32(tree(acc) + rest)


def test_scalar_reference_is_the_documented_order() -> None:
    """dte_vec_dot_ref (firmware/engine/quants_dot.c) against a numpy model of docs/kernels.md "One reduction
    order" with exactly rounded fma (Fraction), for Q8_0, Q4_0, Q4_1 and F16: bit for bit. The kernels are tested
    against dte_vec_dot_ref in test_kernels.py, so this ties every width to the documentation."""
    import gguf.quants as gq
    from gguf import GGMLQuantizationType as T

    from _quantlib import load_quants

    q = load_quants()
    rng = np.random.default_rng(13)
    for blocks in (1, 2, 5, 17):
        n = 32 * blocks
        x = (rng.standard_normal(n) * 3).astype(np.float32)
        a8 = q.quantize(T.Q8_0, x).reshape(blocks, 34)
        a1 = q.quantize(T.Q8_1, x).reshape(blocks, 36)
        xq8, xq1 = a8[:, 2:].view(np.int8), a1[:, 4:].view(np.int8)
        dx8 = a8[:, :2].copy().view(np.float16).astype(np.float32)[:, 0]
        dx1, sx1 = (a1[:, :4].copy().view(np.float16).astype(np.float32)[:, k] for k in (0, 1))
        w = rng.standard_normal(n).astype(np.float32)
        # Q8_0
        w8 = gq.quantize(w, T.Q8_0).reshape(blocks, 34)
        dd = np.float32(w8[:, :2].copy().view(np.float16).astype(np.float32)[:, 0] * dx8)
        expect = model_legacy(w8[:, 2:].view(np.int8), xq8, dd, None)
        assert bits(q.vec_dot(T.Q8_0, n, w8.ravel(), a8.ravel())) == bits(expect), ("q8_0", n)
        # Q4_0 (elements 0..15: low nibbles, 16..31: high nibbles, minus 8)
        w4 = gq.quantize(w, T.Q4_0).reshape(blocks, 18)
        nib = np.concatenate([w4[:, 2:] & 15, w4[:, 2:] >> 4], axis=1).astype(np.int64) - 8
        dd = np.float32(w4[:, :2].copy().view(np.float16).astype(np.float32)[:, 0] * dx8)
        assert bits(q.vec_dot(T.Q4_0, n, w4.ravel(), a8.ravel())) == bits(model_legacy(nib, xq8, dd, None)), ("q4_0", n)
        # Q4_1 (d, m; unsigned nibbles; + m * s per block)
        w41 = gq.quantize(w, T.Q4_1).reshape(blocks, 20)
        dm = w41[:, :4].copy().view(np.float16).astype(np.float32)
        nib = np.concatenate([w41[:, 4:] & 15, w41[:, 4:] >> 4], axis=1).astype(np.int64)
        dd = np.float32(dm[:, 0] * dx1)
        expect = model_legacy(nib, xq1, dd, np.stack([dm[:, 1], sx1], axis=1))
        assert bits(q.vec_dot(T.Q4_1, n, w41.ravel(), a1.ravel())) == bits(expect), ("q4_1", n)
    for n in (5, 64, 100, 300):
        wf, xf = (rng.standard_normal(n).astype(np.float16) for _ in range(2))
        expect = model_float(wf.astype(np.float32), xf.astype(np.float32))
        assert bits(q.vec_dot(T.F16, n, wf.view(np.uint8), xf.view(np.uint8))) == bits(expect), ("f16", n)


def bits(v: float) -> int:
    return int(np.float32(v).view(np.uint32))
