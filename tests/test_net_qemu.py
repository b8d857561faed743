"""The appliance serving the token protocol over virtio-net under QEMU (TCG, user networking, the protocol port
forwarded from 127.0.0.1): the real firmware, the real engine, the default model.

Expected ids come from the hosted engine (`dte generate`, the same C engine built for Linux), never from the
firmware; frames are built and checked by the independent Python codec (dte_build.protocol). The bad-traffic
list and the fuzz frames are the hosted stack tests' own (tests/test_net_stack.py). ARP and ICMP are covered
there (hosted) and are not repeated here. One appliance boots for the module; `dte run --net` boots once more.
"""

from __future__ import annotations

import json
import random
import shutil
import socket
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from boot_helpers import build_net_image, hosted_generation
from dte_build import protocol as p
from dte_build.board import load_board
from dte_build.cli import main
from dte_build.client import Client, Generation, RemoteError
from dte_build.engine import Engine
from dte_build.errors import DteError
from dte_build.netboot import NetAppliance, free_udp_port
from dte_build.paths import MODELS_DIR
from dte_build.toolchain import FirmwareOptions
from net_helpers import DROP_COUNTERS as PROTO_DROP_COUNTERS
from net_helpers import KEY, authentic, bad_traffic, fuzz_frame, no_answer, open_raw

pytestmark = pytest.mark.qemu

MODEL = MODELS_DIR / "dte-tiny-q8_0.gguf"
PROMPT = "Hello. I am Deep Tree Echo,"
BOOT_TIMEOUT = 150.0
DROP_COUNTERS = (*PROTO_DROP_COUNTERS, "net_fragments")


def hosted(prompt: str, n: int, temp: float = 0.0, top_k: int = 40, top_p: float = 0.95, seed: int = 0) -> dict:
    """`dte generate --json` on this host: the oracle for the appliance's ids."""
    return hosted_generation(MODEL, FirmwareOptions(prompt=prompt, n_predict=n, temperature=temp, top_k=top_k,
                                                    top_p=top_p, seed=seed))


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return p.write_key(tmp_path_factory.mktemp("key") / "appliance.key", KEY)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory, key_file: Path) -> Path:
    """`dte build --net --key KEYFILE` (build artifacts in a temp dir, not the shared build/)."""
    if not MODEL.is_file():
        pytest.skip(f"{MODEL.name} is not in models/")
    return build_net_image(tmp_path_factory.mktemp("net"), MODEL, key_file)


@pytest.fixture(scope="module")
def appliance(image: Path) -> Iterator[NetAppliance]:
    with NetAppliance(image, timeout=600) as app:
        app.wait_ready(BOOT_TIMEOUT)
        yield app


def test_ready_line_names_the_boards_address_and_the_nic(appliance: NetAppliance) -> None:
    assert appliance.ready is not None
    board = load_board("qemu-q35")
    assert appliance.ready["ip"] == board.network["ipv4"] and appliance.ready["port"] == str(board.network["port"])
    assert appliance.ready["nic"] == "virtio-net" and appliance.ready["link"] == "up"
    assert appliance.ready["mac"] == "52:54:00:12:34:56"   # QEMU's default NIC MAC (board: mac = "nic")


@pytest.mark.parametrize("settings", [dict(n=10), dict(n=8, temp=1.5, top_k=0, top_p=1.0, seed=3)],
                         ids=["greedy", "sampled"])
def test_generate_remote_equals_hosted_generate(appliance: NetAppliance, key_file: Path, settings: dict) -> None:
    args = ["generate", "--remote", appliance.endpoint, "--key", str(key_file), "-p", PROMPT, "-n", str(settings["n"]),
            "--json"]
    for name in ("temp", "top_k", "top_p", "seed"):
        if name in settings:
            args += [f"--{name.replace('_', '-')}", str(settings[name])]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    remote = json.loads(result.stdout)
    expected = hosted(PROMPT, **settings)
    assert remote["prompt_ids"] == expected["prompt_ids"]
    assert remote["ids"] == expected["ids"] and len(remote["ids"]) > 0
    assert remote["text"] == expected["text"]
    assert set(remote) == set(expected) and remote["tok_per_s"] > 0 and remote["prompt_tok_per_s"] > 0


