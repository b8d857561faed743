#!/usr/bin/env python3
"""Benchmark the token protocol over virtio-net in QEMU against the same generation with no network.

One image, built with the network server and a fresh key, whose boot prompt is the benchmark prompt:
  - no network: the firmware generates from its build-time prompt right after boot, before the NIC is even
    touched, and prints its own speed (`dte: generate ... gen_ms=... tokens=...`);
  - network: the same prompt and settings sent as PROMPT frames from this host through QEMU user networking
    (hostfwd on 127.0.0.1) to the appliance, `--repeat` times. Per-token time is taken two ways: the appliance's
    own (DONE generate_ns / generated tokens: it includes sending every TOKENS frame and polling the NIC between
    tokens) and the client's (arrival of the first generated token to the arrival of the last);
  - round trip of a one-token request (PROMPT n=1 sent -> DONE received) and of an authenticated PING.
Greedy sampling, so every run generates the same ids (checked). Overhead = network per-token / boot per-token - 1.

    python scripts/bench_net.py [--model models/dte-tiny-q8_0.gguf] [-n 128] [--repeat 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from dte_build import protocol as p
from dte_build.board import load_board
from dte_build.client import Client
from dte_build.image.builder import build_image
from dte_build.netboot import NetAppliance, network_options
from dte_build.paths import MODELS_DIR
from dte_build.qemu import parse_status_line
from dte_build.toolchain import FirmwareOptions, build_firmware

PROMPT = "Hello. I am Deep Tree Echo,"
SAMPLING = dict(temperature=0.8, top_k=40, top_p=0.95, seed=42)   # seeded: every run generates the same ids


def build(workdir: Path, model: Path, n: int, key: bytes) -> Path:
    board = load_board("qemu-q35")
    options = network_options(board, FirmwareOptions(prompt=PROMPT, n_predict=n, **SAMPLING), key)
    fw = build_firmware(board, options=options, build_dir=workdir / "build")
    image = workdir / "boot.img"
    build_image(board, fw.efi_path, image, model_path=model, build_id=fw.build_id)
    return image


class Boot:
    """One boot: host arrival time of each status line, to time the boot prompt's generation on the host clock."""

    def __init__(self) -> None:
        self.stamps: dict[str, float] = {}
        self.fields: dict[str, dict] = {}

    def on_line(self, line: str) -> None:
        now = time.perf_counter()
        parsed = parse_status_line(line)
        if parsed is None:
            return
        word, fields = parsed
        key = "generate_begin" if word == "generate" and "begin" in fields else word
        self.stamps.setdefault(key, now)
        self.fields.setdefault(key, fields)

    def measure(self) -> dict:
        gen = self.fields["generate"]
        ids = [int(i) for i in str(self.fields["tokens"]["ids"]).split(",") if i]
        return {"ids": ids, "host_s": self.stamps["tokens"] - self.stamps["generate_begin"],
                "guest_s": (float(gen["prompt_ms"]) + float(gen["gen_ms"])) / 1e3,
                "guest_ms_per_token": float(gen["gen_ms"]) / len(ids)}


def network_generation(client: Client, n: int) -> dict:
    arrivals: list[float] = []
    start = time.perf_counter()
    result = client.generate(p.Prompt(PROMPT, n_predict=n, **_wire(SAMPLING)),
                             on_token=lambda _t: arrivals.append(time.perf_counter()))
    end = time.perf_counter()
    done = result.done
    return {"ids": result.ids, "host_s": end - start, "guest_s": (done.prompt_ns + done.generate_ns) / 1e9,
            "guest_ms_per_token": done.generate_ns / 1e6 / done.generated_tokens,
            "client_ms_per_token": (arrivals[-1] - arrivals[0]) * 1e3 / (len(arrivals) - 1)}


def _wire(settings: dict) -> dict:
    return {"temperature": settings["temperature"], "top_k": settings["top_k"], "top_p": settings["top_p"],
            "seed": settings["seed"]}


def one_token_round_trip(client: Client) -> float:
    start = time.perf_counter()
    client.generate(p.Prompt("Hi", n_predict=1, temperature=0.0))
    return time.perf_counter() - start


def run(model: Path, n: int, boots: int, repeat: int, latency_runs: int) -> dict:
    key = p.generate_key()
    baseline: list[dict] = []
    network: list[dict] = []
    one_token: list[float] = []
    pings: list[float] = []
    with tempfile.TemporaryDirectory(prefix="dte-bench-net-") as tmp:
        image = build(Path(tmp), model, n, key)
        for b in range(boots):
            boot = Boot()
            with NetAppliance(image, timeout=1800, on_line=boot.on_line) as app:
                app.wait_ready(300)
                baseline.append(boot.measure())
                with Client(app.host, app.port, key, timeout=120) as client:
                    client.ping()
                    network += [network_generation(client, n) for _ in range(repeat)]
                    if b == 0:
                        one_token = [one_token_round_trip(client) for _ in range(latency_runs)]
                        pings = [client.ping() for _ in range(latency_runs)]
    ids = baseline[0]["ids"]
    if any(r["ids"] != ids for r in baseline + network):
        raise SystemExit("a generation differs from the boot generation: not the same work")

    def med(rows: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    guest_boot, guest_net = med(baseline, "guest_ms_per_token"), med(network, "guest_ms_per_token")
    host_boot, host_net = med(baseline, "host_s"), med(network, "host_s")
    return {
        "model": model.name, "prompt": PROMPT, "tokens": len(ids), "boots": boots, "network_runs": len(network),
        "guest_ms_per_token_no_network": round(guest_boot, 3),
        "guest_ms_per_token_network": round(guest_net, 3),
        "per_token_overhead_pct": round((guest_net / guest_boot - 1) * 100, 2),
        "host_s_whole_generation_no_network": round(host_boot, 3),
        "host_s_whole_generation_network": round(host_net, 3),
        "whole_generation_overhead_pct_host_clock": round((host_net / host_boot - 1) * 100, 2),
        "client_ms_per_token_network": round(med(network, "client_ms_per_token"), 3),
        "tok_per_s_network_client": round(1e3 / med(network, "client_ms_per_token"), 2),
        "guest_clock_vs_host": round(med(baseline + network, "host_s") / med(baseline + network, "guest_s"), 3),
        "one_token_round_trip_ms_median": round(statistics.median(one_token) * 1e3, 2),
        "one_token_round_trip_ms_min": round(min(one_token) * 1e3, 2),
        "ping_ms_median": round(statistics.median(pings) * 1e3, 3),
        "latency_runs": latency_runs,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=MODELS_DIR / "dte-tiny-q8_0.gguf")
    parser.add_argument("-n", type=int, default=128, help="tokens per generation")
    parser.add_argument("--boots", type=int, default=3, help="boots (each: one boot-prompt generation)")
    parser.add_argument("--repeat", type=int, default=3, help="network generations per boot")
    parser.add_argument("--latency-runs", type=int, default=20, help="one-token requests and PINGs")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.model, args.n, args.boots, args.repeat, args.latency_runs)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        width = max(map(len, result))
        for name, value in result.items():
            print(f"{name:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
