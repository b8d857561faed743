"""The gateway's HTTP application (Starlette): OpenAI's /v1/models, /v1/chat/completions and /v1/completions in
front of the appliance pool, plus /health for routers.

A request is read (at most `max_body` bytes), parsed, queued for an appliance, and answered only once the first
token (or the end) has come back, so every failure before that gets its HTTP status and an OpenAI error object.
Streams are server-sent events ending in `data: [DONE]`; a client that goes away (while queued, mid-stream, or
while a non-streaming answer is being generated) cancels the generation on the appliance.

Each completion request is logged at INFO on the `dte_build.serve` logger (`dte serve --log-requests` prints the
lines): one that reached an appliance with the appliance, its finish reason, token counts and time; one refused
before that with its HTTP status and error code.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .api import (ApiError, CompletionRequest, ResponseIds, Usage, bad_request, model_object, models_list,
                  parse_chat, parse_completion)
from .backend import Appliance, Pool, Stream
from .prompts import job_for, key_after
from .text import StopText

DEFAULT_MAX_BODY = 256 << 10
log = logging.getLogger("dte_build.serve")


@dataclass
class ServeConfig:
    """Everything `create_app` needs; `dte serve` fills it from its options."""

    appliances: list[tuple[str, int]]
    key: bytes
    model: str | None = None       # override: the id every appliance's model is served as (else its INFO name)
    api_key: str | None = None
    max_body: int = DEFAULT_MAX_BODY
    timeout: float = 30.0          # seconds without an answer from the appliance before it counts as down
    slots: int = 1                 # generations in flight per appliance (it runs one at a time, queues 4)
    max_waiting: int = 256         # requests waiting for a slot before 429
    sessions: int = 8              # conversations kept open per appliance (it holds 16 sessions)
    created: int = field(default_factory=lambda: int(time.time()))


DEFAULT_MODEL = "dte"   # the id of a model whose appliance names none (a build without a model name)


@dataclass
class Served:
    """One model id the gateway serves: the weights' SHA-256 (None: unknown) and the appliances running it."""

    sha256: str | None
    endpoints: set[str]


class ClientGone(Exception):
    """The HTTP client disconnected before its answer was ready."""


def error_response(error: ApiError) -> JSONResponse:
    headers = {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(error.retry_after)))
    if error.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


class BearerAuth:
    """ASGI middleware: every /v1/ request needs `Authorization: Bearer <api key>` (compared in constant time)."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self.expected = f"Bearer {api_key}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                message = "missing bearer token" if not given else "incorrect API key"
                response = error_response(ApiError(401, f"{message}: send 'Authorization: Bearer <api key>'",
                                                   code="invalid_api_key"))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class EventStream(StreamingResponse):
    """Server-sent events that run `on_close` however the response ends (done, error, client gone)."""

    media_type = "text/event-stream"

    def __init__(self, content: AsyncIterator[str], on_close: Callable[[], None]) -> None:
        super().__init__(content, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.on_close()


def sse(obj: dict[str, Any] | str) -> str:
    return f"data: {obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False)}\n\n"


async def read_json(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body of {declared} bytes exceeds the limit of {limit}", code="request_too_large")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, f"request body exceeds the limit of {limit} bytes", code="request_too_large")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_request(f"the body is not valid JSON: {exc}") from None


async def until_disconnect(request: Request) -> None:
    """Returns when the client has disconnected (the body is already read, so nothing else arrives)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_gone(request: Request, work: Awaitable[Any]) -> Any:
    """`work`'s result, or ClientGone (and `work` cancelled) when the client disconnects first."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(until_disconnect(request))
    try:
        done, _ = await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        raise
    finally:
        watch.cancel()
    if task in done:
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, ApiError):
        await task
    raise ClientGone


def log_refused(request: Request, status: int, code: str, started: float) -> None:
    """The request log's line for a completion request answered before an appliance ran it."""
    log.info("POST %s refused status=%d code=%s %.3f s", request.url.path, status, code, time.monotonic() - started)


