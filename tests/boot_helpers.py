"""Helpers for the QEMU boot tests (test modules import this, never each other): build an image, boot it, and the
oracle for the firmware's ids — the hosted engine (`dte generate`, the same C engine built for Linux)."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from dte_build import qemu
from dte_build.board import Board
from dte_build.cli import main
from dte_build.image.builder import build_image
from dte_build.paths import REPO_ROOT
from dte_build.toolchain import FirmwareOptions, build_firmware

TIMEOUT = 240.0


def hosted_generation(model: Path, options: FirmwareOptions) -> dict:
    """What `dte generate` prints for these settings (the oracle for the firmware's ids)."""
    result = CliRunner().invoke(main, ["generate", "-m", str(model), "-p", options.prompt, "-n", str(options.n_predict),
                                       "--temp", str(options.temperature), "--top-k", str(options.top_k),
                                       "--top-p", str(options.top_p), "--seed", str(options.seed), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def build_boot_image(tmp: Path, board: Board, model: Path | None, options: FirmwareOptions, *,
                     stream_weights: bool = False, build_dir: Path | None = None) -> Path:
    fw = build_firmware(board, options=options, build_dir=build_dir or tmp / "build")
    image = tmp / "boot.img"
    build_image(board, fw.efi_path, image, model_path=model, build_id=fw.build_id, no_model=model is None,
                stream_weights=stream_weights)
    return image


def build_net_image(tmp: Path, model: Path, key_file: Path) -> Path:
    """`dte build --net --key KEYFILE` of `model` with 2 boot tokens and the identity stage off (plain
    `dte generate` is the oracle), build artifacts in tmp rather than the shared build/."""
    path = tmp / "boot.img"
    result = CliRunner(env={"DTE_BUILD_DIR": str(tmp / "build")}).invoke(
        main, ["build", "--board", "qemu-q35", "--model", str(model), "--net", "--key", str(key_file), "-n", "2",
               "--identity-strength", "0", "-o", str(path)])
    assert result.exit_code == 0, result.output
    return path


def boot(image: Path, board: Board, *, drive: str = "nvme", nvme_options: str = "",
         memory_mib: int | None = None, smp: int = 1) -> qemu.RunResult:
    config = dataclasses.replace(qemu.make_config(board, drive=drive, memory_mib=memory_mib, smp=smp),
                                 nvme_options=nvme_options)
    return qemu.run_config(image, config, timeout=TIMEOUT)


def generated_like_host(result: qemu.RunResult, model: Path, options: FirmwareOptions) -> dict:
    """The boot printed what `dte generate` prints, after loading the weights with our NVMe driver."""
    assert result.ok, result.console[-3000:]
    summary = qemu.generation_summary(result)
    expected = hosted_generation(model, options)
    assert summary["prompt_ids"] == expected["prompt_ids"]
    assert summary["ids"] == expected["ids"] and len(summary["ids"]) > 0
    assert summary["text"] == expected["text"]
    # Loaded after ExitBootServices, by our driver, every chunk checked.
    words = [w for w, _ in result.lines]
    assert words.index("exit_boot_services") < words.index("nvme") < words.index("weights")
    assert result.status["weights"]["status"] == "ok"
    return summary


def llama_logits(path: Path, ids: list[int], flash: bool) -> np.ndarray:
    """llama.cpp's logits at every position of `ids` (scripts/llamacpp_ref.py's plain CPU path)."""
    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    from llamacpp_ref import high_level

    model = high_level(path, n_ctx=128, n_threads=2, flash_attn=flash)
    model.eval(ids)
    out = np.array(model.scores[: len(ids)], dtype=np.float64)
    model.close()
    return out
