"""Test helpers for `dte serve`: the gateway app on a free port in a background thread (uvicorn), and
`dte serve` as a subprocess that reports its address."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import uvicorn

from dte_build.commands.serve_cmd import listening_socket
from dte_build.serve import ServeConfig, create_app

DTE = [sys.executable, "-m", "dte_build.cli"]   # this interpreter's dte, installed or not on PATH
LISTENING = re.compile(r"listening on (http://[^ ]+/v1)")


class GatewayThread:
    """create_app(config) served by uvicorn on 127.0.0.1:<free port> in a daemon thread."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.app = create_app(config)
        self.sock = listening_socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", access_log=False,
                                                    timeout_graceful_shutdown=2))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> GatewayThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the gateway did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


class ServeProcess:
    """`dte serve ... --listen 127.0.0.1:0` in a subprocess; `url` once it said where it listens."""

    def __init__(self, args: list[str], *, start_timeout: float = 30.0) -> None:
        self.proc = subprocess.Popen([*DTE, "serve", "--listen", "127.0.0.1:0", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.lines: list[str] = []
        self.url = ""
        deadline = time.monotonic() + start_timeout
        assert self.proc.stderr is not None
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.lines.append(line)
            match = LISTENING.search(line)
            if match:
                self.url = match.group(1)
                break
        if not self.url:
            self.stop()
            raise RuntimeError("dte serve did not start:\n" + "".join(self.lines))
        self._drainer = threading.Thread(target=self._drain, daemon=True)
        self._drainer.start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1].split("/")[0])

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._drainer.join(timeout=5)   # every line it wrote is in `lines`
        return self.proc.returncode

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def write_key(directory: Path, key: bytes) -> Path:
    from dte_build import protocol as p

    return p.write_key(directory / "appliance.key", key, overwrite=True)
