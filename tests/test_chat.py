"""`dte chat` against the C token-protocol server with its fake engine (tests/devmodels/netserve.c): line-by-line
mode on a pipe (only replies on stdout), the conversation remembered in the appliance's session, /reset and
/system, waiting for the appliance, and the interactive terminal (line editing, history, Ctrl-C) on a
pseudo-terminal.

Expected replies come from the fake engine's documented rule (its tokens are the text's bytes; a generated token
depends on the sum of the session's whole transcript) applied to the transcript the protocol specifies, written
out here by hand.
"""

from __future__ import annotations

import os
import pty
import select
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from _serve import DTE, write_key
from dte_build.netboot import free_udp_port
from net_helpers import KEY, Server, fake_ids, fake_turns

pytestmark = pytest.mark.slow   # the edit-test loop's fast tier leaves it out: `pytest -m "not slow"`


def fake_text(prompt: str, seed: int, n: int) -> str:
    return "".join(chr(i) for i in fake_ids(prompt, seed, n))


@pytest.fixture(scope="module")
def appliance() -> Iterator[Server]:
    s = Server(delay_us=0)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_key(tmp_path_factory.mktemp("chat"), KEY)


def chat(port: int, key_file: Path, stdin: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*DTE, "chat", f"127.0.0.1:{port}", "--key", str(key_file), "-n", "6", *args],
                          input=stdin, capture_output=True, text=True, timeout=timeout)


def test_pipe_mode_prints_only_the_replies_and_remembers_the_conversation(appliance: Server, key_file: Path) -> None:
    out = chat(appliance.port, key_file, "Hello\n\nWho are you?\nAnd then?\n")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "".join(f"{reply}\n" for reply in fake_turns(["Hello", "Who are you?", "And then?"], 0, 6))
    # turn 2 differs from a fresh answer to its text: the appliance's session remembered turn 1
    assert out.stdout.splitlines()[1] != fake_text("Who are you?", 0, 6)


def test_reset_system_and_no_history(appliance: Server, key_file: Path) -> None:
    out = chat(appliance.port, key_file, "Hello\n/reset\nWho are you?\n/system Be brief.\nHi\n/quit\nnever sent\n")
    assert out.returncode == 0, out.stderr
    # a system message opens the first turn's text, a blank line before the user's (docs/serve.md)
    assert out.stdout.splitlines() == [fake_text("Hello", 0, 6), fake_text("Who are you?", 0, 6),
                                       fake_text("Be brief.\n\nHi", 0, 6)]
    alone = chat(appliance.port, key_file, "Hello\nWho are you?\n", "--no-history", "-s", "3")
    assert alone.stdout.splitlines() == [fake_text("Hello", 3, 6), fake_text("Who are you?", 3, 6)]


def test_long_conversation_drops_its_oldest_turns_to_fit_a_frame(appliance: Server, key_file: Path) -> None:
    lines = [f"turn {i} " + "x" * 300 for i in range(6)]
    out = chat(appliance.port, key_file, "\n".join(lines) + "\n")
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.splitlines()) == 6 and "oldest messages" not in out.stderr   # a session holds it all


class DelayedRelay:
    """A UDP port that drops everything for `delay` seconds, then relays datagrams to `target` and back: an
    appliance that is still booting."""

    def __init__(self, target: int, delay: float) -> None:
        self.port = free_udp_port()
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", self.port))
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back.connect(("127.0.0.1", target))
        self.opens = time.monotonic() + delay
        self.peer: tuple[str, int] | None = None
        self.running = True
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while self.running:
            ready, _, _ = select.select([self.front, self.back], [], [], 0.1)
            for sock in ready:
                data, addr = sock.recvfrom(65536)
                if time.monotonic() < self.opens:
                    continue
                if sock is self.front:
                    self.peer = addr
                    self.back.send(data)
                elif self.peer is not None:
                    self.front.sendto(data, self.peer)

    def close(self) -> None:
        self.running = False
        time.sleep(0.2)
        self.front.close()
        self.back.close()


