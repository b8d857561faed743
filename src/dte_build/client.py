"""UDP client for a dte appliance's token protocol, version 2 (docs/protocol.md).

Library first; `dte generate --remote`, `dte remote`, `dte chat` and `dte serve` are built on it.

    from dte_build import protocol as p
    from dte_build.client import Client, SessionGone, RemoteError

    with Client("127.0.0.1", 7777, p.load_key("appliance.key"), timeout=10) as c:
        c.ping()                                  # round-trip seconds; works before a session is open
        info = c.open()                           # HELLO -> COOKIE -> OPEN -> OPENED (done lazily otherwise)
        info.context_size, info.idle_timeout_s    # p.Opened
        c.model_info().name, c.model_info().sha256   # INFO: the model it runs (p.ModelInfo)
        g = c.say("My name is Ada.", n_predict=64)            # turn 1: a new transcript (p.Prompt fields)
        g = c.say("What is my name?", n_predict=64)           # turn 2: only the new text is sent and evaluated
        g.text, g.ids, g.prompt_ids, g.done.prompt_tokens, g.done.reused_tokens, g.done.context_used
        for token in (stream := c.stream(p.Prompt("Tell a story", n_predict=200, append=True, chat=True))):
            print(token.piece.decode(errors="replace"), end="")    # p.Token(id, piece bytes), as they come
            if enough: stream.cancel()            # DONE reason CANCELLED ends the iteration
        stream.generation                         # Generation, complete once the iterator is exhausted
        c.reset()                                 # the next say() starts a new transcript
        c.close()                                 # CLOSE (the appliance frees the session), socket closed

- `Client` is one session (one conversation) on one UDP socket; use one per conversation, from one thread.
- `say(text, chat=False, **settings)` continues the conversation (APPEND after the first turn); `chat=True`
  asks the appliance to wrap the text with the model's chat template. `generate(p.Prompt(...))` sends a
  PROMPT as given (without `append` it starts the transcript over; the appliance still reuses any cached
  prefix). `stream(prompt)` is the same as an iterator of generated tokens.
- Errors are DteError subclasses: `RemoteError` (the appliance answered ERROR: `.code` is a p.ErrorCode,
  e.g. BUSY, CONTEXT_FULL: the conversation is full, reset() it), `SessionGone` (the session was closed,
  evicted or expired, or the appliance rebooted: `open()` a new one and re-send the transcript with
  `append=False`), `p.ProtocolError` (an answer that does not parse). Timeouts raise DteError.
- `generate_remote(...)` is one generation with the hosted `dte generate --json` shape.
"""

from __future__ import annotations

import secrets
import socket
import time
from collections.abc import Callable, Iterator
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

    prompt_ids: list[int] = field(default_factory=list)   # the tokens this PROMPT added to the transcript
    prompt_start: int | None = None                       # their position in the transcript
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
        hints = {p.ErrorCode.BUSY: "retry in a moment",
                 p.ErrorCode.CONTEXT_FULL: "the conversation fills the model's context; reset it and start over"}
        super().__init__(f"appliance error {name}: {message}", hints.get(code))
        self.code = code


class SessionGone(DteError):
    """The appliance no longer has this session (closed, evicted, expired, or the appliance restarted)."""

    def __init__(self, session: int) -> None:
        super().__init__(f"the appliance no longer has session {session:#x}",
                         "open a new session and send the conversation again")
        self.session = session


class Stream:
    """The generated tokens of one PROMPT as an iterator; `generation` holds everything once it is exhausted."""

    def __init__(self, client: Client, generation: Generation) -> None:
        self.client = client
        self.generation = generation

    def __iter__(self) -> Iterator[p.Token]:
        while self.generation.done is None:
            yield from self.client._absorb(self.client.receive(), self.generation)

    def cancel(self) -> None:
        """Ask the appliance to stop; the iterator ends with the DONE (reason CANCELLED) that follows."""
        if self.generation.done is None:
            self.client.cancel()


