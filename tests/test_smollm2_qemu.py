"""SmolLM2-135M-Instruct on the appliance under QEMU (TCG): a qemu-q35 image built with the real GGUF boots, loads it
with our NVMe driver after ExitBootServices and prints the greedy ids that the hosted engine gives for the same
settings, for the build's prompt as a plain completion and as a chat turn formatted by the firmware from the
template compiled in at build (engine/chat.c). The host side is checked against llama.cpp in test_smollm2.py;
here the oracle is `dte generate` (plain, and --chat, which renders the template with Jinja2)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from boot_helpers import build_boot_image

from dte_build import qemu
from dte_build.board import load_board
from dte_build.chat_template import firmware_chat
from dte_build.cli import main
from dte_build.toolchain import FirmwareOptions

pytestmark = pytest.mark.qemu

PROMPT = "The capital of France is"
SYSTEM = "Be brief."   # replaces SmolLM2's 20-token default system block: a shorter prompt to emulate
TIMEOUT = 1500.0       # TCG: 5 (plain) and 13 (chat) minutes measured on 2 cores at load average 12
OPTIONS = FirmwareOptions(prompt=PROMPT, n_predict=4, temperature=0.0, top_k=0, top_p=1.0, seed=1, threads=2)


def host(model: Path, *extra: str) -> dict:
    args = ["generate", "-m", str(model), "-p", PROMPT, "-n", str(OPTIONS.n_predict), "--temp", "0", "--json", *extra]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize("chat", [False, True], ids=["plain", "chat"])
def test_qemu_smollm2_greedy_ids_equal_the_hosts(chat: bool, tmp_path: Path, smollm2_path: Path) -> None:
    board = load_board("qemu-q35")   # its 1 GiB weights region also holds the 8192-token KV cache
    options = replace(OPTIONS, chat=firmware_chat(smollm2_path, True), boot_chat=chat, identity_strength=0.0,
                      persona_sha256="0" * 64, persona_name="none", system_prompt=SYSTEM if chat else "")
    image = build_boot_image(tmp_path, board, smollm2_path, options)
    result = qemu.run_config(image, qemu.make_config(board, drive="nvme", smp=2), timeout=TIMEOUT)
    assert result.ok, result.console[-3000:]
    summary = qemu.generation_summary(result)
    expected = host(smollm2_path, *(["--chat", "--system", SYSTEM] if chat else []))
    assert summary["prompt_ids"] == expected["prompt_ids"]
    assert summary["ids"] == expected["ids"] and summary["ids"]
    assert summary["text"] == expected["text"]
    words = [w for w, _ in result.lines]
    assert words.index("exit_boot_services") < words.index("nvme") < words.index("weights")
