"""What the appliance is sent for an API request (docs/serve.md "Conversations"):

- /v1/completions: the prompt as it is, a new plain transcript;
- /v1/chat/completions whose messages extend a conversation a kept session holds (the history up to the
  assistant's latest reply is the one that session produced, and one user message follows): only that user
  message, a CHAT turn appended to the session;
- any other chat: one CHAT turn that starts a new transcript and carries the messages as text
  (`dte_build.conversation.carried`), refused with 400 context_length_exceeded when it outgrows one frame.
"""

from __future__ import annotations

from .. import protocol as p
from ..conversation import Message, carried
from .api import ApiError, CompletionRequest
from .backend import Job
from .sessions import conversation_key


def _too_long(size: int, param: str) -> ApiError:
    return ApiError(400, f"the prompt is {size} bytes of UTF-8; the appliance takes at most {p.MAX_PROMPT_TEXT} "
                         "per request (a conversation the gateway holds sends only its new message)",
                    code="context_length_exceeded", param=param)


def job_for(request: CompletionRequest) -> Job:
    s = request.sampling
    settings = dict(n_predict=s.max_tokens, temperature=s.temperature, top_k=s.top_k, top_p=s.top_p, seed=s.seed)
    if request.prompt is not None:
        size = len(request.prompt.encode("utf-8"))
        if size > p.MAX_PROMPT_TEXT:
            raise _too_long(size, "prompt")
        return Job(fresh=p.Prompt(request.prompt, **settings))
    messages = request.messages
    text = carried(messages)
    size = len(text.encode("utf-8"))
    fresh = p.Prompt(text, chat=True, **settings) if 0 < size <= p.MAX_PROMPT_TEXT else None
    error = _too_long(size, "messages") if size else ApiError(400, "the messages are empty", param="messages")
    last_reply = max((i for i, m in enumerate(messages) if m.role == "assistant"), default=None)
    if last_reply is None or last_reply != len(messages) - 2 or not messages[-1].content:
        return Job(fresh=fresh, fresh_error=error)
    follow_size = len(messages[-1].content.encode("utf-8"))
    follow = p.Prompt(messages[-1].content, chat=True, append=True, **settings) \
        if follow_size <= p.MAX_PROMPT_TEXT else None
    return Job(fresh=fresh, key=conversation_key(messages[:last_reply + 1]), follow_up=follow, fresh_error=error)


def key_after(request: CompletionRequest, reply: str) -> str | None:
    """The conversation key a session holds after answering `request` with `reply` (None: not a chat)."""
    if request.prompt is not None:
        return None
    return conversation_key((*request.messages, Message("assistant", reply)))
