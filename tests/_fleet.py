"""HAProxy with the shipped fleet configuration (deploy/haproxy-dte-fleet.cfg) in front of two gateways, and a
load of requests run through it while the test stops one appliance."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai

from dte_build.paths import REPO_ROOT

CONFIG = REPO_ROOT / "deploy" / "haproxy-dte-fleet.cfg"


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class HAProxy:
    """`haproxy -db -f deploy/haproxy-dte-fleet.cfg` with the two gateways' addresses in its environment."""

    def __init__(self, serve_a: int, serve_b: int) -> None:
        exe = shutil.which("haproxy") or "/usr/sbin/haproxy"   # scripts/setup installs it (apt: haproxy)
        self.port = free_tcp_port()
        env = {**os.environ, "DTE_FLEET_LISTEN": f"127.0.0.1:{self.port}", "DTE_SERVE_A": f"127.0.0.1:{serve_a}",
               "DTE_SERVE_B": f"127.0.0.1:{serve_b}"}
        self.proc = subprocess.Popen([exe, "-db", "-f", str(CONFIG)], env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"haproxy exited: {self.proc.stdout.read() if self.proc.stdout else ''}")
            try:
                if httpx.get(f"{self.url}/models", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("haproxy did not start serving")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> HAProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_load(url: str, model: str, jobs: list[tuple[str, int]], n: int, *, workers: int,
             after: int, action: Callable[[], None], timeout: float = 300) -> list[str]:
    """Completions for each (prompt, seed) through `url`, `workers` at a time (greedy unless seeded: temperature
    1 with the seed); calls `action` once `after` of them have finished. Returns the texts in job order."""
    client = openai.OpenAI(base_url=url, api_key="x", max_retries=0, timeout=timeout)
    done = 0
    acted = False

    def one(job: tuple[str, int]) -> str:
        nonlocal done, acted
        prompt, seed = job
        text = client.completions.create(model=model, prompt=prompt, max_tokens=n, seed=seed, temperature=1.0,
                                         top_p=1.0, extra_body={"top_k": 0}).choices[0].text
        done += 1
        if done >= after and not acted:
            acted = True
            action()
        return text

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, jobs))
