"""Conversations with the chat template on the appliance (QEMU TCG): `say(..., chat=True)` sends only the user's
text; the appliance formats each turn with the template `dte build` compiled in and continues from the kept KV
cache. A small random llama model with a ChatML template (tests/model_factory.py, written with gguf-py) keeps
the boot fast.

Oracles, independent of the firmware: the turn texts are the template rendered with Jinja2 over the whole
conversation (dte_build.chat_template.ChatTemplate, as llama-cpp-python renders it), tokenized by the hosted
engine; turn two's ids are the hosted engine's fresh greedy run over the whole transcript from an empty cache.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from dte_build import protocol as p
from dte_build.chat_template import ChatTemplate
from dte_build.cli import main
from dte_build.client import Client
from dte_build.engine import Engine
from dte_build.netboot import NetAppliance
from model_factory import ModelSpec, make_model
from net_helpers import KEY

pytestmark = pytest.mark.qemu
if shutil.which("qemu-system-x86_64") is None or not Path("/usr/share/OVMF/OVMF_CODE_4M.fd").is_file():
    pytestmark = [pytest.mark.qemu, pytest.mark.skip(reason="qemu-system-x86 and ovmf not installed")]

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
SYSTEM = "Be brief."


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("chatmodel") / "chatml.gguf"
    return make_model(path, ModelSpec(n_vocab=320, n_embd=64, n_layer=2, n_ctx=512, seed=5, chat_template=CHATML))


@pytest.fixture(scope="module")
def appliance(tmp_path_factory: pytest.TempPathFactory, model: Path) -> Iterator[NetAppliance]:
    tmp = tmp_path_factory.mktemp("chatnet")
    key_file = p.write_key(tmp / "appliance.key", KEY)
    image = tmp / "boot.img"
    result = CliRunner(env={"DTE_BUILD_DIR": str(tmp / "build")}).invoke(
        main, ["build", "--board", "qemu-q35", "--model", str(model), "--net", "--key", str(key_file), "-n", "1",
               "--system", SYSTEM, "--identity-strength", "0", "-o", str(image)])
    assert result.exit_code == 0, result.output
    with NetAppliance(image, timeout=900) as app:
        app.wait_ready(300)
        yield app


def fresh_greedy(engine: Engine, ids: list[int], n: int) -> list[int]:
    engine.reset()
    logits, out = engine.eval(ids), []
    for _ in range(n):
        best = max(range(len(logits)), key=logits.__getitem__)
        if best == engine.info["eos"]:
            break
        out.append(best)
        logits = engine.eval([best])
    return out


def test_chat_turns_are_the_templates_and_turn_two_continues_exactly(appliance: NetAppliance, model: Path) -> None:
    with Client(appliance.host, appliance.port, KEY, timeout=60) as c:
        one = c.say("Hello there", chat=True, n_predict=5)
        two = c.say("And you?", chat=True, n_predict=6)
    template = ChatTemplate(CHATML)
    first = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Hello there"}]
    with Engine(model) as engine:
        reply = engine.detokenize(one.ids)
        first_text = template.render(first)
        full_text = template.render([*first, {"role": "assistant", "content": reply},
                                     {"role": "user", "content": "And you?"}])
        assert full_text.startswith(first_text + reply)
        # the template writes any BOS; control tokens' text is parsed (llama-cpp-python's chat handler)
        assert one.prompt_ids == engine.tokenize(first_text, add_bos=False, special=True)
        assert two.prompt_ids == engine.tokenize(full_text[len(first_text + reply):], add_bos=False, special=True)
        transcript = one.prompt_ids + one.ids + two.prompt_ids
        assert two.prompt_start == len(one.prompt_ids) + len(one.ids)
        unevaluated = 1 if one.done.reason == p.DoneReason.LENGTH else 0             # turn one's last sample
        assert two.done.prompt_tokens == len(two.prompt_ids) + unevaluated
        assert two.done.reused_tokens == len(one.prompt_ids) + len(one.ids) - unevaluated
        assert two.ids == fresh_greedy(engine, transcript, 6)