class Client:
    """One session with an appliance: opened by the cookie round-trip, outgoing sequence numbers, a window on
    answers, and the conversation (whether the next say() appends)."""

    def __init__(self, host: str, port: int, key: bytes, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        if len(key) != p.KEY_SIZE:
            raise DteError(f"key is {len(key)} bytes, not {p.KEY_SIZE}", "load it with protocol.load_key")
        self.key = key
        self.timeout = timeout
        self._session = 0            # 0: not open
        self._next_sequence = 1
        self.window = p.ReplayWindow()
        self.info: p.Opened | None = None
        self.conversing = False      # the session holds a transcript the next say() continues
        self.dropped = 0             # answers that failed the checks (bad tag, replay, another session)
        self._cancels_unanswered = 0   # CANCELs whose DONE(cancelled) or ERROR NOT_RUNNING is still to come
        try:
            infos = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_DGRAM)
        except socket.gaierror as exc:
            raise DteError(f"cannot resolve {host}: {exc.strerror}", "check the appliance address") from exc
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # no flow control: a big receive buffer absorbs token bursts (capped by net.core.rmem_max)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
        self.sock.connect(infos[0][4])

    @property
    def session(self) -> int:
        """The open session's id (server-issued), 0 before open()."""
        return self._session

    def close(self) -> None:
        """Close the session on the appliance (best effort, no wait) and the socket."""
        if self._session and self.sock.fileno() >= 0:
            try:
                self.send(p.FrameType.CLOSE)
            except OSError:
                pass
        self._session = 0
        self.sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- frames --------------------------------------------------------------------------------------------

    def send(self, ftype: int, payload: bytes = b"", flags: int = 0, *, session: int | None = None) -> None:
        """One request frame on this session, opened first when needed (or on `session`, 0 for HELLO / a
        sessionless PING)."""
        if session is None:
            self.ensure_open()
        sid = self._session if session is None else session
        sequence = self._next_sequence if sid else secrets.randbits(63) + 1
        if sid:
            self._next_sequence += 1
        self.sock.send(p.encode_frame(self.key, p.Frame(int(ftype), sid, sequence, payload, flags)))

    def receive(self, timeout: float | None = None, *, session: int | None = None) -> p.Frame:
        """The next authentic, fresh answer for this session (or `session`); DteError on timeout,
        SessionGone when the appliance says the session is gone."""
        sid = self._session if session is None else session
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
            if frame.session != sid or not self.window.accept(frame.sequence):
                self.dropped += 1
                continue
            if frame.type == p.FrameType.GONE and sid:
                if sid == self._session:
                    self._session, self.conversing = 0, False
                raise SessionGone(sid)
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

    def request(self, ftype: int, payload: bytes, answer: int, flags: int = 0) -> p.Frame:
        self.ensure_open()
        self.send(ftype, payload, flags)
        frame = self.receive()
        if frame.type == p.FrameType.ERROR:
            raise RemoteError(*p.decode_error(frame.payload))
        if frame.type != answer:
            raise DteError(f"unexpected answer type {frame.type} to request {int(ftype)}",
                           "is another program using this session?")
        return frame

    # -- session -------------------------------------------------------------------------------------------

    def open(self) -> p.Opened:
        """Open a new session: HELLO (padded to the COOKIE's size) -> COOKIE -> OPEN -> OPENED."""
        nonce = secrets.token_bytes(p.CLIENT_NONCE)
        self._session, self.conversing = 0, False
        self.send(p.FrameType.HELLO, p.encode_hello(nonce), session=0)
        while True:
            frame = self.receive(session=0)
            if frame.type != p.FrameType.COOKIE:
                continue
            offered, echoed, cookie = p.decode_cookie(frame.payload)
            if echoed == nonce:
                break
        self._session, self._next_sequence = offered, 1
        self.send(p.FrameType.OPEN, echoed + cookie)
        frame = self.receive()
        if frame.type == p.FrameType.ERROR:
            self._session = 0
            raise RemoteError(*p.decode_error(frame.payload))
        if frame.type != p.FrameType.OPENED:
            raise DteError(f"unexpected answer type {frame.type} to OPEN", "the appliance firmware is misbehaving")
        self.info = p.Opened.decode(frame.payload)
        return self.info

    def ensure_open(self) -> None:
        if not self._session:
            self.open()

    def reset(self) -> None:
        """The next say() starts a new transcript (the session stays open)."""
        self.conversing = False

    # -- requests ------------------------------------------------------------------------------------------

    def ping(self, data: bytes = b"dte") -> float:
        """Round-trip time in seconds (on the session when one is open, else sessionless)."""
        start = time.perf_counter()
        if self._session:
            frame = self.request(p.FrameType.PING, data, p.FrameType.PONG)
        else:
            if len(data) > p.MAX_PING:
                raise RemoteError(p.ErrorCode.BAD_REQUEST, "PING payload longer than 64 bytes")
            self.send(p.FrameType.PING, data, session=0)
            while (frame := self.receive(session=0)).type != p.FrameType.PONG or frame.payload != data:
                pass
        if frame.payload != data:
            raise DteError("PONG does not echo the PING", "the appliance firmware is misbehaving")
        return time.perf_counter() - start

    def stats(self) -> dict[str, int]:
        return p.decode_stats(self.request(p.FrameType.STATS_REQUEST, b"", p.FrameType.STATS).payload)

    def model_info(self) -> p.ModelInfo:
        """The model the appliance runs: its name and the weights' SHA-256 (INFO)."""
        return p.ModelInfo.decode(self.request(p.FrameType.INFO_REQUEST, b"", p.FrameType.INFO).payload)

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

    def stream(self, prompt: p.Prompt) -> Stream:
        """Send a PROMPT; iterate the returned Stream for the generated tokens as they come."""
        payload = prompt.encode()
        self.ensure_open()
        self.send(p.FrameType.PROMPT, payload, prompt.flags)
        return Stream(self, Generation())

    def generate(self, prompt: p.Prompt, *, on_token: Callable[[p.Token], None] | None = None,
                 cancel_after: int | None = None) -> Generation:
        """Send a PROMPT and collect the stream until DONE. `on_token` sees generated tokens as they arrive;
        `cancel_after` sends CANCEL once that many tokens came. Ctrl-C also cancels (then re-raises)."""
        stream = self.stream(prompt)
        result = self.collect(stream.generation, on_token=on_token, cancel_after=cancel_after)
        self.conversing = result.done is not None and result.done.reason != p.DoneReason.ENGINE_ERROR
        return result

    def say(self, text: str, *, chat: bool = False, on_token: Callable[[p.Token], None] | None = None,
            **settings: object) -> Generation:
        """One conversation turn: `text` appended to the session's transcript (a new one on the first turn or
        after reset()). `settings`: p.Prompt's n_predict, temperature, top_k, top_p, seed."""
        prompt = p.Prompt(text, append=self.conversing, chat=chat, **settings)   # type: ignore[arg-type]
        return self.generate(prompt, on_token=on_token)

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
            for token in self._absorb(frame, result):
                if on_token is not None:
                    on_token(token)
            if cancel_after is not None and len(result.ids) >= cancel_after and result.done is None:
                self.cancel()
                cancel_after = None
            if until_first is not None and frame.type == until_first:
                break
        if interrupted:
            raise KeyboardInterrupt
        return result

    def _absorb(self, frame: p.Frame, result: Generation) -> list[p.Token]:
        """Adds one answer to `result`; returns the generated tokens it carried."""
        if frame.type == p.FrameType.ERROR:
            raise RemoteError(*p.decode_error(frame.payload))
        if frame.type == p.FrameType.QUEUED:
            result.queued_at.append(p.decode_queued(frame.payload))
        elif frame.type == p.FrameType.TOKENS:
            first, tokens = p.decode_tokens(frame.payload)
            is_prompt = bool(frame.flags & p.FLAG_PROMPT_TOKENS)
            if is_prompt and result.prompt_start is None:
                result.prompt_start = first
            target = result.prompt_ids if is_prompt else result.ids
            expected = len(target) + ((result.prompt_start or 0) if is_prompt else 0)
            if first != expected:
                raise DteError(f"lost token frames (expected index {expected}, got {first})",
                               "UDP dropped frames; retry (the protocol has no retransmission)")
            target.extend(token.id for token in tokens)
            if not is_prompt:
                result.pieces.extend(token.piece for token in tokens)
                return tokens
        elif frame.type == p.FrameType.DONE:
            result.done = p.Done.decode(frame.payload)
            if result.done.generated_tokens != len(result.ids):
                raise DteError(f"DONE counts {result.done.generated_tokens} tokens, {len(result.ids)} arrived",
                               "UDP dropped frames; retry")
        return []


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
