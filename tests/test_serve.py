"""`dte serve` (the OpenAI HTTP gateway) against the real C token-protocol server on the hosted loopnic with its
fake engine (tests/devmodels/netserve.c), driven by the official `openai` Python client and by raw HTTP (httpx).

Expected text comes from the fake engine's documented rule (`fake_ids`, tests/test_net_stack.py), never from the
gateway; the response shapes are the ones the `openai` client parses (its pydantic models reject others). The real
firmware and model behind the gateway: tests/test_serve_qemu.py.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from _serve import DTE, GatewayThread, ServeProcess, write_key
from dte_build.netboot import free_udp_port
from dte_build.serve import ServeConfig
from net_helpers import FAKE_MODEL_NAME, FAKE_MODEL_SHA256, KEY, Server, fake_ids, fake_turns

pytestmark = pytest.mark.slow   # the edit-test loop's fast tier leaves it out: `pytest -m "not slow"`

MODEL = FAKE_MODEL_NAME   # the name the hosted appliance is configured to report (INFO), not a gateway option


def fake_text(prompt: str, seed: int, n: int) -> str:
    return "".join(chr(i) for i in fake_ids(prompt, seed, n))


@pytest.fixture(scope="module")
def appliance() -> Iterator[Server]:
    s = Server(delay_us=0)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def slow_appliance() -> Iterator[Server]:
    s = Server(delay_us=20_000)   # 20 ms per token: time to disconnect mid-stream
    yield s
    s.stop()


def config(*servers: Server | int, **kw: object) -> ServeConfig:
    ports = [s if isinstance(s, int) else s.port for s in servers]
    return ServeConfig(appliances=[("127.0.0.1", port) for port in ports], key=KEY,
                       timeout=kw.pop("timeout", 5.0), **kw)   # type: ignore[arg-type]


@pytest.fixture(scope="module")
def gateway(appliance: Server) -> Iterator[GatewayThread]:
    with GatewayThread(config(appliance)) as g:
        yield g


@pytest.fixture()
def client(gateway: GatewayThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url, api_key="unused", max_retries=0, timeout=30)


# ---- what the openai client sees ------------------------------------------------------------------------------

def test_models_lists_the_appliances_model(client: openai.OpenAI) -> None:
    models = client.models.list()
    assert [(m.id, (m.model_extra or {}).get("sha256")) for m in models.data] == [(MODEL, FAKE_MODEL_SHA256)]
    assert client.models.retrieve(MODEL).id == MODEL
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")
    reply = client.completions.create(model=MODEL, prompt="x", max_tokens=1)
    assert reply.model == MODEL


def generations(server: Server) -> int:
    with server.client() as c:
        return c.stats()["generations"]


def test_model_name_overrides_and_each_model_goes_to_its_appliances(appliance: Server) -> None:
    with GatewayThread(config(appliance, model="my-alias")) as g:
        c = openai.OpenAI(base_url=g.url, api_key="unused", max_retries=0, timeout=30)
        assert [m.id for m in c.models.list().data] == ["my-alias"]
        assert c.completions.create(prompt="x", model="my-alias", max_tokens=1).model == "my-alias"
    other_sha = "ab" * 32
    other = Server(delay_us=0, model_name="other-model", model_sha256=other_sha)
    try:
        with GatewayThread(config(appliance, other)) as g:
            c = openai.OpenAI(base_url=g.url, api_key="unused", max_retries=0, timeout=30)
            listed = {m.id: (m.model_extra or {}).get("sha256") for m in c.models.list().data}
            assert listed == {MODEL: FAKE_MODEL_SHA256, "other-model": other_sha}
            before = [generations(s) for s in (appliance, other)]
            for _ in range(3):
                reply = c.completions.create(model="other-model", prompt="route", max_tokens=2, seed=3)
                assert reply.model == "other-model" and reply.choices[0].text == fake_text("route", 3, 2)
            after = [generations(s) for s in (appliance, other)]
            assert [b - a for a, b in zip(before, after)] == [0, 3]
    finally:
        other.stop()


def test_chat_completion_is_the_appliances_generation(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hello, echo"}],
                                           max_tokens=12, seed=5, temperature=0)
    assert reply.choices[0].message.content == fake_text("Hello, echo", 5, 12)
    assert reply.choices[0].message.role == "assistant" and reply.choices[0].finish_reason == "length"
    assert reply.object == "chat.completion" and reply.model == MODEL and reply.id.startswith("chatcmpl-")
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (len(b"Hello, echo"), 12)
    assert reply.usage.total_tokens == len(b"Hello, echo") + 12


def test_streamed_chat_gives_the_same_text_and_ends_with_done(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hello, echo"}], max_tokens=12, seed=5, stream=True,
        stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == fake_text("Hello, echo", 5, 12)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len({c.id for c in chunks}) == 1
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 12


def test_raw_stream_is_server_sent_events_ending_in_done(gateway: GatewayThread) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3, "stream": True}
    with httpx.stream("POST", f"{gateway.url}/chat/completions", json=body, timeout=10) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = [line for line in r.iter_lines() if line]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    assert [json.loads(e[6:])["object"] for e in events[:-1]] == ["chat.completion.chunk"] * (len(events) - 1)


def test_completion_sends_the_prompt_as_it_is(client: openai.OpenAI) -> None:
    reply = client.completions.create(model=MODEL, prompt="The forest", max_tokens=7, seed=11)
    assert reply.choices[0].text == fake_text("The forest", 11, 7) and reply.object == "text_completion"
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model=MODEL, prompt="The forest", max_tokens=7, seed=11, stream=True))
    assert streamed == reply.choices[0].text
    echoed = client.completions.create(model=MODEL, prompt="The forest", max_tokens=7, seed=11, echo=True)
    assert echoed.choices[0].text == "The forest" + reply.choices[0].text


def test_history_the_gateway_did_not_produce_is_carried_as_one_turn(client: openai.OpenAI) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Who are you?"}]
    reply = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=6, seed=2)
    # docs/serve.md: the system message, a blank line, then one line per message
    sent = "Be brief.\n\nUser: Hi\nAssistant: Hello.\nUser: Who are you?"
    assert reply.choices[0].message.content == fake_text(sent, 2, 6)


@pytest.mark.parametrize("stream", [False, True])
def test_a_conversation_continues_its_appliance_session(client: openai.OpenAI, stream: bool) -> None:
    turns = [f"Hi {stream}", "Tell me more", "And then?"]
    expected = fake_turns(turns, 4, 6)
    messages: list[dict] = []
    for i, text in enumerate(turns):
        messages.append({"role": "user", "content": text})
        if stream:
            chunks = list(client.chat.completions.create(model=MODEL, messages=messages, max_tokens=6, seed=4,
                                                         stream=True, stream_options={"include_usage": True}))
            answer = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            usage = chunks[-1].usage
        else:
            reply = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=6, seed=4)
            answer, usage = reply.choices[0].message.content, reply.usage
        assert answer == expected[i], i   # only the new turn was sent: the session held the rest
        assert usage is not None
        assert usage.prompt_tokens == sum(len(t.encode()) for t in turns[:i + 1]) + 6 * i
        if i:   # docs/protocol.md: only the new turn and the previous turn's last sampled token are evaluated
            before = sum(len(t.encode()) for t in turns[:i]) + 6 * i
            assert usage.prompt_tokens_details is not None
            assert usage.prompt_tokens_details.cached_tokens == before - 1
        messages.append({"role": "assistant", "content": answer})


def test_an_expired_session_is_carried_to_a_new_transcript() -> None:
    quick = Server(delay_us=0, idle_timeout_ms=300)   # the appliance closes sessions idle for 0.3 s
    try:
        with GatewayThread(config(quick)) as g:
            c = openai.OpenAI(base_url=g.url, api_key="x", max_retries=0)
            first = c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}],
                                              max_tokens=5, seed=1).choices[0].message.content
            time.sleep(1.0)
            messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": first},
                        {"role": "user", "content": "More"}]
            reply = c.chat.completions.create(model=MODEL, messages=messages, max_tokens=5, seed=1)
            # a history too long to carry in one frame: fine while the session holds it, 400 once it expired
            history = [{"role": "user", "content": "y" * 1000}]
            a1 = c.chat.completions.create(model=MODEL, messages=history, max_tokens=5, seed=1)
            history += [{"role": "assistant", "content": a1.choices[0].message.content},
                        {"role": "user", "content": "z" * 500}]
            a2 = c.chat.completions.create(model=MODEL, messages=history, max_tokens=5, seed=1)
            assert a2.choices[0].message.content == fake_turns(["y" * 1000, "z" * 500], 1, 5)[1]
            time.sleep(1.0)
            history += [{"role": "assistant", "content": a2.choices[0].message.content},
                        {"role": "user", "content": "w"}]
            with pytest.raises(openai.BadRequestError) as info:
                c.chat.completions.create(model=MODEL, messages=history, max_tokens=5, seed=1)
            assert info.value.code == "context_length_exceeded" and "no longer holds" in info.value.message
    finally:
        quick.stop()
    assert first == fake_text("Hi", 1, 5)
    assert reply.choices[0].message.content == fake_text(f"User: Hi\nAssistant: {first}\nUser: More", 1, 5)


@pytest.mark.parametrize("stream", [False, True])
def test_stop_sequence_cuts_the_text_and_cancels_the_rest(client: openai.OpenAI, appliance: Server,
                                                          stream: bool) -> None:
    full = fake_text("Hello, echo", 5, 40)
    stop = full[9:11]                       # a two-letter sequence; the text ends before its first occurrence
    expected = full[:full.index(stop)]
    with appliance.client() as monitor:
        before = monitor.stats()
        if stream:
            chunks = list(client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "Hello, echo"}], max_tokens=40, seed=5, stop=stop,
                stream=True))
            text = "".join(c.choices[0].delta.content or "" for c in chunks)
            reason = chunks[-1].choices[0].finish_reason
        else:
            reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hello, echo"}],
                                                   max_tokens=40, seed=5, stop=[stop, "ZZZZ"])
            text, reason = reply.choices[0].message.content, reply.choices[0].finish_reason
            assert reply.usage is not None and reply.usage.completion_tokens == len(expected) + len(stop)
        after = monitor.stats()
    assert text == expected and reason == "stop"
    assert after["generations"] == before["generations"] + 1


# ---- errors: OpenAI error objects with the right status -----------------------------------------------------

def error_of(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and {"message", "type", "param", "code"} <= set(body["error"])
    assert body["error"]["message"]
    return body["error"]


@pytest.mark.parametrize("body, param", [
    ({"model": MODEL, "messages": [{"role": "user", "content": "x"}], "n": 2}, "n"),
    ({"model": MODEL, "messages": []}, "messages"),
    ({"model": MODEL, "messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
    ({"model": MODEL, "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}, "temperature"),
    ({"model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, "max_tokens"),
    ({"model": MODEL, "messages": [{"role": "user", "content": "x"}], "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"model": MODEL, "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]}, "tools"),
    ({"model": MODEL, "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "messages[0]"),
    ([1, 2, 3], None),
], ids=["n2", "no-messages", "tool-role", "temperature-type", "max-tokens-0", "five-stops", "tools", "image",
        "not-object"])
def test_bad_requests_are_400_naming_the_parameter(gateway: GatewayThread, body: object, param: str | None) -> None:
    r = httpx.post(f"{gateway.url}/chat/completions", json=body, timeout=10)
    assert r.status_code == 400
    error = error_of(r)
    assert error["type"] == "invalid_request_error" and error["param"] == param


def test_openai_client_raises_its_own_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="n=1"):
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}], n=2)
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert info.value.code == "model_not_found"


def test_malformed_json_is_400(gateway: GatewayThread) -> None:
    for data in (b"{", f'{{"model": "{MODEL}", "messages": ['.encode(), b"\xff\xfe", b""):
        r = httpx.post(f"{gateway.url}/chat/completions", content=data,
                       headers={"Content-Type": "application/json"}, timeout=10)
        assert r.status_code == 400, data
        assert "JSON" in error_of(r)["message"]


def test_one_mebibyte_body_is_413_and_the_server_keeps_serving(gateway: GatewayThread,
                                                               client: openai.OpenAI) -> None:
    big = {"model": MODEL, "messages": [{"role": "user", "content": "x" * (1 << 20)}]}
    r = httpx.post(f"{gateway.url}/chat/completions", json=big, timeout=10)
    assert r.status_code == 413 and error_of(r)["code"] == "request_too_large"

    def chunked() -> Iterator[bytes]:   # no Content-Length: the limit holds while reading
        yield f'{{"model": "{MODEL}", "messages": [{{"role": "user", "content": "'.encode()
        for _ in range(1024):
            yield b"y" * 1024
        yield b'"}]}'

    r = httpx.post(f"{gateway.url}/chat/completions", content=chunked(), timeout=10)
    assert r.status_code == 413
    assert client.completions.create(model=MODEL, prompt="ok", max_tokens=2, seed=0).choices[0].text


def test_prompt_beyond_a_frame_or_the_context_is_400_context_length_exceeded(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model=MODEL, prompt="x" * 2000, max_tokens=2)
    assert info.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as info:   # the fake engine refuses "FAIL" (ERROR ENGINE)
        client.completions.create(model=MODEL, prompt="FAIL", max_tokens=2)
    assert info.value.code == "context_length_exceeded"


def test_appliance_down_is_503(tmp_path: object) -> None:
    with GatewayThread(config(free_udp_port(), timeout=1.0)) as g:
        c = openai.OpenAI(base_url=g.url, api_key="x", max_retries=0)
        with pytest.raises(openai.InternalServerError) as info:
            c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
        assert info.value.status_code == 503 and info.value.code == "appliance_unavailable"
        assert info.value.response.headers.get("retry-after")
        health = httpx.get(f"http://127.0.0.1:{g.port}/health", timeout=10)
        assert health.status_code == 503 and health.json()["appliances"][0]["up"] is False


def test_a_down_appliance_is_skipped_for_a_live_one(appliance: Server) -> None:
    with GatewayThread(config(free_udp_port(), appliance, timeout=1.0)) as g:
        c = openai.OpenAI(base_url=g.url, api_key="x", max_retries=0)
        for seed in range(4):
            reply = c.completions.create(model=MODEL, prompt="fleet", max_tokens=4, seed=seed)
            assert reply.choices[0].text == fake_text("fleet", seed, 4)
        assert httpx.get(f"http://127.0.0.1:{g.port}/health", timeout=10).status_code == 200


def test_full_queue_is_429(slow_appliance: Server) -> None:
    with GatewayThread(config(slow_appliance, max_waiting=0)) as g:
        c = openai.OpenAI(base_url=g.url, api_key="x", max_retries=0)
        with c.completions.with_streaming_response.create(model=MODEL, prompt="long", max_tokens=50,
                                                           stream=True) as held:   # occupies the only slot
            assert held.status_code == 200
            with pytest.raises(openai.RateLimitError) as info:
                c.completions.create(model=MODEL, prompt="second", max_tokens=2)
            assert info.value.code == "queue_full"


def test_api_key_is_required_when_set(appliance: Server) -> None:
    with GatewayThread(config(appliance, api_key="s3cret")) as g:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            r = httpx.get(f"{g.url}/models", headers=headers, timeout=10)
            assert r.status_code == 401 and error_of(r)["code"] == "invalid_api_key"
            assert r.headers["www-authenticate"] == "Bearer"
        r = httpx.post(f"{g.url}/chat/completions", json={"model": MODEL, "messages": []}, timeout=10)
        assert r.status_code == 401
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=g.url, api_key="wrong", max_retries=0).models.list()
        good = openai.OpenAI(base_url=g.url, api_key="s3cret", max_retries=0)
        assert good.completions.create(model=MODEL, prompt="ok", max_tokens=3, seed=1).choices[0].text == \
            fake_text("ok", 1, 3)
        assert httpx.get(f"http://127.0.0.1:{g.port}/health", timeout=10).status_code == 200   # no auth


def test_unknown_route_is_an_openai_404(gateway: GatewayThread) -> None:
    r = httpx.get(f"{gateway.url}/embeddings", timeout=10)
    assert r.status_code == 404 and error_of(r)["code"] == "not_found"
    r = httpx.get(f"{gateway.url}/chat/completions", timeout=10)
    assert r.status_code == 405


# ---- load and disconnects -----------------------------------------------------------------------------------

def test_hundred_concurrent_streams_each_get_their_own_text(gateway: GatewayThread) -> None:
    async def one(c: openai.AsyncOpenAI, i: int) -> str:
        stream = await c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": f"req {i}"}],
                                                 max_tokens=8, seed=i, stream=True)
        return "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])

    async def main() -> list[str]:
        async with openai.AsyncOpenAI(base_url=gateway.url, api_key="x", max_retries=0, timeout=120,
                                      http_client=None) as c:
            return await asyncio.gather(*(one(c, i) for i in range(100)))

    texts = asyncio.run(main())
    assert texts == [fake_text(f"req {i}", i, 8) for i in range(100)]


def wait_for(condition, timeout: float = 10.0) -> bool:   # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_client_disconnecting_mid_stream_cancels_the_generation(slow_appliance: Server) -> None:
    with GatewayThread(config(slow_appliance)) as g, slow_appliance.client() as monitor:
        before = monitor.stats()
        body = {"model": MODEL, "messages": [{"role": "user", "content": "long story"}], "max_tokens": 400,
                "stream": True}
        with httpx.stream("POST", f"{g.url}/chat/completions", json=body, timeout=10) as r:
            lines = r.iter_lines()
            got = [next(lines) for _ in range(6)]   # a few tokens, then hang up
        assert any("content" in line for line in got)
        assert wait_for(lambda: monitor.stats()["cancelled"] == before["cancelled"] + 1)
        after = monitor.stats()
        assert after["tokens_generated"] - before["tokens_generated"] < 200   # stopped well before 400 tokens
        # the appliance is free again: the next request runs to its end
        c = openai.OpenAI(base_url=g.url, api_key="x", max_retries=0)
        assert c.completions.create(model=MODEL, prompt="next", max_tokens=3, seed=4).choices[0].text == \
            fake_text("next", 4, 3)


def test_client_disconnecting_during_a_non_streamed_answer_cancels_it(slow_appliance: Server) -> None:
    with GatewayThread(config(slow_appliance)) as g, slow_appliance.client() as monitor:
        before = monitor.stats()
        body = {"model": MODEL, "prompt": "long answer", "max_tokens": 400}
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{g.url}/completions", json=body, timeout=0.5)
        assert wait_for(lambda: monitor.stats()["cancelled"] == before["cancelled"] + 1)
        assert monitor.stats()["tokens_generated"] - before["tokens_generated"] < 200


def test_client_gone_while_queued_never_reaches_the_appliance(slow_appliance: Server) -> None:
    with GatewayThread(config(slow_appliance)) as g, slow_appliance.client() as monitor:
        c = openai.OpenAI(base_url=g.url, api_key="x", max_retries=0)
        before = monitor.stats()
        with c.completions.with_streaming_response.create(model=MODEL, prompt="first", max_tokens=40,
                                                           stream=True) as held:
            assert held.status_code == 200
            with pytest.raises(httpx.ReadTimeout):   # waits behind `held` in the gateway, then gives up
                httpx.post(f"{g.url}/completions", json={"model": MODEL, "prompt": "queued", "max_tokens": 5},
                           timeout=0.3)
        assert wait_for(lambda: g.app.state.gateway.pool.appliances[0].in_flight == 0)
        assert monitor.stats()["generations"] == before["generations"] + 1   # only `held` ran


# ---- the command ----------------------------------------------------------------------------------------------

def test_dte_serve_command_serves_and_refuses_an_open_listen_without_api_key(appliance: Server,
                                                                           tmp_path: object) -> None:
    key = write_key(tmp_path, KEY)   # type: ignore[arg-type]
    with ServeProcess(["--appliance", f"127.0.0.1:{appliance.port}", "--key", str(key),
                       "--model-name", MODEL, "--log-requests"]) as proc:
        assert any("answers" in line for line in proc.lines)
        c = openai.OpenAI(base_url=proc.url, api_key="x", max_retries=0)
        assert c.completions.create(model=MODEL, prompt="cli", max_tokens=5, seed=9).choices[0].text == \
            fake_text("cli", 9, 5)
        with pytest.raises(openai.NotFoundError):
            c.completions.create(model="no-such-model", prompt="cli", max_tokens=5)
    # --log-requests: a line per request; the completion names the appliance that ran it (5 tokens asked, 5 given),
    # the refused one its status and OpenAI's error code
    logged = [line for line in proc.lines if "POST /v1/completions" in line]
    assert len(logged) == 2
    assert (f"appliance=127.0.0.1:{appliance.port} finish=length "
            f"prompt_tokens={len(b'cli')} completion_tokens=5") in logged[0]
    assert "refused status=404 code=model_not_found" in logged[1]
    out = subprocess.run([*DTE, "serve", "--appliance", f"127.0.0.1:{appliance.port}", "--key",
                          str(key), "--listen", "0.0.0.0:0"], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "--api-key" in out.stderr and "Traceback" not in out.stderr
