"""The appliances behind the gateway: each generation runs the blocking protocol client (`client.Client`, one
session each) in a worker thread and is read by the event loop as an async stream of token pieces; a pool picks
an appliance, bounds how many generations each has in flight, waits in a bounded queue for a free slot, fails
over to another appliance while nothing has been streamed yet, keeps finished sessions for the conversations
that continue them (serve/sessions.py), and maps protocol failures to OpenAI error statuses.

Appliance errors -> HTTP: unreachable 503, BUSY (after retries) 503 with Retry-After, the gateway's own queue full
429, a turn that does not fit the context (CONTEXT_FULL, or an engine that cannot start it) 400
`context_length_exceeded`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from .. import protocol as p
from ..client import Client, Generation, RemoteError, SessionGone
from ..errors import DteError
from .api import ApiError
from .sessions import SessionStore

DOWN_FOR_S = 2.0            # after a failure, other appliances are preferred for this long
BUSY_RETRIES = 6
BUSY_BACKOFF_S = 0.25


@dataclass(frozen=True)
class Job:
    """What one request asks of an appliance: `fresh` starts a new transcript (None: too long to send, with
    `fresh_error` saying so); `follow_up` continues the session that holds conversation `key`, when one does."""

    fresh: p.Prompt | None
    key: str | None = None
    follow_up: p.Prompt | None = None
    fresh_error: ApiError | None = None


@dataclass
class Outcome:
    """How a generation ended, in the API's terms."""

    prompt_tokens: int          # the whole prompt: evaluated now + reused from the cache
    completion_tokens: int
    finish_reason: str          # "stop" (end of sequence) | "length" | "cancelled" | "error"
    cached_tokens: int = 0


def finish_reason(done: p.Done) -> str:
    return {p.DoneReason.END_OF_SEQUENCE: "stop", p.DoneReason.LENGTH: "length",
            p.DoneReason.CONTEXT_FULL: "length", p.DoneReason.CANCELLED: "cancelled"}.get(done.reason, "error")


def unavailable(endpoint: str, why: str) -> ApiError:
    return ApiError(503, f"appliance {endpoint} is unavailable: {why}", type="server_error",
                    code="appliance_unavailable", retry_after=DOWN_FOR_S)


def context_exceeded(message: str) -> ApiError:
    return ApiError(400, message, code="context_length_exceeded", param="messages")


