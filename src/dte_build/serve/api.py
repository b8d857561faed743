"""The OpenAI HTTP API's shapes as the gateway speaks them: request parsing and validation, response and chunk
objects, and the error object with its HTTP status.

Field meanings follow OpenAI's API reference (chat completions, completions, models, error objects); what the
appliance cannot do (n > 1, tools, logprobs, penalties) is refused with a 400 that names the parameter, never
silently ignored.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from .. import protocol as p
from ..conversation import Message

MAX_STOP_SEQUENCES = 4           # OpenAI's limit
DEFAULT_TOP_K = 40               # not an OpenAI field: llama.cpp's server default, and `dte generate`'s
ROLES = ("system", "developer", "user", "assistant")


class ApiError(Exception):
    """An OpenAI-style error: {"error": {"message", "type", "param", "code"}} with an HTTP status."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def bad_request(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


@dataclass(frozen=True)
class Sampling:
    max_tokens: int
    temperature: float
    top_p: float
    top_k: int
    seed: int
    seed_given: bool


@dataclass(frozen=True)
class CompletionRequest:
    """A parsed /v1/chat/completions (messages) or /v1/completions (prompt) request."""

    model: str
    sampling: Sampling
    stop: tuple[str, ...]
    stream: bool
    include_usage: bool
    messages: tuple[Message, ...] = ()
    prompt: str | None = None
    echo: bool = False

    @property
    def chat(self) -> bool:
        return self.prompt is None


# ---- parsing ----------------------------------------------------------------------------------------------

