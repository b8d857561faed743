"""UDP client for a dte appliance's token protocol (docs/protocol.md): generate, cancel, stats, attest, ping.

Library first: `Client` for sessions, `generate_remote(...)` for the same JSON as the hosted `dte generate`.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from . import protocol as p
from .errors import DteError

DEFAULT_TIMEOUT_S = 10.0
RECEIVE_BUFFER_BYTES = 4 << 20


def parse_endpoint(text: str) -> tuple[str, int]:
    """'HOST:PORT' -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise DteError(f"bad address {text!r}", "give it as HOST:PORT, e.g. 127.0.0.1:7777")
    return host.strip("[]"), int(port)


@dataclass
class Generation:
    """What one PROMPT produced."""

    prompt_ids: list[int] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    pieces: list[bytes] = field(default_factory=list)
    done: p.Done | None = None
    queued_at: list[int] = field(default_factory=list)   # QUEUED positions reported, in order

    @property
    def text(self) -> str:
        return b"".join(self.pieces).decode("utf-8", "replace")

    @property
    def cancelled(self) -> bool:
        return self.done is not None and self.done.reason == p.DoneReason.CANCELLED

    def to_json(self) -> dict:
        """The hosted `dte generate --json` shape."""
        done = self.done or p.Done(0, 0, 0, 0, 0)
        return {
            "prompt_ids": self.prompt_ids,
            "ids": self.ids,
            "text": self.text,
            "tok_per_s": done.generated_tokens * 1e9 / done.generate_ns if done.generate_ns else 0.0,
            "prompt_tok_per_s": done.prompt_tokens * 1e9 / done.prompt_ns if done.prompt_ns else 0.0,
        }


class RemoteError(DteError):
    """The appliance answered ERROR."""

    def __init__(self, code: int, message: str) -> None:
        name = p.ErrorCode(code).name if code in p.ErrorCode._value2member_map_ else f"code {code}"
        hint = "retry in a moment" if code == p.ErrorCode.BUSY else None
        super().__init__(f"appliance error {name}: {message}", hint)
        self.code = code


