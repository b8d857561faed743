"""`dte serve` and `dte chat` in front of the real firmware under QEMU (TCG, user networking), built with the
committed model: the official `openai` client gets the text `dte generate` computes on this host for the same
prompt and settings; errors are OpenAI error objects; and two appliances behind HAProxy (the shipped
deploy/haproxy-dte-fleet.cfg) lose no request when one is stopped mid-run.

Oracle: the hosted engine (`dte generate --json`, the same C engine built for Linux), never the gateway. Few
tests, one appliance for the module (plus a second for the fleet): QEMU runs on 2 shared cores.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from _fleet import HAProxy, run_load
from _serve import DTE, ServeProcess
from boot_helpers import build_net_image, hosted_generation
from dte_build import protocol as p
from dte_build.client import Client
from dte_build.engine import Engine
from dte_build.netboot import NetAppliance
from dte_build.paths import MODELS_DIR
from dte_build.toolchain import FirmwareOptions
from net_helpers import KEY

pytestmark = pytest.mark.qemu

MODEL = MODELS_DIR / "dte-tiny-q8_0.gguf"
MODEL_NAME = "dte-tiny-q8_0"   # the image's model as the appliance names it: its GGUF file's stem (docs/serve.md)
PROMPT = "Hello. I am Deep Tree Echo,"
BOOT_TIMEOUT = 150.0


def hosted(prompt: str, n: int, temp: float = 0.0, top_k: int = 40, top_p: float = 0.95, seed: int = 0) -> dict:
    """`dte generate --json` on this host: the oracle."""
    return hosted_generation(MODEL, FirmwareOptions(prompt=prompt, n_predict=n, temperature=temp, top_k=top_k,
                                                    top_p=top_p, seed=seed))


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return p.write_key(tmp_path_factory.mktemp("key") / "appliance.key", KEY)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory, key_file: Path) -> Path:
    return build_net_image(tmp_path_factory.mktemp("serve"), MODEL, key_file)


@pytest.fixture(scope="module")
def appliance(image: Path) -> Iterator[NetAppliance]:
    with NetAppliance(image, timeout=900) as app:
        app.wait_ready(BOOT_TIMEOUT)
        yield app


@pytest.fixture(scope="module")
def gateway(appliance: NetAppliance, key_file: Path) -> Iterator[ServeProcess]:
    with ServeProcess(["--appliance", appliance.endpoint, "--key", str(key_file),   # no --model-name: INFO's
                       "--timeout", "60"]) as proc:
        yield proc


@pytest.fixture()
def client(gateway: ServeProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url, api_key="unused", max_retries=0, timeout=300)


def test_openai_client_gets_what_dte_generate_computes(client: openai.OpenAI) -> None:
    sha256 = hashlib.sha256(MODEL.read_bytes()).hexdigest()             # the weights the image holds
    assert [(m.id, (m.model_extra or {}).get("sha256")) for m in client.models.list().data] == [(MODEL_NAME, sha256)]
    expected = hosted(PROMPT, 10)
    completion = client.completions.create(model=MODEL_NAME, prompt=PROMPT, max_tokens=10, temperature=0)
    assert completion.choices[0].text == expected["text"]
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == len(expected["prompt_ids"])
    assert completion.usage.completion_tokens == len(expected["ids"])
    # a chat of one user message is sent as its text (docs/serve.md)
    chat = client.chat.completions.create(model=MODEL_NAME, messages=[{"role": "user", "content": PROMPT}],
                                          max_tokens=10, temperature=0)
    assert chat.choices[0].message.content == expected["text"]
    assert chat.choices[0].finish_reason == ("length" if len(expected["ids"]) == 10 else "stop")
    # turn 2 of the conversation: the gateway's session sends only the new message; the answer is the hosted
    # engine's over the whole transcript, and the cache kept turn 1
    messages = [{"role": "user", "content": PROMPT}, {"role": "assistant", "content": chat.choices[0].message.content},
                {"role": "user", "content": " Who are you?"}]
    turn2 = client.chat.completions.create(model=MODEL_NAME, messages=messages, max_tokens=6, temperature=0)
    assert turn2.choices[0].message.content == follow_up(expected, " Who are you?", 6)["text"]
    assert turn2.usage is not None and turn2.usage.prompt_tokens_details is not None
    assert turn2.usage.prompt_tokens_details.cached_tokens >= len(expected["prompt_ids"])
    streamed = client.chat.completions.create(model=MODEL_NAME, messages=[{"role": "user", "content": PROMPT}],
                                              max_tokens=10, temperature=0, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == expected["text"]
    sampled = hosted("The forest", 8, temp=1.5, top_k=0, top_p=1.0, seed=3)
    reply = client.chat.completions.create(model=MODEL_NAME, messages=[{"role": "user", "content": "The forest"}],
                                           max_tokens=8, temperature=1.5, top_p=1.0, seed=3,
                                           extra_body={"top_k": 0})
    assert reply.choices[0].message.content == sampled["text"]


def test_errors_are_openai_error_objects(client: openai.OpenAI) -> None:
    text = "the forest keeps the memory of rain " * 38   # 1368 bytes: more tokens than the 256-token context
    with pytest.raises(openai.BadRequestError) as info:   # the appliance answers ERROR ENGINE
        client.completions.create(model=MODEL_NAME, prompt=text, max_tokens=4)
    assert info.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL_NAME, messages=[{"role": "user", "content": "x"}], n=3)
    assert info.value.param == "n"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert client.completions.create(model=MODEL_NAME, prompt=PROMPT, max_tokens=2, temperature=0).choices[0].text


def follow_up(first: dict, text: str, n: int) -> dict:
    """The hosted engine over turn 1's transcript (its prompt ids and generated ids) plus `text`'s tokens without
    BOS: what an appliance session that kept turn 1 must answer (this model has no chat template: CHAT turns are
    plain text)."""
    with Engine(MODEL) as engine:
        ids = first["prompt_ids"] + first["ids"] + engine.tokenize(text, add_bos=False)
        result = engine.generate(ids, n)
    return {"ids": result.ids, "text": result.text}


def test_dte_chat_remembers_the_conversation(appliance: NetAppliance, key_file: Path) -> None:
    out = subprocess.run([*DTE, "chat", appliance.endpoint, "--key", str(key_file), "-n", "5"],
                         input="Hello\nWho are you?\n", capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    first = hosted("Hello", 5)
    second = follow_up(first, "Who are you?", 5)
    assert out.stdout == f"{first['text'].lstrip()}\n{second['text'].lstrip()}\n"


def test_two_appliances_behind_haproxy_lose_no_request_when_one_stops(appliance: NetAppliance, image: Path,
                                                                      key_file: Path, tmp_path: Path) -> None:
    copy = tmp_path / "second.img"   # the module's appliance holds QEMU's write lock on the original
    shutil.copyfile(image, copy)
    # first words all differ: a new transcript may reuse a cached prefix (docs/protocol.md), and whether a reused
    # prefix gives bit-identical logits to `dte generate`'s single batch is the protocol's test, not this one's
    words = ["Amber", "Birch", "Cedar", "Dusk", "Ember", "Fern", "Granite", "Harbor", "Iris", "Juniper", "Kestrel",
             "Lantern"]
    jobs = [(f"{word} forest", i) for i, word in enumerate(words)]
    expected = [hosted(prompt, 12, temp=1.0, top_k=0, top_p=1.0, seed=seed)["text"] for prompt, seed in jobs]
    with NetAppliance(copy, timeout=900) as second:
        second.wait_ready(BOOT_TIMEOUT)
        serve = ["--key", str(key_file), "--model-name", MODEL_NAME, "--timeout", "5"]
        with ServeProcess(["--appliance", appliance.endpoint, *serve]) as ga, \
                ServeProcess(["--appliance", second.endpoint, *serve, "--log-requests"]) as gb, \
                HAProxy(ga.port, gb.port) as proxy, \
                Client(appliance.host, appliance.port, KEY) as ma:
            proxy.wait_ready()
            before = ma.stats()["generations"]
            texts = run_load(proxy.url, MODEL_NAME, jobs, 12, workers=4, after=4, action=second.stop)
            first_served = ma.stats()["generations"] - before   # the appliance counts one before its DONE goes out
    # what the second answered, to the end, through its gateway (the only way to it): its request log, read after
    # the gateway stopped. Its STATS cannot say: the last ones finish while it is being stopped.
    second_served = sum(1 for line in gb.lines if "POST /v1/completions" in line
                        and re.search(f"appliance={second.endpoint} finish=(length|stop) ", line))
    assert texts == expected                                   # every request answered, each with its own text
    assert second_served >= 1 and first_served >= 1            # both served ...
    assert first_served + second_served == len(jobs)           # ... each request by one; the first took over the rest