def _number(body: dict, name: str, default: float, low: float, high: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise bad_request(f"'{name}' must be a number from {low:g} to {high:g}, not {value!r}", name)
    return float(value)


def _integer(body: dict, name: str, default: int | None, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise bad_request(f"'{name}' must be an integer from {low} to {high}, not {value!r}", name)
    return value


def _refuse_unsupported(body: dict) -> None:
    n = body.get("n")
    if n is not None and n != 1:
        raise bad_request("only n=1 is supported: the appliance generates one choice per request", "n")
    for name in ("tools", "functions", "tool_choice", "function_call", "logit_bias"):
        if body.get(name):
            raise bad_request(f"'{name}' is not supported by this server", name)
    for name in ("logprobs", "top_logprobs", "best_of", "suffix"):
        value = body.get(name)
        if value not in (None, False, 0) and not (name == "best_of" and value == 1):
            raise bad_request(f"'{name}' is not supported by this server", name)
    for name in ("presence_penalty", "frequency_penalty"):
        if body.get(name) not in (None, 0, 0.0):
            raise bad_request(f"'{name}' is not supported by this server (only 0)", name)
    fmt = body.get("response_format")
    if fmt is not None and (not isinstance(fmt, dict) or fmt.get("type") not in ("text", None)):
        raise bad_request("only response_format {'type': 'text'} is supported", "response_format")


def _stop(body: dict) -> tuple[str, ...]:
    value = body.get("stop")
    if value is None:
        return ()
    stops = [value] if isinstance(value, str) else value
    if (not isinstance(stops, list) or len(stops) > MAX_STOP_SEQUENCES
            or not all(isinstance(s, str) and s for s in stops)):
        raise bad_request(f"'stop' must be a non-empty string or a list of up to {MAX_STOP_SEQUENCES}", "stop")
    return tuple(stops)


def _sampling(body: dict) -> Sampling:
    max_tokens = _integer(body, "max_completion_tokens", None, 1, p.MAX_N_PREDICT)
    max_tokens = _integer(body, "max_tokens", max_tokens, 1, p.MAX_N_PREDICT)
    seed = _integer(body, "seed", None, -(1 << 63), (1 << 64) - 1)
    return Sampling(max_tokens=max_tokens or p.MAX_N_PREDICT,   # the appliance caps it to its context's room
                    temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
                    top_p=_number(body, "top_p", 1.0, 0.0, 1.0),
                    top_k=int(_integer(body, "top_k", DEFAULT_TOP_K, 0, 1 << 20) or 0),
                    seed=(seed if seed is not None else secrets.randbits(63)) & 0xFFFFFFFFFFFFFFFF,
                    seed_given=seed is not None)


def _content(value: Any, where: str) -> str:
    """A message's content: a string, or a list of {"type": "text", "text": ...} parts (joined)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = []
        for part in value:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise bad_request(f"{where}: only text content parts are supported", where)
            parts.append(part["text"])
        return "".join(parts)
    raise bad_request(f"{where}: content must be a string or a list of text parts", where)


def _messages(body: dict) -> tuple[Message, ...]:
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise bad_request("'messages' must be a non-empty list", "messages")
    out = []
    for i, item in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(item, dict):
            raise bad_request(f"{where} must be an object", where)
        role = item.get("role")
        if role not in ROLES:
            raise bad_request(f"{where}.role {role!r} is not supported (use system, user or assistant)",
                              f"{where}.role")
        out.append(Message("system" if role == "developer" else role, _content(item.get("content"), where)))
    if out[-1].role != "user":
        raise bad_request("the last message must be the user's", "messages")
    return tuple(out)


def _common(body: Any, default_model: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    _refuse_unsupported(body)
    model = body.get("model", default_model)
    if not isinstance(model, str) or not model:
        raise bad_request("'model' must be a string", "model")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise bad_request("'stream' must be true or false", "stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise bad_request("'stream_options' must be an object", "stream_options")
    return {"model": model, "sampling": _sampling(body), "stop": _stop(body), "stream": stream,
            "include_usage": bool(options.get("include_usage"))}


def parse_chat(body: Any, default_model: str) -> CompletionRequest:
    common = _common(body, default_model)
    return CompletionRequest(messages=_messages(body), **common)


def parse_completion(body: Any, default_model: str) -> CompletionRequest:
    common = _common(body, default_model)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise bad_request("'prompt' must be one string (token-id and batched prompts are not supported)", "prompt")
    if not prompt:
        raise bad_request("'prompt' is empty", "prompt")
    echo = body.get("echo", False)
    if not isinstance(echo, bool):
        raise bad_request("'echo' must be true or false", "echo")
    return CompletionRequest(prompt=prompt, echo=echo, **common)


# ---- responses --------------------------------------------------------------------------------------------

@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                               "total_tokens": self.prompt_tokens + self.completion_tokens}
        if self.cached_tokens:
            out["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        return out


@dataclass
class ResponseIds:
    """The id, creation time and model every object of one response carries."""

    model: str
    chat: bool
    id: str = field(default="")
    created: int = field(default_factory=lambda: int(time.time()))
    fingerprint: str = "dte"

    def __post_init__(self) -> None:
        if not self.id:
            self.id = ("chatcmpl-" if self.chat else "cmpl-") + secrets.token_hex(12)

    def _head(self, obj: str) -> dict[str, Any]:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model,
                "system_fingerprint": self.fingerprint}

    def completion(self, text: str, finish_reason: str, usage: Usage) -> dict[str, Any]:
        if self.chat:
            choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text},
                                      "logprobs": None, "finish_reason": finish_reason}
            return {**self._head("chat.completion"), "choices": [choice], "usage": usage.to_json()}
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}
        return {**self._head("text_completion"), "choices": [choice], "usage": usage.to_json()}

    def chunk(self, text: str | None, finish_reason: str | None = None, *, first: bool = False,
              usage: Usage | None = None) -> dict[str, Any]:
        """One streamed chunk; `text` None and `usage` set: the final usage-only chunk (no choices)."""
        if self.chat:
            head = self._head("chat.completion.chunk")
            delta: dict[str, Any] = {}
            if first:
                delta["role"] = "assistant"
            if text is not None:
                delta["content"] = text
            choices = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
        else:
            head = self._head("text_completion")
            choices = [{"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish_reason}]
        if usage is not None:
            return {**head, "choices": [], "usage": usage.to_json()}
        return {**head, "choices": choices}


def model_object(model: str, created: int, sha256: str | None) -> dict[str, Any]:
    """A model object; `sha256` (an extension field): the weights' SHA-256 the appliance reported (INFO)."""
    return {"id": model, "object": "model", "created": created, "owned_by": "dte",
            **({"sha256": sha256} if sha256 else {})}


def models_list(models: dict[str, str | None], created: int) -> dict[str, Any]:
    """The list object of /v1/models: `models` maps each id to its weights' SHA-256 (None: unknown)."""
    return {"object": "list", "data": [model_object(m, created, sha) for m, sha in models.items()]}