def test_two_clients_in_turn_each_request_independent(appliance: NetAppliance) -> None:
    expected_a = hosted("The forest", 6, temp=0.9, seed=11)
    expected_b = hosted("Echo state networks", 6)
    with Client(appliance.host, appliance.port, KEY) as a, Client(appliance.host, appliance.port, KEY) as b:
        a.open()
        b.open()
        assert a.session != b.session and a.session >> 32 == b.session >> 32   # issued ids, one boot's epoch
        sampled = p.Prompt("The forest", n_predict=6, temperature=0.9, top_k=40, top_p=0.95, seed=11)
        first = a.generate(sampled)
        second = b.generate(p.Prompt("Echo state networks", n_predict=6, temperature=0.0))
        again = a.generate(sampled)
    assert first.ids == expected_a["ids"] and second.ids == expected_b["ids"]
    assert again.ids == first.ids   # a fresh transcript and sampler per request without APPEND


def test_cancel_mid_stream_then_the_session_serves_again(appliance: NetAppliance) -> None:
    expected = hosted(PROMPT, 200, temp=1.0, top_k=0, top_p=1.0, seed=5)["ids"]
    with Client(appliance.host, appliance.port, KEY) as c:
        result = c.generate(p.Prompt(PROMPT, n_predict=200, temperature=1.0, top_k=0, top_p=1.0, seed=5),
                            cancel_after=3)
        assert result.cancelled and result.done.generated_tokens == len(result.ids)
        assert 3 <= len(result.ids) < len(expected) and result.ids == expected[:len(result.ids)]
        after = c.generate(p.Prompt(PROMPT, n_predict=4, temperature=0.0))
        assert after.ids == hosted(PROMPT, 4)["ids"] and not after.cancelled
        assert c.stats()["cancelled"] >= 1


def test_bad_traffic_is_dropped_counted_and_the_next_request_served(appliance: NetAppliance) -> None:
    attacker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    attacker.connect((appliance.host, appliance.port))
    with Client(appliance.host, appliance.port, KEY) as monitor:
        attacker.settimeout(5)
        session = open_raw(attacker)
        attacker.send(authentic(p.FrameType.PING, session, 2, b"hello"))   # the frame replayed below
        assert p.decode_frame(KEY, attacker.recv(2048), expect_response=True).payload == b"hello"
        for name, counter, data in bad_traffic(session):
            if counter == "too_large":
                # QEMU's user network has a 1500-byte MTU: a datagram over 1472 bytes reaches the appliance as
                # IPv4 fragments, which the stack drops and counts before the protocol sees anything.
                counter = "net_fragments"
            before = monitor.stats()
            attacker.send(data)
            assert no_answer(attacker, 0.5), f"{name}: answered"
            after = monitor.stats()
            assert after[counter] > before[counter], name
            if counter != "net_fragments":
                assert after[counter] == before[counter] + 1, name
                assert sum(after[k] - before[k] for k in DROP_COUNTERS) == 1, name
            assert after["served"] == before["served"] + 1, name   # only the STATS request itself
            assert monitor.ping() < 2.0, f"{name}: next good request not served"
        good = monitor.generate(p.Prompt(PROMPT, n_predict=3, temperature=0.0))
        assert good.ids == hosted(PROMPT, 3)["ids"]
    attacker.close()


def test_bounded_fuzz_through_qemu(appliance: NetAppliance) -> None:
    rng = random.Random(23)
    fuzzer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    fuzzer.connect((appliance.host, appliance.port))
    sent = pings = 0
    fuzzer.settimeout(5)
    session = open_raw(fuzzer)
    with Client(appliance.host, appliance.port, KEY) as monitor:
        before = monitor.stats()
        while sent < 300:
            for _ in range(50):   # batches, then a round trip, so no queue on the way overflows
                frame = fuzz_frame(rng, sent + 2, session)[:p.MAX_FRAME] or b"\0"   # larger: fragments (tested above)
                fuzzer.send(frame)
                sent += 1
            monitor.ping()
            pings += 1
        after = monitor.stats()
    assert no_answer(fuzzer, 0.5)
    # The thermal governor's counters follow the stack's: QEMU has no sensors (docs/thermal.md), so the state is
    # 0 (unavailable), nothing was paced, and every worker stays allowed.
    assert after["thermal_state"] == 0 and after["thermal_paced_samples"] == 0 and after["thermal_workers"] >= 1
    dropped = sum(after[k] - before[k] for k in DROP_COUNTERS)
    assert after["rx_frames"] - before["rx_frames"] == sent + pings + 1   # + the PINGs and this STATS
    assert dropped == sent
    assert after["served"] - before["served"] == pings + 1
    fuzzer.close()