class Client:
    """One session with an appliance: a random session id, outgoing sequence numbers, a window on answers."""

    def __init__(self, host: str, port: int, key: bytes, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        if len(key) != p.KEY_SIZE:
            raise DteError(f"key is {len(key)} bytes, not {p.KEY_SIZE}", "load it with protocol.load_key")
        self.key = key
        self.timeout = timeout
        self.counter = p.SessionCounter()
        self.window = p.ReplayWindow()
        self.dropped = 0   # answers that failed the checks (bad tag, replay, wrong session)
        self._cancels_unanswered = 0   # CANCELs whose DONE(cancelled) or ERROR NOT_RUNNING is still to come
        try:
            infos = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_DGRAM)
        except socket.gaierror as exc:
            raise DteError(f"cannot resolve {host}: {exc.strerror}", "check the appliance address") from exc
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # no flow control in protocol v1: a big receive buffer absorbs token bursts (capped by net.core.rmem_max)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
        self.sock.connect(infos[0][4])

    @property
    def session(self) -> int:
        return self.counter.session

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- frames --------------------------------------------------------------------------------------------

    def send(self, ftype: int, payload: bytes = b"") -> None:
        frame = p.Frame(int(ftype), self.session, self.counter.take(), payload)
        self.sock.send(p.encode_frame(self.key, frame))

    def receive(self, timeout: float | None = None) -> p.Frame:
        """The next authentic, fresh answer for this session; DteError on timeout."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DteError("no answer from the appliance",
                               "check the address, the port, that it is up (`dte run --net`), and the key")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionRefusedError:
                raise DteError("connection refused (ICMP port unreachable)",
                               "nothing listens on that port; is the appliance running?") from None
            try:
                frame = p.decode_frame(self.key, data, expect_response=True)
            except p.ProtocolError:
                self.dropped += 1
                continue
            if frame.session != self.session or not self.window.accept(frame.sequence):
                self.dropped += 1
                continue
            if self._answers_a_cancel(frame):
                continue
            return frame

    def _answers_a_cancel(self, frame: p.Frame) -> bool:
        """Accounts for the answer to an earlier CANCEL; True when it is a NOT_RUNNING error (a CANCEL that
        crossed its generation's DONE), which is then swallowed."""
        if self._cancels_unanswered == 0:
            return False
        if frame.type == p.FrameType.ERROR and p.decode_error(frame.payload)[0] == p.ErrorCode.NOT_RUNNING:
            self._cancels_unanswered -= 1
            return True
        if frame.type == p.FrameType.DONE and frame.payload[:1] == bytes([p.DoneReason.CANCELLED]):
            self._cancels_unanswered -= 1
        return False

    def request(self, ftype: int, payload: bytes, answer: int) -> p.Frame:
        self.send(ftype, payload)
        frame = self.receive()
        if frame.type == p.FrameType.ERROR:
            raise RemoteError(*p.decode_error(frame.payload))
        if frame.type != answer:
            raise DteError(f"unexpected answer type {frame.type} to request {int(ftype)}",
                           "is another program using this session id?")
        return frame

    # -- requests ------------------------------------------------------------------------------------------

    def ping(self, data: bytes = b"dte") -> float:
        """Round-trip time in seconds."""
        start = time.perf_counter()
        frame = self.request(p.FrameType.PING, data, p.FrameType.PONG)
        if frame.payload != data:
            raise DteError("PONG does not echo the PING", "the appliance firmware is misbehaving")
        return time.perf_counter() - start

    def stats(self) -> dict[str, int]:
        return p.decode_stats(self.request(p.FrameType.STATS_REQUEST, b"", p.FrameType.STATS).payload)

    def attest(self, nonce: bytes) -> bytes:
        """The appliance's attestation blob, bound to `nonce` (<= 64 bytes)."""
        echoed, blob = p.decode_attest(self.request(p.FrameType.ATTEST_REQUEST, nonce, p.FrameType.ATTEST).payload)
        if echoed != nonce:
            raise DteError("attestation answer carries another nonce", "possible replay; do not trust it")
        return blob

    def cancel(self) -> None:
        """Ask the appliance to stop this session's generation (its DONE says `cancelled`)."""
        self._cancels_unanswered += 1
        self.send(p.FrameType.CANCEL)

    def generate(self, prompt: p.Prompt, *, on_token: Callable[[p.Token], None] | None = None,
                 cancel_after: int | None = None) -> Generation:
        """Send a PROMPT and collect the stream until DONE. `on_token` sees generated tokens as they arrive;
        `cancel_after` sends CANCEL once that many tokens came. Ctrl-C also cancels (then re-raises)."""
        self.send(p.FrameType.PROMPT, prompt.encode())
        return self.collect(Generation(), on_token=on_token, cancel_after=cancel_after)

    def collect(self, result: Generation, *, on_token: Callable[[p.Token], None] | None = None,
                cancel_after: int | None = None, until_first: int | None = None) -> Generation:
        """Absorb answers into `result` until DONE (or, with `until_first`, until a frame of that type came)."""
        interrupted = False
        while result.done is None:
            try:
                frame = self.receive()
            except KeyboardInterrupt:
                if interrupted:
                    raise
                interrupted = True
                self.cancel()
                continue
            self._absorb(frame, result, on_token)
            if cancel_after is not None and len(result.ids) >= cancel_after and result.done is None:
                self.cancel()
                cancel_after = None
            if until_first is not None and frame.type == until_first:
                break
        if interrupted:
            raise KeyboardInterrupt
        return result

    def _absorb(self, frame: p.Frame, result: Generation, on_token: Callable[[p.Token], None] | None) -> None:
        if frame.type == p.FrameType.ERROR:
            raise RemoteError(*p.decode_error(frame.payload))
        if frame.type == p.FrameType.QUEUED:
            result.queued_at.append(int.from_bytes(frame.payload[:4], "big"))
        elif frame.type == p.FrameType.TOKENS:
            first, tokens = p.decode_tokens(frame.payload)
            is_prompt = bool(frame.flags & p.FLAG_PROMPT_TOKENS)
            target = result.prompt_ids if is_prompt else result.ids
            if first != len(target):
                raise DteError(f"lost token frames (expected index {len(target)}, got {first})",
                               "UDP dropped frames; retry (the protocol has no retransmission)")
            for token in tokens:
                target.append(token.id)
                if not is_prompt:
                    result.pieces.append(token.piece)
                    if on_token is not None:
                        on_token(token)
        elif frame.type == p.FrameType.DONE:
            result.done = p.Done.decode(frame.payload)
            if result.done.generated_tokens != len(result.ids):
                raise DteError(f"DONE counts {result.done.generated_tokens} tokens, {len(result.ids)} arrived",
                               "UDP dropped frames; retry")


def generate_remote(host: str, port: int, key: bytes, prompt: str, n: int, temp: float = 0.0, *,
                    top_k: int = 40, top_p: float = 0.95, seed: int = 0,
                    timeout: float = DEFAULT_TIMEOUT_S,
                    on_token: Callable[[p.Token], None] | None = None) -> dict:
    """One generation on a remote appliance; returns the hosted `dte generate --json` shape:
    {"prompt_ids", "ids", "text", "tok_per_s", "prompt_tok_per_s"}. Sampling defaults are the hosted
    engine's (`engine.Engine.generate`), so equal arguments give equal tokens."""
    request = p.Prompt(prompt, n_predict=n, temperature=temp, top_k=top_k, top_p=top_p, seed=seed)
    with Client(host, port, key, timeout=timeout) as client:
        return client.generate(request, on_token=on_token).to_json()
