"""One reduction order (docs/kernels.md): the hosted engine gives the same logits, bit for bit, with the 256-bit
kernels, the 512-bit kernels (VNNI on an AVX-512 host, the generic 512-bit twin elsewhere) and no SIMD kernels at
all (the scalar reference dot products), batched or one token at a time, for every committed trained model.

Before the fixed order, widths 256 and 512 differed by up to 0.07 in these logits and 8 of 48 greedy runs took
different tokens (issue 13); the prompts below are multi-token, so every matmul, attention dot product over the
F16 cache and tail path runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dte_build.engine import Engine, build_host_library
from dte_build.paths import MODELS_DIR

MODELS = sorted(p.name for p in MODELS_DIR.glob("dte-tiny-*.gguf"))
PROMPTS = ["The GNU General Public License is", "Once upon a time, there was a little",
           "Hello. I am Deep Tree Echo, and the three primary colors are"]
WIDTHS = (256, 512, 0)  # 0: the scalar reference


@pytest.fixture(scope="module")
def libraries() -> dict[int, Path]:
    return {w: build_host_library(width=w) for w in WIDTHS}


def run(model: str, library: Path) -> list[np.ndarray]:
    """Per prompt: the last position's logits batched, the same one token at a time, and 16 greedy ids."""
    out = []
    with Engine(MODELS_DIR / model, n_ctx=128, threads=2, library=library) as e:
        for prompt in PROMPTS:
            ids = e.tokenize(prompt)
            assert len(ids) > 4
            e.reset()
            out.append(e.eval_numpy(ids).view(np.uint32))
            e.reset()
            for i in ids:
                last = e.eval_numpy([i])
            out.append(last.view(np.uint32))
            e.reset()
            out.append(np.array(e.generate(ids, n_predict=16).ids))
    return out


@pytest.mark.parametrize("model", MODELS)
def test_logits_are_bit_identical_at_every_width(libraries: dict[int, Path], model: str) -> None:
    results = {w: run(model, lib) for w, lib in libraries.items()}
    for k in range(0, len(results[512]), 3):
        np.testing.assert_array_equal(results[512][k], results[512][k + 1], err_msg=f"{model}: batched vs 1 token")
    for w in WIDTHS:
        for k, (a, b) in enumerate(zip(results[w], results[512])):
            np.testing.assert_array_equal(a, b, err_msg=f"{model}: width {w or 'scalar'} vs 512, result {k}")


@pytest.mark.qemu
def test_qemu_ids_equal_this_hosts_on_a_prompt_that_diverged(tmp_path: Path) -> None:
    """The appliance under QEMU TCG (qemu-q35: 256-bit kernels, x86-64-v3) prints the ids `dte generate` prints on
    this host (512-bit VNNI kernels on an AVX-512 host). Before the fixed order the two took different greedy
    tokens on this model and prompt from step 8 on (widths 256 and 512 of commit 2d5bcf1)."""
    import test_boot_tokens as boot_tokens
    from dte_build.board import load_board
    from dte_build.toolchain import FirmwareOptions

    model = MODELS_DIR / "dte-tiny-q4_0.gguf"
    options = FirmwareOptions(prompt="Hello. I am Deep Tree Echo,", n_predict=12, temperature=0.0, top_k=0,
                              top_p=1.0, seed=1)
    board = load_board("qemu-q35")
    result = boot_tokens.boot(boot_tokens.build(tmp_path, board, model, options), board)
    summary = boot_tokens.assert_generated_like_host(result, model, options)
    assert len(summary["ids"]) == 12
