#!/usr/bin/env python3
"""Benchmark `dte serve` (the OpenAI HTTP gateway) against the UDP client talking to the same appliance directly.

Boots one appliance under QEMU (built with `dte build --net --key`, the committed dte-tiny model unless --model),
starts `dte serve` in front of it, and interleaves `--repeat` times:
  - direct: `client.Client` on an open session sends the PROMPT and reads the TOKENS frames;
  - gateway: `POST /v1/completions` with `"stream": true` (httpx), the same prompt and settings, read as SSE.
Before each measured request a one-token request on another session takes the appliance's KV cache, so both sides
evaluate the whole prompt (no prefix reuse). Measured on the host clock: time to first token (request sent ->
first generated token's text received) and time per token after the first (first -> last arrival, / tokens - 1).
The seeded sampler makes every run produce the same text (checked). Ratio = gateway / direct.

`--fake US` runs the appliance side as the C protocol server on the hosted loopnic with its fake engine
(tests/devmodels/netserve.c) at US microseconds per token instead of QEMU: a fast, steady appliance, so the
gateway's own cost per request and per token shows in absolute terms.

    python scripts/bench_serve.py [--model models/dte-tiny-q8_0.gguf] [-n 64] [--repeat 5] [--fake US] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from dte_build import protocol as p
from dte_build.client import Client
from dte_build.netboot import NetAppliance
from dte_build.paths import MODELS_DIR, REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "tests"))
from _serve import ServeProcess  # noqa: E402

PROMPT = "Hello. I am Deep Tree Echo, and the forest"
SETTINGS = dict(temperature=0.8, top_k=40, top_p=0.95, seed=42)


def build(workdir: Path, model: Path, key_file: Path) -> Path:
    image = workdir / "boot.img"
    subprocess.run([sys.executable, "-m", "dte_build.cli", "build", "--board", "qemu-q35", "--model", str(model),
                    "--net", "--key", str(key_file), "-n", "1", "--identity-strength", "0", "-o", str(image)],
                   check=True, env={**os.environ, "DTE_BUILD_DIR": str(workdir / "build")},
                   stdout=subprocess.DEVNULL)
    return image


def flush(other: Client) -> None:
    """A one-token request on another session: the appliance's one KV cache then holds something else."""
    other.generate(p.Prompt("Zebra crossings at night", n_predict=1))


def direct(client: Client, n: int) -> tuple[float, float, str]:
    start = time.perf_counter()
    arrivals: list[float] = []
    stream = client.stream(p.Prompt(PROMPT, n_predict=n, **SETTINGS))
    for _ in stream:
        arrivals.append(time.perf_counter())
    return arrivals[0] - start, (arrivals[-1] - arrivals[0]) / max(1, len(arrivals) - 1), stream.generation.text


def gateway(http: httpx.Client, url: str, n: int) -> tuple[float, float, str]:
    body = {"prompt": PROMPT, "max_tokens": n, "stream": True, "temperature": SETTINGS["temperature"],
            "top_p": SETTINGS["top_p"], "top_k": SETTINGS["top_k"], "seed": SETTINGS["seed"]}
    arrivals: list[float] = []
    text = ""
    start = time.perf_counter()
    with http.stream("POST", f"{url}/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            piece = chunk["choices"][0]["text"] if chunk.get("choices") else ""
            if piece:
                arrivals.append(time.perf_counter())
                text += piece
    return arrivals[0] - start, (arrivals[-1] - arrivals[0]) / max(1, len(arrivals) - 1), text


def measure(host: str, port: int, key: bytes, key_file: Path, args: argparse.Namespace,
            rows: dict[str, list[tuple[float, float]]], texts: set[str]) -> None:
    with ServeProcess(["--appliance", f"{host}:{port}", "--key", str(key_file), "--timeout", "120"]) as serve, \
            Client(host, port, key, timeout=120) as client, Client(host, port, key, timeout=120) as other, \
            httpx.Client(timeout=600) as http:
        client.open()
        gateway(http, serve.url, 2)   # warm: the gateway's idle session is open, as direct's is
        for _ in range(args.repeat):
            flush(other)
            ttft, per_token, text = direct(client, args.n)
            rows["direct"].append((ttft, per_token))
            texts.add(text)
            flush(other)
            ttft, per_token, text = gateway(http, serve.url, args.n)
            rows["gateway"].append((ttft, per_token))
            texts.add(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=MODELS_DIR / "dte-tiny-q8_0.gguf")
    parser.add_argument("-n", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--fake", type=int, default=None, metavar="US",
                        help="the hosted C protocol server with its fake engine, US microseconds per token")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows: dict[str, list[tuple[float, float]]] = {"direct": [], "gateway": []}
    texts: set[str] = set()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if args.fake is not None:
            from test_net_stack import KEY, Server

            server = Server(delay_us=args.fake)
            try:
                measure("127.0.0.1", server.port, KEY, p.write_key(workdir / "appliance.key", KEY), args, rows, texts)
            finally:
                server.stop()
        else:
            key = p.generate_key()
            key_file = p.write_key(workdir / "appliance.key", key)
            image = build(workdir, args.model, key_file)
            with NetAppliance(image, timeout=3600) as app:
                app.wait_ready(300)
                measure(app.host, app.port, key, key_file, args, rows, texts)
    if len(texts) != 1:
        sys.exit(f"the two paths generated different text: {texts}")
    med = {k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v)) for k, v in rows.items()}
    result = {"appliance": f"fake {args.fake} us/token" if args.fake is not None else f"QEMU {args.model.name}",
              "n": args.n, "repeat": args.repeat, "load_average": os.getloadavg()[0],
              "direct": {"ttft_ms": med["direct"][0] * 1e3, "per_token_ms": med["direct"][1] * 1e3},
              "gateway": {"ttft_ms": med["gateway"][0] * 1e3, "per_token_ms": med["gateway"][1] * 1e3},
              "ttft_ratio": med["gateway"][0] / med["direct"][0],
              "per_token_ratio": med["gateway"][1] / med["direct"][1], "runs": rows}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{'':12}{'TTFT ms':>10}{'ms/token':>10}{'tok/s':>8}")
    for name in ("direct", "gateway"):
        r = result[name]
        print(f"{name:12}{r['ttft_ms']:10.1f}{r['per_token_ms']:10.2f}{1000 / r['per_token_ms']:8.1f}")
    print(f"gateway/direct: TTFT {result['ttft_ratio']:.3f}, per token {result['per_token_ratio']:.3f} "
          f"(load average {result['load_average']:.1f})")


if __name__ == "__main__":
    main()
