#!/usr/bin/env python3
"""Benchmark a conversation's follow-up turn on the appliance (QEMU, virtio-net): session reuse vs re-sending
the transcript.

One image (the network server, a fresh key); a conversation of --turns turns, each a short user text. For the
last turn, three ways to get the same answer (greedy: the ids are checked equal):
  - append:   the session's follow-up turn, sending only the new text (PROMPT with APPEND): the KV cache holds the
              transcript, so only the new tokens are evaluated;
  - resend:   a new session re-sending the whole transcript text (no APPEND) right after: the appliance's prefix
              reuse finds the cached tokens, so it also evaluates only what differs;
  - recompute: the same re-send after another session took the KV cache: every token is evaluated again (what a
              client without sessions, protocol version 1, always paid).
Reported per way: the client's time from sending the PROMPT to the first generated token (median of --repeat),
and the appliance's DONE counts (tokens evaluated, reused, prompt_ns).

    python scripts/bench_sessions.py [--model models/dte-tiny-q8_0.gguf] [--turns 4] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from dte_build import protocol as p
from dte_build.board import load_board
from dte_build.client import Client
from dte_build.image.builder import build_image
from dte_build.netboot import NetAppliance, network_options
from dte_build.paths import MODELS_DIR
from dte_build.toolchain import FirmwareOptions, build_firmware

TURNS = ["Hello. I am Deep Tree Echo,", " and the forest remembers", " every drop of rain",
         " that fell on its leaves", " in the long summer", " before the storm"]


def build(workdir: Path, model: Path, key: bytes) -> Path:
    board = load_board("qemu-q35")
    options = network_options(board, FirmwareOptions(prompt="Hi", n_predict=1), key)
    fw = build_firmware(board, options=options, build_dir=workdir / "build")
    image = workdir / "boot.img"
    build_image(board, fw.efi_path, image, model_path=model, build_id=fw.build_id)
    return image


def first_token_s(client: Client, prompt: p.Prompt) -> tuple[float, p.Done, list[int]]:
    start = time.perf_counter()
    stream = client.stream(prompt)
    first = None
    for _ in stream:
        if first is None:
            first = time.perf_counter() - start
    assert stream.generation.done is not None
    return first or 0.0, stream.generation.done, stream.generation.ids


def run(app: NetAppliance, key: bytes, turns: int, n: int) -> dict:
    texts = TURNS[:turns]
    with Client(app.host, app.port, key, timeout=60) as conv:
        transcript = ""
        for text in texts[:-1]:
            g = conv.say(text, n_predict=n)
            transcript += text + g.text
        transcript += texts[-1]
        t_append, d_append, ids_append = first_token_s(conv, p.Prompt(texts[-1], n_predict=n, append=True))
    with Client(app.host, app.port, key, timeout=60) as again:
        t_resend, d_resend, ids_resend = first_token_s(again, p.Prompt(transcript, n_predict=n))
    with Client(app.host, app.port, key, timeout=60) as other:
        other.say("Something else entirely, to take the cache.", n_predict=1)
    with Client(app.host, app.port, key, timeout=60) as cold:
        t_cold, d_cold, ids_cold = first_token_s(cold, p.Prompt(transcript, n_predict=n))
    return {"append": (t_append, d_append, ids_append), "resend": (t_resend, d_resend, ids_resend),
            "recompute": (t_cold, d_cold, ids_cold)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=MODELS_DIR / "dte-tiny-q8_0.gguf")
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("-n", type=int, default=8, help="tokens generated per turn")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    key = p.generate_key()
    with tempfile.TemporaryDirectory() as tmp:
        image = build(Path(tmp), args.model, key)
        with NetAppliance(image, timeout=1800) as app:
            app.wait_ready(300)
            runs = [run(app, key, args.turns, args.n) for _ in range(args.repeat)]
    report = {}
    for way in ("append", "resend", "recompute"):
        times = [r[way][0] for r in runs]
        done = runs[-1][way][1]
        report[way] = {"first_token_ms": round(statistics.median(times) * 1000, 2), "evaluated": done.prompt_tokens,
                       "reused": done.reused_tokens, "prompt_ms": round(done.prompt_ns / 1e6, 2)}
    same = all(r["append"][2] == r["resend"][2] == r["recompute"][2] for r in runs)
    report["same_ids"] = same
    report["recompute_over_append"] = round(report["recompute"]["first_token_ms"] /
                                            max(report["append"]["first_token_ms"], 1e-9), 2)
    if args.json:
        print(json.dumps(report))
        return
    for way in ("append", "resend", "recompute"):
        r = report[way]
        print(f"{way:10s} first token {r['first_token_ms']:8.2f} ms  evaluated {r['evaluated']:4d}  "
              f"reused {r['reused']:4d}  prefill {r['prompt_ms']:8.2f} ms")
    print(f"same ids: {same}; recompute / append first-token time: {report['recompute_over_append']}x")


if __name__ == "__main__":
    main()