def test_dte_run_net_prints_the_address_and_ready_then_serves(image: Path, tmp_path: Path) -> None:
    port = free_udp_port()
    copy = tmp_path / "boot.img"   # the module's appliance holds QEMU's write lock on the original
    shutil.copyfile(image, copy)
    proc = subprocess.Popen([sys.executable, "-m", "dte_build.cli", "run", "--net", "--port", str(port),
                             "--timeout", "120", "--quiet", str(copy)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert f"127.0.0.1:{port}" in first
        deadline = time.monotonic() + BOOT_TIMEOUT
        ready = ""
        while "appliance ready" not in ready and time.monotonic() < deadline:   # the boot prompt's text comes first
            ready = proc.stdout.readline()
            if not ready:
                break
        assert time.monotonic() < deadline and "ready" in ready and f"127.0.0.1:{port}" in ready, (
            ready or proc.stderr.read() if proc.poll() is not None else ready)
        with Client("127.0.0.1", port, KEY) as c:
            assert c.ping() < 2.0
    finally:
        proc.send_signal(signal.SIGINT)   # Ctrl-C: the CLI stops QEMU (its own process group) before exiting
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    leftover = subprocess.run(["pgrep", "-f", f"hostfwd=udp:127.0.0.1:{port}-"], capture_output=True, text=True)
    assert leftover.stdout == "", "QEMU outlived `dte run --net` after Ctrl-C"
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""


def test_second_client_waits_in_the_queue_then_gets_its_own_tokens(appliance: NetAppliance) -> None:
    # B waits while A's 20 tokens run: on a loaded host (TCG) that can exceed the default 10 s between frames
    with Client(appliance.host, appliance.port, KEY, timeout=60) as a, \
            Client(appliance.host, appliance.port, KEY, timeout=60) as b:
        a.send(p.FrameType.PROMPT, p.Prompt(PROMPT, n_predict=20, temperature=0.0).encode())
        first = a.collect(Generation(), until_first=p.FrameType.TOKENS)   # A is generating
        waiting = b.generate(p.Prompt("Echo state networks", n_predict=4, temperature=0.0))
        a.collect(first)
    assert waiting.queued_at == [1]
    assert waiting.ids == hosted("Echo state networks", 4)["ids"]
    assert first.ids == hosted(PROMPT, 20)["ids"] and first.done is not None


def test_prompt_longer_than_the_context_is_refused_context_full(appliance: NetAppliance) -> None:
    text = "the forest keeps the memory of rain " * 38   # 1368 bytes: more tokens than the 256-token context
    with Engine(MODEL) as engine, pytest.raises(DteError, match="context holds"):   # the hosted engine refuses too
        engine.generate(text, 1)
    with Client(appliance.host, appliance.port, KEY) as c, pytest.raises(RemoteError, match="CONTEXT_FULL"):
        c.generate(p.Prompt(text, n_predict=4))
    with Client(appliance.host, appliance.port, KEY) as c:
        assert c.ping() < 2.0


def fresh_greedy(ids: list[int], n: int) -> list[int]:
    """The hosted engine over `ids` from an empty cache in one evaluation, then greedy tokens one at a time: a
    fresh run over the whole transcript (the oracle for a conversation's later turn)."""
    out: list[int] = []
    with Engine(MODEL) as engine:
        engine.reset()
        logits = engine.eval(ids)
        for _ in range(n):
            best = max(range(len(logits)), key=logits.__getitem__)
            if best == engine.info["eos"]:
                break
            out.append(best)
            logits = engine.eval([best])
    return out


def test_conversation_turn_two_equals_a_fresh_run_and_evaluates_only_new_tokens(appliance: NetAppliance) -> None:
    """Exact ids (no tolerance): the appliance and the hosted engine are the same C engine, and each position's
    values do not depend on how the prompt was split into evaluations (engine/kernels: one reduction order)."""
    with Client(appliance.host, appliance.port, KEY) as c:
        one = c.say(PROMPT, n_predict=6)
        two = c.say(" And the forest answered", n_predict=8)
    assert one.ids == hosted(PROMPT, 6)["ids"]
    transcript = one.prompt_ids + one.ids + two.prompt_ids
    assert two.prompt_start == len(one.prompt_ids) + len(one.ids)
    assert two.done.prompt_tokens == len(two.prompt_ids) + 1          # + turn one's last, unevaluated token
    assert two.done.reused_tokens == len(one.prompt_ids) + len(one.ids) - 1
    assert two.ids == fresh_greedy(transcript, 8)