def api_error(exc: BaseException, endpoint: str) -> ApiError:
    """The HTTP answer for a failure of one generation on `endpoint`."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, SessionGone):   # only when the history cannot be carried to a new transcript
        return context_exceeded("the appliance no longer holds this conversation, and its history is too long "
                                "to send again in one request")
    if isinstance(exc, RemoteError):
        if exc.code == p.ErrorCode.BUSY:
            return ApiError(503, f"appliance {endpoint} is busy; retry shortly", type="server_error",
                            code="appliance_busy", retry_after=1.0)
        if exc.code == p.ErrorCode.CONTEXT_FULL:
            return context_exceeded("the conversation does not fit the model's context")
        if exc.code == p.ErrorCode.ENGINE:
            return context_exceeded("the appliance could not start this generation: the prompt does not fit its "
                                    "context (or tokenizes to nothing)")
        return ApiError(502, f"appliance {endpoint} refused the request: {exc.message}", type="server_error",
                        code="appliance_error")
    if isinstance(exc, DteError):
        return unavailable(endpoint, exc.message)
    if isinstance(exc, OSError):
        return unavailable(endpoint, exc.strerror or str(exc))
    return ApiError(500, f"internal error: {type(exc).__name__}: {exc}", type="server_error", code="internal_error")


@dataclass
class Appliance:
    """One appliance endpoint and the gateway's view of it: generations in flight (bounded by `slots`) and when
    it last failed."""

    host: str
    port: int
    key: bytes
    timeout: float = 30.0
    slots: int = 1
    in_flight: int = 0
    down_until: float = 0.0
    last_error: str = ""
    model_info: p.ModelInfo | None = None   # the model it runs (INFO) once it answered; forgotten when down
    info_retry_at: float = 0.0    # after an unanswered INFO, not asked again before this (monotonic)
    learning: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)   # one INFO at a time

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def free(self) -> bool:
        return self.in_flight < self.slots

    @property
    def up(self) -> bool:
        return time.monotonic() >= self.down_until

    def mark_down(self, why: str) -> None:
        self.down_until = time.monotonic() + DOWN_FOR_S
        self.last_error = why
        self.model_info = None   # it may come back with another image

    def model_info_sync(self) -> p.ModelInfo:
        with Client(self.host, self.port, self.key, timeout=min(self.timeout, 2.0)) as client:
            return client.model_info()

    async def learn(self) -> p.ModelInfo | None:
        """The model this appliance runs (INFO, asked once while it stays up); None while it does not answer."""
        async with self.learning:
            if self.model_info is None and time.monotonic() >= max(self.down_until, self.info_retry_at):
                try:
                    self.model_info = await asyncio.to_thread(self.model_info_sync)
                except (DteError, OSError):   # down, or firmware older than INFO: asked again later
                    self.info_retry_at = time.monotonic() + DOWN_FOR_S
        return self.model_info

    def client(self) -> Client:
        return Client(self.host, self.port, self.key, timeout=self.timeout)

    def ping_sync(self) -> float:
        with Client(self.host, self.port, self.key, timeout=min(self.timeout, 2.0)) as client:
            return client.ping()

    async def ping(self) -> float:
        """Round trip in seconds (sessionless PING); DteError when it does not answer."""
        return await asyncio.to_thread(self.ping_sync)


class Stream:
    """One generation on one appliance: `prompt` on `client` (a kept session, or None: a new one) in a worker
    thread; when a kept session is gone or full before anything streamed, `fallback` is sent on a new transcript.
    Iterate `pieces()` for token pieces (bytes), then read `outcome`. `cancel()` stops it on the appliance (safe
    from the loop at any time); `Pool.finish` decides what becomes of the session afterwards."""

    def __init__(self, appliance: Appliance, client: Client | None, prompt: p.Prompt, fallback: p.Prompt | None,
                 on_end: Callable[[Appliance], None]) -> None:
        self.appliance = appliance
        self.client = client
        self.prompt = prompt
        self.fallback = fallback
        self.outcome: Outcome | None = None
        self.pieces_seen = 0
        self.reusable = False        # the session ended a generation normally and can serve again
        self._on_end = on_end
        self._loop = asyncio.get_running_loop()
        self._events: asyncio.Queue[tuple[str, object]] = asyncio.Queue()
        self._lock = threading.Lock()
        self._cancelled = False
        self._sent = False
        self._worker_done = False
        self._close_when_done = False
        self._thread = threading.Thread(target=self._work, name=f"dte-serve-{appliance.endpoint}", daemon=True)

    def start(self) -> Stream:
        self._thread.start()
        return self

    # -- worker thread --------------------------------------------------------------------------------------

    def _put(self, kind: str, value: object) -> None:
        self._loop.call_soon_threadsafe(self._events.put_nowait, (kind, value))

    def _run(self, client: Client, prompt: p.Prompt) -> Generation | None:
        client.ensure_open()   # the cookie round trip, outside the lock (cancel() must never wait on it)
        with self._lock:
            if self._cancelled:
                return None
            stream = client.stream(prompt)
            self._sent = True
        result = client.collect(stream.generation, on_token=lambda token: self._put("piece", token.piece))
        client.conversing = result.done is not None and result.done.reason != p.DoneReason.ENGINE_ERROR
        return result

    def _work(self) -> None:
        client = self.client
        event: tuple[str, object]
        try:
            if client is None:
                client = self.client = self.appliance.client()
            try:
                result = self._run(client, self.prompt)
            except (SessionGone, RemoteError) as exc:   # both answer the PROMPT itself: nothing was streamed
                gone = isinstance(exc, SessionGone)
                full = isinstance(exc, RemoteError) and exc.code == p.ErrorCode.CONTEXT_FULL and \
                    self.prompt is not self.fallback
                if self.fallback is None or not (gone or full):
                    raise
                with self._lock:
                    self._sent = False
                client.reset()
                result = self._run(client, self.fallback)
            self.reusable = result is not None and not result.cancelled and client.session != 0
            event = ("done", result)
        except BaseException as exc:   # handed to the loop, which maps it to an HTTP error
            event = ("error", exc)
        with self._lock:   # before the loop hears of the end, so release_session() sees it
            self._worker_done = True
            if client is not None and (self._close_when_done or not self.reusable):
                client.close()
        self._put(*event)
        self._loop.call_soon_threadsafe(self._on_end, self.appliance)

    # -- event loop -----------------------------------------------------------------------------------------

    def cancel(self) -> None:
        with self._lock:
            if self._cancelled or self._worker_done:
                return
            self._cancelled = True
            if self._sent and self.client is not None and self.outcome is None:
                try:
                    self.client.cancel()
                except OSError:
                    pass

    def release_session(self) -> Client | None:
        """The session, when it ended a generation normally and nothing else holds it (the caller then owns it);
        else None (and it is closed when the worker ends)."""
        with self._lock:
            if self._worker_done and self.reusable and self.client is not None and not self._cancelled:
                client, self.client = self.client, None
                return client
            self._close_when_done = True
            return None

    async def next_event(self) -> tuple[str, object]:
        return await self._events.get()

    async def pieces(self, first: tuple[str, object] | None = None) -> AsyncIterator[bytes]:
        """The generated pieces until DONE; raises ApiError on a failure. `first`: an event already taken."""
        while True:
            kind, value = first if first is not None else await self._events.get()
            first = None
            if kind == "piece":
                self.pieces_seen += 1
                yield value   # type: ignore[misc]
            elif kind == "done":
                self.outcome = self._outcome(value)   # type: ignore[arg-type]
                if self.outcome.finish_reason == "error":
                    raise ApiError(502, f"the engine on appliance {self.appliance.endpoint} failed mid-generation",
                                   type="server_error", code="engine_error")
                return
            else:
                raise api_error(value, self.appliance.endpoint)   # type: ignore[arg-type]

    @staticmethod
    def _outcome(result: Generation | None) -> Outcome:
        if result is None or result.done is None:
            return Outcome(0, 0, "cancelled")
        done = result.done
        return Outcome(done.prompt_tokens + done.reused_tokens, done.generated_tokens, finish_reason(done),
                       cached_tokens=done.reused_tokens)


class Pool:
    """Appliances, a bounded set of requests waiting for a free slot on any of them, and the sessions kept."""

    def __init__(self, appliances: list[Appliance], *, max_waiting: int = 256, wait_timeout: float = 600.0,
                 sessions: int = 8) -> None:
        if not appliances:
            raise DteError("no appliance given", "pass --appliance HOST:PORT (repeat for several)")
        self.appliances = appliances
        self.max_waiting = max_waiting
        self.wait_timeout = wait_timeout
        self.waiting = 0
        self.store = SessionStore(per_appliance=sessions)
        self._freed = asyncio.Event()

    def _pick(self, exclude: set[str], want: Appliance | None = None) -> Appliance | None:
        """`want` when it is free; else the free appliance with the fewest generations in flight, preferring
        those that have not just failed."""
        if want is not None:
            return want if want.free else None
        candidates = [a for a in self.appliances if a.free and a.endpoint not in exclude]
        if not candidates:
            return None
        return min(candidates, key=lambda a: (not a.up, a.in_flight))

    def _release(self, appliance: Appliance) -> None:
        appliance.in_flight -= 1
        self._freed.set()

    async def _acquire(self, exclude: set[str], want: Appliance | None = None) -> Appliance:
        if self._pick(exclude, want) is None and self.waiting >= self.max_waiting:
            raise ApiError(429, f"{self.waiting} requests are already waiting for the appliance; retry later",
                           type="rate_limit_error", code="queue_full", retry_after=1.0)
        self.waiting += 1
        deadline = time.monotonic() + self.wait_timeout
        try:
            while (appliance := self._pick(exclude, want)) is None:
                if want is None and all(a.endpoint in exclude for a in self.appliances):
                    raise unavailable(", ".join(sorted(exclude)), "every appliance failed this request")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ApiError(503, "timed out waiting for a free appliance", type="server_error",
                                   code="appliance_busy", retry_after=1.0)
                self._freed.clear()
                try:
                    await asyncio.wait_for(self._freed.wait(), left)
                except TimeoutError:
                    pass
            appliance.in_flight += 1
            return appliance
        finally:
            self.waiting -= 1

    async def open(self, job: Job, only: set[str] | None = None) -> tuple[Stream, tuple[str, object]]:
        """Start `job` and wait for its first event (a piece, or the end): on the appliance whose session holds
        the conversation when one does, else on the least busy (of the endpoints in `only`, when given: those
        running the requested model). A failure before anything was streamed moves it to another appliance
        (unreachable) or retries after a pause (BUSY). Raises ApiError."""
        tried = {a.endpoint for a in self.appliances if only is not None and a.endpoint not in only}
        busy_tries = 0
        held = self.store.take(job.key) if job.key is not None and job.follow_up is not None else None
        while True:
            if held is not None:
                appliance, client = held
                prompt: p.Prompt | None = job.follow_up
                try:
                    await self._acquire(tried, want=appliance)
                except BaseException:
                    client.close()
                    raise
            else:
                if job.fresh is None:
                    raise job.fresh_error or context_exceeded("the conversation is too long to send")
                appliance = await self._acquire(tried)
                client, prompt = self.store.take_idle(appliance), job.fresh
            held = None
            stream = Stream(appliance, client, prompt, job.fresh, self._release).start()   # type: ignore[arg-type]
            try:
                first = await stream.next_event()
            except BaseException:
                stream.cancel()
                stream.release_session()
                raise
            if first[0] != "error":
                return stream, first
            error = api_error(first[1], appliance.endpoint)   # type: ignore[arg-type]
            if error.code == "appliance_busy" and busy_tries < BUSY_RETRIES:
                busy_tries += 1
                await asyncio.sleep(BUSY_BACKOFF_S * busy_tries)
                continue
            if error.code != "appliance_unavailable":
                raise error
            appliance.mark_down(error.message)
            self.store.drop(appliance)
            tried.add(appliance.endpoint)
            if all(a.endpoint in tried for a in self.appliances):
                raise error

    def finish(self, stream: Stream, key: str | None) -> None:
        """After a response: keep the stream's session for the conversation `key` continues (None: for any
        request), or let it close."""
        client = stream.release_session()
        if client is None:
            return
        if key is not None:
            self.store.keep(key, stream.appliance, client)
        else:
            self.store.put_idle(stream.appliance, client)
