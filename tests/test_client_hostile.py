"""The client against a hostile appliance that holds the key (issue 15 item 2): truncated or inconsistent answers
make `dte generate --remote` print one line and exit non-zero, never a traceback. The fake appliance here is a
few lines over the Python codec: it opens sessions like the real one and answers each PROMPT with one bad frame.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from dte_build import protocol as p

pytestmark = pytest.mark.slow   # the edit-test loop's fast tier leaves it out: `pytest -m "not slow"`

KEY = bytes(range(32))

BAD_ANSWERS = {
    "truncated TOKENS": (p.FrameType.TOKENS, b"\x00\x00\x00\x00\x00\x01\x00\x00"),
    "TOKENS piece past the end": (p.FrameType.TOKENS, p.encode_tokens(0, [p.Token(1, b"abc")])[:-1]),
    "truncated ERROR": (p.FrameType.ERROR, b"\x00"),
    "short DONE": (p.FrameType.DONE, bytes(20)),
    "short QUEUED": (p.FrameType.QUEUED, b"\x01"),
}


class HostileAppliance:
    def __init__(self, answer: tuple[int, bytes]) -> None:
        self.answer = answer
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def send(self, addr, ftype: int, session: int, payload: bytes, seq: list[int]) -> None:
        seq[0] += 1
        self.sock.sendto(p.encode_frame(KEY, p.Frame(ftype, session, seq[0], payload, p.FLAG_RESPONSE)), addr)

    def serve(self) -> None:
        seq = [0]
        while not self.stop:
            try:
                data, addr = self.sock.recvfrom(2048)
            except TimeoutError:
                continue
            frame = p.decode_frame(KEY, data, expect_response=False)
            if frame.type == p.FrameType.HELLO:
                self.send(addr, p.FrameType.COOKIE, 0, (7 << 32 | 1).to_bytes(8, "big") + frame.payload[:16] +
                          bytes(16), seq)
            elif frame.type == p.FrameType.OPEN:
                self.send(addr, p.FrameType.OPENED, frame.session, p.OPENED_FMT.pack(256, 600, 16), seq)
            elif frame.type == p.FrameType.PROMPT:
                self.send(addr, self.answer[0], frame.session, self.answer[1], seq)

    def close(self) -> None:
        self.stop = True
        self.thread.join()
        self.sock.close()


@pytest.fixture()
def key_file(tmp_path: Path) -> Path:
    return p.write_key(tmp_path / "k.key", KEY)


@pytest.mark.parametrize("name", list(BAD_ANSWERS))
def test_generate_remote_prints_one_line_on_a_bad_answer(name: str, key_file: Path) -> None:
    fake = HostileAppliance(BAD_ANSWERS[name])
    try:
        cmd = [sys.executable, "-c", "from dte_build.cli import main; main()", "generate", "--remote",
               f"127.0.0.1:{fake.port}", "--key", str(key_file), "-p", "hi", "-n", "2"]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    finally:
        fake.close()
    assert result.returncode != 0, name
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "protocol error" in lines[0] or "lost token" in lines[0], lines[0]