class Gateway:
    """The routes' state: config, pool of appliances."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self._learning: set[asyncio.Future[Any]] = set()   # INFO requests under way (references kept)
        self.pool = Pool([Appliance(host, port, config.key, timeout=config.timeout, slots=config.slots)
                          for host, port in config.appliances], max_waiting=config.max_waiting,
                         sessions=config.sessions)

    # -- routes ---------------------------------------------------------------------------------------------

    async def served(self) -> dict[str, Served]:
        """The models served, by id: each appliance's (its INFO name, or the --model-name override; DEFAULT_MODEL
        for an appliance that names none), with the weights' SHA-256 and the endpoints running it. Appliances that
        do not answer are left out; with the override and none answering, the override alone."""
        appliances = self.pool.appliances
        unknown = [a for a in appliances if a.model_info is None]
        if unknown:   # asked in the background, so a down appliance never delays requests served by the others
            tasks = [asyncio.ensure_future(a.learn()) for a in unknown]
            self._learning.update(tasks)
            for task in tasks:
                task.add_done_callback(self._learning.discard)
            if len(unknown) == len(appliances):   # nothing known yet: wait for the answers (a few seconds at most)
                await asyncio.gather(*tasks)
        served: dict[str, Served] = {}
        for a in appliances:
            if a.model_info is not None:
                entry = served.setdefault(self.config.model or a.model_info.name or DEFAULT_MODEL,
                                          Served(a.model_info.known_sha256, set()))
                entry.endpoints.add(a.endpoint)
        if not served and self.config.model:
            served[self.config.model] = Served(None, {a.endpoint for a in appliances})
        return served

    async def models(self, request: Request) -> Response:
        served = await self.served()
        return JSONResponse(models_list({m: s.sha256 for m, s in served.items()}, self.config.created))

    async def model(self, request: Request) -> Response:
        served = await self.served()
        name = request.path_params["model"]
        if name not in served:
            return error_response(self._no_model(name, served))
        return JSONResponse(model_object(name, self.config.created, served[name].sha256))

    async def health(self, request: Request) -> Response:
        """200 when any appliance answers PING (for a router's health check), else 503; no auth."""
        results = await asyncio.gather(*(a.ping() for a in self.pool.appliances), return_exceptions=True)
        states = [{"appliance": a.endpoint, "up": not isinstance(r, BaseException),
                   **({"rtt_ms": round(r * 1000, 2)} if not isinstance(r, BaseException) else {"error": str(r)})}
                  for a, r in zip(self.pool.appliances, results)]
        ok = any(s["up"] for s in states)
        return JSONResponse({"status": "ok" if ok else "unavailable", "appliances": states},
                            status_code=200 if ok else 503)

    async def chat_completions(self, request: Request) -> Response:
        return await self._complete(request, parse_chat)

    async def completions(self, request: Request) -> Response:
        return await self._complete(request, parse_completion)

    # -- one completion -------------------------------------------------------------------------------------

    def _no_model(self, name: str, served: dict[str, Served]) -> ApiError:
        return ApiError(404, f"the model {name!r} does not exist; this server serves "
                        f"{', '.join(map(repr, served)) or 'no model now (no appliance answers)'}",
                        code="model_not_found", param="model")

    async def _complete(self, request: Request,
                        parse: Callable[[Any, str], CompletionRequest]) -> Response:
        started = time.monotonic()   # the request log's time includes the wait for an appliance
        try:
            body = await read_json(request, self.config.max_body)
            served = await self.served()
            parsed = parse(body, next(iter(served), self.config.model or DEFAULT_MODEL))
            if served and parsed.model not in served:
                raise self._no_model(parsed.model, served)
            job = job_for(parsed)   # with no appliance answering, the pool tries them all (and answers 503)
            only = served[parsed.model].endpoints if parsed.model in served else None
            stream, first = await unless_gone(request, self.pool.open(job, only))
        except ApiError as error:
            log_refused(request, error.status, error.code or error.type, started)
            return error_response(error)
        except (ClientGone, ClientDisconnect):
            log_refused(request, 499, "client_gone", started)
            return Response(status_code=499)
        ids = ResponseIds(model=parsed.model, chat=parsed.chat)
        run = _Run(parsed, stream, StopText(parsed.stop))

        def close() -> None:
            stream.cancel()
            self.pool.finish(stream, run.key())
            run.log(request.url.path, time.monotonic() - started)

        if parsed.stream:
            return EventStream(self._events(parsed, ids, run, first), on_close=close)
        try:
            return JSONResponse(await unless_gone(request, self._whole(parsed, ids, run, first)))
        except ApiError as error:
            return error_response(error)
        except ClientGone:
            return Response(status_code=499)
        finally:
            close()

    async def _whole(self, parsed: CompletionRequest, ids: ResponseIds, run: _Run,
                     first: tuple[str, object]) -> dict[str, Any]:
        text = "".join([t async for t in run.texts(first)])
        if parsed.echo and parsed.prompt is not None:
            text = parsed.prompt + text
        usage, reason = run.result()
        return ids.completion(text, reason, usage)

    async def _events(self, parsed: CompletionRequest, ids: ResponseIds, run: _Run,
                      first: tuple[str, object]) -> AsyncIterator[str]:
        try:
            if parsed.chat:
                yield sse(ids.chunk("", first=True))
            elif parsed.echo and parsed.prompt is not None:
                yield sse(ids.chunk(parsed.prompt))
            async for text in run.texts(first):
                yield sse(ids.chunk(text))
        except ApiError as error:   # after the headers: the error goes as an event (OpenAI's clients raise it)
            yield sse(error.body())
            return
        usage, reason = run.result()
        yield sse(ids.chunk(None, reason))
        if parsed.include_usage:
            yield sse(ids.chunk(None, usage=usage))
        yield sse("[DONE]")


class _Run:
    """One generation's text as released to the client, cut at a stop sequence (which cancels the rest on the
    appliance), and its usage counts and finish reason."""

    def __init__(self, parsed: CompletionRequest, stream: Stream, out: StopText) -> None:
        self.parsed = parsed
        self.stream = stream
        self.out = out
        self.tokens_at_stop = 0

    async def texts(self, first: tuple[str, object]) -> AsyncIterator[str]:
        async for piece in self.stream.pieces(first):
            text = self.out.feed(piece)
            if text:
                yield text
            if self.out.stopped:
                self.tokens_at_stop = self.stream.pieces_seen
                self.stream.cancel()
                break
        else:
            tail = self.out.finish()
            if tail:
                yield tail
            return
        with contextlib.suppress(ApiError):   # the appliance's DONE (cancelled) brings the prompt count
            async for _ in self.stream.pieces():
                pass

    def key(self) -> str | None:
        """The conversation the session now holds, when the reply went out whole (not cut at a stop string,
        not cancelled): a request that extends it continues the session."""
        outcome = self.stream.outcome
        if self.out.stopped or outcome is None or outcome.finish_reason not in ("stop", "length"):
            return None
        return key_after(self.parsed, self.out.text)

    def log(self, route: str, seconds: float) -> None:
        """One line for the request log; a generation that did not end (error, client gone) is `incomplete`."""
        finished = self.out.stopped or self.stream.outcome is not None
        usage, reason = self.result() if finished else (Usage(0, self.stream.pieces_seen, 0), "incomplete")
        log.info("POST %s appliance=%s finish=%s prompt_tokens=%d completion_tokens=%d cached_tokens=%d %.3f s",
                 route, self.stream.appliance.endpoint, reason, usage.prompt_tokens, usage.completion_tokens,
                 usage.cached_tokens, seconds)

    def result(self) -> tuple[Usage, str]:
        outcome = self.stream.outcome
        prompt_tokens = outcome.prompt_tokens if outcome else 0
        if self.out.stopped:
            return Usage(prompt_tokens, self.tokens_at_stop, outcome.cached_tokens if outcome else 0), "stop"
        assert outcome is not None
        reason = "stop" if outcome.finish_reason == "cancelled" else outcome.finish_reason
        return Usage(prompt_tokens, outcome.completion_tokens, outcome.cached_tokens), reason


def create_app(config: ServeConfig) -> ASGIApp:
    """The ASGI application of `dte serve` (run it with uvicorn, or mount it in another Starlette app)."""
    gateway = Gateway(config)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return error_response(ApiError(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}",
                                       code=code))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        gateway.pool.store.close()   # CLOSE the kept sessions: the appliance frees them at once

    app = Starlette(lifespan=lifespan, routes=[
        Route("/v1/models", gateway.models, methods=["GET"]),
        Route("/v1/models/{model:path}", gateway.model, methods=["GET"]),
        Route("/v1/chat/completions", gateway.chat_completions, methods=["POST"]),
        Route("/v1/completions", gateway.completions, methods=["POST"]),
        Route("/health", gateway.health, methods=["GET"]),
    ], exception_handlers={HTTPException: http_error})
    app.state.gateway = gateway
    if config.api_key:
        return BearerAuth(app, config.api_key)
    return app
