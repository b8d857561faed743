"""The appliances behind the gateway: each generation runs the blocking protocol client (`client.Client`) in a
worker thread and is read by the event loop as an async stream of token pieces; a pool picks an appliance,
bounds how many generations each has in flight, waits in a bounded FIFO for a free slot, fails over to another
appliance while nothing has been streamed yet, and maps protocol failures to OpenAI error statuses.

Appliance errors -> HTTP: unreachable 503, BUSY (after retries) 503 with Retry-After, the gateway's own queue full
429, a prompt the engine cannot start (it does not fit the context) 400 `context_length_exceeded`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from .. import protocol as p
from ..client import Client, Generation, RemoteError
from ..errors import DteError
from .api import ApiError

DOWN_FOR_S = 2.0            # after a failure, other appliances are preferred for this long
BUSY_RETRIES = 6
BUSY_BACKOFF_S = 0.25


@dataclass(frozen=True)
class Job:
    """What one generation asks the appliance for."""

    prompt: p.Prompt


@dataclass
class Outcome:
    """How a generation ended, in the API's terms."""

    prompt_tokens: int
    completion_tokens: int
    finish_reason: str          # "stop" (end of sequence or a stop string) | "length" | "cancelled"
    cached_tokens: int = 0


def finish_reason(done: p.Done) -> str:
    return {p.DoneReason.END_OF_SEQUENCE: "stop", p.DoneReason.LENGTH: "length",
            p.DoneReason.CANCELLED: "cancelled"}.get(done.reason, "error")


def unavailable(endpoint: str, why: str) -> ApiError:
    return ApiError(503, f"appliance {endpoint} is unavailable: {why}", type="server_error",
                    code="appliance_unavailable", retry_after=DOWN_FOR_S)


def api_error(exc: BaseException, endpoint: str) -> ApiError:
    """The HTTP answer for a failure of one generation on `endpoint`."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, RemoteError):
        if exc.code == p.ErrorCode.BUSY:
            return ApiError(503, f"appliance {endpoint} is busy; retry shortly", type="server_error",
                            code="appliance_busy", retry_after=1.0)
        if exc.code == p.ErrorCode.ENGINE:
            return ApiError(400, "the appliance could not start this generation: the prompt does not fit its "
                                 "context (or tokenizes to nothing)", code="context_length_exceeded",
                            param="messages")
        return ApiError(502, f"appliance {endpoint} refused the request: {exc.message}", type="server_error",
                        code="appliance_error")
    if isinstance(exc, DteError):
        return unavailable(endpoint, exc.message)
    if isinstance(exc, OSError):
        return unavailable(endpoint, exc.strerror or str(exc))
    return ApiError(500, f"internal error: {type(exc).__name__}: {exc}", type="server_error", code="internal_error")


class Stream:
    """One generation on one appliance: the client runs in a worker thread; iterate for token pieces (bytes),
    then read `outcome`. `cancel()` stops it on the appliance (safe from the loop at any time)."""

    def __init__(self, appliance: Appliance, job: Job, on_end: Callable[[Appliance], None]) -> None:
        self.appliance = appliance
        self._on_end = on_end
        self.job = job
        self.outcome: Outcome | None = None
        self.pieces_seen = 0
        self._loop = asyncio.get_running_loop()
        self._events: asyncio.Queue[tuple[str, object]] = asyncio.Queue()
        self._lock = threading.Lock()
        self._client: Client | None = None
        self._cancelled = False
        self._prompt_sent = False
        self._thread = threading.Thread(target=self._work, name=f"dte-serve-{appliance.endpoint}", daemon=True)

    def start(self) -> Stream:
        self._thread.start()
        return self

    # -- worker thread --------------------------------------------------------------------------------------

    def _put(self, kind: str, value: object) -> None:
        self._loop.call_soon_threadsafe(self._events.put_nowait, (kind, value))

    def _work(self) -> None:
        try:
            with Client(self.appliance.host, self.appliance.port, self.appliance.key,
                        timeout=self.appliance.timeout) as client:
                with self._lock:
                    if self._cancelled:
                        self._put("done", None)
                        return
                    self._client = client
                    client.send(p.FrameType.PROMPT, self.job.prompt.encode())
                    self._prompt_sent = True
                result = client.collect(Generation(), on_token=lambda token: self._put("piece", token.piece))
                self._put("done", result)
        except BaseException as exc:   # handed to the loop, which maps it to an HTTP error
            self._put("error", exc)
        finally:
            self._loop.call_soon_threadsafe(self._on_end, self.appliance)

    # -- event loop -----------------------------------------------------------------------------------------

    def cancel(self) -> None:
        with self._lock:
            if self._cancelled:
                return
            self._cancelled = True
            if self._prompt_sent and self._client is not None and self.outcome is None:
                try:
                    self._client.cancel()
                except OSError:
                    pass

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
        return Outcome(result.done.prompt_tokens, result.done.generated_tokens, finish_reason(result.done))


@dataclass
class Appliance:
    """One appliance endpoint and the gateway's view of it: in-flight generations (bounded by `slots`) and when
    it last failed."""

    host: str
    port: int
    key: bytes
    timeout: float = 30.0
    slots: int = 1
    in_flight: int = 0
    down_until: float = 0.0
    last_error: str = ""

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

    def ping_sync(self) -> float:
        with Client(self.host, self.port, self.key, timeout=min(self.timeout, 2.0)) as client:
            return client.ping()

    async def ping(self) -> float:
        """Round trip in seconds; DteError when it does not answer."""
        return await asyncio.to_thread(self.ping_sync)


class Pool:
    """Appliances and a bounded set of requests waiting for a free slot on any of them."""

    def __init__(self, appliances: list[Appliance], *, max_waiting: int = 256, wait_timeout: float = 600.0) -> None:
        if not appliances:
            raise DteError("no appliance given", "pass --appliance HOST:PORT (repeat for several)")
        self.appliances = appliances
        self.max_waiting = max_waiting
        self.wait_timeout = wait_timeout
        self.waiting = 0
        self._freed = asyncio.Event()

    def _pick(self, exclude: set[str]) -> Appliance | None:
        """The free appliance with the fewest generations in flight, preferring those that have not just failed."""
        candidates = [a for a in self.appliances if a.free and a.endpoint not in exclude]
        if not candidates:
            return None
        return min(candidates, key=lambda a: (not a.up, a.in_flight))

    def _release(self, appliance: Appliance) -> None:
        appliance.in_flight -= 1
        self._freed.set()

    async def _acquire(self, exclude: set[str]) -> Appliance:
        if self._pick(exclude) is None and self.waiting >= self.max_waiting:
            raise ApiError(429, f"{self.waiting} requests are already waiting for the appliance; retry later",
                           type="rate_limit_error", code="queue_full", retry_after=1.0)
        self.waiting += 1
        deadline = time.monotonic() + self.wait_timeout
        try:
            while (appliance := self._pick(exclude)) is None:
                if all(a.endpoint in exclude for a in self.appliances):
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

    async def open(self, job: Job) -> tuple[Stream, tuple[str, object]]:
        """Start `job` and wait for its first event (a piece, or the end); a failure before anything was streamed
        moves it to another appliance (unreachable) or retries after a pause (BUSY). Raises ApiError."""
        tried: set[str] = set()
        busy_tries = 0
        while True:
            appliance = await self._acquire(tried)
            stream = Stream(appliance, job, self._release).start()
            try:
                first = await stream.next_event()
            except BaseException:
                stream.cancel()
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
            tried.add(appliance.endpoint)
            if all(a.endpoint in tried for a in self.appliances):
                raise error