def test_waits_until_the_appliance_answers(appliance: Server, key_file: Path) -> None:
    relay = DelayedRelay(appliance.port, delay=2.0)
    try:
        start = time.monotonic()
        out = chat(relay.port, key_file, "Hello\n", "--wait", "30")
        assert out.returncode == 0, out.stderr
        assert time.monotonic() - start >= 2.0
        assert out.stdout == fake_text("Hello", 0, 6) + "\n"
    finally:
        relay.close()


def test_gives_up_after_wait_with_one_line(key_file: Path) -> None:
    start = time.monotonic()
    out = chat(free_udp_port(), key_file, "Hello\n", "--wait", "1")
    assert out.returncode != 0 and out.stdout == ""
    assert "does not answer" in out.stderr and "Traceback" not in out.stderr
    assert time.monotonic() - start < 20


# ---- the terminal --------------------------------------------------------------------------------------------

PROMPT_READY = b"\x1b[?2004h"


class Terminal:
    """`dte chat` on a pseudo-terminal (what a person's terminal gives it)."""

    def __init__(self, args: list[str], home: Path) -> None:
        env = {**os.environ, "HOME": str(home), "TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1", "COLUMNS": "200"}
        self.pid, self.fd = pty.fork()
        if self.pid == 0:   # child
            os.execvpe(DTE[0], [*DTE, *args], env)
        self.seen = b""
        self.prompts_seen = 0

    def read_until(self, needle: bytes, timeout: float = 20.0, after: int = 0) -> bytes:
        deadline = time.monotonic() + timeout
        while needle not in self.seen[after:]:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{needle!r} not seen; terminal shows {self.seen[-600:]!r}")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"{needle!r} not seen before exit; {self.seen[-600:]!r}")
                self.seen += chunk
        return self.seen

    def prompt(self) -> None:
        """Wait until prompt_toolkit asks for the next line (it turns bracketed paste on for each prompt)."""
        self.read_until(PROMPT_READY, after=self.prompts_seen)
        self.prompts_seen = self.seen.index(PROMPT_READY, self.prompts_seen) + len(PROMPT_READY)

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    def wait(self, timeout: float = 20.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            try:
                if select.select([self.fd], [], [], 0.1)[0]:
                    self.seen += os.read(self.fd, 4096)
            except OSError:
                pass
        os.kill(self.pid, signal.SIGKILL)
        raise AssertionError("dte chat did not exit")

    def close(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(self.fd)


@pytest.mark.slow
def test_terminal_edits_lines_recalls_history_and_ctrl_c_cancels(key_file: Path, tmp_path: Path) -> None:
    slow = Server(delay_us=20_000)   # 20 ms a token: a long answer to interrupt
    term = Terminal(["chat", f"127.0.0.1:{slow.port}", "--key", str(key_file), "-n", "100"], tmp_path)
    try:
        term.prompt()
        term.send(b"Helo\x1b[D\x1b[Dl\r")   # typo fixed with the left arrow: "Hello" is what is sent
        term.read_until(fake_text("Hello", 0, 100).encode())
        term.read_until(b"tok/s")
        term.prompt()
        mark = len(term.seen)
        term.send(b"\x1b[A")                  # up arrow: the previous line comes back
        term.read_until(b"Hello", after=mark)
        term.send(b"\x15/reset\r")            # Ctrl-U clears it; a command instead
        term.read_until(b"forgotten")
        with slow.client() as monitor:
            before = monitor.stats()["cancelled"]
            term.send(b"/system Long answers please.\r")
            term.read_until(b"system message set")
            mark = len(term.seen)
            term.send(b"tell me everything\r")
            time.sleep(0.6)                   # ~30 of its 100 tokens
            term.send(b"\x03")                # Ctrl-C: cancels this answer only
            term.read_until(b"[cancelled]", after=mark)
            assert monitor.stats()["cancelled"] == before + 1
        term.prompt()
        term.send(b"one more\r")
        time.sleep(0.6)
        term.send(b"\x03")                    # Ctrl-C, and another: leave (whether at the prompt or still waiting)
        time.sleep(0.05)
        term.send(b"\x03")
        code = term.wait()
        assert b"Traceback" not in term.seen, term.seen[-2000:]
        assert code in (0, 130, -2), term.seen[-600:]   # at the prompt, after "interrupted", or by the signal
    finally:
        term.close()
        slow.stop()
