"""Gemma 3 270M (Q4_K_M, fetched by `dte fetch gemma3-270m`) booted in qemu-q35: the firmware's greedy tokens equal
the hosted engine's (`dte generate`, the same C engine) and llama.cpp's wherever llama.cpp's choice is decided
(top-2 margin above its own flash-attention on/off spread: see tests/test_engine_gemma3.py for why)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from boot_helpers import build_boot_image, hosted_generation, llama_logits
from dte_build import qemu
from dte_build.board import load_board
from dte_build.toolchain import FirmwareOptions

pytestmark = pytest.mark.qemu

OPTIONS = FirmwareOptions(prompt="The capital of France is", n_predict=4, temperature=0.0, top_k=0, top_p=1.0,
                          seed=1, n_ctx=256)


def test_gemma3_boots_to_llama_cpps_tokens(tmp_path: Path, gemma3_path: Path) -> None:
    board = load_board("qemu-q35")
    image = build_boot_image(tmp_path, board, gemma3_path, OPTIONS)
    config = qemu.make_config(board, drive="nvme", smp=2)
    result = qemu.run_config(image, config, timeout=900.0)
    assert result.ok, result.console[-3000:]
    summary = qemu.generation_summary(result)
    expected = hosted_generation(gemma3_path, OPTIONS)
    assert summary["prompt_ids"] == expected["prompt_ids"]
    assert summary["ids"] == expected["ids"] and len(summary["ids"]) == OPTIONS.n_predict
    ids = summary["prompt_ids"] + summary["ids"]
    ref = llama_logits(gemma3_path, ids, flash=False)
    alt = llama_logits(gemma3_path, ids, flash=True)
    decided = 0
    for pos in range(len(summary["prompt_ids"]) - 1, len(ids) - 1):
        top2 = np.sort(ref[pos])[-2:]
        if float(top2[1] - top2[0]) < float(np.abs(ref[pos] - alt[pos]).max()) * 1.1:
            continue
        decided += 1
        assert int(ref[pos].argmax()) == ids[pos + 1], f"position {pos}: firmware {ids[pos + 1]}, llama.cpp {ref[pos].argmax()}"
    assert decided >= 1
